package ingest

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auroradev/aurora/app/apptest"
)

// TestGroupLostIsAnError: Redis losing the stream (a restart without AOF)
// takes every acknowledged, not yet stored message with it. That must be an
// ERROR naming what the worker knew and a metric, not the WARN it was,
// and the worker goes on with the new stream.
func TestGroupLostIsAnError(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	var logs apptest.Buffer
	w := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Metrics: prometheus.NewRegistry(),
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	first := xadd(t, rc, entry("general", "before the wipe").Fields()...)
	eventually(t, "the first message stored", func() bool { return countStored(t, st, "general") == 1 })

	if err := rc.Do(context.Background(), rc.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lost group reported", func() bool { return value(w.m.groupLost) == 1 })
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "consumer group was gone") ||
		!strings.Contains(out, "last_read_by_this_worker="+first) {
		t.Fatalf("no ERROR naming the last id read (%s):\n%s", first, out)
	}
	// It carries on with the new stream.
	xadd(t, rc, entry("general", "after the wipe").Fields()...)
	eventually(t, "the message after the wipe stored", func() bool { return countStored(t, st, "general") == 2 })
}
