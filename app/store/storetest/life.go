package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is the contract of a message's life: life entries applied by
// InsertMessages (edit, delete, react, read), the state history shows,
// search, unread counts, retention and expiry.

// runLife runs the message-life contract (called by Run).
func runLife(t *testing.T, migrated func(t *testing.T) Store) {
	t.Run("LifeEdit", func(t *testing.T) { testLifeEdit(t, migrated(t)) })
	t.Run("LifeDelete", func(t *testing.T) { testLifeDelete(t, migrated(t)) })
	t.Run("LifeReactions", func(t *testing.T) { testLifeReactions(t, migrated(t)) })
	t.Run("LifeRedelivery", func(t *testing.T) { testLifeRedelivery(t, migrated(t)) })
	t.Run("LifeOutOfOrder", func(t *testing.T) { testLifeOutOfOrder(t, migrated) })
	t.Run("LifeHistoryPaging", func(t *testing.T) { testLifeHistoryPaging(t, migrated(t)) })
	t.Run("LifeOptions", func(t *testing.T) { testLifeOptions(t, migrated(t)) })
	t.Run("ReadMarkers", func(t *testing.T) { testReadMarkers(t, migrated(t)) })
	t.Run("Unread", func(t *testing.T) { testUnread(t, migrated(t)) })
	t.Run("Search", func(t *testing.T) { testSearch(t, migrated(t)) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, migrated(t)) })
	t.Run("ExpireMessages", func(t *testing.T) { testExpireMessages(t, migrated(t)) })
}

// Users of the life tests (24-hex, as user ids are).
const (
	uA = "0123456789abcdef0123aaaa"
	uB = "0123456789abcdef0123bbbb"
	uC = "0123456789abcdef0123cccc"
)

// lifeBase is the first millisecond of the life tests' ids.
const lifeBase = 1_700_000_000_000

// lid is the id lifeBase+n.
func lid(n uint64) bus.ID { return bus.ID{Ms: lifeBase + n} }

func chat(room string, n uint64, user, text string) store.Message {
	return store.Message{ID: lid(n), RoomID: room, UserID: user, Username: "u" + user[len(user)-4:], Text: text}
}

func edit(room string, n uint64, user string, target uint64, text string) store.Message {
	m := chat(room, n, user, text)
	m.Type, m.MessageID = bus.TypeEdit, lid(target)
	return m
}

func del(room string, n uint64, user string, target uint64) store.Message {
	m := chat(room, n, user, "")
	m.Type, m.MessageID = bus.TypeDelete, lid(target)
	return m
}

func react(room string, n uint64, user string, target uint64, emoji string, on bool) store.Message {
	m := chat(room, n, user, "")
	m.Type, m.MessageID, m.Emoji, m.On = bus.TypeReact, lid(target), emoji, on
	return m
}

func read(room string, n uint64, user string, target uint64) store.Message {
	m := chat(room, n, user, "")
	m.Type, m.MessageID = bus.TypeRead, lid(target)
	return m
}

func insert(t *testing.T, s Store, msgs ...store.Message) store.InsertResult {
	t.Helper()
	res, err := s.InsertMessages(withDeadline(t), msgs)
	if err != nil {
		t.Fatalf("InsertMessages: %v", err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("InsertMessages rejected %v", res.Rejected)
	}
	return res
}

func message(t *testing.T, s Store, room string, n uint64) store.Message {
	t.Helper()
	m, err := s.Message(withDeadline(t), room, lid(n))
	if err != nil {
		t.Fatalf("Message(%q, %v): %v", room, lid(n), err)
	}
	return m
}

// page reads a whole room oldest first, with or without life entries.
func page(t *testing.T, s Store, room string, life bool, viewer string) []store.Message {
	t.Helper()
	msgs, more, err := s.Messages(withDeadline(t), room, store.Page{After: &bus.ID{}, Limit: 1000, Life: life, Viewer: viewer})
	if err != nil {
		t.Fatalf("Messages(%q, life %v): %v", room, life, err)
	}
	if more {
		t.Fatalf("Messages(%q): more than 1000", room)
	}
	return msgs
}

// nums are the ids of msgs as offsets from lifeBase.
func nums(msgs []store.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID.Ms - lifeBase
	}
	return out
}

