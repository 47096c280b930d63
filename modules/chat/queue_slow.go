package chat

import "time"

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
