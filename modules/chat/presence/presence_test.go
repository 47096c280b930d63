package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// manual returns a tracker whose Run is not started: its events are
// published only by an explicit flush, so tests decide the windows.
func manual(t *testing.T, c rueidis.Client, id string, opt Options) *Tracker {
	t.Helper()
	if opt.Interval == 0 {
		opt.Interval = time.Hour
	}
	return New(c, id, opt, quiet())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// flush publishes what the trackers are due to publish, now.
func flush(t *testing.T, ts ...*Tracker) {
	t.Helper()
	for _, tr := range ts {
		if err := tr.flushAll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// sub is a subscriber to a room's presence channel on its own connection.
type sub struct {
	ch   string
	msgs chan string
	pub  rueidis.Client
}

func subscribe(t *testing.T, url, room string) *sub {
	t.Helper()
	c := apptest.RedisClient(t, url)
	dc, cancel := c.Dedicate()
	t.Cleanup(cancel)
	s := &sub{ch: bus.PresenceChannel(room), msgs: make(chan string, 64), pub: c}
	ready := make(chan struct{})
	var once sync.Once
	dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { s.msgs <- m.Message },
		OnSubscription: func(ps rueidis.PubSubSubscription) {
			if ps.Kind == "subscribe" && ps.Channel == s.ch {
				once.Do(func() { close(ready) })
			}
		},
	})
	if err := dc.Do(ctxT(t), dc.B().Subscribe().Channel(s.ch).Build()).Error(); err != nil {
		t.Fatalf("subscribe %s: %v", s.ch, err)
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("subscription to %s not confirmed", s.ch)
	}
	return s
}

const marker = "test-marker"

// raw returns the next message.
func (s *sub) raw(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %s in 10s", s.ch)
		return ""
	}
}

// next returns the frames of the next message, checking its shape.
func (s *sub) next(t *testing.T) []Frame {
	t.Helper()
	m := s.raw(t)
	if m == marker {
		t.Fatalf("%s: expected presence frames, got nothing", s.ch)
	}
	var generic []map[string]any
	if err := json.Unmarshal([]byte(m), &generic); err != nil {
		t.Fatalf("%s: payload is not a JSON array: %v: %s", s.ch, err, m)
	}
	for _, f := range generic {
		if len(f) != 5 {
			t.Fatalf("%s: frame fields %v, want type, room, user, userId, status", s.ch, f)
		}
	}
	var frames []Frame
	if err := json.Unmarshal([]byte(m), &frames); err != nil {
		t.Fatal(err)
	}
	if len(frames) == 0 {
		t.Fatalf("%s: empty array published", s.ch)
	}
	return frames
}

// nothing checks that nothing was published so far: it publishes a marker
// and expects it to be the next message, as Redis delivers in order.
func (s *sub) nothing(t *testing.T) {
	t.Helper()
	if err := s.pub.Do(ctxT(t), s.pub.B().Publish().Channel(s.ch).Message(marker).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if m := s.raw(t); m != marker {
		t.Fatalf("%s: expected nothing published, got %s", s.ch, m)
	}
}

func frame(room, name, id, status string) Frame {
	return Frame{Type: "presence", Room: room, User: name, UserID: id, Status: status}
}

func wantFrames(t *testing.T, got []Frame, want ...Frame) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frames\n got %+v\nwant %+v", got, want)
	}
}

func bob() Member   { return Member{UserID: "u-bob", Username: "bob"} }
func carol() Member { return Member{UserID: "u-carol", Username: "carol"} }

// twoReplicas is replicas A and B sharing one Redis (at url), and a
// subscriber of room dev's presence channel.
func twoReplicas(t *testing.T) (ctx context.Context, url string, a, b *Tracker, s *sub) {
	t.Helper()
	url = apptest.RedisURL(t)
	ctx = ctxT(t)
	a = manual(t, apptest.RedisClient(t, url), "A", Options{})
	b = manual(t, apptest.RedisClient(t, url), "B", Options{})
	return ctx, url, a, b, subscribe(t, url, "dev")
}

