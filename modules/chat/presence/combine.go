package presence

import (
	"context"
	"sync"
)

// combiner writes the entries of many Joins (or Leaves) of one room in one
// script call: a write that finds no call running starts one at once (no
// delay when it is alone), and the writes arriving while it runs go
// together in the next. A storm of 10,000 connections joining general is
// then a few dozen script calls, not 10,000. Each caller waits until its
// own entry is written (so a user's Join and Leave still reach Redis in the
// order of its connections, under user.mu) and gets that call's error.
type combiner struct {
	// run writes the data of one group (touch or remove arguments).
	run func(ctx context.Context, data []string) error

	mu   sync.Mutex
	busy bool   // a group is being written
	next *group // the writes waiting for the next call
}

// group is the writes of one script call.
type group struct {
	ctx  context.Context // the first writer's: it waits for the call
	data []string
	done chan struct{}
	err  error
}

// do writes data with the next script call and returns its error.
func (c *combiner) do(ctx context.Context, data ...string) error {
	c.mu.Lock()
	g := c.next
	if g == nil {
		g = &group{ctx: ctx, done: make(chan struct{})}
		c.next = g
	}
	g.data = append(g.data, data...)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if lead {
		c.runNext()
		// Writes that came meanwhile are written on, without holding up
		// this caller.
		c.mu.Lock()
		more := c.next != nil
		if !more {
			c.busy = false
		}
		c.mu.Unlock()
		if more {
			go func() {
				for c.runNext() {
				}
			}()
		}
	}
	<-g.done
	return g.err
}

// runNext writes the waiting group; false (and no longer busy) when there
// was none.
func (c *combiner) runNext() bool {
	c.mu.Lock()
	g := c.next
	c.next = nil
	if g == nil {
		c.busy = false
	}
	c.mu.Unlock()
	if g == nil {
		return false
	}
	g.err = c.run(g.ctx, g.data)
	close(g.done)
	return true
}