func testLifeEdit(t *testing.T, s Store) {
	ctx := withDeadline(t)
	event := chat("r", 2, uA, "alice joined")
	event.Type, event.Event = bus.TypeEvent, `{"event":"member_joined"}`
	insert(t, s, chat("r", 1, uA, "hello world"), event,
		edit("r", 3, uA, 1, "first edit"), edit("r", 4, uA, 1, "second edit"))
	m := message(t, s, "r", 1)
	if m.Text != "second edit" || !m.Edited.Equal(time.UnixMilli(lifeBase+4)) || m.Deleted {
		t.Errorf("after two edits: text %q edited %v deleted %v, want the second edit at %v", m.Text, m.Edited, m.Deleted, time.UnixMilli(lifeBase+4).UTC())
	}
	// An older edit arriving late (redelivered) does not win.
	res := insert(t, s, edit("r", 3, uA, 1, "first edit"))
	if res.Duplicates != 1 || res.Inserted != 0 {
		t.Errorf("redelivered edit: %+v, want a duplicate", res)
	}
	if m := message(t, s, "r", 1); m.Text != "second edit" {
		t.Errorf("after a redelivered older edit: text %q, want the second edit", m.Text)
	}
	// An older edit never applied yet (new row) does not win either.
	insert(t, s, edit("r", 5, uA, 1, "third edit"))
	if m := message(t, s, "r", 1); m.Text != "third edit" || !m.Edited.Equal(time.UnixMilli(lifeBase+5)) {
		t.Errorf("after the third edit: %q at %v", m.Text, m.Edited)
	}
	// Edits of a room event or of an unknown message are stored, change nothing.
	insert(t, s, edit("r", 6, uA, 2, "not an event"), edit("r", 7, uA, 99, "nobody"))
	if m := message(t, s, "r", 2); m.Text != "alice joined" || !m.Edited.IsZero() {
		t.Errorf("edited room event: %+v", m)
	}
	// History holds the message and the event; life pages hold the edits too.
	if got := nums(page(t, s, "r", false, "")); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Errorf("history = %v, want [1 2]", got)
	}
	if got := nums(page(t, s, "r", true, "")); !reflect.DeepEqual(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("life page = %v, want [1 .. 7]", got)
	}
	h := page(t, s, "r", false, "")
	if h[0].Text != "third edit" || h[0].Edited.IsZero() {
		t.Errorf("history shows %q edited %v, want the current text", h[0].Text, h[0].Edited)
	}
	e := message(t, s, "r", 4)
	if e.Type != bus.TypeEdit || e.MessageID != lid(1) || e.Text != "second edit" {
		t.Errorf("edit row = %+v", e)
	}
	if _, err := s.Message(ctx, "r", lid(50)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Message of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.Message(ctx, "other", lid(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Message of another room: %v, want ErrNotFound", err)
	}
}

func testLifeDelete(t *testing.T, s Store) {
	files := []bus.Attachment{{URL: "/api/rooms/r/attachments/a1", FileType: "image/png", Size: 10, Filename: "a.png"},
		{URL: "/api/rooms/r/attachments/a2", FileType: "text/plain", Size: 3, Filename: "b.txt"}}
	m1 := chat("r", 1, uA, "secret plans")
	m1.Attachments, m1.Mentions = files, []string{uB}
	insert(t, s, m1, chat("r", 2, uB, "keep me"), react("r", 3, uB, 1, "👍", true), edit("r", 4, uA, 1, "secret plans v2"))
	res := insert(t, s, del("r", 5, uA, 1))
	if !reflect.DeepEqual(res.Removed, files) {
		t.Errorf("Removed = %+v, want the message's attachments %+v", res.Removed, files)
	}
	// Edits and reactions after the delete are stored but ignored.
	res = insert(t, s, edit("r", 6, uA, 1, "back from the dead"), react("r", 7, uC, 1, "❤️", true))
	if res.Inserted != 2 || len(res.Removed) != 0 {
		t.Errorf("after delete: %+v", res)
	}
	m := message(t, s, "r", 1)
	if !m.Deleted || m.Text != "" || m.Attachments != nil || m.Mentions != nil || m.Reactions != nil {
		t.Errorf("deleted message = %+v, want a tombstone", m)
	}
	for _, p := range page(t, s, "r", true, uB) {
		if p.Type == bus.TypeEdit && p.Text != "" {
			t.Errorf("edit %v of a deleted message keeps its text %q", p.ID, p.Text)
		}
	}
	h := page(t, s, "r", false, uB)
	if got := nums(h); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("history = %v, want [1 2]", got)
	}
	if !h[0].Deleted || h[0].Text != "" || h[0].Reactions != nil {
		t.Errorf("history shows the deleted message as %+v", h[0])
	}
	if h[1].Text != "keep me" || h[1].Deleted {
		t.Errorf("the other message: %+v", h[1])
	}
	// Not found by search, not counted as unread or as a mention.
	found, _, err := s.Search(withDeadline(t), store.SearchQuery{Terms: []string{"secret"}, Rooms: []string{"r"}})
	if err != nil || len(found) != 0 {
		t.Errorf("Search finds the deleted message: %v, %v", nums(found), err)
	}
	c, err := s.Unread(withDeadline(t), uB, "r", bus.ID{}, 100)
	if err != nil || c != (store.UnreadCount{}) {
		t.Errorf("Unread of uB = %+v, %v, want none (the deleted message is gone, the other is uB's)", c, err)
	}
	// A redelivered delete may name the attachments again: deleting twice is harmless.
	res = insert(t, s, del("r", 5, uA, 1))
	if res.Duplicates != 1 || (len(res.Removed) != 0 && !reflect.DeepEqual(res.Removed, files)) {
		t.Errorf("redelivered delete: %+v", res)
	}
	// A delete of an unknown message or a room event removes nothing.
	event := chat("r", 8, uA, "event")
	event.Type, event.Event = bus.TypeEvent, `{}`
	insert(t, s, event)
	res = insert(t, s, del("r", 9, uA, 77), del("r", 10, uA, 8))
	if len(res.Removed) != 0 {
		t.Errorf("delete of nothing removed %+v", res.Removed)
	}
	if m := message(t, s, "r", 8); m.Deleted || m.Text != "event" {
		t.Errorf("a delete acted on a room event: %+v", m)
	}
}