// mustJoin and mustLeave fail the test when tr's Join or Leave fails.
func mustJoin(ctx context.Context, t *testing.T, tr *Tracker, room string, m Member) {
	t.Helper()
	if err := tr.Join(ctx, room, m); err != nil {
		t.Fatal(err)
	}
}

func mustLeave(ctx context.Context, t *testing.T, tr *Tracker, room, userID string) {
	t.Helper()
	if err := tr.Leave(ctx, room, userID); err != nil {
		t.Fatal(err)
	}
}

// joinAnnounced joins m to dev on replica a, flushes a and b, and wants
// s, dev's subscriber, to hear m online.
func joinAnnounced(ctx context.Context, t *testing.T, a, b *Tracker, s *sub, m Member) {
	t.Helper()
	mustJoin(ctx, t, a, "dev", m)
	flush(t, a, b)
	wantFrames(t, s.next(t), frame("dev", m.Username, m.UserID, StatusOnline))
}

func TestFirstAndLastConnectionAcrossReplicas(t *testing.T) {
	ctx, _, a, b, s := twoReplicas(t)
	joinAnnounced(ctx, t, a, b, s, bob())

	// A second connection on A and one on B: bob is online already.
	mustJoin(ctx, t, a, "dev", bob())
	mustJoin(ctx, t, b, "dev", bob())
	flush(t, a, b)
	s.nothing(t)

	// Both of A's connections leave while B still has one: no offline.
	for range 2 {
		mustLeave(ctx, t, a, "dev", "u-bob")
	}
	flush(t, a, b)
	s.nothing(t)
	if m, err := a.Members(ctx, "dev"); err != nil || !reflect.DeepEqual(m, []Member{bob()}) {
		t.Fatalf("members %v, %v; want bob", m, err)
	}

	mustLeave(ctx, t, b, "dev", "u-bob")
	flush(t, a, b)
	wantFrames(t, s.next(t), frame("dev", "bob", "u-bob", StatusOffline))
	if m, err := a.Members(ctx, "dev"); err != nil || len(m) != 0 {
		t.Fatalf("members %v, %v; want none", m, err)
	}

	// A Leave without a Join does nothing.
	mustLeave(ctx, t, b, "dev", "u-bob")
	flush(t, a, b)
	s.nothing(t)
}

