// Package backoff holds the one retry schedule Aurora's background loops use
// when Redis or the store is unreachable: exponential steps between a floor
// and a cap, each wait drawn from the upper half of its step so that many
// replicas coming back at once do not retry in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is one loop's retry state. The zero value is not usable: set Min
// and Max (Max ≥ Min > 0). It is not safe for concurrent use; each loop
// keeps its own.
type Backoff struct {
	Min, Max time.Duration
	step     time.Duration
}

// Next returns how long to wait before the next attempt and doubles the step
// (up to Max). The wait is in [step/2, step], so it never exceeds Max: a loop
// resumes within Max of its dependency's return.
func (b *Backoff) Next() time.Duration {
	if b.step == 0 {
		b.step = b.Min
	} else {
		b.step = min(2*b.step, b.Max)
	}
	return b.step/2 + rand.N(b.step/2+1)
}

// Reset starts the schedule again from Min, after an attempt succeeded.
func (b *Backoff) Reset() { b.step = 0 }

// Sleep waits d or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait waits the next step of b, or until ctx ends; it reports whether the
// whole wait passed.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