func testLifeReactions(t *testing.T, s Store) {
	insert(t, s, chat("r", 1, uA, "one"), chat("r", 2, uA, "two"),
		react("r", 3, uB, 1, "👍", true),
		react("r", 4, uC, 1, "❤️", true),
		react("r", 5, uC, 1, "👍", true),
		react("r", 6, uA, 1, "👍", true),
		react("r", 7, uA, 1, "👍", false), // uA takes theirs back
		react("r", 8, uB, 2, "🎉", true),
		react("r", 9, uB, 88, "👍", true), // unknown message: ignored
	)
	want := []bus.Reaction{{Emoji: "👍", Count: 2, Me: true}, {Emoji: "❤️", Count: 1, Me: true}}
	if got := message(t, s, "r", 1).Reactions; len(got) != 2 || got[0].Emoji != "👍" || got[0].Count != 2 || got[1].Count != 1 {
		t.Errorf("Message reactions = %+v, want 👍 2, ❤️ 1", got)
	}
	h := page(t, s, "r", false, uC)
	if len(h) != 2 {
		t.Fatalf("history = %v", nums(h))
	}
	if !reflect.DeepEqual(h[0].Reactions, want) {
		t.Errorf("reactions seen by uC = %+v, want %+v", h[0].Reactions, want)
	}
	if want := []bus.Reaction{{Emoji: "🎉", Count: 1}}; !reflect.DeepEqual(h[1].Reactions, want) {
		t.Errorf("reactions of 2 = %+v, want %+v", h[1].Reactions, want)
	}
	// Seen by uA, who took theirs back: Me false on 👍.
	h = page(t, s, "r", false, uA)
	if len(h[0].Reactions) != 2 || h[0].Reactions[0].Me || h[0].Reactions[1].Me {
		t.Errorf("reactions seen by uA = %+v, want Me false", h[0].Reactions)
	}
	// A reaction older than the one applied (same key) changes nothing,
	// whether redelivered or first seen now; a newer one does.
	insert(t, s, react("r", 6, uA, 1, "👍", true))
	insert(t, s, react("r", 13, uC, 2, "🎉", true), react("r", 12, uC, 2, "🎉", false))
	h = page(t, s, "r", false, "")
	if h[0].Reactions[0].Count != 2 {
		t.Errorf("a redelivered older reaction moved the count: %+v", h[0].Reactions)
	}
	if h[1].Reactions[0].Count != 2 {
		t.Errorf("an older off overrode a newer on: %+v", h[1].Reactions)
	}
	insert(t, s, react("r", 10, uB, 1, "👍", false), react("r", 11, uC, 1, "👍", false))
	h = page(t, s, "r", false, "")
	if want := []bus.Reaction{{Emoji: "❤️", Count: 1}}; !reflect.DeepEqual(h[0].Reactions, want) {
		t.Errorf("after every 👍 is off: %+v, want %+v", h[0].Reactions, want)
	}
}

