package chat

import (
	"sync"
	"time"

	"github.com/auroradev/aurora/app/bus"
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
	// dropped: the connection is going away; pushes are discarded.
	dropped bool

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
			q.mu.Unlock()
			return false
		}
		q.recovering[room] = append(buf, it)
		q.mu.Unlock()
		return true
	}
	if len(q.items) >= q.max {
		q.full()
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

// drop discards everything queued and every later push, freeing the memory
// of a connection that is being closed as a slow consumer.
func (q *sendQueue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped = true
	q.items, q.spare, q.recovering = nil, nil, nil
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

// endRecovery queues the replayed frames (one item however long: the
// replay is bounded by the history service and must not be cut short by the
// queue limit), then the buffered live frames that are not among them
// (message ids after last; frames without an id always), and ends
// buffering for room.
func (q *sendQueue) endRecovery(room string, replay [][]byte, last bus.ID) {
	q.mu.Lock()
	buf := q.recovering[room]
	delete(q.recovering, room)
	if q.dropped {
		q.mu.Unlock()
		return
	}
	if len(replay) > 0 {
		q.items = append(q.items, item{frames: replay})
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
