package history_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/modules/chat/history"
)

// eventEntry is room event i of room: as bus.NewEvent makes it, under the
// i-th test id, with the id's time, as the stream holds it after
// bus.AppendEvent.
func eventEntry(t *testing.T, r string, i int, ev bus.RoomEvent) bus.Entry {
	t.Helper()
	e, err := bus.NewEvent(r, "u1", "alice", ev)
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.TS = id(i), int64(id(i).Ms)
	return e
}

// liveFrame is the frame a client received live for e: the room_event
// frame of an event, the message frame of a message.
func liveFrame(t *testing.T, e bus.Entry) string {
	t.Helper()
	if e.Type == bus.TypeEvent {
		b, err := e.EventFrameJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	b, _ := json.Marshal(e.Frame())
	return string(b)
}

// roomWithEvents is a room of 12 items: messages, and room events at 3,
// 6, 7 and 10, all in the stream with another room's entries interleaved.
func roomWithEvents(t *testing.T, e *env) []bus.Entry {
	t.Helper()
	events := map[int]bus.RoomEvent{
		3:  {Event: bus.EventMemberJoined},
		6:  {Event: bus.EventMemberKicked, Target: "u2", TargetName: "bob", Reason: "<spam> & \"more\""},
		7:  {Event: bus.EventRoomUpdated, Title: "Dév", Topic: "\u2028"},
		10: {Event: bus.EventMemberMuted, Target: "u2", TargetName: "bob", Until: 1764601200000},
	}
	var items []bus.Entry
	for i := 1; i <= 12; i++ {
		it := entry(room, i)
		if ev, ok := events[i]; ok {
			it = eventEntry(t, room, i, ev)
		}
		items = append(items, it)
		e.xadd(it, bus.Entry{ID: bus.ID{Ms: id(i).Ms, Seq: id(i).Seq + 1}, RoomID: other, UserID: "x", Username: "x", Text: "noise"})
	}
	return items
}

// rawPage requests a page and returns its items as the bytes served.
func (e *env) rawPage(query string) ([]string, bool) {
	e.t.Helper()
	code, body := e.get("/api/rooms/" + room + "/messages" + query)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", query, code, body)
	}
	var p pageBody
	if err := json.Unmarshal(body, &p); err != nil {
		e.t.Fatalf("GET %s: decode %s: %v", query, body, err)
	}
	out := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		out[i] = string(m)
	}
	return out, p.HasMore
}

// checkItems: got are exactly the live frames of want, byte for byte.
func checkItems(t *testing.T, what string, got []string, want []bus.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d items, want %d:\n%q", what, len(got), len(want), got)
	}
	for i, w := range want {
		if lf := liveFrame(t, w); got[i] != lf {
			t.Errorf("%s: item %d (%s)\n got %s\nwant %s", what, i, w.ID, got[i], lf)
		}
	}
}

// TestRoomEventsInHistory: room events are items of the history API and
// of Since, as their live room_event frames, in id order with the
// messages, whose items stay their message frames byte for byte: from the
// stream's tail ingest has not stored, and from the store once ingested
// (which needs the store to keep Message.Type and Message.Event), and
// across the two.
func TestRoomEventsInHistory(t *testing.T) {
	for _, k := range storeKinds() {
		for _, c := range []struct {
			name   string
			stored int // how many of the 24 stream entries ingest stored
		}{
			{"stream tail", 0},
			{"across store and stream", 12},
			{"stored", 24},
		} {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				e := newEnv(t, k.open)
				items := roomWithEvents(t, e)
				if c.stored > 0 {
					e.deliver(c.stored, true)
					if c.stored == 24 {
						e.trimBefore(bus.MaxID()) // only the store has them now
					}
					e.checkStoredEvents(items)
				}

				got, more := e.rawPage("?after=0-0")
				checkItems(t, "oldest first", got, items)
				if more {
					t.Error("oldest first: hasMore")
				}
				got, more = e.rawPage("?limit=5")
				newest := slices.Clone(items[7:])
				slices.Reverse(newest)
				checkItems(t, "newest first", got, newest)
				if !more {
					t.Error("newest first: no hasMore")
				}
				got, _ = e.rawPage("?before=" + id(8).String() + "&limit=3")
				checkItems(t, "before an event", got, []bus.Entry{items[6], items[5], items[4]})

				frames, complete, err := e.svc.Since(context.Background(), room, id(5), "u1", false, history.MaxSince, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				replay := make([]string, len(frames))
				for i, f := range frames {
					replay[i] = string(f.JSON)
					if f.ID != items[5+i].ID {
						t.Errorf("replay %d: id %s, want %s", i, f.ID, items[5+i].ID)
					}
				}
				checkItems(t, "since", replay, items[5:])
				if !complete {
					t.Error("since: not complete")
				}
			})
		}
	}
}

// checkStoredEvents fails at once, saying why, when the store dropped the
// type or event of a stored room event: history cannot tell it from a
// message then.
func (e *env) checkStoredEvents(items []bus.Entry) {
	e.t.Helper()
	after := bus.ID{}
	msgs, _, err := e.st.Messages(context.Background(), room, store.Page{After: &after, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		for _, it := range items {
			if it.ID == m.ID && it.Type == bus.TypeEvent && (m.Type != it.Type || m.Event != it.Event) {
				e.t.Fatalf("room event %s stored with type %q event %q, want %q %s: "+
					"the store must keep Message.Type and Message.Event (columns type, event)", m.ID, m.Type, m.Event, it.Type, it.Event)
			}
		}
	}
}

// TestRoomEventsDecodeAsEventFrames: a history item of a room event decodes
// as bus.EventFrame with the event's fields flat beside the frame's.
func TestRoomEventsDecodeAsEventFrames(t *testing.T) {
	e := newEnv(t, openSQLite)
	ev := eventEntry(t, room, 1, bus.RoomEvent{Event: bus.EventMemberBanned, Target: "u2", TargetName: "bob", Reason: "spam", Until: 1764601200000})
	e.xadd(ev)
	got, _ := e.rawPage("")
	if len(got) != 1 {
		t.Fatalf("items %q", got)
	}
	var f bus.EventFrame
	if err := json.Unmarshal([]byte(got[0]), &f); err != nil {
		t.Fatal(err)
	}
	want := bus.EventFrame{Type: "room_event", ID: id(1).String(), Room: room, Event: "member_banned", User: "alice", UserID: "u1",
		TS: int64(id(1).Ms), Target: "u2", TargetName: "bob", Reason: "spam", Until: 1764601200000}
	if f != want {
		t.Errorf("item %s decodes to %+v, want %+v", got[0], f, want)
	}
	// A broken event entry is skipped, as any entry that does not decode.
	e.xaddRaw(id(2).String(), bus.FieldRoomID, room, bus.FieldUserID, "u1", bus.FieldText, "x",
		bus.FieldType, bus.TypeEvent, bus.FieldEvent, `{"event":"member_exploded"}`)
	if got, _ := e.rawPage(""); len(got) != 1 {
		t.Errorf("items with a broken event entry: %q", got)
	}
}
