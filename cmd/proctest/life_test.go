package proctest_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// TestMessageLife is issue 13's Done-when over real processes: two chat
// replicas (A, B) and two ingest processes on one Redis and one SQLite
// data dir. alice is connected twice (alice1 on A, alice2 on B), bob once
// (on B). Every event type (message with replyTo, a mention or a file, edit,
// delete, react, read) is acked and delivered live on both replicas (read
// frames only to the reader's connections); an ingest process is killed
// with SIGKILL while the stream is full; every acked event is stored
// exactly once and applied; a since recovery replays them in the order
// they were delivered live; and alice's two connections converge on the
// same read markers and GET /api/rooms counts on either replica.
func TestMessageLife(t *testing.T) {
	url, rc := sharedRedis(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := newNodeConfig(dataDir, url)
	cfg.fastIngest()
	cfg.set("ingest.claim_idle", "2s")
	cfgFile := cfg.writeMigrated(t)
	a := startNode(t, "chat-a", cfgFile, "chat")
	b := startNode(t, "chat-b", cfgFile, "chat")
	ing1 := startNode(t, "ingest-1", cfgFile, "ingest")
	ing2 := startNode(t, "ingest-2", cfgFile, "ingest")
	f := &membershipFleet{t: t, cfgFile: cfgFile, a: a, b: b}
	alice, bob := f.register("alice"), f.register("bob")

	const room = "life"
	if code, body := a.call(t, http.MethodPost, "/api/rooms", alice.token, map[string]any{"name": room}); code != http.StatusCreated {
		t.Fatalf("create %s: %d %v", room, code, body)
	}
	if code, body := b.call(t, http.MethodPost, "/api/rooms/"+room+"/join", bob.token, nil); code != http.StatusOK {
		t.Fatalf("bob joins %s: %d %v", room, code, body)
	}
	alice1 := &lifeClient{stampedClient: dialStamped(t, a, alice, room, ""), name: "alice1"}
	alice2 := &lifeClient{stampedClient: dialStamped(t, b, alice, room, ""), name: "alice2"}
	bobc := &lifeClient{stampedClient: dialStamped(t, b, bob, room, ""), name: "bob"}
	everyone := []*lifeClient{alice1, alice2, bobc}

	// The first message: what a recovering client saw last.
	m0 := alice1.act(map[string]any{"type": "message", "room": room, "text": "before", "clientId": "m0"})
	for _, c := range everyone {
		c.live(m0, "message")
	}

	// The stream fills up ahead of the events (and after them), so the
	// ingest processes are mid-batch when one is killed.
	flood(t, rc, 3000, "f1")

	var acked []string // every acked event's id, in the order acked
	ev := func(c *lifeClient, frame map[string]any, liveType string, to ...*lifeClient) string {
		t.Helper()
		id := c.act(frame)
		acked = append(acked, id)
		for _, r := range to {
			r.live(id, liveType)
		}
		return id
	}
	m1 := ev(alice1, map[string]any{"type": "message", "room": room, "text": "hi @" + bob.name, "clientId": "m1"}, "message", everyone...)
	if got := alice2.frame(m1)["mentions"]; !slices.Equal(anyStrings(got), []string{bob.id}) {
		t.Errorf("m1's mentions: %v, want [%s]", got, bob.id)
	}
	m2 := ev(bobc, map[string]any{"type": "message", "room": room, "text": "hello", "replyTo": m1, "clientId": "m2"}, "message", everyone...)
	if got := alice1.frame(m2)["replyTo"]; got != m1 {
		t.Errorf("m2's replyTo on A: %v, want %s", got, m1)
	}
	m3 := ev(alice2, map[string]any{"type": "message", "room": room, "text": "oops", "clientId": "m3"}, "message", everyone...)
	e1 := ev(alice1, map[string]any{"type": "edit", "room": room, "id": m1, "text": "hi again @" + bob.name, "clientId": "e1"}, "edited", everyone...)
	if fr := bobc.frame(e1); fr["messageId"] != m1 || fr["text"] != "hi again @"+bob.name || fr["userId"] != alice.id {
		t.Errorf("the edited frame: %v", fr)
	}
	d1 := ev(alice2, map[string]any{"type": "delete", "room": room, "id": m3, "clientId": "d1"}, "deleted", everyone...)
	if fr := alice1.frame(d1); fr["messageId"] != m3 {
		t.Errorf("the deleted frame: %v", fr)
	}
	r1 := ev(bobc, map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍", "on": true, "clientId": "r1"}, "reaction", everyone...)
	if fr := alice1.frame(r1); fr["messageId"] != m1 || fr["emoji"] != "👍" || fr["on"] != true {
		t.Errorf("the reaction frame: %v", fr)
	}
	ev(alice1, map[string]any{"type": "react", "room": room, "id": m2, "emoji": "🎉", "on": true, "clientId": "r2"}, "reaction", everyone...)
	ev(alice1, map[string]any{"type": "react", "room": room, "id": m2, "emoji": "🎉", "on": false, "clientId": "r3"}, "reaction", everyone...)
	// A file uploaded through B, sent through A, downloaded through
	// either: the replicas share the attachment storage.
	att := upload(t, b, alice, room, "pic.png", tinyPNG)
	mf := ev(alice1, map[string]any{"type": "message", "room": room, "text": "a picture", "attachments": []any{map[string]any{"url": att}}, "clientId": "mf"}, "message", everyone...)
	if got, _ := bobc.frame(mf)["attachments"].([]any); len(got) != 1 || got[0].(map[string]any)["url"] != att || got[0].(map[string]any)["fileType"] != "image/png" {
		t.Errorf("the attachment bob got on B: %v", bobc.frame(mf)["attachments"])
	}
	for _, n := range []*node{a, b} {
		if code := download(t, n, bob, att); code != http.StatusOK {
			t.Errorf("bob downloads %s through %s: %d", att, n.name, code)
		}
	}
	m4 := ev(bobc, map[string]any{"type": "message", "room": room, "text": "@" + alice.name + " look", "clientId": "m4"}, "message", everyone...)
	m5 := ev(bobc, map[string]any{"type": "message", "room": room, "text": "and this", "clientId": "m5"}, "message", everyone...)
	// alice reads up to m2 on B: her connection on A is told, bob is not
	// (not a direct room).
	rd1 := ev(alice2, map[string]any{"type": "read", "room": room, "id": m2, "clientId": "rd1"}, "read", alice1, alice2)
	if fr := alice1.frame(rd1); fr["messageId"] != m2 || fr["userId"] != alice.id {
		t.Errorf("the read frame on A: %v", fr)
	}
	flood(t, rc, 3000, "f2")

	// Kill an ingest process mid-way through the stream.
	apptest.Eventually(t, procWait, "ingest to make progress", func() bool {
		p, lag := groupState(t, rc)
		return p > 0 && lag < 5000
	})
	ing1.kill()
	pend, lag := groupState(t, rc)
	t.Logf("killed ingest-1 with %d entries pending, %d undelivered", pend, lag)

	// Counts converge on both replicas while ingest catches up: bob's m4
	// and m5 are unread, m4 mentions alice.
	checkCounts(t, room, alice, 2, 1, a, b)
	// A read of an older id moves nothing.
	ack := alice1.actAck(map[string]any{"type": "read", "room": room, "id": m1, "clientId": "rd-old"})
	if ack["moved"] != false || ack["id"] != m2 {
		t.Errorf("a read behind the marker: %v, want moved false with the marker %s", ack, m2)
	}
	rd2 := ev(alice1, map[string]any{"type": "read", "room": room, "id": m5, "clientId": "rd2"}, "read", alice1, alice2)
	checkCounts(t, room, alice, 0, 0, a, b)
	// Fence: bob has read everything published before his own message,
	// and no read frame of alice's among it.
	fence := ev(bobc, map[string]any{"type": "message", "room": room, "text": "fence", "clientId": "fence"}, "message", everyone...)
	for _, fr := range bobc.roomFrames(room) {
		if fr["type"] == "read" {
			t.Errorf("bob got alice's read frame in a public room: %v", fr)
		}
	}
	// The two connections of alice saw the same read markers.
	for _, c := range []*lifeClient{alice1, alice2} {
		if got := c.readMarkers(room); !slices.Equal(got, []string{m2, m5}) {
			t.Errorf("%s's read frames name %v, want [%s %s]", c.name, got, m2, m5)
		}
	}

	// In a direct room the other member sees the read ("seen"), live and
	// in a since replay.
	code, body := a.call(t, http.MethodPost, "/api/dm", alice.token, map[string]any{"username": bob.name})
	dmv, _ := body["room"].(map[string]any)
	dm, _ := dmv["name"].(string)
	if code != http.StatusOK || dm == "" {
		t.Fatalf("POST /api/dm: %d %v", code, body)
	}
	alice1.join(dm)
	bobc.join(dm)
	dm1 := bobc.act(map[string]any{"type": "message", "room": dm, "text": "psst", "clientId": "dm1"})
	alice1.live(dm1, "message")
	dmRead := alice1.act(map[string]any{"type": "read", "room": dm, "id": dm1, "clientId": "dm-read"})
	bobc.live(dmRead, "read")
	if fr := bobc.frame(dmRead); fr["userId"] != alice.id || fr["messageId"] != dm1 {
		t.Errorf("bob's seen frame: %v", fr)
	}
	bobReplay := dialWS(t, a.wsURL(bob.token))
	bobReplay.Join(dm, dm1)
	if fr := bobReplay.Expect("alice's read in bob's replay", func(f map[string]any) bool { return f["room"] == dm && f["id"] == dmRead }); fr["type"] != "read" {
		t.Errorf("bob's replay of %s: %v", dm, fr)
	}

	// What alice1 received live after m0, in order, is what a since
	// recovery replays to her (while ingest may still be behind, and
	// once it is done).
	want := alice1.idsAfter(room, m0)
	if !slices.Contains(want, rd2) || !slices.Contains(want, fence) {
		t.Fatalf("alice1's live frames miss events: %v", want)
	}
	replay := func(n *node) []string {
		t.Helper()
		ws := dialWS(t, n.wsURL(alice.token))
		if j := ws.Join(room, m0); j["recovered"] != true {
			t.Errorf("since %s on %s: joined %v, want recovered", m0, n.name, j)
		}
		var got []string
		for len(got) < len(want) {
			fr := ws.Read()
			if id, ok := fr["id"].(string); ok && fr["room"] == room && fr["type"] != "room_event" {
				got = append(got, id)
			}
		}
		return got
	}
	if got := replay(b); !slices.Equal(got, want) {
		t.Errorf("since replay on B (ingest behind):\n got %v\nwant %v", got, want)
	}

	ing1 = startNode(t, "ingest-1b", cfgFile, "ingest")
	var p int64
	if !apptest.Poll(90*time.Second, func() bool {
		p, lag = groupState(t, rc)
		return p == 0 && lag == 0
	}) {
		t.Fatalf("still %d pending and %d undelivered after 90s", p, lag)
	}
	if got := replay(a); !slices.Equal(got, want) {
		t.Errorf("since replay on A (all stored):\n got %v\nwant %v", got, want)
	}
	// bob's fence came after alice's marker.
	checkCounts(t, room, alice, 1, 0, a, b)
	for _, n := range []*node{ing1, ing2} {
		if err := n.stopWith(syscall.SIGTERM); err != nil {
			t.Errorf("graceful stop of %s: %v", n.name, err)
		}
	}

	// Stored exactly once, and applied.
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	var rows []store.Message
	after := bus.ID{}
	for {
		page, more, err := st.Messages(ctx, room, store.Page{After: &after, Limit: 500, Life: true, Viewer: alice.id})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page...)
		if !more || len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
	}
	times := map[string]int{}
	for _, m := range rows {
		times[m.ID.String()]++
	}
	for _, id := range append(acked, m0) {
		if times[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, times[id])
		}
	}
	state := map[string]store.Message{}
	for _, m := range rows {
		state[m.ID.String()] = m
	}
	if m := state[m1]; m.Text != "hi again @"+bob.name || m.Edited.IsZero() ||
		!slices.Equal(m.Reactions, []bus.Reaction{{Emoji: "👍", Count: 1, Me: false}}) || !slices.Equal(m.Mentions, []string{bob.id}) {
		t.Errorf("m1 stored as %+v", m)
	}
	if m := state[m2]; m.ReplyTo != m1 || len(m.Reactions) != 0 {
		t.Errorf("m2 stored as %+v", m)
	}
	if m := state[m3]; !m.Deleted || m.Text != "" {
		t.Errorf("m3 stored as %+v", m)
	}
	if m := state[mf]; len(m.Attachments) != 1 || m.Attachments[0].URL != att {
		t.Errorf("the message with a file stored as %+v", m)
	}
	if m := state[m4]; !slices.Equal(m.Mentions, []string{alice.id}) {
		t.Errorf("m4 stored as %+v", m)
	}
	markers, err := st.ReadMarkers(ctx, alice.id)
	if err != nil || markers[room].String() != m5 {
		t.Errorf("alice's stored marker of %s: %v (%v), want %s", room, markers[room], err, m5)
	}
}

