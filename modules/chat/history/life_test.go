package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/modules/chat/history"
)

// life is a life entry of room by user (u<n>, user<n>) under the i-th
// test id, acting on message target.
func life(i int, typ string, user int, target int) bus.Entry {
	u := []string{"u0", "u1", "u2"}[user]
	return bus.Entry{ID: id(i), RoomID: room, UserID: u, Username: "user" + u[1:], TS: int64(id(i).Ms),
		ClientID: "l-" + typ + "-" + string(rune('a'+i%26)), Type: typ, MessageID: id(target)}
}

func edit(i, user, target int, text string) bus.Entry {
	e := life(i, bus.TypeEdit, user, target)
	e.Text = text
	return e
}

func react(i, user, target int, emoji string, on bool) bus.Entry {
	e := life(i, bus.TypeReact, user, target)
	e.Emoji, e.On = emoji, on
	return e
}

// lifeRoom is messages 0..5 of room (u0, u1, u2 in turn; the viewer is
// u1) followed by their life: the test's expectations are in its
// comments and checkLifePage.
func lifeRoom() []bus.Entry {
	var es []bus.Entry
	for i := 0; i <= 5; i++ {
		es = append(es, entry(room, i))
	}
	return append(es,
		edit(10, 1, 1, "first try"),        // u1 edits its message 1 ...
		edit(11, 1, 1, "second try"),       // ... and again: the last wins
		life(12, bus.TypeDelete, 1, 4),     // u1 deletes its message 4
		edit(13, 1, 4, "after the delete"), // changes nothing
		react(14, 1, 2, "👍", true),         // the viewer's reaction
		react(15, 1, 2, "🎉", true),         // ... set ...
		react(16, 1, 2, "🎉", false),        // ... and removed
		react(17, 2, 3, "👍", true),         // another user's
		life(18, bus.TypeRead, 1, 5),       // u1 read up to 5
		life(19, bus.TypeRead, 2, 5),       // u2 read up to 5
		react(20, 1, 4, "👍", true),         // on a deleted message: nothing
	)
}

// checkLifePage checks a history page of lifeRoom, newest first:
// messages only, each in its state. othersReactions says whether u2's
// reaction on 3 shows (it does once ingested).
func checkLifePage(t *testing.T, frames []bus.MessageFrame, othersReactions bool) {
	t.Helper()
	if got := ids(t, frames); !slices.Equal(got, seq(5, 0)) {
		t.Fatalf("page items %v, want the messages 5..0 only", got)
	}
	at := func(i int) bus.MessageFrame { return frames[5-i] }
	if m := at(1); m.Text != "second try" || m.Edited != int64(id(11).Ms) || m.Deleted {
		t.Errorf("message 1 after two edits: %+v", m)
	}
	if m := at(4); !m.Deleted || m.Text != "" || m.Edited != 0 || len(m.Reactions) != 0 {
		t.Errorf("message 4 deleted: %+v", m)
	}
	if m := at(2); !slices.Equal(m.Reactions, []bus.Reaction{{Emoji: "👍", Count: 1, Me: true}}) {
		t.Errorf("message 2's reactions: %+v", m.Reactions)
	}
	want := []bus.Reaction(nil)
	if othersReactions {
		want = []bus.Reaction{{Emoji: "👍", Count: 1, Me: false}}
	}
	if m := at(3); !slices.Equal(m.Reactions, want) {
		t.Errorf("message 3's reactions: %+v, want %+v", m.Reactions, want)
	}
	for _, i := range []int{0, 5} {
		if m := at(i); m.Text != entry(room, i).Text || m.Edited != 0 || m.Deleted || m.Reactions != nil {
			t.Errorf("message %d untouched: %+v", i, m)
		}
	}
}

// TestLifeInPages: a page holds messages only, with the life entries
// still in the stream applied (the sender reads its own edit, delete and
// reaction before ingest stores them), and reads the same once ingest
// stored everything.
func TestLifeInPages(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.open)
			e.xadd(lifeRoom()...)
			// 0..3 ingested; 4, 5 and the life entries only in the stream.
			e.deliver(4, true)
			t.Run("pending", func(t *testing.T) {
				frames, more := e.page("")
				if more {
					t.Error("hasMore on a page holding the whole room")
				}
				checkLifePage(t, frames, false)
				// A page that ends before the life entries' ids applies
				// them all the same.
				frames, _ = e.page("?after=" + id(0).String() + "&limit=2")
				if got := ids(t, frames); !slices.Equal(got, []int{1, 2}) || frames[0].Text != "second try" {
					t.Errorf("after 0, limit 2: %v %+v", got, frames)
				}
			})
			t.Run("ingested", func(t *testing.T) {
				e.deliver(len(lifeRoom())-4, true)
				frames, _ := e.page("")
				checkLifePage(t, frames, true)
			})
		})
	}
}

