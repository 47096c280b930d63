package chat

import (
	"sync"
	"time"
)

// flusher coalesces the writes of room frames (chat.write_delay): a push
// of a room's frame to a connection with no writer running schedules the
// connection here instead of starting its writer, and one timer, armed by
// the first connection of a window, starts the writers of every connection
// scheduled in that window when it fires. A connection that receives
// several messages within the window writes them in one syscall instead of
// one each: at 100 messages/s into a room of 1000, the write syscalls were
// 70% of the server's CPU (docs/performance.md). Replies to a connection's
// own requests (acks, pongs, history) and closes never wait: they start the
// writer at once, and it takes whatever is queued.
//
// There is one timer for all connections, not one each, and none while no
// connection is scheduled.
type flusher struct {
	delay time.Duration
	mu    sync.Mutex
	due   []*sendQueue
	spare []*sendQueue
	timer *time.Timer
}

func newFlusher(delay time.Duration) *flusher {
	f := &flusher{delay: delay}
	f.timer = time.AfterFunc(time.Hour, f.flush)
	f.timer.Stop()
	return f
}

// schedule adds q to the current window, arming the timer if the window
// was empty.
func (f *flusher) schedule(q *sendQueue) {
	f.mu.Lock()
	f.due = append(f.due, q)
	if len(f.due) == 1 {
		f.timer.Reset(f.delay)
	}
	f.mu.Unlock()
}

// flush starts the writers of the window's connections.
func (f *flusher) flush() {
	f.mu.Lock()
	due := f.due
	f.due, f.spare = f.spare[:0], nil
	f.mu.Unlock()
	for i, q := range due {
		q.release()
		due[i] = nil
	}
	f.mu.Lock()
	// The emptied slice is the next window's spare, unless a huge window
	// would keep a huge one.
	if cap(due) <= 1<<16 {
		f.spare = due[:0]
	}
	f.mu.Unlock()
}
