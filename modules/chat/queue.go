package chat

import (
	"sync"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/modules/chat/history"
)

// A connection's replayed frames, queued or being written, are at most
// replayMaxFrames frames and replayMaxBytes bytes. Live frames are encoded
// once per replica and shared by every member's queue; a replay is the
// connection's own copy, so it is what a client that asks for replays and
// never reads could pile up. One whole replay of typical messages (a few
// hundred bytes each) fits.
const (
	replayMaxFrames = history.MaxSince
	replayMaxBytes  = 1 << 20
)

// item is one entry of a connection's send queue: one frame, or several
// frames written back to back (a presence batch, a history replay).
type item struct {
	frame  []byte
	frames [][]byte
	// ts is the message's time (ms) for the fan-out latency metric; 0 when
	// the frame is not a message.
	ts int64
	// id is the message id, for the gap-free join of a recovering
	// connection; zero when the frame is not an Aurora message.
	id bus.ID
	// replay: frames are a replay, counted in the replay budget until the
	// writer has written them.
	replay bool
	// message: a chat message. One that does not fit the queue is never
	// dropped quietly: the connection is closed so the client recovers it.
	message bool
}

// size is the bytes of its frames.
func (it item) size() int {
	n := len(it.frame)
	for _, f := range it.frames {
		n += len(f)
	}
	return n
}

// sendQueue is a connection's bounded outbound queue. Pushes never block:
// fan-out runs on the Pub/Sub goroutine and must not wait for any one
// client. The memory is what is queued, not a preallocated buffer, so idle
// connections cost little. The writer takes everything queued at once.
type sendQueue struct {
	mu    sync.Mutex
	items []item
	spare []item
	max   int
	wake  chan struct{} // capacity 1: "something was queued"
	// replayFrames and replayBytes count the replayed frames queued or
	// being written, within replayMaxFrames and replayMaxBytes.
	replayFrames, replayBytes int
	// dropped: the connection is going away; pushes are discarded.
	dropped bool
	// lost: a message did not fit; onSlow has been called for it.
	lost bool

	// Slow consumer detection: fullSince is when a push first found the
	// queue full since the writer last took from it; the timer calls onSlow
	// once the queue has stayed full for slowAfter.
	fullSince time.Time
	slowAfter time.Duration
	slowTimer *time.Timer
	onSlow    func()

	// recovering holds, per room, the live frames that arrive while a
	// join with "since" replays history, so they follow the replay.
	recovering map[string][]item
}

func newSendQueue(max int, slowAfter time.Duration, onSlow func()) *sendQueue {
	return &sendQueue{max: max, wake: make(chan struct{}, 1), slowAfter: slowAfter, onSlow: onSlow}
}

