package chat

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/auroradev/aurora/config"
)

// flushQueue is a queue whose writer start is counted and whose room
// frames are scheduled on f.
func flushQueue(t *testing.T, f *flusher) (*sendQueue, *atomic.Int32) {
	t.Helper()
	def := config.Default().Chat
	q := newSendQueue(def.SendQueue, def.SlowTimeout, func() { t.Error("cut as a slow consumer") })
	t.Cleanup(q.stop)
	var starts atomic.Int32
	q.startWriter = func() { starts.Add(1) }
	q.schedule = f.schedule
	return q, &starts
}

// TestWriteDelayCoalescesRoomFrames: with chat.write_delay, the room frames
// pushed within one window start the writer once, when the window ends,
// and the writer then finds all of them queued; the next window starts it
// again.
func TestWriteDelayCoalescesRoomFrames(t *testing.T) {
	f := newFlusher(50 * time.Millisecond)
	q, starts := flushQueue(t, f)
	for range 3 {
		q.push("general", item{frame: []byte(`{"type":"message"}`), message: true})
	}
	if n := starts.Load(); n != 0 {
		t.Fatalf("writer started %d times before the window ended", n)
	}
	eventually(t, "the window's end to start the writer", func() bool { return starts.Load() == 1 })
	if items, _, ok := q.next(); !ok || len(items) != 3 {
		t.Fatalf("the writer found %d frames (ok %v), want the window's 3", len(items), ok)
	}
	if _, _, ok := q.next(); ok {
		t.Fatal("the writer did not end on an empty queue")
	}
	q.push("general", item{frame: []byte(`{"type":"message"}`), message: true})
	eventually(t, "the next window to start the writer", func() bool { return starts.Load() == 2 })
}

// TestWriteDelayRepliesDoNotWait: a reply to the connection's own request
// (room "") and a close start the writer at once, also while room frames
// wait for the window, and the window's end then starts no second writer.
func TestWriteDelayRepliesDoNotWait(t *testing.T) {
	f := newFlusher(100 * time.Millisecond)
	q, starts := flushQueue(t, f)
	q.push("general", item{frame: []byte(`{"type":"message"}`), message: true})
	q.push("", item{frame: pongFrame})
	if n := starts.Load(); n != 1 {
		t.Fatalf("a reply started the writer %d times, want 1 at once", n)
	}
	time.Sleep(200 * time.Millisecond) // the window ends
	if n := starts.Load(); n != 1 {
		t.Fatalf("writer started %d times, want 1: the window's end started another", n)
	}
	if items, _, ok := q.next(); !ok || len(items) != 2 {
		t.Fatalf("the writer found %d frames, want the message and the pong", len(items))
	}
	q.next() // empty: the writer ends

	q2, starts2 := flushQueue(t, f)
	q2.push("general", item{frame: []byte(`{"type":"presence"}`)})
	q2.requestClose()
	if n := starts2.Load(); n != 1 {
		t.Fatalf("a close started the writer %d times, want 1 at once", n)
	}
}

// TestWriteDelayDelivers: with a write delay longer than the default
// (300 ms, so that both messages fall in one window), the sender is acked
// and the messages reach every member, the sender's echo included, in
// order. (The sender's echo may ride along with its ack: a reply starts
// the writer, which takes everything queued.)
func TestWriteDelayDelivers(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.WriteDelay = 300 * time.Millisecond
	s := startChat(t, cfg)
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")

	alice.send(map[string]any{"type": "message", "room": "general", "text": "one", "clientId": "c-1"})
	alice.send(map[string]any{"type": "message", "room": "general", "text": "two", "clientId": "c-2"})
	var acks, echoes []any
	for len(acks) < 2 || len(echoes) < 2 {
		switch f := alice.read(); f["type"] {
		case "ack":
			acks = append(acks, f["clientId"])
		case "message":
			echoes = append(echoes, f["text"])
		case "presence":
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if acks[0] != "c-1" || acks[1] != "c-2" || echoes[0] != "one" || echoes[1] != "two" {
		t.Fatalf("acks %v, echoes %v: want both, in order", acks, echoes)
	}
	for _, want := range []string{"one", "two"} {
		if f := bob.next("message", "presence"); f["text"] != want {
			t.Fatalf("bob got %v, want %q", f, want)
		}
	}
}
