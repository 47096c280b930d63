package ingest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

func TestIngestsAuroraAndAuroraChatEntries(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)

	// AuroraChat's backlog, written before any worker created the group:
	// it must not be skipped.
	backlog := xadd(t, rc, bus.FieldRoomID, "general", bus.FieldUserID, "507f1f77bcf86cd799439011",
		bus.FieldText, "from auroachat", bus.FieldUsername, "bob")
	w := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Metrics: prometheus.NewRegistry()})

	e := entry("general", "from aurora")
	aurora := xadd(t, rc, e.Fields()...)
	legacy := xadd(t, rc, bus.FieldRoomID, "general", bus.FieldUserID, "507f1f77bcf86cd799439012",
		bus.FieldText, "", bus.FieldUsername, "carol") // empty text is a message too

	eventually(t, "3 messages stored", func() bool { return countStored(t, st, "general") == 3 })
	eventually(t, "all acknowledged", func() bool { p, lag := groupState(t, rc); return p == 0 && lag == 0 })
	assertStoredOnce(t, st, "general", []string{backlog, aurora, legacy})

	msgs := stored(t, st, "general")
	byID := map[string]store.Message{}
	for _, m := range msgs {
		byID[m.ID.String()] = m
	}
	got := byID[aurora]
	if got.UserID != e.UserID || got.Username != "ann" || got.Text != "from aurora" || got.ClientID != e.ClientID || got.Status != "sent" {
		t.Errorf("aurora entry stored as %+v", got)
	}
	for _, id := range []string{backlog, aurora, legacy} {
		pid, _ := bus.ParseID(id)
		if ms := byID[id].CreatedAt.UnixMilli(); ms != int64(pid.Ms) {
			t.Errorf("message %s createdAt %d, want the id's ms %d", id, ms, pid.Ms)
		}
	}
	if got := byID[backlog]; got.Username != "bob" || got.Text != "from auroachat" || got.ClientID != "" {
		t.Errorf("AuroraChat entry stored as %+v", got)
	}
	if n := value(w.m.inserted); n != 3 {
		t.Errorf("inserted_total = %v, want 3", n)
	}
	if err := w.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// A worker that crashed after its insert and before XACK left its entries
// pending; restarted under the same name it reads them again first, finds
// them stored and acknowledges them without storing them twice.
func TestExactlyOnceAfterCrashBetweenInsertAndAck(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	ctx := context.Background()
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	ids := addEntries(t, rc, "r", 25)

	// The crashed run: read everything, stored the first 15, died.
	const name = "host-1"
	crashedRead(t, rc, st, name, 25, 15)
	if p, _ := groupState(t, rc); p != 25 {
		t.Fatalf("pending before restart = %d, want 25", p)
	}

	w := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Consumer: name})
	eventually(t, "pending list empty", func() bool { p, _ := groupState(t, rc); return p == 0 })
	assertStoredOnce(t, st, "r", ids)
	if d, i := value(w.m.duplicates), value(w.m.inserted); d != 15 || i != 10 {
		t.Errorf("duplicates %v inserted %v, want 15 and 10", d, i)
	}
}

// The store committed but the reply was lost: the worker retries the batch,
// the store reports duplicates, and every message is stored once.
func TestExactlyOnceWhenStoreReplyIsLost(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t)}
	fs.loseReply.Store(2)
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: testConfig()})
	ids := addEntries(t, rc, "r", 30)
	eventually(t, "30 stored and acknowledged", func() bool {
		p, lag := groupState(t, rc)
		return p == 0 && lag == 0 && countStored(t, fs, "r") == 30
	})
	assertStoredOnce(t, fs, "r", ids)
	if value(w.m.storeErrors) != 2 || value(w.m.duplicates) == 0 {
		t.Errorf("store errors %v duplicates %v, want 2 and > 0", value(w.m.storeErrors), value(w.m.duplicates))
	}
	if err := w.Check(context.Background()); err != nil {
		t.Errorf("Check after recovery: %v", err)
	}
}