// state is everything a room's life leaves visible, for comparing two
// stores or one store before and after a redelivery.
func state(t *testing.T, s Store, room string) string {
	t.Helper()
	var b strings.Builder
	for _, life := range []bool{false, true} {
		for _, m := range page(t, s, room, life, uB) {
			fmt.Fprintf(&b, "%v %s %q %v %v %+v %+v %+v %s|", m.ID, m.Type, m.Text, m.Edited.UnixMilli(), m.Deleted, m.Reactions, m.Mentions, m.Attachments, m.MessageID)
		}
	}
	markers, err := s.ReadMarkers(withDeadline(t), uB)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Unread(withDeadline(t), uB, room, bus.ID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := s.Search(withDeadline(t), store.SearchQuery{Terms: []string{"text"}, Rooms: []string{room}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "markers %v unread %+v search %v", markers, c, nums(found))
	return b.String()
}

// lifeBatch is a room's life in stream order: three messages (1 with a
// mention and an attachment), an edit, reactions, a delete of 1 and an
// edit after it, reads.
func lifeBatch() []store.Message {
	m1 := chat("r", 1, uA, "text one")
	m1.Mentions = []string{uB}
	m1.Attachments = []bus.Attachment{{URL: "/api/rooms/r/attachments/x", FileType: "image/png", Size: 1, Filename: "x.png"}}
	m3 := chat("r", 3, uA, "text three")
	m3.Mentions = []string{uB}
	return []store.Message{
		m1, chat("r", 2, uA, "text two"), m3,
		edit("r", 4, uA, 2, "text two edited"),
		react("r", 5, uB, 2, "👍", true),
		del("r", 6, uA, 1),
		edit("r", 7, uA, 1, "text one again"),
		react("r", 8, uC, 1, "👍", true),
		read("r", 9, uB, 2),
		read("r", 10, uB, 1),
	}
}

// testLifeOutOfOrder: ingest workers may commit a room's entries out of
// stream order (two workers of one group, or a killed worker's batch
// claimed after later ones were stored), so a life entry can be stored
// before the message it acts on. Whatever the order, the room ends as the
// in-order store has it, and the delete's attachments are named once the
// message is there to be deleted.
func testLifeOutOfOrder(t *testing.T, migrated func(t *testing.T) Store) {
	batch := lifeBatch()
	inOrder := migrated(t)
	insert(t, inOrder, batch...)
	want := state(t, inOrder, "r")
	reversed := make([]store.Message, len(batch))
	for i, m := range batch {
		reversed[len(batch)-1-i] = m
	}
	for name, deliveries := range map[string][][]store.Message{
		"life first":      {batch[3:], batch[:3]},
		"reversed in one": {reversed},
		"reversed one by one": func() (out [][]store.Message) {
			for _, m := range reversed {
				out = append(out, []store.Message{m})
			}
			return
		}(),
		"targets last, redone": {batch[3:], batch[3:], batch[:3], batch},
	} {
		t.Run(name, func(t *testing.T) {
			s := migrated(t)
			var removed []bus.Attachment
			for _, d := range deliveries {
				removed = append(removed, insert(t, s, d...).Removed...)
			}
			if got := state(t, s, "r"); got != want {
				t.Errorf("state:\n%s\nwant (in order):\n%s", got, want)
			}
			if len(removed) == 0 || removed[0].URL != "/api/rooms/r/attachments/x" {
				t.Errorf("removed attachments %+v, want message 1's, named when it was stored and deleted", removed)
			}
			if m := message(t, s, "r", 1); !m.Deleted || m.Text != "" {
				t.Errorf("message 1 = %+v, want deleted with its text gone", m)
			}
		})
	}
}

func testLifeRedelivery(t *testing.T, s Store) {
	m1 := chat("r", 1, uA, "text one")
	m1.Mentions = []string{uB}
	m1.Attachments = []bus.Attachment{{URL: "/api/rooms/r/attachments/x", FileType: "image/png", Size: 1, Filename: "x.png"}}
	m3 := chat("r", 3, uA, "text three")
	m3.Mentions = []string{uB}
	batch := []store.Message{
		m1, chat("r", 2, uA, "text two"), m3,
		edit("r", 4, uA, 2, "text two edited"),
		react("r", 5, uB, 2, "👍", true),
		del("r", 6, uA, 1),
		edit("r", 7, uA, 1, "text one again"),
		react("r", 8, uC, 1, "👍", true),
		read("r", 9, uB, 2),
		read("r", 10, uB, 1),
	}
	first := insert(t, s, batch...)
	if first.Inserted != len(batch) {
		t.Fatalf("first delivery: %+v", first)
	}
	want := state(t, s, "r")
	again := insert(t, s, batch...)
	if again.Duplicates != len(batch) || again.Inserted != 0 {
		t.Errorf("redelivery: %+v, want all duplicates", again)
	}
	if got := state(t, s, "r"); got != want {
		t.Errorf("state after redelivery:\n%s\nwant:\n%s", got, want)
	}
	// Redelivered in pieces (a crash part-way through): still the same.
	insert(t, s, batch[5:]...)
	insert(t, s, batch[:7]...)
	if got := state(t, s, "r"); got != want {
		t.Errorf("state after a partial redelivery:\n%s\nwant:\n%s", got, want)
	}
	if markers, _ := s.ReadMarkers(withDeadline(t), uB); markers["r"] != lid(2) {
		t.Errorf("marker of uB = %v, want %v (never moved back)", markers["r"], lid(2))
	}
	// The same events on a store receiving them one by one agree too.
	if c, _ := s.Unread(withDeadline(t), uB, "r", lid(2), 100); c != (store.UnreadCount{Unread: 1, Mentions: 1}) {
		t.Errorf("Unread after marker = %+v, want message 3 (a mention)", c)
	}
}

func testLifeHistoryPaging(t *testing.T, s Store) {
	// Messages 1..10 with a life entry after each: history pages count
	// messages only, and hasMore is exact.
	var batch []store.Message
	for i := uint64(1); i <= 10; i++ {
		batch = append(batch, chat("r", i*10, uA, fmt.Sprintf("m%d", i)), react("r", i*10+1, uB, i*10, "👍", true),
			read("r", i*10+2, uB, i*10))
	}
	insert(t, s, batch...)
	ctx := withDeadline(t)
	before := lid(1000)
	msgs, more, err := s.Messages(ctx, "r", store.Page{Before: &before, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := nums(msgs); !reflect.DeepEqual(got, []uint64{100, 90, 80, 70}) || !more {
		t.Errorf("newest page = %v more %v, want [100 90 80 70] more", got, more)
	}
	after := lid(60)
	msgs, more, err = s.Messages(ctx, "r", store.Page{After: &after, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := nums(msgs); !reflect.DeepEqual(got, []uint64{70, 80, 90, 100}) || more {
		t.Errorf("page after 60 = %v more %v, want [70 80 90 100], no more (only life entries follow)", got, more)
	}
	for _, m := range msgs {
		if len(m.Reactions) != 1 || m.Reactions[0].Count != 1 {
			t.Errorf("message %v reactions %+v", m.ID, m.Reactions)
		}
	}
	// A life page counts every row.
	msgs, more, err = s.Messages(ctx, "r", store.Page{After: &after, Limit: 4, Life: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := nums(msgs); !reflect.DeepEqual(got, []uint64{61, 62, 70, 71}) || !more {
		t.Errorf("life page after 60 = %v more %v, want [61 62 70 71] more", got, more)
	}
	if msgs[0].Type != bus.TypeReact || msgs[0].MessageID != lid(60) || msgs[0].Emoji != "👍" || !msgs[0].On {
		t.Errorf("reaction row = %+v", msgs[0])
	}
	if msgs[1].Type != bus.TypeRead || msgs[1].MessageID != lid(60) {
		t.Errorf("read row = %+v", msgs[1])
	}
}

func testLifeOptions(t *testing.T, s Store) {
	m := chat("r", 1, uA, "see @bob")
	m.ReplyTo = lid(0).String()
	m.Mentions = []string{uB, uC}
	m.Attachments = []bus.Attachment{{URL: "/api/rooms/r/attachments/1", FileType: "image/jpeg", Size: 12345, Filename: "photo \"1\".jpg"}}
	insert(t, s, chat("r", 0, uB, "question"), m)
	got := message(t, s, "r", 1)
	if got.ReplyTo != m.ReplyTo || !reflect.DeepEqual(got.Mentions, m.Mentions) || !reflect.DeepEqual(got.Attachments, m.Attachments) {
		t.Errorf("options read back as replyTo %q mentions %v attachments %+v, want %q %v %+v",
			got.ReplyTo, got.Mentions, got.Attachments, m.ReplyTo, m.Mentions, m.Attachments)
	}
	plain := message(t, s, "r", 0)
	if plain.ReplyTo != "" || plain.Mentions != nil || plain.Attachments != nil || plain.Reactions != nil || !plain.Edited.IsZero() {
		t.Errorf("a plain message reads back with options: %+v", plain)
	}
	h := page(t, s, "r", false, "")
	if len(h) != 2 || h[1].ReplyTo != m.ReplyTo || len(h[1].Attachments) != 1 {
		t.Errorf("history = %+v", h)
	}
}

func testReadMarkers(t *testing.T, s Store) {
	ctx := withDeadline(t)
	if m, err := s.ReadMarkers(ctx, uB); err != nil || len(m) != 0 {
		t.Errorf("ReadMarkers before any read = %v, %v", m, err)
	}
	insert(t, s, read("r", 10, uB, 5), read("q", 11, uB, 3), read("r", 12, uC, 9))
	insert(t, s, read("r", 13, uB, 4)) // older: the marker stays
	want := map[string]bus.ID{"r": lid(5), "q": lid(3)}
	if m, err := s.ReadMarkers(ctx, uB); err != nil || !reflect.DeepEqual(m, want) {
		t.Errorf("ReadMarkers = %v, %v, want %v", m, err, want)
	}
	insert(t, s, read("r", 14, uB, 7), read("r", 15, uB, 6))
	if m, _ := s.ReadMarkers(ctx, uB); m["r"] != lid(7) {
		t.Errorf("marker = %v, want %v", m["r"], lid(7))
	}
	// Ordered by id parts as numbers, not text.
	nine, ten := bus.ID{Ms: lifeBase + 9, Seq: 9}, bus.ID{Ms: lifeBase + 9, Seq: 10} // "…-10" < "…-9" as text
	insert(t, s, store.Message{ID: lid(16), RoomID: "z", UserID: uB, Type: bus.TypeRead, MessageID: nine},
		store.Message{ID: lid(17), RoomID: "z", UserID: uB, Type: bus.TypeRead, MessageID: ten})
	if m, _ := s.ReadMarkers(ctx, uB); m["z"] != ten {
		t.Errorf("marker z = %v, want %v", m["z"], ten)
	}
	if m, _ := s.ReadMarkers(ctx, uC); !reflect.DeepEqual(m, map[string]bus.ID{"r": lid(9)}) {
		t.Errorf("markers of uC = %v", m)
	}
}

func testUnread(t *testing.T, s Store) {
	ctx := withDeadline(t)
	event := chat("r", 3, uA, "event")
	event.Type, event.Event = bus.TypeEvent, `{}`
	mention := func(n uint64, from string, to ...string) store.Message {
		m := chat("r", n, from, "hi")
		m.Mentions = to
		return m
	}
	insert(t, s,
		chat("r", 1, uA, "a"), chat("r", 2, uB, "mine"), event,
		mention(4, uA, uB), mention(5, uC, uB, uC), chat("r", 6, uA, "b"),
		mention(7, uA, uB), del("r", 8, uA, 7), // deleted: neither unread nor a mention
		react("r", 9, uA, 1, "👍", true), mention(10, uB, uB), // own mention: not counted
		chat("other", 11, uA, "elsewhere"),
	)
	for _, tc := range []struct {
		marker bus.ID
		limit  int
		want   store.UnreadCount
	}{
		{bus.ID{}, 1000, store.UnreadCount{Unread: 4, Mentions: 2}},
		{lid(1), 1000, store.UnreadCount{Unread: 3, Mentions: 2}},
		{lid(4), 1000, store.UnreadCount{Unread: 2, Mentions: 1}},
		{lid(5), 1000, store.UnreadCount{Unread: 1}},
		{lid(10), 1000, store.UnreadCount{}},
		{bus.ID{}, 2, store.UnreadCount{Unread: 2, Mentions: 2}},
		{bus.ID{}, 1, store.UnreadCount{Unread: 1, Mentions: 1}},
		{bus.ID{}, 0, store.UnreadCount{}},
		{bus.MaxID(), 1000, store.UnreadCount{}},
	} {
		c, err := s.Unread(ctx, uB, "r", tc.marker, tc.limit)
		if err != nil || c != tc.want {
			t.Errorf("Unread(uB, marker %v, limit %d) = %+v, %v, want %+v", tc.marker, tc.limit, c, err, tc.want)
		}
	}
	if c, err := s.Unread(ctx, uC, "r", bus.ID{}, 1000); err != nil || c != (store.UnreadCount{Unread: 5}) {
		t.Errorf("Unread(uC) = %+v, %v, want 5 unread, no mention (theirs is self-sent)", c, err)
	}
	if c, err := s.Unread(ctx, uB, "nowhere", bus.ID{}, 1000); err != nil || c != (store.UnreadCount{}) {
		t.Errorf("Unread of an empty room = %+v, %v", c, err)
	}
	// Many unread: the count stops at the limit.
	var batch []store.Message
	for i := uint64(100); i < 400; i++ {
		batch = append(batch, mention(i, uA, uB))
	}
	insert(t, s, batch...)
	if c, err := s.Unread(ctx, uB, "r", bus.ID{}, 250); err != nil || c != (store.UnreadCount{Unread: 250, Mentions: 250}) {
		t.Errorf("capped Unread = %+v, %v, want 250 and 250", c, err)
	}
}

func testSearch(t *testing.T, s Store) {
	ctx := withDeadline(t)
	event := chat("r", 9, uA, "deploy event")
	event.Type, event.Event = bus.TypeEvent, `{}`
	insert(t, s,
		chat("r", 1, uA, "Deploy the server tonight"),
		chat("r", 2, uB, "who will deploy? not me"),
		chat("r", 3, uA, "the deployment went fine"),
		chat("q", 4, uA, "deploy in room q"),
		chat("r", 5, uC, "nothing to see"),
		chat("r", 6, uA, "SERVER deploy done"),
		chat("r", 7, uA, "an old draft"),
		edit("r", 8, uA, 7, "now about deploy"), // the edit row itself never matches
		event,
		chat("r", 10, uA, "deploy doomed"), del("r", 11, uA, 10),
		chat("secret", 12, uA, "deploy secret"),
	)
	search := func(q store.SearchQuery) ([]uint64, bool) {
		t.Helper()
		msgs, more, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		for _, m := range msgs {
			if len(store.Highlight(m.Text, q.Terms)) == 0 {
				t.Errorf("result %v %q has nothing to highlight for %v", m.ID, m.Text, q.Terms)
			}
			if m.Type != "" || m.Deleted {
				t.Errorf("result %v is of type %q deleted %v", m.ID, m.Type, m.Deleted)
			}
		}
		return nums(msgs), more
	}
	terms := func(q string) []string {
		ts, err := store.ParseSearch(q)
		if err != nil {
			t.Fatalf("ParseSearch(%q): %v", q, err)
		}
		return ts
	}
	rooms := []string{"r", "q"}
	for _, tc := range []struct {
		name string
		q    store.SearchQuery
		want []uint64
		more bool
	}{
		{"one word, newest first", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms}, []uint64{7, 6, 4, 3, 2, 1}, false},
		{"case-insensitive and every term", store.SearchQuery{Terms: terms("server DEPLOY"), Rooms: rooms}, []uint64{6, 1}, false},
		{"the last term is a prefix", store.SearchQuery{Terms: terms("the deploym"), Rooms: rooms}, []uint64{3}, false},
		{"no match", store.SearchQuery{Terms: terms("kubernetes"), Rooms: rooms}, nil, false},
		{"one room", store.SearchQuery{Terms: terms("deploy"), Rooms: []string{"q"}}, []uint64{4}, false},
		{"no room", store.SearchQuery{Terms: terms("deploy")}, nil, false},
		{"one user", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, UserID: uB}, []uint64{2}, false},
		{"before", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, Before: ptr(lid(4))}, []uint64{3, 2, 1}, false},
		{"after", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, After: ptr(lid(3))}, []uint64{7, 6, 4}, false},
		{"between", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, After: ptr(lid(1)), Before: ptr(lid(6))}, []uint64{4, 3, 2}, false},
		{"first page", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, Limit: 2}, []uint64{7, 6}, true},
		{"next page", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, Limit: 2, Before: ptr(lid(6))}, []uint64{4, 3}, true},
		{"last page", store.SearchQuery{Terms: terms("deploy"), Rooms: rooms, Limit: 2, Before: ptr(lid(3))}, []uint64{2, 1}, false},
		{"an edited message by its old text", store.SearchQuery{Terms: terms("draft"), Rooms: rooms}, nil, false},
		{"quotes and operators are words", store.SearchQuery{Terms: []string{`de"ploy`}, Rooms: rooms}, nil, false},
		{"an FTS operator word", store.SearchQuery{Terms: []string{"not"}, Rooms: rooms}, []uint64{5, 2}, false},
		{"OR is a word too", store.SearchQuery{Terms: []string{"deploy", "or", "nothing"}, Rooms: rooms}, nil, false},
	} {
		got, more := search(tc.q)
		if !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) || more != tc.more {
			t.Errorf("%s: Search = %v more %v, want %v more %v", tc.name, got, more, tc.want, tc.more)
		}
	}
	// Results carry their state: an edited message's text and its reactions.
	insert(t, s, react("r", 13, uB, 7, "👍", true))
	msgs, _, err := s.Search(ctx, store.SearchQuery{Terms: terms("now"), Rooms: rooms, Viewer: uB})
	if err != nil || len(msgs) != 1 || msgs[0].Text != "now about deploy" || msgs[0].Edited.IsZero() ||
		!reflect.DeepEqual(msgs[0].Reactions, []bus.Reaction{{Emoji: "👍", Count: 1, Me: true}}) {
		t.Errorf("Search result with state = %+v, %v", msgs, err)
	}
	// Newest first by id whatever the order of arrival, across rooms and
	// within a millisecond.
	at := func(room string, ms, seq uint64) store.Message {
		return store.Message{ID: bus.ID{Ms: lifeBase + ms, Seq: seq}, RoomID: room, UserID: uA, Text: "arrival"}
	}
	insert(t, s, at("r", 100, 5), at("q", 100, 0), at("r", 100, 9), at("q", 100, 7), at("q", 99, 3), at("r", 101, 0))
	msgs, more, err := s.Search(ctx, store.SearchQuery{Terms: []string{"arrival"}, Rooms: rooms})
	var got []string
	for _, m := range msgs {
		got = append(got, m.RoomID+" "+fmt.Sprint(m.ID.Ms-lifeBase)+"-"+fmt.Sprint(m.ID.Seq))
	}
	if want := []string{"r 101-0", "r 100-9", "q 100-7", "r 100-5", "q 100-0", "q 99-3"}; err != nil || more || !reflect.DeepEqual(got, want) {
		t.Errorf("Search order = %v more %v, %v; want %v", got, more, err, want)
	}
	msgs, more, err = s.Search(ctx, store.SearchQuery{Terms: []string{"arrival"}, Rooms: rooms, Before: &bus.ID{Ms: lifeBase + 100, Seq: 7}, Limit: 2})
	if err != nil || len(msgs) != 2 || !more || msgs[0].ID != (bus.ID{Ms: lifeBase + 100, Seq: 5}) || msgs[1].ID != (bus.ID{Ms: lifeBase + 100}) {
		t.Errorf("Search before 100-7 = %v more %v, %v", ids(msgs), more, err)
	}
}

