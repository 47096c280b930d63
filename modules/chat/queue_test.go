package chat

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/modules/chat/history"
)

// replayOf is n replayed frames of size bytes each, ids 1-1 .. 1-n.
func replayOf(n, size int) []history.Frame {
	out := make([]history.Frame, n)
	for i := range out {
		out[i] = history.Frame{ID: bus.ID{Ms: 1, Seq: uint64(i + 1)}, JSON: bytes.Repeat([]byte("x"), size)}
	}
	return out
}

// recoverRoom runs one join's recovery of room on q and returns what its
// joined frame said about completeness.
func recoverRoom(q *sendQueue, room string, replay []history.Frame, live ...item) (complete bool) {
	q.beginRecovery(room)
	for _, it := range live {
		q.push(room, it)
	}
	q.endRecovery(room, bus.ID{}, replay, true, func(c bool) []byte {
		complete = c
		return []byte(fmt.Sprintf(`{"type":"joined","room":%q}`, room))
	})
	return complete
}

// TestReplayBudget: a connection's replays, queued or being written, stay
// within replayMaxFrames and replayMaxBytes; a replay that does not fit is
// cut short there and not complete, and the budget comes back as the writer
// writes them. At the product's queue length and slow timeout.
func TestReplayBudget(t *testing.T) {
	def := config.Default().Chat
	q := newSendQueue(def.SendQueue, def.SlowTimeout, func() { t.Error("cut as a slow consumer") })
	defer q.stop()

	// A whole replay of small frames fits.
	if !recoverRoom(q, "a", replayOf(replayMaxFrames, 100)) {
		t.Error("a replay of replayMaxFrames small frames is not complete")
	}
	if f, b := q.replayRoom(); f != 0 || b != replayMaxBytes-replayMaxFrames*100 {
		t.Errorf("budget left %d frames %d bytes", f, b)
	}
	// Unwritten, it leaves no frames for another: that one replays nothing.
	if recoverRoom(q, "b", replayOf(5, 100)) {
		t.Error("a replay with no budget left is complete")
	}
	items := q.take()
	if len(items) != 3 || len(items[1].frames) != replayMaxFrames || !items[1].replay || items[2].frames != nil {
		t.Fatalf("queued %d items, the replay %d frames", len(items), len(items[1].frames))
	}
	// Taken by the writer is not written: still counted.
	if f, _ := q.replayRoom(); f != 0 {
		t.Errorf("budget left %d frames before the replay was written", f)
	}
	q.written(items[0]) // a joined frame: releases nothing
	q.written(items[1])
	if f, b := q.replayRoom(); f != replayMaxFrames || b != replayMaxBytes {
		t.Errorf("budget left %d frames %d bytes after the write, want all", f, b)
	}

	// Bytes: two frames of 600 KiB, one fits.
	if recoverRoom(q, "c", replayOf(2, 600<<10)) {
		t.Error("a replay over replayMaxBytes is complete")
	}
	items = q.take()
	if len(items) != 2 || len(items[1].frames) != 1 {
		t.Fatalf("queued %d items, want joined and one frame", len(items))
	}
	unwritten := items[1]

	// Live frames held back during a replay follow it when they are newer
	// than the last frame replayed (or than since, when nothing was), not
	// when they are among it.
	live := []item{
		{frame: []byte("among"), id: bus.ID{Ms: 1, Seq: 2}},
		{frame: []byte("after"), id: bus.ID{Ms: 1, Seq: 3}},
		{frame: []byte("presence")},
	}
	// 424 KiB left while c's replay is unwritten: not one frame fits.
	if recoverRoom(q, "d", replayOf(2, 500<<10), live...) {
		t.Error("a replay of nothing is complete")
	}
	items = q.take()
	if got := frameTexts(items[1:]); len(items) != 4 || got != "[among after presence]" {
		t.Errorf("after a replay of nothing: %d items %s", len(items), got)
	}
	q.written(unwritten)
	if !recoverRoom(q, "e", replayOf(2, 500<<10), live...) {
		t.Error("a replay that fits is not complete")
	}
	items = q.take()
	if got := frameTexts(items[2:]); len(items) != 4 || len(items[1].frames) != 2 || got != "[after presence]" {
		t.Errorf("after a replay of 1-1 and 1-2: %d items %s", len(items), got)
	}
}

func frameTexts(items []item) string {
	var out []string
	for _, it := range items {
		out = append(out, string(it.frame))
	}
	return fmt.Sprint(out)
}

// TestLostMessageClosesAtOnce: a message that does not fit the queue closes
// the connection at once, even when the writer catches up before the slow
// timeout; a presence batch that does not fit waits for the timeout as
// before (it is superseded by the next one). Before, the message was
// dropped and a client that caught up in time never learnt of it.
func TestLostMessageClosesAtOnce(t *testing.T) {
	def := config.Default().Chat
	slow := make(chan struct{}, 2)
	q := newSendQueue(def.SendQueue, def.SlowTimeout, func() { slow <- struct{}{} })
	defer q.stop()
	for i := 0; i < def.SendQueue; i++ {
		q.push("general", item{frame: []byte("m"), message: true})
	}
	if q.push("general", item{frames: [][]byte{[]byte("presence")}}) {
		t.Fatal("a push into a full queue was accepted")
	}
	select {
	case <-slow:
		t.Fatal("a presence batch that did not fit closed the connection before the slow timeout")
	case <-time.After(200 * time.Millisecond):
	}
	if q.push("general", item{frame: []byte("lost"), message: true}) {
		t.Fatal("a push into a full queue was accepted")
	}
	q.take() // the writer catches up at once
	select {
	case <-slow:
	case <-time.After(time.Second):
		t.Fatal("a message that did not fit the queue did not close the connection")
	}
	q.push("general", item{frame: []byte("again"), message: true})
	select {
	case <-slow:
		t.Fatal("closed twice")
	case <-time.After(100 * time.Millisecond):
	}
}
