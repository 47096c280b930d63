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
//
// There is no writer while nothing is queued: the push that finds no
// writer running starts one (startWriter), which writes until the queue is
// empty and ends (next), so an idle connection has no writer goroutine.
type sendQueue struct {
	mu    sync.Mutex
	items []item
	spare []item
	max   int
	// startWriter starts the connection's writer; nil (a queue on its own,
	// in tests) starts nothing.
	startWriter func()
	// writing: a writer runs, or was started, and will call next again.
	writing bool
	// schedule, when set (chat.write_delay), defers the start of the
	// writer for a room's frame to the flusher's next window (flusher.go);
	// scheduled: the queue is in that window and no writer runs yet.
	schedule  func(*sendQueue)
	scheduled bool
	// closing: the connection is to be closed; next says so once.
	closing bool
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
	return &sendQueue{max: max, slowAfter: slowAfter, onSlow: onSlow}
}

// needWriterLocked reports whether the caller, having queued something,
// must start the writer (it then counts as running); called with mu held.
func (q *sendQueue) needWriterLocked() bool {
	if q.startWriter == nil || q.writing {
		return false
	}
	q.writing = true
	q.scheduled = false
	return true
}

// needScheduleLocked reports whether the caller, having queued a room's
// frame, must schedule the writer's start with the flusher (it then counts
// as scheduled); called with mu held.
func (q *sendQueue) needScheduleLocked() bool {
	if q.startWriter == nil || q.writing || q.scheduled {
		return false
	}
	q.scheduled = true
	return true
}

// release is the flusher's end of the window: it starts the writer of a
// queue still scheduled (not one that a reply or a close started since).
func (q *sendQueue) release() {
	q.mu.Lock()
	start := q.scheduled && q.needWriterLocked()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
}

// requestClose tells the writer to write what is queued and close,
// starting it if none runs.
func (q *sendQueue) requestClose() {
	q.mu.Lock()
	q.closing = true
	start := q.needWriterLocked()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
}

// next is the writer's loop step: it returns everything queued (as take)
// and whether the connection is to be closed after writing it. ok is false
// when there is nothing to do: the writer then ends, and the next push
// starts another.
func (q *sendQueue) next() (items []item, closing, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 && !q.closing {
		q.writing = false
		return nil, false, false
	}
	return q.takeLocked(), q.closing, true
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
	// A room's frame may wait for the flusher's window; a reply (room "")
	// starts the writer now.
	if room != "" && q.schedule != nil {
		sched := q.needScheduleLocked()
		q.mu.Unlock()
		if sched {
			q.schedule(q)
		}
		return true
	}
	start := q.needWriterLocked()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
	return true
}

// take returns everything queued; the slice is valid until the next take.
func (q *sendQueue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.takeLocked()
}

func (q *sendQueue) takeLocked() []item {
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
