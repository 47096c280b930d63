package bus_test

import (
	"context"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// These run against the embedded Redis by default and against the real one
// of AURORA_TEST_REDIS_URL (bash .ci/with-redis go test ./app/bus/): the two
// differ in how they report a group's progress (RESP2 flat arrays and a
// last-delivered-id kept as given, "0", from the embedded one; RESP3 maps
// and "0-0" from a real one), and a misread would not show elsewhere, since
// reading more of the stream than needed is also correct, only slower.

// TestReadBacklog checks the ingest group's progress is read right from the
// replies of the Redis in use.
func TestReadBacklog(t *testing.T) {
	ctx := context.Background()
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	do := func(args ...string) {
		t.Helper()
		if err := rc.Do(ctx, rc.B().Arbitrary(args...).Build()).Error(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	check := func(what string, wantFrom bus.ID, wantOldest string) {
		t.Helper()
		ti, err := bus.ReadBacklog(ctx, rc, bus.Stream)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ti.From != wantFrom {
			t.Errorf("%s: from %s, want %s", what, ti.From, wantFrom)
		}
		oldest := ""
		if ti.HasOldest {
			oldest = ti.Oldest.String()
		}
		if oldest != wantOldest {
			t.Errorf("%s: oldest %q, want %q", what, oldest, wantOldest)
		}
	}

	check("no stream", bus.ID{}, "")
	for _, id := range []string{"5-1", "5-2", "6-0", "7-0", "8-0"} {
		do("XADD", bus.Stream, id, bus.FieldRoomID, "r", bus.FieldUserID, "u", bus.FieldText, "t")
	}
	check("no group", bus.ID{}, "5-1")
	do("XGROUP", "CREATE", bus.Stream, "some_other_group", "$")
	check("only a foreign group", bus.ID{}, "5-1")
	do("XGROUP", "CREATE", bus.Stream, bus.Group, "0")
	check("nothing delivered", bus.ID{Ms: 0, Seq: 1}, "5-1")
	do("XREADGROUP", "GROUP", bus.Group, "w1", "COUNT", "4", "STREAMS", bus.Stream, ">")
	check("four pending", bus.ID{Ms: 5, Seq: 1}, "5-1")
	do("XACK", bus.Stream, bus.Group, "5-1", "6-0")
	check("5-2 and 7-0 pending", bus.ID{Ms: 5, Seq: 2}, "5-1")
	do("XACK", bus.Stream, bus.Group, "5-2", "7-0")
	check("all delivered acked", bus.ID{Ms: 7, Seq: 1}, "5-1")
	do("XTRIM", bus.Stream, "MINID", "7-0")
	check("trimmed", bus.ID{Ms: 7, Seq: 1}, "7-0")
}

// TestGroupProgressAgrees: the history API's "lowest id not yet stored"
// (ReadBacklog), the trim point and the operator's view (Groups) read one
// group's progress the same way at every step, on either Redis.
func TestGroupProgressAgrees(t *testing.T) {
	ctx := context.Background()
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, apptest.XAdd(t, rc, bus.Stream, "*", bus.Entry{RoomID: "r", UserID: "u", Text: "t"}.Fields()...))
	}
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	check := func(what, wantFrom, wantLast string) {
		t.Helper()
		b, err := bus.ReadBacklog(ctx, rc, bus.Stream)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		tp, ok, err := bus.TrimPoint(ctx, rc, bus.Stream)
		if err != nil || !ok {
			t.Fatalf("%s: trim point %v %v", what, ok, err)
		}
		gs, _, err := bus.Groups(ctx, rc, bus.Stream)
		if err != nil || len(gs) != 1 {
			t.Fatalf("%s: groups %+v %v", what, gs, err)
		}
		if b.From.String() != wantFrom || tp != b.From || gs[0].LastDeliveredID != wantLast {
			t.Errorf("%s: backlog from %s, trim point %s, last delivered %s; want %s, %s, %s",
				what, b.From, tp, gs[0].LastDeliveredID, wantFrom, wantFrom, wantLast)
		}
	}
	check("created at 0", "0-1", "0-0")
	apptest.ReadGroupIDs(t, rc, bus.Group, "a", 3)
	check("three pending", ids[0], ids[2])
	apptest.Ack(t, rc, bus.Group, ids[0], ids[2])
	check("the middle one pending", ids[1], ids[2])
	apptest.Ack(t, rc, bus.Group, ids[1])
	next, _ := mustParse(t, ids[2]).Next()
	check("all delivered acknowledged", next.String(), ids[2])
}

func mustParse(t *testing.T, s string) bus.ID {
	t.Helper()
	id, err := bus.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
