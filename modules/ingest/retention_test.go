package ingest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/config"
)

// objects is an attachment storage that records deletions (the real one
// is the chat role's; ingest only calls the interface). fail refuses the
// URLs it holds.
type objects struct {
	mu      sync.Mutex
	deleted []string
	fail    map[string]bool
}

func (o *objects) DeleteAttachment(_ context.Context, url string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail[url] {
		return errors.New("storage refuses (test)")
	}
	o.deleted = append(o.deleted, url)
	return nil
}

func (o *objects) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.deleted)
	slices.Sort(out)
	return out
}

func att(url string) bus.Attachment {
	return bus.Attachment{URL: url, FileType: "image/png", Size: 3, Filename: "a.png"}
}

// TestDeleteRemovesAttachments: a delete stored by ingest deletes its
// message's objects after the batch is acknowledged; a failing deletion
// is counted and holds nothing up.
func TestDeleteRemovesAttachments(t *testing.T) {
	for name, open := range bothStores() {
		t.Run(name, func(t *testing.T) { testDeleteRemovesAttachments(t, open(t)) })
	}
}

func testDeleteRemovesAttachments(t *testing.T, st store.Store) {
	rc := testRedis(t)
	objs := &objects{fail: map[string]bool{"/api/rooms/r/attachments/bad": true}}
	w := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Attachments: objs})

	m := entry("r", "with files")
	m.Attachments = []bus.Attachment{att("/api/rooms/r/attachments/a"), att("/api/rooms/r/attachments/bad")}
	mid := xaddEntry(t, rc, m)
	keep := entry("r", "kept")
	keep.Attachments = []bus.Attachment{att("/api/rooms/r/attachments/k")}
	xaddEntry(t, rc, keep)
	eventually(t, "the messages stored", func() bool { return countStored(t, st, "r") == 2 })

	del := entry("r", "")
	del.Type, del.MessageID, del.ClientID = bus.TypeDelete, mid, "c-del"
	xaddEntry(t, rc, del)
	eventually(t, "the attachment deleted", func() bool { return len(objs.got()) == 1 })
	if got := objs.got(); !slices.Equal(got, []string{"/api/rooms/r/attachments/a"}) {
		t.Errorf("deleted %v", got)
	}
	eventually(t, "the failure counted", func() bool { return value(w.m.attachmentErrors) == 1 })
	eventually(t, "the batch acknowledged", func() bool { p, lag := groupState(t, rc); return p == 0 && lag == 0 })
	if value(w.m.attachmentsDeleted) != 1 {
		t.Errorf("attachments_deleted_total %v, want 1", value(w.m.attachmentsDeleted))
	}
}