// lifeClient is a connection that acts (sends a frame and reads its ack,
// waiting out rate limits as the web client does: the test runs at the
// default limits) and checks live delivery.
type lifeClient struct {
	*stampedClient
	name string
}

// actAck sends frame and returns its ack; a rate_limited answer is waited
// out and the frame sent again with the same clientId.
func (c *lifeClient) actAck(frame map[string]any) map[string]any {
	c.t.Helper()
	cid := frame["clientId"]
	for {
		if err := c.send(frame); err != nil {
			c.t.Fatal(err)
		}
		s := c.until(fmt.Sprintf("the answer to %v", cid), func(s stamped) bool {
			return s.f != nil && s.f["clientId"] == cid && (s.f["type"] == "ack" || s.f["type"] == "error" || s.f["type"] == "rate_limited")
		})
		switch s.f["type"] {
		case "ack":
			return s.f
		case "rate_limited":
			ms, _ := s.f["retryAfterMs"].(float64)
			time.Sleep(time.Duration(ms) * time.Millisecond)
		default:
			c.t.Fatalf("%s: %v refused: %v", c.name, frame, s.f)
		}
	}
}

// join joins room and waits for the answer.
func (c *lifeClient) join(room string) {
	c.t.Helper()
	if err := c.send(map[string]any{"type": "join", "room": room}); err != nil {
		c.t.Fatal(err)
	}
	c.until(c.name+" joined "+room, func(s stamped) bool { return s.f != nil && s.f["type"] == "joined" && s.f["room"] == room })
}