func TestJoinAndLeaveInOneIntervalCancel(t *testing.T) {
	ctx, _, a, b, s := twoReplicas(t)

	// bob comes and goes twice, on both replicas, within one window;
	// carol stays.
	steps := []func() error{
		func() error { return a.Join(ctx, "dev", bob()) },
		func() error { return a.Leave(ctx, "dev", "u-bob") },
		func() error { return b.Join(ctx, "dev", bob()) },
		func() error { return b.Join(ctx, "dev", carol()) },
		func() error { return b.Leave(ctx, "dev", "u-bob") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	flush(t, a, b)
	wantFrames(t, s.next(t), frame("dev", "carol", "u-carol", StatusOnline))

	mustJoin(ctx, t, a, "dev", bob())
	mustLeave(ctx, t, a, "dev", "u-bob")
	flush(t, a, b)
	s.nothing(t)
}

func TestBurstIsOnePublishPerRoom(t *testing.T) {
	url := apptest.RedisURL(t)
	ctx := ctxT(t)
	a := manual(t, apptest.RedisClient(t, url), "A", Options{})
	b := manual(t, apptest.RedisClient(t, url), "B", Options{})
	rooms := map[string]int{"big": 1000, "small": 300}
	subs := map[string]*sub{}
	for r := range rooms {
		subs[r] = subscribe(t, url, r)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 1300)
	sem := make(chan struct{}, 32)
	for r, n := range rooms {
		for i := range n {
			tr := a
			if i%2 == 1 {
				tr = b
			}
			m := Member{UserID: fmt.Sprintf("u%04d", i), Username: fmt.Sprintf("user%04d", i)}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := tr.Join(ctx, r, m); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flush(t, a, b)
	for r, n := range rooms {
		frames := subs[r].next(t)
		if len(frames) != n {
			t.Fatalf("room %s: %d frames in the one message, want %d", r, len(frames), n)
		}
		seen := map[string]bool{}
		for _, f := range frames {
			if f.Status != StatusOnline || f.Room != r || seen[f.UserID] || f.User != "user"+f.UserID[1:] {
				t.Fatalf("room %s: bad or repeated frame %+v", r, f)
			}
			seen[f.UserID] = true
		}
		subs[r].nothing(t)
		m, err := a.Members(ctx, r)
		if err != nil || len(m) != n {
			t.Fatalf("room %s: %d members, %v; want %d", r, len(m), err, n)
		}
	}
}

func TestAboveMaxMembersNothingPublished(t *testing.T) {
	url := apptest.RedisURL(t)
	ctx := ctxT(t)
	a := manual(t, apptest.RedisClient(t, url), "A", Options{MaxMembers: 3})
	s := subscribe(t, url, "dev")
	join := func(i int) {
		t.Helper()
		if err := a.Join(ctx, "dev", Member{UserID: fmt.Sprint("u", i), Username: fmt.Sprint("n", i)}); err != nil {
			t.Fatal(err)
		}
	}

	// Four joins in one window: the room is above the limit when it is
	// flushed, so even the first three are not published.
	for i := range 4 {
		join(i)
	}
	flush(t, a)
	s.nothing(t)
	join(4)
	mustLeave(ctx, t, a, "dev", "u0")
	flush(t, a)
	s.nothing(t)
	// The members are still there for the HTTP API.
	if m, err := a.Members(ctx, "dev"); err != nil || len(m) != 4 {
		t.Fatalf("members %v, %v; want 4", m, err)
	}

	// At the limit (3 online) events flow again.
	mustLeave(ctx, t, a, "dev", "u1")
	flush(t, a)
	wantFrames(t, s.next(t), frame("dev", "n1", "u1", StatusOffline))
}

func TestMembersDedupedAndSorted(t *testing.T) {
	url := apptest.RedisURL(t)
	ctx := ctxT(t)
	a := manual(t, apptest.RedisClient(t, url), "A", Options{})
	b := manual(t, apptest.RedisClient(t, url), "B", Options{})
	alice := Member{UserID: "u-zz-alice", Username: "alice"}
	for _, j := range []struct {
		tr *Tracker
		m  Member
	}{{a, bob()}, {a, bob()}, {a, carol()}, {b, bob()}, {b, alice}} {
		if err := j.tr.Join(ctx, "dev", j.m); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, a, b) // Members reports what has been announced
	want := []Member{alice, bob(), carol()}
	for _, tr := range []*Tracker{a, b} {
		got, err := tr.Members(ctx, "dev")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: members %v, %v; want %v", tr.id, got, err, want)
		}
	}
	got, err := a.Members(ctx, "elsewhere")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty room: members %#v, %v; want an empty slice", got, err)
	}
}

// TestCrashedReplicaExpires moves the clock of the surviving replica past
// the TTL instead of waiting: the dead replica's entry is ignored by
// readers, purged by the next write with an offline event, and a replica
// that was only paused gets its entry back at its next refresh.
func TestCrashedReplicaExpires(t *testing.T) {
	ctx, url, a, b, s := twoReplicas(t)
	rc := apptest.RedisClient(t, url)
	joinAnnounced(ctx, t, a, b, s, bob())

	// A "crashes": it writes nothing more. Time passes beyond the TTL.
	later := time.Now().Add(DefaultTTL + time.Minute)
	b.now = func() time.Time { return later }
	if m, err := b.Members(ctx, "dev"); err != nil || len(m) != 0 {
		t.Fatalf("members after expiry %v, %v; want none", m, err)
	}
	mustJoin(ctx, t, b, "dev", carol())
	flush(t, a, b)
	wantFrames(t, s.next(t),
		frame("dev", "bob", "u-bob", StatusOffline),
		frame("dev", "carol", "u-carol", StatusOnline))
	if n, err := rc.Do(ctx, rc.B().Zcard().Key(keysOf("dev")[0]).Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("entries left %d, %v; want carol's only", n, err)
	}

	// A was only paused: its refresh brings bob back.
	a.now = func() time.Time { return later }
	if err := a.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, a, b)
	wantFrames(t, s.next(t), frame("dev", "bob", "u-bob", StatusOnline))
	if m, err := b.Members(ctx, "dev"); err != nil || !reflect.DeepEqual(m, []Member{bob(), carol()}) {
		t.Fatalf("members %v, %v; want bob, carol", m, err)
	}
}

// TestRunRefreshesPublishesAndCleansUp runs the real loop with a short TTL:
// a replica that never runs (crashed) loses its user, the running one keeps
// its user past the TTL, publishes on its own timer, takes over the
// flushing of the crashed one, and removes its entries when stopped.
func TestRunRefreshesPublishesAndCleansUp(t *testing.T) {
	url := apptest.RedisURL(t)
	ctx := ctxT(t)
	rc := apptest.RedisClient(t, url)
	const ttl = time.Second
	opt := Options{TTL: ttl, Refresh: 50 * time.Millisecond, Interval: 30 * time.Millisecond}
	crashed := New(apptest.RedisClient(t, url), "crashed", opt, quiet())
	live := New(apptest.RedisClient(t, url), "live", opt, quiet())
	s := subscribe(t, url, "dev")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { live.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	mustJoin(ctx, t, crashed, "dev", bob())
	carolJoined := time.Now()
	mustJoin(ctx, t, live, "dev", carol())
	// Collect frames until bob goes offline (his entry expires).
	var got []Frame
	for len(got) == 0 || got[len(got)-1].Status != StatusOffline {
		got = append(got, s.next(t)...)
	}
	wantFrames(t, got,
		frame("dev", "bob", "u-bob", StatusOnline),
		frame("dev", "carol", "u-carol", StatusOnline),
		frame("dev", "bob", "u-bob", StatusOffline))

	// Let carol's first expiry pass: she is kept by the refreshes.
	time.Sleep(time.Until(carolJoined.Add(ttl + 100*time.Millisecond)))
	if m, err := live.Members(ctx, "dev"); err != nil || !reflect.DeepEqual(m, []Member{carol()}) {
		t.Fatalf("members %v, %v; want carol", m, err)
	}

	stop()
	<-done
	wantFrames(t, s.next(t), frame("dev", "carol", "u-carol", StatusOffline))
	if m, err := live.Members(ctx, "dev"); err != nil || len(m) != 0 {
		t.Fatalf("members after stop %v, %v; want none", m, err)
	}
	for _, k := range keysOf("dev") {
		if n, err := rc.Do(ctx, rc.B().Exists().Key(k).Build()).AsInt64(); err != nil || n != 0 {
			t.Errorf("key %s still exists (%d, %v)", k, n, err)
		}
	}
}

// TestConcurrentJoinLeave hammers one room from two replicas; every
// connection leaves in the end, so Redis must be empty and the one
// coalesced window must publish nothing.
func TestConcurrentJoinLeave(t *testing.T) {
	ctx, url, a, b, s := twoReplicas(t)
	rc := apptest.RedisClient(t, url)
	users := []Member{bob(), carol(), {UserID: "u-dan", Username: "dan"}}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		tr := a
		if g%2 == 1 {
			tr = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				m := users[(g+i)%len(users)]
				if err := tr.Join(ctx, "dev", m); err != nil {
					errs <- err
					return
				}
				if err := tr.Leave(ctx, "dev", m.UserID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flush(t, a, b)
	s.nothing(t)
	for _, k := range keysOf("dev")[:3] {
		if n, err := rc.Do(ctx, rc.B().Exists().Key(k).Build()).AsInt64(); err != nil || n != 0 {
			t.Errorf("key %s still exists (%d, %v)", k, n, err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rooms) != 0 {
		t.Errorf("local state left: %d rooms", len(a.rooms))
	}
}

func TestBadInput(t *testing.T) {
	url := apptest.RedisURL(t)
	ctx := ctxT(t)
	a := manual(t, apptest.RedisClient(t, url), "A", Options{})
	for _, c := range []struct{ room, id string }{{"", "u"}, {"dev", ""}, {"dev", "u\x00x"}} {
		if err := a.Join(ctx, c.room, Member{UserID: c.id, Username: "x"}); !errors.Is(err, ErrBadInput) {
			t.Errorf("Join(%q, %q) = %v, want ErrBadInput", c.room, c.id, err)
		}
		if err := a.Leave(ctx, c.room, c.id); !errors.Is(err, ErrBadInput) {
			t.Errorf("Leave(%q, %q) = %v, want ErrBadInput", c.room, c.id, err)
		}
	}
}

// logs records what Run logs and signals its first error and recovery.
type logs struct {
	mu        sync.Mutex
	errs      []string
	firstErr  chan struct{}
	recovered chan struct{}
}

func (h *logs) Enabled(context.Context, slog.Level) bool { return true }
func (h *logs) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logs) WithGroup(string) slog.Handler            { return h }
func (h *logs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Level >= slog.LevelError:
		h.errs = append(h.errs, r.Message)
		if len(h.errs) == 1 {
			close(h.firstErr)
		}
	case r.Message == "presence: redis recovered":
		close(h.recovered)
	}
	return nil
}

// TestRedisDown runs against a Redis that goes away and comes back: the
// calls return errors, Run logs the failure once and the recovery once, and
// the connection whose Join failed is written by the first good refresh.
func TestRedisDown(t *testing.T) {
	// A private embedded Redis, because this test stops and restarts it.
	m, err := embeddedredis.Start("127.0.0.1:0", embeddedredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	c, err := rueidis.NewClient(m.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := ctxT(t)
	h := &logs{firstErr: make(chan struct{}), recovered: make(chan struct{})}
	tr := New(c, "A", Options{Refresh: 5 * time.Millisecond, Interval: 5 * time.Millisecond}, slog.New(h))

	m.Close()
	if err := tr.Join(ctx, "dev", bob()); err == nil {
		t.Fatal("Join with Redis down: no error")
	}
	if _, err := tr.Members(ctx, "dev"); err == nil {
		t.Fatal("Members with Redis down: no error")
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { tr.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	<-h.firstErr
	time.Sleep(100 * time.Millisecond) // about 20 more failing refreshes
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("no recovery logged")
	}
	// The repaired entry is announced with the next batch (Interval 5ms).
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := tr.Members(ctx, "dev")
		if err == nil && reflect.DeepEqual(got, []Member{bob()}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members after recovery %v, %v; want bob", got, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.mu.Lock()
	if len(h.errs) != 1 {
		t.Errorf("error logs %q; want the failure once", h.errs)
	}
	h.mu.Unlock()

	m.Close()
	if err := tr.Leave(ctx, "dev", "u-bob"); err == nil {
		t.Fatal("Leave with Redis down: no error")
	}
}

// TestMembersAsAnnounced: a client reads the members while changes wait in
// the current batch. A join and leave that cancel out must not show in the
// members (the client would never hear the offline), and a leave still
// waiting must (the client will hear the offline with the batch).
func TestMembersAsAnnounced(t *testing.T) {
	ctx, _, a, b, s := twoReplicas(t)
	joinAnnounced(ctx, t, a, b, s, carol())

	// Within one window: bob joins, a client reads the members, bob leaves,
	// carol leaves.
	mustJoin(ctx, t, b, "dev", bob())
	got, err := a.Members(ctx, "dev")
	if err != nil || !reflect.DeepEqual(got, []Member{carol()}) {
		t.Fatalf("members with bob's join pending: %v, %v; want only carol (bob not announced yet)", got, err)
	}
	mustLeave(ctx, t, b, "dev", "u-bob")
	mustLeave(ctx, t, a, "dev", "u-carol")
	got, err = b.Members(ctx, "dev")
	if err != nil || !reflect.DeepEqual(got, []Member{carol()}) {
		t.Fatalf("members with carol's leave pending: %v, %v; want carol until her offline is announced", got, err)
	}
	flush(t, a, b)
	wantFrames(t, s.next(t), frame("dev", "carol", "u-carol", StatusOffline))
	if got, err := a.Members(ctx, "dev"); err != nil || len(got) != 0 {
		t.Fatalf("members after the batch: %v, %v; want none", got, err)
	}

	if m := WithMember([]Member{carol()}, bob()); !reflect.DeepEqual(m, []Member{bob(), carol()}) {
		t.Errorf("WithMember: %v", m)
	}
	if m := WithMember([]Member{bob()}, bob()); len(m) != 1 {
		t.Errorf("WithMember added a member twice: %v", m)
	}
}
