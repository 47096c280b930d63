package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

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
	if n := streamLen(t, rc, bus.Stream); n != 100 || apptest.FirstID(t, rc) != second[0] {
		t.Fatalf("during the outage the stream holds %d entries from %s, want the 100 unstored from %s", n, apptest.FirstID(t, rc), second[0])
	}
	fs.down.Store(false)
	eventually(t, "stored and trimmed to 20 again", func() bool {
		return countStored(t, fs, "r") == 200 && streamLen(t, rc, bus.Stream) == 20 && value(w.m.trimmed) == 180
	})
	assertStoredOnce(t, fs, "r", append(first, second...))
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

	dead, err := bus.DeadEntries(ctx, rc, 10)
	if err != nil || len(dead) != 1 || dead[0].DeadID != rejected {
		t.Fatalf("dead entries: %+v %v", dead, err)
	}
	res, err := bus.Requeue(ctx, rc, 1, dead)
	if err != nil || len(res) != 1 || res[0].NewID == "" {
		t.Fatalf("requeue: %+v %v", res, err)
	}
	// As after a crash between XADD and XDEL: requeued again.
	if _, err := bus.Requeue(ctx, rc, 1, dead); err != nil {
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