// push queues it for room ("" for replies that belong to no room). It
// returns false when the frame was dropped because the queue is full (or
// the connection is going away).
func (q *sendQueue) push(room string, it item) bool {
	q.mu.Lock()
	if q.dropped {
		q.mu.Unlock()
		return false
	}
	if buf, ok := q.recovering[room]; ok && room != "" {
		if len(buf) >= q.max {
			q.full()
			if it.message {
				q.lose()
			}
			q.mu.Unlock()
			return false
		}
		q.recovering[room] = append(buf, it)
		q.mu.Unlock()
		return true
	}
	if len(q.items) >= q.max {
		q.full()
		if it.message {
			q.lose()
		}
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// full notes that a push found the queue full; called with mu held.
func (q *sendQueue) full() {
	if !q.fullSince.IsZero() {
		return
	}
	q.fullSince = time.Now()
	if q.slowTimer == nil {
		q.slowTimer = time.AfterFunc(q.slowAfter, q.checkSlow)
	} else {
		q.slowTimer.Reset(q.slowAfter)
	}
}

// lose notes that a message did not fit; called with mu held. The client's
// view of the room now has a hole that no later frame fills, so waiting
// for slowAfter would let a client that catches up in time go on without
// the message: it is closed as a slow consumer at once instead, and
// recovers the message with since when it reconnects.
func (q *sendQueue) lose() {
	if q.lost {
		return
	}
	q.lost = true
	go q.onSlow() // onSlow takes mu
}

func (q *sendQueue) checkSlow() {
	q.mu.Lock()
	if q.dropped || q.fullSince.IsZero() {
		q.mu.Unlock()
		return
	}
	if left := q.slowAfter - time.Since(q.fullSince); left > 0 {
		// The writer took from the queue since, and it filled up again.
		q.slowTimer.Reset(left)
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.onSlow()
}

// take returns everything queued; the slice is valid until the next take.
func (q *sendQueue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	clear(q.spare)
	q.items = q.spare[:0]
	q.spare = out
	q.fullSince = time.Time{}
	return out
}

// written releases the replay budget of an item the writer has written.
func (q *sendQueue) written(it item) {
	if !it.replay {
		return
	}
	q.mu.Lock()
	q.replayFrames -= len(it.frames)
	q.replayBytes -= it.size()
	q.mu.Unlock()
}

// replayRoom is what is left of the replay budget: how many frames and
// bytes a replay could be given now (see endRecovery), for asking the
// history for no more than that.
func (q *sendQueue) replayRoom() (frames, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(replayMaxFrames-q.replayFrames, 0), max(replayMaxBytes-q.replayBytes, 0)
}

// drop discards everything queued and every later push, freeing the memory
// of a connection that is being closed as a slow consumer.
func (q *sendQueue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped = true
	q.items, q.spare, q.recovering = nil, nil, nil
	q.replayFrames, q.replayBytes = 0, 0
	if q.slowTimer != nil {
		q.slowTimer.Stop()
	}
}

// stop stops the slow-consumer timer of a closed connection.
func (q *sendQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped = true
	if q.slowTimer != nil {
		q.slowTimer.Stop()
	}
}

// beginRecovery starts buffering room's live frames.
func (q *sendQueue) beginRecovery(room string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.recovering == nil {
		q.recovering = map[string][]item{}
	}
	if _, ok := q.recovering[room]; !ok {
		q.recovering[room] = nil
	}
}

// endRecovery ends buffering room's live frames. It queues head (the
// answer to the join, built with whether the replay is complete, when not
// nil), then the replay as far as the replay budget admits it, then the
// buffered live frames that are not among the replayed ones (message ids
// after the last one replayed, or after since; frames without an id
// always).
//
// The replay is one entry of the queue, written back to back as a
// presence batch is, so it never takes the room of live frames; its frames
// count in the connection's replay budget (replayMaxFrames, replayMaxBytes)
// until they are written. What does not fit is not queued: the replay is
// then not complete, and the client pages on through the history API. So
// however often a client asks for replays without reading them, it holds
// no more than the budget; the live frames behave as they always did (a
// client that lets them fill the queue for chat.slow_timeout is cut with
// 4008).
func (q *sendQueue) endRecovery(room string, since bus.ID, replay []history.Frame, complete bool, head func(complete bool) []byte) {
	q.mu.Lock()
	buf := q.recovering[room]
	delete(q.recovering, room)
	if q.dropped {
		q.mu.Unlock()
		return
	}
	free, budget := replayMaxFrames-q.replayFrames, replayMaxBytes-q.replayBytes
	k, size := 0, 0
	for k < len(replay) && k < free && size+len(replay[k].JSON) <= budget {
		size += len(replay[k].JSON)
		k++
	}
	if k < len(replay) {
		complete = false
	}
	if head != nil {
		q.items = append(q.items, item{frame: head(complete)})
	}
	last := since
	if k > 0 {
		frames := make([][]byte, k)
		for i, f := range replay[:k] {
			frames[i] = f.JSON
			if f.ID.Compare(last) > 0 {
				last = f.ID
			}
		}
		q.items = append(q.items, item{frames: frames, replay: true})
		q.replayFrames += k
		q.replayBytes += size
	}
	for _, it := range buf {
		if it.id.IsZero() || it.id.Compare(last) > 0 {
			q.items = append(q.items, it)
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