// act is actAck returning the acked id.
func (c *lifeClient) act(frame map[string]any) string {
	c.t.Helper()
	ack := c.actAck(frame)
	id, _ := ack["id"].(string)
	if id == "" {
		c.t.Fatalf("%s: ack of %v without an id: %v", c.name, frame, ack)
	}
	return id
}

// live waits for the live frame of id, of type typ.
func (c *lifeClient) live(id, typ string) {
	c.t.Helper()
	if fr := c.frame(id); fr != nil {
		if fr["type"] != typ {
			c.t.Fatalf("%s: frame %s is %v, want a %s frame", c.name, id, fr, typ)
		}
		return
	}
	s := c.until(fmt.Sprintf("%s: the %s frame %s", c.name, typ, id), func(s stamped) bool { return s.f != nil && s.f["id"] == id && s.f["type"] != "ack" })
	if s.f["type"] != typ {
		c.t.Fatalf("%s: frame %s is %v, want a %s frame", c.name, id, s.f, typ)
	}
}

// frame is the live frame of id read so far (nil: none).
func (c *lifeClient) frame(id string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.all {
		if s.f != nil && s.f["id"] == id && s.f["type"] != "ack" {
			return s.f
		}
	}
	return nil
}

// idsAfter is the ids of the live frames of room read after the one of
// id, in order.
func (c *lifeClient) idsAfter(room, id string) []string {
	var out []string
	seen := false
	for _, fr := range c.roomFrames(room) {
		fid, _ := fr["id"].(string)
		if fr["type"] == "ack" || fr["type"] == "room_event" || fid == "" {
			continue
		}
		if seen {
			out = append(out, fid)
		}
		seen = seen || fid == id
	}
	return out
}

