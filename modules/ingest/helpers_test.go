package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/config"
)

// testRedis returns a client on a fresh test Redis (miniredis in process,
// or the flushed real one of AURORA_TEST_REDIS_URL).
func testRedis(t *testing.T) rueidis.Client {
	t.Helper()
	return apptest.RedisClient(t, apptest.RedisURL(t))
}

// testStore opens a migrated SQLite store in a temp dir.
func testStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig() config.Ingest {
	return config.Ingest{
		BatchSize:     10,
		FlushInterval: 20 * time.Millisecond,
		ClaimIdle:     time.Minute, // tests that claim set their own
		MaxDeliveries: 3,
		KeepRecent:    10000,
	}
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startWorker starts a worker stopped at the end of the test.
func startWorker(t *testing.T, o Options) *Worker {
	t.Helper()
	if o.Log == nil {
		o.Log = testLog(t)
	}
	if o.Consumer == "" {
		o.Consumer = "w-" + t.Name()
	}
	w, err := NewWorker(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// entry is an Aurora entry of room with text.
func entry(room, text string) bus.Entry {
	return bus.Entry{RoomID: room, UserID: "507f1f77bcf86cd799439011", Username: "ann", Text: text,
		TS: time.Now().UnixMilli(), ClientID: "c-" + text}
}

// xadd appends an entry of the given field-value pairs to the stream.
func xadd(t *testing.T, c rueidis.Client, fields ...string) string {
	t.Helper()
	return apptest.XAdd(t, c, bus.Stream, "*", fields...)
}

// addEntries appends n Aurora entries (as entry makes them) to room and
// returns their ids.
func addEntries(t *testing.T, c rueidis.Client, room string, n int) []string {
	t.Helper()
	return apptest.AddEntries(t, c, room, n)
}

// stored returns every stored message of room, oldest first.
func stored(t *testing.T, s store.Store, room string) []store.Message {
	t.Helper()
	var out []store.Message
	after := bus.ID{}
	for {
		page, more, err := s.Messages(context.Background(), room, store.Page{After: &after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out
		}
		after = page[len(page)-1].ID
	}
}

// assertStoredOnce fails unless room holds exactly the messages ids, once each.
func assertStoredOnce(t *testing.T, s store.Store, room string, ids []string) {
	t.Helper()
	got := stored(t, s, room)
	seen := map[string]int{}
	for _, m := range got {
		seen[m.ID.String()]++
	}
	bad := 0
	for _, id := range ids {
		if seen[id] != 1 {
			if bad++; bad <= 5 {
				t.Errorf("message %s stored %d times, want once", id, seen[id])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... and %d more messages not stored once", bad-5)
	}
	if len(got) != len(ids) {
		t.Errorf("room %s holds %d messages, want %d", room, len(got), len(ids))
	}
}

// eventually polls cond until it holds or the deadline passes. Storage
// happens on the worker's goroutine and has no other signal to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countStored(t *testing.T, s store.Store, room string) int { return len(stored(t, s, room)) }

// groupState returns the ingest group's pending and undelivered counts.
func groupState(t *testing.T, c rueidis.Client) (pending, lag int64) {
	t.Helper()
	gs, _, err := bus.Groups(context.Background(), c, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == bus.Group {
			return g.Pending, g.Lag
		}
	}
	t.Fatalf("no group %s", bus.Group)
	return 0, 0
}

func streamLen(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	return apptest.StreamLen(t, c, key)
}

// crashedRead does what a worker named consumer did before it crashed
// between its insert and its XACK: it read every entry of the stream (want
// of them) and stored the first stored ones, acknowledging none.
func crashedRead(t *testing.T, rc rueidis.Client, st store.Store, consumer string, want, stored int) {
	t.Helper()
	entries := apptest.ReadGroup(t, rc, bus.Group, consumer, int64(want)+100)
	if len(entries) != want {
		t.Fatalf("crashed worker's read: %d entries, want %d", len(entries), want)
	}
	msgs := make([]store.Message, 0, stored)
	for _, x := range entries[:stored] {
		e, err := bus.DecodeForStore(x)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, store.MessageFromEntry(e, time.Now()))
	}
	if _, err := st.InsertMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func value(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// faultyStore wraps a real store to fail, reject or block InsertMessages.
type faultyStore struct {
	store.Store
	down atomic.Bool // every insert fails
	// loseReply makes the next n inserts succeed but report an error, as
	// when the connection drops after the store committed.
	loseReply atomic.Int32
	// reject refuses messages whose text starts with it.
	reject string
	// gate, when set, holds each insert until it is closed; entered gets
	// a value as each insert starts waiting.
	gate    chan struct{}
	entered chan struct{}
	calls   atomic.Int64
}

var errStoreDown = errors.New("store is down (test)")

func (f *faultyStore) InsertMessages(ctx context.Context, msgs []store.Message) (store.InsertResult, error) {
	f.calls.Add(1)
	if f.gate != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
		select {
		case <-f.gate:
		case <-ctx.Done():
			return store.InsertResult{}, ctx.Err()
		}
	}
	if f.down.Load() {
		return store.InsertResult{}, errStoreDown
	}
	if f.reject != "" {
		var keep []store.Message
		rejected := map[int]string{}
		for i, m := range msgs {
			if strings.HasPrefix(m.Text, f.reject) {
				rejected[i] = "text is refused (test)"
				continue
			}
			keep = append(keep, m)
		}
		res, err := f.Store.InsertMessages(ctx, keep)
		if err != nil {
			return res, err
		}
		if len(rejected) > 0 {
			res.Rejected = rejected
		}
		return res, nil
	}
	res, err := f.Store.InsertMessages(ctx, msgs)
	if err == nil && f.loseReply.Load() > 0 {
		f.loseReply.Add(-1)
		return store.InsertResult{}, errors.New("connection reset after commit (test)")
	}
	return res, err
}
