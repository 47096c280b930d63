package presence

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/embeddedredis"
)

// private starts an embedded Redis of the test's own, because the test
// stops and restarts it, and a client of it.
func private(t *testing.T) (*embeddedredis.Server, rueidis.Client) {
	t.Helper()
	m, err := embeddedredis.Start("127.0.0.1:0", embeddedredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	opt := m.ClientOptions()
	// One connection, so reconnected can tell that it is back.
	opt.PipelineMultiplex = -1
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return m, c
}

// reconnected waits until c answers again after a restart of its Redis
// (its first command fails on the closed connection).
func reconnected(t *testing.T, c rueidis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Do(context.Background(), c.B().Ping().Build()).Error() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis does not answer 10s after its restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// events records Run's error and recovery logs, in order.
type events struct {
	mu  sync.Mutex
	log []string
	ch  chan string
}

func (h *events) Enabled(context.Context, slog.Level) bool { return true }
func (h *events) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *events) WithGroup(string) slog.Handler            { return h }
func (h *events) Handle(_ context.Context, r slog.Record) error {
	var e string
	switch {
	case r.Level >= slog.LevelError:
		e = "error"
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				e += ": " + a.Value.String()
			}
			return true
		})
	case r.Message == "presence: redis recovered":
		e = "recovered"
	default:
		return nil
	}
	h.mu.Lock()
	h.log = append(h.log, e)
	h.mu.Unlock()
	h.ch <- e
	return nil
}

func (h *events) wait(t *testing.T, prefix string) {
	t.Helper()
	select {
	case e := <-h.ch:
		if !strings.HasPrefix(e, prefix) {
			t.Fatalf("logged %q, want %s", e, prefix)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing logged in 10s, want %s", prefix)
	}
}

// TestFailedPublishIsRetried closes Redis between a flush taking a room's
// batch and publishing it, for an online and then an offline: each event
// reaches a subscriber once Redis is back, and each outage is logged once
// (the failure, then the recovery). Before the fix, the batch was lost: no
// retry ever published it.
func TestFailedPublishIsRetried(t *testing.T) {
	m, c := private(t)
	ctx := ctxT(t)
	h := &events{ch: make(chan string, 100)}
	tr := New(c, "A", Options{Interval: 20 * time.Millisecond}, slog.New(h))
	runCtx, stop := context.WithCancel(ctx)
	// Each publish waits for the test to say what happens just before it
	// (those of Run's stop do not).
	before := make(chan func())
	tr.beforePublish = func() {
		select {
		case f := <-before:
			f()
		case <-runCtx.Done():
		}
	}
	give := func(what string, f func()) {
		t.Helper()
		select {
		case before <- f:
		case <-time.After(10 * time.Second):
			t.Fatalf("no publish to %s in 10s", what)
		}
	}
	done := make(chan struct{})
	go func() { tr.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	steps := []struct {
		name string
		do   func() error
		want Frame
	}{
		{"join", func() error { return tr.Join(ctx, "dev", bob()) }, frame("dev", "bob", "u-bob", StatusOnline)},
		{"leave", func() error { return tr.Leave(ctx, "dev", "u-bob") }, frame("dev", "bob", "u-bob", StatusOffline)},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		give("fail ("+st.name+")", m.Close)
		h.wait(t, "error: publish 1 presence frames")
		time.Sleep(200 * time.Millisecond) // about ten failing retries
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		s := subscribe(t, m.URL(), "dev")
		give("retry ("+st.name+")", func() {})
		wantFrames(t, s.next(t), st.want)
		h.wait(t, "recovered")
		s.nothing(t)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.log) != 4 {
		t.Errorf("logged %q; want each failure and recovery once", h.log)
	}
}

// TestUnsentIsMergedWithNewerEvents: a batch that failed to publish goes
// out with the room's next flush, merged with the newer events: a user
// whose unsent online is followed by an offline is not announced at all
// (subscribers never heard the online), others are.
func TestUnsentIsMergedWithNewerEvents(t *testing.T) {
	m, c := private(t)
	ctx := ctxT(t)
	a := manual(t, c, "A", Options{})
	s := unsentOnline(ctx, t, m, c, a)
	mustLeave(ctx, t, a, "dev", "u-bob")
	mustJoin(ctx, t, a, "dev", carol())
	flush(t, a)
	wantFrames(t, s.next(t), frame("dev", "carol", "u-carol", StatusOnline))
	flush(t, a)
	s.nothing(t)
}

// TestStaleUnsentIsDropped: while replica A holds an unsent online of bob,
// replica B flushes bob's newer offline (it became the room's flusher). A's
// retry must not announce bob online again after that: the latest state
// wins.
func TestStaleUnsentIsDropped(t *testing.T) {
	m, c := private(t)
	ctx := ctxT(t)
	a := manual(t, c, "A", Options{})
	b := manual(t, c, "B", Options{})
	s := unsentOnline(ctx, t, m, c, a)
	mustLeave(ctx, t, a, "dev", "u-bob")
	// B flushes as it does when it is due (A's due key lapsed).
	if err := b.flush(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, s.next(t), frame("dev", "bob", "u-bob", StatusOffline))
	a.retryFlush("dev")
	flush(t, a)
	s.nothing(t)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.unsent) != 0 {
		t.Errorf("unsent after a successful flush: %v", a.unsent)
	}
}

// unsentOnline leaves bob's online in dev unsent on a: its publish fails
// (m, a's Redis, closes just before it), then Redis comes back. It returns
// a subscriber of dev from then on.
func unsentOnline(ctx context.Context, t *testing.T, m *embeddedredis.Server, c rueidis.Client, a *Tracker) *sub {
	t.Helper()
	mustJoin(ctx, t, a, "dev", bob())
	a.beforePublish = m.Close
	if err := a.flushAll(ctx); err == nil {
		t.Fatal("flush with Redis closed before the publish: no error")
	}
	a.beforePublish = nil
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	reconnected(t, c)
	return subscribe(t, m.URL(), "dev")
}
