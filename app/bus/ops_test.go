package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// readAs reads up to n new entries as consumer of the ingest group.
func readAs(t *testing.T, c rueidis.Client, consumer string, n int64) []string {
	t.Helper()
	return apptest.ReadGroupIDs(t, c, bus.Group, consumer, n)
}

func ackIDs(t *testing.T, c rueidis.Client, group string, ids ...string) {
	t.Helper()
	apptest.Ack(t, c, group, ids...)
}

func trim(t *testing.T, c rueidis.Client, keep int64) bus.TrimResult {
	t.Helper()
	res, err := bus.Trim(context.Background(), c, bus.Stream, keep, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTrimNeverRemovesUnacknowledgedEntries(t *testing.T) {
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	ctx := context.Background()
	ids := apptest.AddEntries(t, rc, "r", 30)

	if res := trim(t, rc, 5); res.Trimmed != 0 || !strings.Contains(res.Reason, "no consumer group") {
		t.Errorf("without a group: %+v", res)
	}
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
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
	if res := trim(t, rc, 5); res.Trimmed != 5 || res.SafeID != ids[5] || apptest.FirstID(t, rc) != ids[5] {
		t.Errorf("with 5 pending: %+v, first entry now %s; want 0..4 trimmed", res, apptest.FirstID(t, rc))
	}
	// A dry run tells without trimming.
	ackIDs(t, rc, bus.Group, ids[5])
	res, err := bus.Trim(ctx, rc, bus.Stream, 5, 0, true)
	if err != nil || res.Trimmed != 5 || apptest.StreamLen(t, rc, bus.Stream) != 25 {
		t.Errorf("dry run: %+v %v, length %d", res, err, apptest.StreamLen(t, rc, bus.Stream))
	}
	// 10..29 were never delivered: they stay.
	if res := trim(t, rc, 5); res.Trimmed != 5 || apptest.FirstID(t, rc) != ids[10] {
		t.Errorf("with 10..29 undelivered: %+v, first %s", res, apptest.FirstID(t, rc))
	}
	// All acknowledged: the newest 5 stay for reconnect recovery.
	ackIDs(t, rc, bus.Group, readAs(t, rc, "a", 100)...)
	if res := trim(t, rc, 5); res.Trimmed != 15 || apptest.FirstID(t, rc) != ids[25] || apptest.StreamLen(t, rc, bus.Stream) != 5 {
		t.Errorf("all acknowledged: %+v, first %s, length %d", res, apptest.FirstID(t, rc), apptest.StreamLen(t, rc, bus.Stream))
	}
	// A second group that has read up to 27 holds 28 and 29 back.
	if err := rc.Do(ctx, rc.B().XgroupCreate().Key(bus.Stream).Group("archive").Id(ids[27]).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if res := trim(t, rc, 1); res.Trimmed != 3 || apptest.FirstID(t, rc) != ids[28] {
		t.Errorf("two groups: %+v, first %s; want the minimum over groups", res, apptest.FirstID(t, rc))
	}
	// A limit bounds one pass.
	apptest.AddEntries(t, rc, "r", 10)
	ackIDs(t, rc, bus.Group, readAs(t, rc, "a", 100)...)
	ackIDs(t, rc, "archive", apptest.ReadGroupIDs(t, rc, "archive", "x", 100)...)
	if res, err := bus.Trim(ctx, rc, bus.Stream, 1, 4, false); err != nil || res.Trimmed != 4 {
		t.Errorf("limited pass: %+v %v", res, err)
	}
}

func TestInfoPendingAndClaim(t *testing.T) {
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	ctx := context.Background()
	info, err := bus.Info(ctx, rc, bus.Stream)
	if err != nil || info.Exists || info.Length != 0 || len(info.Groups) != 0 {
		t.Errorf("no stream: %+v %v", info, err)
	}
	ids := apptest.AddEntries(t, rc, "r", 10)
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	readAs(t, rc, "a", 4)
	readAs(t, rc, "b", 3)
	ackIDs(t, rc, bus.Group, ids[0])

	info, err = bus.Info(ctx, rc, bus.Stream)
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

	all, err := bus.Pending(ctx, rc, bus.Stream, bus.PendingFilter{})
	if err != nil || len(all) != 6 || all[0].ID != ids[1] || all[0].Consumer != "a" || all[0].Deliveries != 1 {
		t.Errorf("pending: %+v %v", all, err)
	}
	ofB, err := bus.Pending(ctx, rc, bus.Stream, bus.PendingFilter{Consumer: "b"})
	if err != nil || len(ofB) != 3 || ofB[0].ID != ids[4] {
		t.Errorf("pending of b: %+v %v", ofB, err)
	}
	if idle, err := bus.Pending(ctx, rc, bus.Stream, bus.PendingFilter{MinIdle: time.Hour}); err != nil || len(idle) != 0 {
		t.Errorf("pending idle for an hour: %+v %v", idle, err)
	}

	if got, err := bus.Claim(ctx, rc, bus.Stream, "c", "a", time.Hour, 10); err != nil || len(got) != 0 {
		t.Errorf("claim of entries idle an hour: %v %v", got, err)
	}
	got, err := bus.Claim(ctx, rc, bus.Stream, "c", "a", 0, 10)
	if err != nil || strings.Join(got, ",") != strings.Join(ids[1:4], ",") {
		t.Errorf("claim from a: %v %v, want %v", got, err, ids[1:4])
	}
	ofC, err := bus.Pending(ctx, rc, bus.Stream, bus.PendingFilter{Consumer: "c"})
	if err != nil || len(ofC) != 3 {
		t.Errorf("pending of c after the claim: %+v %v", ofC, err)
	}
}