// xaddEntry appends e with a generated id and returns the id.
func xaddEntry(t *testing.T, rc rueidis.Client, e bus.Entry) bus.ID {
	t.Helper()
	id, err := bus.ParseID(xadd(t, rc, e.Fields()...))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// aged stores n messages of room created age before now (ids in that
// millisecond and the next ones), each with one attachment.
func aged(t *testing.T, st store.Store, room string, now time.Time, age time.Duration, n int) {
	t.Helper()
	ms := uint64(now.Add(-age).UnixMilli())
	var msgs []store.Message
	for i := range n {
		e := bus.Entry{ID: bus.ID{Ms: ms, Seq: uint64(i)}, RoomID: room, UserID: "507f1f77bcf86cd799439011", Username: "ann",
			Text: "old " + strconv.Itoa(i), Attachments: []bus.Attachment{att("/" + room + "/" + age.String() + "/" + strconv.Itoa(i))}}
		msgs = append(msgs, store.MessageFromEntry(e, now))
	}
	for len(msgs) > 0 {
		k := min(len(msgs), 500)
		if _, err := st.InsertMessages(context.Background(), msgs[:k]); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[k:]
	}
}

func newRetention(t *testing.T, o Options) *retention {
	t.Helper()
	if o.Log == nil {
		o.Log = testLog(t)
	}
	return &retention{o: o, m: newMetrics(nil), holder: "test-" + t.Name()}
}

// TestRetentionPass: a pass deletes, room by room, what is older than the
// room's retention (its own, else the server's default; forever keeps
// everything), in batches, with the attachments' objects.
func TestRetentionPass(t *testing.T) {
	for name, open := range bothStores() {
		t.Run(name, func(t *testing.T) { testRetentionPass(t, open(t)) })
	}
}

func testRetentionPass(t *testing.T, st store.Store) {
	ctx := context.Background()
	rc := testRedis(t)
	now := time.Now()
	rooms := map[string]time.Duration{
		"own":     time.Hour,           // its own: 1h
		"forever": store.RetainForever, // kept whatever the default
		"dflt":    0,                   // the default: 2h
	}
	for name, d := range rooms {
		if _, err := st.CreateRoom(ctx, store.Room{Name: name}, nil); err != nil {
			t.Fatal(err)
		}
		if d != 0 {
			if err := st.SetRetention(ctx, name, d); err != nil {
				t.Fatal(err)
			}
		}
		aged(t, st, name, now, 3*time.Hour, 2)
		aged(t, st, name, now, 90*time.Minute, 2)
		aged(t, st, name, now, 30*time.Minute, 2)
	}
	// More than a batch past retention.
	aged(t, st, "own", now, 5*time.Hour, expireBatch+20)

	cfg := testConfig()
	cfg.Retention, cfg.RetentionInterval = 2*time.Hour, time.Minute
	objs := &objects{}
	r := newRetention(t, Options{Redis: rc, Store: st, Rooms: st, Config: cfg, Attachments: objs})
	if err := r.pass(ctx, now); err != nil {
		t.Fatal(err)
	}
	for room, want := range map[string]int{"own": 2, "forever": 6, "dflt": 4, "general": 0} {
		if got := countStored(t, st, room); got != want {
			t.Errorf("room %s keeps %d messages, want %d", room, got, want)
		}
	}
	if got, want := value(r.m.expired), float64(expireBatch+20+4+2); got != want {
		t.Errorf("expired_total %v, want %v", got, want)
	}
	gone := objs.got()
	if len(gone) != expireBatch+20+4+2 || !slices.Contains(gone, "/own/1h30m0s/1") || !slices.Contains(gone, "/dflt/3h0m0s/0") ||
		slices.Contains(gone, "/dflt/1h30m0s/0") || slices.ContainsFunc(gone, func(u string) bool { return u[:8] == "/forever" }) {
		t.Errorf("deleted objects: %d of them, %v...", len(gone), gone[:min(len(gone), 8)])
	}

	// Nothing more to do: a second pass deletes nothing.
	if err := r.pass(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := len(objs.got()); got != len(gone) {
		t.Errorf("a second pass deleted %d more objects", got-len(gone))
	}
}

// TestRetentionDefaultForever: with ingest.retention 0 and no room of its
// own, nothing is deleted.
func TestRetentionDefaultForever(t *testing.T) {
	ctx := context.Background()
	rc, st := testRedis(t), testStore(t)
	now := time.Now()
	aged(t, st, "general", now, 24*365*time.Hour, 3)
	r := newRetention(t, Options{Redis: rc, Store: st, Rooms: st, Config: testConfig()})
	if err := r.pass(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := countStored(t, st, "general"); got != 3 {
		t.Errorf("general keeps %d, want 3", got)
	}
}

// TestRetentionLock: one process at a time holds the lock; the holder
// keeps it from pass to pass, and another takes it once it expires.
func TestRetentionLock(t *testing.T) {
	ctx := context.Background()
	rc := testRedis(t)
	cfg := testConfig()
	cfg.RetentionInterval = time.Minute
	a := newRetention(t, Options{Redis: rc, Config: cfg})
	b := newRetention(t, Options{Redis: rc, Config: cfg})
	b.holder += "-b"
	if !a.lock(ctx) {
		t.Fatal("a: the free lock was not taken")
	}
	if b.lock(ctx) {
		t.Fatal("b took the lock a holds")
	}
	if !a.lock(ctx) {
		t.Fatal("a lost its own lock")
	}
	ttl, err := rc.Do(ctx, rc.B().Pttl().Key(RetentionLockKey).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > (2*time.Minute).Milliseconds() {
		t.Errorf("lock ttl %dms (%v), want at most two intervals", ttl, err)
	}
	// a died: its lock expires (deleted here rather than waited for).
	if err := rc.Do(ctx, rc.B().Del().Key(RetentionLockKey).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if !b.lock(ctx) {
		t.Fatal("b did not take the expired lock")
	}
	if a.lock(ctx) {
		t.Fatal("a took the lock b holds")
	}
}

// TestRetentionLoop: the ingest module's Shards run the loop at start:
// the messages past retention go without anyone calling a pass.
func TestRetentionLoop(t *testing.T) {
	rc, st := testRedis(t), testStore(t)
	aged(t, st, "general", time.Now(), 2*time.Hour, 3)
	aged(t, st, "general", time.Now(), 0, 1)
	cfg := testConfig()
	cfg.Retention, cfg.RetentionInterval = time.Hour, 50*time.Millisecond
	s, err := NewShards(Options{Redis: rc, Store: st, Rooms: st, Config: cfg, Consumer: "w-" + t.Name(), Log: testLog(t)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	eventually(t, "the old messages expired", func() bool { return countStored(t, st, "general") == 1 })
}

// bothStores opens a migrated store of each backend: SQLite, and MongoDB
// (FerretDB, or AURORA_TEST_MONGO_URL's).
func bothStores() map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store { return testStore(t) },
		"mongodb": func(t *testing.T) store.Store {
			ctx := context.Background()
			url := storetest.MongoURL(t)
			st, err := mongostore.Open(ctx, url, (&config.Config{Mongo: config.Mongo{URL: url}}).MongoDatabase())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close(context.Background()) })
			if err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
}