func TestTwoWorkersShareTheGroup(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	w1 := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Consumer: "w1"})
	w2 := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Consumer: "w2"})
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, addEntries(t, rc, "r"+strconv.Itoa(i), 60)...)
	}
	eventually(t, "300 stored", func() bool {
		p, lag := groupState(t, rc)
		n := 0
		for i := 0; i < 5; i++ {
			n += countStored(t, st, "r"+strconv.Itoa(i))
		}
		return p == 0 && lag == 0 && n == 300
	})
	for i := 0; i < 5; i++ {
		assertStoredOnce(t, st, "r"+strconv.Itoa(i), ids[i*60:(i+1)*60])
	}
	// The group delivers each entry to one worker only.
	if c1, c2 := value(w1.m.consumed), value(w2.m.consumed); c1+c2 != 300 {
		t.Errorf("w1 consumed %v and w2 %v: want 300 in all", c1, c2)
	}
	if d := value(w1.m.duplicates) + value(w2.m.duplicates); d != 0 {
		t.Errorf("%v duplicates: no entry should reach two workers", d)
	}
}

// Entries a crashed consumer holds are taken over once idle for claim_idle.
func TestClaimsIdleEntriesOfADeadConsumer(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	ctx := context.Background()
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	ids := addEntries(t, rc, "r", 20)
	if err := rc.Do(ctx, rc.B().Xreadgroup().Group(bus.Group, "dead-host-7").Count(100).Streams().Key(bus.Stream).Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.ClaimIdle = 150 * time.Millisecond
	w := startWorker(t, Options{Redis: rc, Store: st, Config: cfg})
	later := addEntries(t, rc, "r", 5)
	eventually(t, "claimed entries stored", func() bool { p, _ := groupState(t, rc); return p == 0 && countStored(t, st, "r") == 25 })
	assertStoredOnce(t, st, "r", append(ids, later...))
	if n := value(w.m.claimed); n != 20 {
		t.Errorf("claimed_total = %v, want 20", n)
	}
}

func TestPoisonEntriesGoToTheDeadStreamWithoutBlocking(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t), reject: "poison"}
	cfg := testConfig()
	cfg.ClaimIdle = 100 * time.Millisecond
	cfg.MaxDeliveries = 3
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: cfg})

	undecodable := xadd(t, rc, bus.FieldRoomID, "r", bus.FieldText, "no user", "extra", "kept")
	rejected := xadd(t, rc, entry("r", "poison pill").Fields()...)
	good := addEntries(t, rc, "r", 12)

	// The good entries behind the poison ones are stored at once.
	eventually(t, "good entries stored", func() bool { return countStored(t, fs, "r") == 12 })
	eventually(t, "poison moved to the dead stream", func() bool {
		p, lag := groupState(t, rc)
		return p == 0 && lag == 0 && streamLen(t, rc, bus.DeadStream) == 2
	})
	assertStoredOnce(t, fs, "r", good)

	dead, err := bus.DeadEntries(context.Background(), rc, 10)
	if err != nil {
		t.Fatal(err)
	}
	byDead := map[string]bus.DeadEntry{}
	for _, d := range dead {
		byDead[d.DeadID] = d
	}
	u, ok := byDead[undecodable]
	if !ok || !strings.Contains(u.Reason, "no userId") || u.Fields["extra"] != "kept" || u.Fields[bus.FieldText] != "no user" {
		t.Errorf("undecodable entry in the dead stream as %+v", u)
	}
	r, ok := byDead[rejected]
	if !ok || !strings.Contains(r.Reason, "rejected by the store") || r.Fields[bus.FieldText] != "poison pill" || r.Fields[bus.FieldClientID] != "c-poison pill" {
		t.Errorf("rejected entry in the dead stream as %+v", r)
	}
	if n := value(w.m.deadLettered); n != 2 {
		t.Errorf("dead_lettered_total = %v, want 2", n)
	}
	// The rejected entry was tried max_deliveries times; the undecodable
	// one went at once.
	if n := fs.calls.Load(); n < int64(cfg.MaxDeliveries) {
		t.Errorf("%d inserts: the rejected entry was not retried", n)
	}
}

