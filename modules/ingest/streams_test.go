package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

func readAs(t *testing.T, c rueidis.Client, consumer string, n int64) []string {
	t.Helper()
	res, err := c.Do(context.Background(), c.B().Xreadgroup().Group(bus.Group, consumer).Count(n).Streams().Key(bus.Stream).Id(">").Build()).AsXReadSlices()
	if err != nil {
		t.Fatalf("read as %s: %v", consumer, err)
	}
	var ids []string
	for _, e := range res[bus.Stream] {
		ids = append(ids, e.ID)
	}
	return ids
}

func ackIDs(t *testing.T, c rueidis.Client, group string, ids ...string) {
	t.Helper()
	if err := c.Do(context.Background(), c.B().Xack().Key(bus.Stream).Group(group).Id(ids...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

func firstID(t *testing.T, c rueidis.Client) string {
	t.Helper()
	id, err := edgeID(context.Background(), c, false)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func trim(t *testing.T, c rueidis.Client, keep int64) TrimResult {
	t.Helper()
	res, err := Trim(context.Background(), c, keep, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTrimNeverRemovesUnacknowledgedEntries(t *testing.T) {
	rc := testRedis(t)
	ctx := context.Background()
	ids := addEntries(t, rc, "r", 30)

	if res := trim(t, rc, 5); res.Trimmed != 0 || !strings.Contains(res.Reason, "no consumer group") {
		t.Errorf("without a group: %+v", res)
	}
	if err := EnsureGroup(ctx, rc); err != nil {
		t.Fatal(err)
	}
	if res := trim(t, rc, 5); res.Trimmed != 0 {
		t.Errorf("nothing delivered yet, trimmed %+v", res)
	}

	// Delivered 0..9; acknowledged all but 5.
	if got := readAs(t, rc, "a", 10); len(got) != 10 {
		t.Fatalf("read %d", len(got))
	}
	ackIDs(t, rc, bus.Group, ids[0:5]...)
	ackIDs(t, rc, bus.Group, ids[6:10]...)
	if res := trim(t, rc, 5); res.Trimmed != 5 || res.SafeID != ids[5] || firstID(t, rc) != ids[5] {
		t.Errorf("with 5 pending: %+v, first entry now %s; want 0..4 trimmed", res, firstID(t, rc))
	}
	// A dry run tells without trimming.
	ackIDs(t, rc, bus.Group, ids[5])
	res, err := Trim(ctx, rc, 5, 0, true)
	if err != nil || res.Trimmed != 5 || streamLen(t, rc, bus.Stream) != 25 {
		t.Errorf("dry run: %+v %v, length %d", res, err, streamLen(t, rc, bus.Stream))
	}
	// 10..29 were never delivered: they stay.
	if res := trim(t, rc, 5); res.Trimmed != 5 || firstID(t, rc) != ids[10] {
		t.Errorf("with 10..29 undelivered: %+v, first %s", res, firstID(t, rc))
	}
	// All acknowledged: the newest 5 stay for reconnect recovery.
	ackIDs(t, rc, bus.Group, readAs(t, rc, "a", 100)...)
	if res := trim(t, rc, 5); res.Trimmed != 15 || firstID(t, rc) != ids[25] || streamLen(t, rc, bus.Stream) != 5 {
		t.Errorf("all acknowledged: %+v, first %s, length %d", res, firstID(t, rc), streamLen(t, rc, bus.Stream))
	}
	// A second group that has read up to 27 holds 28 and 29 back.
	if err := rc.Do(ctx, rc.B().XgroupCreate().Key(bus.Stream).Group("archive").Id(ids[27]).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if res := trim(t, rc, 1); res.Trimmed != 3 || firstID(t, rc) != ids[28] {
		t.Errorf("two groups: %+v, first %s; want the minimum over groups", res, firstID(t, rc))
	}
	// A limit bounds one pass.
	addEntries(t, rc, "r", 10)
	ackIDs(t, rc, bus.Group, readAs(t, rc, "a", 100)...)
	ackIDs(t, rc, "archive", readAsGroup(t, rc, "archive", 100)...)
	if res, err := Trim(ctx, rc, 1, 4, false); err != nil || res.Trimmed != 4 {
		t.Errorf("limited pass: %+v %v", res, err)
	}
}

func readAsGroup(t *testing.T, c rueidis.Client, group string, n int64) []string {
	t.Helper()
	res, err := c.Do(context.Background(), c.B().Xreadgroup().Group(group, "x").Count(n).Streams().Key(bus.Stream).Id(">").Build()).AsXReadSlices()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range res[bus.Stream] {
		ids = append(ids, e.ID)
	}
	return ids
}

// Under traffic the worker keeps the stream at keep_recent entries, and
// while the store is down it trims only what was stored before.
func TestWorkerKeepsTheStreamBounded(t *testing.T) {
	rc := testRedis(t)
	fs := &faultyStore{Store: testStore(t)}
	cfg := testConfig()
	cfg.KeepRecent = 20
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: cfg, MaintainEvery: 10 * time.Millisecond})

	first := addEntries(t, rc, "r", 100)
	eventually(t, "stored and trimmed to 20", func() bool {
		return countStored(t, fs, "r") == 100 && streamLen(t, rc, bus.Stream) == 20
	})

	fs.down.Store(true)
	second := addEntries(t, rc, "r", 100)
	// The 20 old entries go, the 100 unstored ones stay.
	eventually(t, "a maintenance pass during the outage", func() bool {
		return value(w.m.length) == 100 && value(w.m.storeErrors) > 0
	})
	if n := streamLen(t, rc, bus.Stream); n != 100 || firstID(t, rc) != second[0] {
		t.Fatalf("during the outage the stream holds %d entries from %s, want the 100 unstored from %s", n, firstID(t, rc), second[0])
	}
	fs.down.Store(false)
	eventually(t, "stored and trimmed to 20 again", func() bool {
		return countStored(t, fs, "r") == 200 && streamLen(t, rc, bus.Stream) == 20 && value(w.m.trimmed) == 180
	})
	assertStoredOnce(t, fs, "r", append(first, second...))
}

func TestInfoPendingAndClaim(t *testing.T) {
	rc := testRedis(t)
	ctx := context.Background()
	info, err := Info(ctx, rc)
	if err != nil || info.Exists || info.Length != 0 || len(info.Groups) != 0 {
		t.Errorf("no stream: %+v %v", info, err)
	}
	ids := addEntries(t, rc, "r", 10)
	if err := EnsureGroup(ctx, rc); err != nil {
		t.Fatal(err)
	}
	readAs(t, rc, "a", 4)
	readAs(t, rc, "b", 3)
	ackIDs(t, rc, bus.Group, ids[0])

	info, err = Info(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Exists || info.Length != 10 || info.FirstID != ids[0] || info.LastID != ids[9] || len(info.Groups) != 1 {
		t.Fatalf("info: %+v", info)
	}
	g := info.Groups[0]
	if g.Name != bus.Group || g.Pending != 6 || g.OldestPendingID != ids[1] || g.LastDeliveredID != ids[6] || g.Lag != 3 {
		t.Errorf("group: %+v", g)
	}
	if len(g.Consumers) != 2 || g.Consumers[0].Name != "a" || g.Consumers[0].Pending != 3 || g.Consumers[1].Pending != 3 {
		t.Errorf("consumers: %+v", g.Consumers)
	}

	all, err := Pending(ctx, rc, PendingFilter{})
	if err != nil || len(all) != 6 || all[0].ID != ids[1] || all[0].Consumer != "a" || all[0].Deliveries != 1 {
		t.Errorf("pending: %+v %v", all, err)
	}
	ofB, err := Pending(ctx, rc, PendingFilter{Consumer: "b"})
	if err != nil || len(ofB) != 3 || ofB[0].ID != ids[4] {
		t.Errorf("pending of b: %+v %v", ofB, err)
	}
	if idle, err := Pending(ctx, rc, PendingFilter{MinIdle: time.Hour}); err != nil || len(idle) != 0 {
		t.Errorf("pending idle for an hour: %+v %v", idle, err)
	}

	if got, err := Claim(ctx, rc, "c", "a", time.Hour, 10); err != nil || len(got) != 0 {
		t.Errorf("claim of entries idle an hour: %v %v", got, err)
	}
	got, err := Claim(ctx, rc, "c", "a", 0, 10)
	if err != nil || strings.Join(got, ",") != strings.Join(ids[1:4], ",") {
		t.Errorf("claim from a: %v %v, want %v", got, err, ids[1:4])
	}
	ofC, err := Pending(ctx, rc, PendingFilter{Consumer: "c"})
	if err != nil || len(ofC) != 3 {
		t.Errorf("pending of c after the claim: %+v %v", ofC, err)
	}
}

// A requeued dead entry is stored under its original id and time, once,
// even when it is requeued twice.
func TestRequeueStoresUnderTheOriginalID(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.MaxDeliveries = 1
	fs := &faultyStore{Store: st, reject: "fix me"}
	w := startWorker(t, Options{Redis: rc, Store: fs, Config: cfg, Consumer: "first"})
	rejected := xadd(t, rc, bus.FieldRoomID, "r", bus.FieldUserID, "u1", bus.FieldText, "fix me", bus.FieldUsername, "ann")
	eventually(t, "dead-lettered", func() bool { return streamLen(t, rc, bus.DeadStream) == 1 })
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	dead, err := DeadEntries(ctx, rc, 10)
	if err != nil || len(dead) != 1 || dead[0].DeadID != rejected {
		t.Fatalf("dead entries: %+v %v", dead, err)
	}
	res, err := Requeue(ctx, rc, dead)
	if err != nil || len(res) != 1 || res[0].NewID == "" {
		t.Fatalf("requeue: %+v %v", res, err)
	}
	// As after a crash between XADD and XDEL: requeued again.
	if _, err := Requeue(ctx, rc, dead); err != nil {
		t.Fatal(err)
	}
	if n := streamLen(t, rc, bus.DeadStream); n != 0 {
		t.Errorf("dead stream holds %d after requeue", n)
	}

	startWorker(t, Options{Redis: rc, Store: st, Config: cfg, Consumer: "second"})
	eventually(t, "requeued entries acknowledged", func() bool { p, lag := groupState(t, rc); return p == 0 && lag == 0 })
	msgs := stored(t, st, "r")
	if len(msgs) != 1 || msgs[0].ID.String() != rejected || msgs[0].Text != "fix me" {
		t.Fatalf("stored %+v, want one message %s", msgs, rejected)
	}
	orig, _ := bus.ParseID(rejected)
	if msgs[0].CreatedAt.UnixMilli() != int64(orig.Ms) {
		t.Errorf("createdAt %v, want the original id's time", msgs[0].CreatedAt)
	}
}