// readMarkers is the messageIds of the read frames of room read so far.
func (c *lifeClient) readMarkers(room string) []string {
	var out []string
	for _, fr := range c.roomFrames(room) {
		if fr["type"] == "read" {
			out = append(out, fr["messageId"].(string))
		}
	}
	return out
}

// checkCounts waits until GET /api/rooms on every node gives u's unread
// and mention counts of room: the counts are of stored messages, so they
// follow ingest.
func checkCounts(t *testing.T, room string, u member, unread, mentions int, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		last := ""
		if !apptest.Poll(procWait, func() bool {
			code, body := n.call(t, http.MethodGet, "/api/rooms", u.token, nil)
			last = fmt.Sprintf("%d %v", code, body)
			rooms, _ := body["rooms"].([]any)
			for _, r := range rooms {
				if r, _ := r.(map[string]any); r["name"] == room {
					return r["unread"] == float64(unread) && r["mentions"] == float64(mentions)
				}
			}
			return false
		}) {
			t.Errorf("GET /api/rooms on %s: want %s with unread %d, mentions %d; last answer %s", n.name, room, unread, mentions, last)
		}
	}
}

// flood appends n messages of other rooms straight to the stream.
func flood(t *testing.T, rc rueidis.Client, n int, tag string) {
	t.Helper()
	ctx := context.Background()
	for off := 0; off < n; off += 500 {
		cmds := make(rueidis.Commands, 0, 500)
		for i := off; i < min(off+500, n); i++ {
			text := fmt.Sprintf("%s %d", tag, i)
			e := bus.Entry{RoomID: fmt.Sprintf("flood%d", i%5), UserID: "507f1f77bcf86cd799439011", Username: "ann", Text: text,
				TS: time.Now().UnixMilli(), ClientID: "c-" + text}
			cmd := rc.B().Xadd().Key(bus.Stream).Id("*").FieldValue()
			fv := e.Fields()
			for j := 0; j < len(fv); j += 2 {
				cmd = cmd.FieldValue(fv[j], fv[j+1])
			}
			cmds = append(cmds, cmd.Build())
		}
		for _, r := range rc.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func anyStrings(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestRetentionProcess: `aurora rooms retention` next to a running ingest
// process makes it delete the room's messages older than the retention
// (and only those) at its next pass.
func TestRetentionProcess(t *testing.T) {
	url, rc := sharedRedis(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := newNodeConfig(dataDir, url)
	cfg.fastIngest()
	// A pass every 100ms rather than every minute: the test waits for one.
	cfg.set("ingest.retention_interval", "100ms")
	cfgFile := cfg.writeMigrated(t)
	ing := startNode(t, "ingest", cfgFile, "ingest")
	f := &membershipFleet{t: t, cfgFile: cfgFile}

	// Three messages of 1970 and one of now.
	ctx := context.Background()
	for i, id := range []string{"1000-0", "1000-1", "2000-0", "*"} {
		e := bus.Entry{RoomID: "general", UserID: "507f1f77bcf86cd799439011", Username: "ann", Text: fmt.Sprintf("m%d", i), TS: 0}
		cmd := rc.B().Xadd().Key(bus.Stream).Id(id).FieldValue()
		fv := e.Fields()
		for j := 0; j < len(fv); j += 2 {
			cmd = cmd.FieldValue(fv[j], fv[j+1])
		}
		if err := rc.Do(ctx, cmd.Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() int { return len(sqliteMessages(t, dataDir, []string{"general"})) }
	waitUntil(t, "the four messages stored", func() bool { return stored() == 4 })
	// Nothing expires by default (keep forever).
	if out := f.aurora("rooms", "retention", "general", "--json"); !strings.Contains(out, `"effective": "forever"`) {
		t.Errorf("general's retention before: %s", out)
	}
	if n := stored(); n != 4 {
		t.Fatalf("%d stored before any retention", n)
	}
	f.aurora("rooms", "retention", "general", "1h")
	waitUntil(t, "the old messages expired", func() bool { return stored() == 1 })
	if got := ing.metric("aurora_ingest_expired_total"); got != 3 {
		t.Errorf("aurora_ingest_expired_total %v, want 3", got)
	}
}