// replayed is a since frame: its type, id and (life frames) target.
type replayed struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	MessageID string `json:"messageId"`
	UserID    string `json:"userId"`
}

func (e *env) replay(viewer string, direct bool) []replayed {
	e.t.Helper()
	raw, complete, err := e.svc.Since(context.Background(), room, id(0), viewer, direct, 100, 1<<20)
	if err != nil || !complete {
		e.t.Fatalf("Since: complete %v, %v", complete, err)
	}
	out := make([]replayed, len(raw))
	for i, f := range raw {
		if err := json.Unmarshal(f.JSON, &out[i]); err != nil {
			e.t.Fatal(err)
		}
		if out[i].ID != f.ID.String() {
			e.t.Fatalf("frame %s given with id %s", f.JSON, f.ID)
		}
	}
	return out
}

// wantReplay is lifeRoom after message 0 as a replay to viewer shows it.
func wantReplay(viewer string, direct bool) []replayed {
	var want []replayed
	for _, en := range lifeRoom()[1:] {
		if en.Type == bus.TypeRead && en.UserID != viewer && !direct {
			continue
		}
		r := replayed{Type: "message", ID: en.ID.String(), UserID: en.UserID}
		if en.Type != "" {
			r.Type = map[string]string{bus.TypeEdit: "edited", bus.TypeDelete: "deleted", bus.TypeReact: "reaction", bus.TypeRead: "read"}[en.Type]
			r.MessageID = en.MessageID.String()
		}
		want = append(want, r)
	}
	return want
}

// TestSinceReplaysLife: a since replay holds the life frames among the
// messages in id order, from the stream and from the store alike, and
// other users' read frames only in a direct room.
func TestSinceReplaysLife(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.open)
			e.xadd(lifeRoom()...)
			e.deliver(4, true)
			check := func(t *testing.T) {
				t.Helper()
				for _, c := range []struct {
					viewer string
					direct bool
				}{{"u1", false}, {"u2", false}, {"u0", false}, {"u0", true}} {
					if got, want := e.replay(c.viewer, c.direct), wantReplay(c.viewer, c.direct); !slices.Equal(got, want) {
						t.Errorf("replay to %s (direct %v):\n got %+v\nwant %+v", c.viewer, c.direct, got, want)
					}
				}
			}
			t.Run("pending", check)
			t.Run("ingested", func(t *testing.T) {
				e.deliver(len(lifeRoom())-4, true)
				e.trimBefore(id(30))
				check(t)
			})
		})
	}
}

// TestLifePendingNewest: with more pending edits than one read takes
// (history.MaxLimit), the newest are the ones applied: the page shows the
// last edit.
func TestLifePendingNewest(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.xadd(entry(room, 0), entry(room, 1))
	e.deliver(2, true)
	n := history.MaxLimit + 50
	for i := range n {
		e.xadd(edit(10+i, 1, 1, fmt.Sprintf("edit %d", i)))
	}
	frames, _ := e.page("")
	if len(frames) != 2 || frames[0].Text != fmt.Sprintf("edit %d", n-1) || frames[0].Edited != int64(id(10+n-1).Ms) {
		t.Fatalf("after %d pending edits: %+v", n, frames)
	}
}

// TestSinceSkipsOthersReadsBounded: a room of mostly other users' read
// entries costs a bounded store read; the replay then stops where the
// read stopped (not complete), never skipping a frame it should hold.
func TestSinceSkipsOthersReadsBounded(t *testing.T) {
	e := newEnv(t, openSQLite)
	var es []bus.Entry
	es = append(es, entry(room, 0))
	for i := 1; i <= 1500; i++ {
		es = append(es, life(i, bus.TypeRead, 2, 0))
	}
	last := entry(room, 1501)
	es = append(es, last)
	e.store(es...)
	raw, complete, err := e.svc.Since(context.Background(), room, id(0), "u1", false, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if complete || len(raw) != 0 {
		t.Errorf("limit 1 behind 1500 reads of others: %d frames, complete %v; want none, not complete", len(raw), complete)
	}
	// With room for it, the message after them comes, alone.
	raw, complete, err = e.svc.Since(context.Background(), room, id(0), "u1", false, history.MaxSince, 1<<20)
	if err != nil || !complete || len(raw) != 1 || raw[0].ID != last.ID {
		t.Errorf("the whole replay: %d frames, complete %v, %v; want message 1501 alone", len(raw), complete, err)
	}
	// u2 gets its own reads.
	raw, _, err = e.svc.Since(context.Background(), room, id(0), "u2", false, history.MaxSince, 1<<20)
	if err != nil || len(raw) != 1000 {
		t.Errorf("u2's replay: %d frames (%v), want the first 1000 of its reads", len(raw), err)
	}
}