// While the store fails nothing is acknowledged and the worker is not
// ready; once it works again the backlog drains.
func TestStoreDownKeepsEntriesPendingThenDrains(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t)}
	fs.down.Store(true)
	// Appended before the worker starts, so that its first batch is full.
	ids := addEntries(t, rc, "r", 40)
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: testConfig()})

	eventually(t, "the worker to report the store down", func() bool {
		return w.Check(context.Background()) != nil && fs.calls.Load() >= 3
	})
	if err := w.Check(context.Background()); !strings.Contains(err.Error(), "cannot write to the sqlite store") {
		t.Errorf("Check = %v", err)
	}
	p, lag := groupState(t, rc)
	if p+lag != 40 {
		t.Errorf("pending %d + undelivered %d = %d, want all 40 (nothing acknowledged)", p, lag, p+lag)
	}
	if p != 10 {
		t.Errorf("pending %d: want the one batch in hand (10)", p)
	}
	if n := countStored(t, fs, "r"); n != 0 {
		t.Errorf("%d stored while the store is down", n)
	}

	fs.down.Store(false)
	eventually(t, "backlog stored", func() bool {
		p, lag := groupState(t, rc)
		return p == 0 && lag == 0 && countStored(t, fs, "r") == 40
	})
	assertStoredOnce(t, fs, "r", ids)
	if err := w.Check(context.Background()); err != nil {
		t.Errorf("Check after recovery: %v", err)
	}
	if value(w.m.storeErrors) < 3 {
		t.Errorf("store_errors_total = %v", value(w.m.storeErrors))
	}
}

// Stop finishes the batch in hand and leaves the rest for the next worker.
func TestStopFinishesTheBatchInHand(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: testConfig(), Consumer: "stopper"})
	ids := addEntries(t, rc, "r", 100)
	<-fs.entered // the first batch is in hand

	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(context.Background()) }()
	close(fs.gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	p, lag := groupState(t, rc)
	n := countStored(t, fs, "r")
	if p != 0 || n == 0 || int64(n)+lag != 100 {
		t.Errorf("after stop: %d stored, %d pending, %d undelivered; want the batch in hand stored and acknowledged, the rest undelivered", n, p, lag)
	}
	assertStoredOnce(t, fs, "r", ids[:n])
	// It left the group, having nothing pending.
	cs, err := bus.Consumers(context.Background(), rc, bus.Stream, bus.Group)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == "stopper" {
			t.Errorf("stopped consumer still in the group: %+v", c)
		}
	}
}

// On the embedded Redis a graceful stop drains the whole stream first.
func TestStopDrainsTheEmbeddedRedis(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: testConfig(), Embedded: true})
	ids := addEntries(t, rc, "r", 200)
	// An entry some other consumer holds is taken over as well.
	ctx := context.Background()
	<-fs.entered
	held := addEntries(t, rc, "held", 1)
	if err := rc.Do(ctx, rc.B().Xreadgroup().Group(bus.Group, "other").Count(1000).Streams().Key(bus.Stream).Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(context.Background()) }()
	close(fs.gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	assertStoredOnce(t, fs, "r", ids)
	assertStoredOnce(t, fs, "held", held)
	if p, lag := groupState(t, rc); p != 0 || lag != 0 {
		t.Errorf("after the drain: %d pending, %d undelivered", p, lag)
	}
}

// A stop whose deadline passes while the store is down acknowledges
// nothing and reports what the embedded Redis loses.
func TestStopDeadlineWithStoreDownAcknowledgesNothing(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t)}
	fs.down.Store(true)
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: testConfig(), Embedded: true})
	addEntries(t, rc, "r", 15)
	eventually(t, "an insert attempt", func() bool { return fs.calls.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := w.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Errorf("Stop = %v, want the entries not stored reported", err)
	}
	if p, lag := groupState(t, rc); p+lag != 15 {
		t.Errorf("%d pending + %d undelivered, want all 15 unacknowledged", p, lag)
	}
}

// Consumers long idle with nothing pending leave the group; one holding
// entries stays, whatever its idle time.
func TestExpiresIdleConsumersWithNothingPending(t *testing.T) {
	rc := testRedis(t)
	ctx := context.Background()
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	addEntries(t, rc, "r", 2)
	if err := rc.Do(ctx, rc.B().Xreadgroup().Group(bus.Group, "holding").Count(1).Streams().Key(bus.Stream).Id(">").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, rc.B().XgroupCreateconsumer().Key(bus.Stream).Group(bus.Group).Consumer("gone").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// The embedded Redis starts a consumer's idle clock at its first XCLAIM.
	if err := rc.Do(ctx, rc.B().Xclaim().Key(bus.Stream).Group(bus.Group).Consumer("gone").MinIdleTime("0").Id("1-1").Justid().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(Options{Redis: rc, Store: testStore(t), Config: testConfig(), Consumer: "me", ConsumerExpiry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the idle time is what is tested
	w.expireConsumers()
	cs, err := bus.Consumers(ctx, rc, bus.Stream, bus.Group)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "holding" || cs[0].Pending != 1 {
		t.Errorf("consumers after expiry: %+v, want only holding", cs)
	}
}
