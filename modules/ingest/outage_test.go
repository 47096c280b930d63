package ingest

import (
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
)

// TestResumesSoonAfterARedisOutage: after Redis has been unreachable for
// several seconds, the worker's retries have backed off to their ceiling;
// Redis comes back just after a failed attempt, so the worker waits out a
// full backoff step before it reads again. A message sent once Redis is
// back must be stored within 5 s. With the old 10 s ceiling that wait was
// 5–10 s (ingest resumed up to 11 s after Redis returned); with 2 s it is
// 1–2 s. This bounds recovery, not speed: the margin is wide.
func TestResumesSoonAfterARedisOutage(t *testing.T) {
	direct := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, direct)
	proxy, viaProxy := apptest.NewRedisProxy(t, direct)
	fs := testStore(t)
	// No maintenance during the test: the worker's reads are its only
	// attempts to reach Redis.
	w := startWorker(t, Options{Redis: apptest.RedisClient(t, viaProxy), Store: fs, Config: testConfig(), MaintainEvery: time.Hour})
	xadd(t, rc, entry("r", "before").Fields()...)
	eventually(t, "the first message stored", func() bool { return countStored(t, fs, "r") == 1 })

	proxy.Down()
	// Past 7 s the old backoff (steps doubling from 100 ms, each wait in
	// the upper half of its step: at most 6.3 s for the first six) was at
	// its 10 s step; the new one has long reached its 2 s ceiling.
	time.Sleep(7 * time.Second)
	select {
	case <-proxy.Refused(): // an attempt before now
	default:
	}
	select {
	case <-proxy.Refused(): // the worker just failed an attempt, and backs off
	case <-time.After(20 * time.Second):
		t.Fatal("the worker made no attempt to reach Redis in 20s")
	}
	proxy.Up()
	back := time.Now()
	xadd(t, rc, entry("r", "after").Fields()...)
	eventually(t, "the message sent after the outage stored", func() bool { return countStored(t, fs, "r") == 2 })
	took := time.Since(back)
	t.Logf("stored %v after Redis returned", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("stored %v after Redis returned, want under 5s", took.Round(time.Millisecond))
	}
	if err := w.Check(t.Context()); err != nil {
		t.Errorf("Check after recovery: %v", err)
	}
}
