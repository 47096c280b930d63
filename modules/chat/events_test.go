package chat

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
)

// readRaw reads c's frames as the server wrote them until one of type typ
// (with id, when id is not empty), and returns its bytes. It skips
// presence frames and other room events (joining a room may emit some);
// any other frame fails the test. (Only for a client with nothing held
// back by Unread.)
func readRaw(t *testing.T, c *client, typ, id string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		mt, b, err := c.ws.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s %s: %v", typ, id, err)
		}
		var h struct{ Type, ID string }
		if mt != websocket.MessageText || json.Unmarshal(b, &h) != nil {
			t.Fatalf("waiting for %s %s: frame %q", typ, id, b)
		}
		switch {
		case h.Type == typ && (id == "" || h.ID == id):
			return b
		case h.Type == "presence", h.Type == "room_event":
		default:
			t.Fatalf("waiting for %s %s: got %s", typ, id, b)
		}
	}
}

// storedEntry reads the stream entry of id, as history and ingest decode it.
func storedEntry(t *testing.T, s *server, id bus.ID) bus.Entry {
	t.Helper()
	xs, err := bus.ReadRange(context.Background(), s.redis, bus.Stream, id, id, true, 1)
	if err != nil || len(xs) != 1 {
		t.Fatalf("read entry %s: %v %v", id, xs, err)
	}
	e, err := bus.DecodeEntry(xs[0].ID, xs[0].FieldValues)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRoomEventsLiveAndReplayed: a room event appended with bus.AppendEvent
// reaches the room's members through fan-out as its frame, byte for byte
// (the frame history builds from the stored entry), in order with the
// messages; a member that rejoins with since gets it replayed, the same
// bytes again, between the messages around it; non-members get nothing.
func TestRoomEventsLiveAndReplayed(t *testing.T) {
	s := startChat(t, chatConfig(t))
	bob := s.dial("u2", "bob")
	bob.join("dev")
	carol := s.dial("u3", "carol") // in general only
	alice := s.dial("u1", "alice")
	alice.join("dev")

	before := alice.msg("dev", "before the event", "c-0")
	readRaw(t, bob, "message", before["id"].(string))
	ev, err := bus.NewEvent("dev", "u1", "alice", bus.RoomEvent{Event: bus.EventMemberKicked, Target: "u3", TargetName: "carol", Reason: "<spam>"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := bus.AppendEvent(context.Background(), s.redis, 1, ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := storedEntry(t, s, id).EventFrameJSON()
	if err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, bob, "room_event", id.String()); string(got) != string(want) {
		t.Fatalf("bob got the event as\n%s\nwant\n%s", got, want)
	}
	after := alice.msg("dev", "after the event", "c-1")
	readRaw(t, bob, "message", after["id"].(string))

	// Recovery: a new connection of bob's rejoins with since the message
	// before the event.
	bob2 := s.dial("u2", "bob")
	bob2.send(map[string]any{"type": "join", "room": "dev", "since": before["id"]})
	readRaw(t, bob2, "joined", "")
	if got := readRaw(t, bob2, "room_event", id.String()); string(got) != string(want) {
		t.Fatalf("replayed event\n%s\nwant\n%s", got, want)
	}
	var m bus.MessageFrame
	if err := json.Unmarshal(readRaw(t, bob2, "message", ""), &m); err != nil || m.ID != after["id"] {
		t.Fatalf("replayed after the event: %+v (%v), want message %v", m, err, after["id"])
	}

	// carol is not in dev: the ping's pong is the next thing she reads
	// (presence and room events of general aside).
	carol.send(map[string]any{"type": "ping"})
	readRaw(t, carol, "pong", "")
}