func ptr(id bus.ID) *bus.ID { return &id }

func testRetention(t *testing.T, s Store) {
	ctx := withDeadline(t)
	if _, err := s.CreateRoom(ctx, store.Room{Name: "keep"}, &store.Member{UserID: uA, Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Room(ctx, "keep"); err != nil || r.Retention != 0 {
		t.Errorf("a new room's retention = %v, %v, want 0 (the server's default)", r.Retention, err)
	}
	for _, d := range []time.Duration{48 * time.Hour, store.RetainForever, 1500 * time.Millisecond, 0} {
		if err := s.SetRetention(ctx, "keep", d); err != nil {
			t.Fatalf("SetRetention(%v): %v", d, err)
		}
		if r, err := s.Room(ctx, "keep"); err != nil || r.Retention != d {
			t.Errorf("after SetRetention(%v): Room.Retention = %v, %v", d, r.Retention, err)
		}
	}
	if err := s.SetRetention(ctx, "keep", time.Hour); err != nil {
		t.Fatal(err)
	}
	rooms, err := s.ListRooms(ctx)
	if err != nil || len(rooms) == 0 {
		t.Fatalf("ListRooms: %v, %v", rooms, err)
	}
	for _, r := range rooms {
		if r.Name == "keep" && r.Retention != time.Hour {
			t.Errorf("ListRooms shows retention %v, want 1h", r.Retention)
		}
	}
	if mr, err := s.MemberRooms(ctx, uA); err != nil || len(mr) != 1 || mr[0].Room.Retention != time.Hour {
		t.Errorf("MemberRooms = %+v, %v, want retention 1h", mr, err)
	}
	if err := s.SetRetention(ctx, "nowhere", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRetention of an unknown room: %v, want ErrNotFound", err)
	}
	if err := s.SetRetention(ctx, "keep", -time.Hour); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRetention(-1h): %v, want a refusal", err)
	}
	if r, _ := s.Room(ctx, "keep"); r.Retention != time.Hour {
		t.Errorf("a refused SetRetention changed retention to %v", r.Retention)
	}
}

func testExpireMessages(t *testing.T, s Store) {
	ctx := withDeadline(t)
	file := []bus.Attachment{{URL: "/api/rooms/r/attachments/f", FileType: "text/plain", Size: 5, Filename: "f.txt"}}
	m1 := chat("r", 1, uA, "oldest word")
	m1.Attachments = file
	m2 := chat("r", 2, uA, "second word")
	m2.Mentions = []string{uB}
	insert(t, s, m1, m2, react("r", 3, uB, 2, "👍", true), chat("r", 4, uA, "fourth word"), chat("r", 5, uA, "newest word"),
		chat("other", 1, uA, "other word"))
	cut := time.UnixMilli(lifeBase + 5) // rows 1..4 are older
	if got, err := s.ExpireMessages(ctx, "r", cut, 0); err != nil || len(got) != 0 {
		t.Errorf("ExpireMessages limit 0 = %v, %v", nums(got), err)
	}
	got, err := s.ExpireMessages(ctx, "r", cut, 2)
	if err != nil || !reflect.DeepEqual(nums(got), []uint64{1, 2}) {
		t.Fatalf("first batch = %v, %v, want [1 2]", nums(got), err)
	}
	if !reflect.DeepEqual(got[0].Attachments, file) {
		t.Errorf("expired message attachments = %+v, want %+v", got[0].Attachments, file)
	}
	if c, _ := s.Unread(ctx, uB, "r", bus.ID{}, 100); c.Mentions != 0 {
		t.Errorf("mentions of an expired message still count: %+v", c)
	}
	got, err = s.ExpireMessages(ctx, "r", cut, 2)
	if err != nil || !reflect.DeepEqual(nums(got), []uint64{3, 4}) {
		t.Fatalf("second batch = %v, %v, want [3 4]", nums(got), err)
	}
	if got[0].Type != bus.TypeReact {
		t.Errorf("expired life row = %+v", got[0])
	}
	if got, err = s.ExpireMessages(ctx, "r", cut, 2); err != nil || len(got) != 0 {
		t.Errorf("third batch = %v, %v, want none", nums(got), err)
	}
	if h := nums(page(t, s, "r", true, "")); !reflect.DeepEqual(h, []uint64{5}) {
		t.Errorf("room after expiry = %v, want [5]", h)
	}
	found, _, err := s.Search(ctx, store.SearchQuery{Terms: []string{"word"}, Rooms: []string{"r", "other"}})
	if err != nil || !reflect.DeepEqual(nums(found), []uint64{5, 1}) {
		t.Errorf("Search after expiry = %v, %v, want [5 1] (the other room's stays)", nums(found), err)
	}
	// A message stored again under an expired id (none would be) starts
	// with no reactions: they went with it.
	insert(t, s, chat("r", 2, uA, "reborn"))
	if m := message(t, s, "r", 2); m.Reactions != nil {
		t.Errorf("reactions outlived their message: %+v", m.Reactions)
	}
}
