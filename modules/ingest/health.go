package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// health remembers whether a dependency works, to log once per change of
// state instead of once per attempt.
type health struct {
	mu    sync.Mutex
	err   error
	since time.Time
	tries int
}

func (h *health) fail(log *slog.Logger, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return // our own stop, not a failure of what
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	if h.err == nil {
		h.since = time.Now()
		log.Error(what+" failing; entries stay pending and are retried", "err", err)
	}
	h.err = err
}

func (h *health) ok(log *slog.Logger, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		log.Info(what+" works again", "after", time.Since(h.since).Round(time.Millisecond), "failed_attempts", h.tries)
	}
	h.err, h.tries = nil, 0
}

func (h *health) get() (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.err
}
