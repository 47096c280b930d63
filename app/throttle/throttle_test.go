package throttle_test

import (
	"context"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/throttle"
)

// TestThrottle: max attempts per window, then refusals saying how long
// until the window (fixed from the first attempt) lifts, which real time
// then does; Release takes one back, Reset clears the key. On the Redis
// of AURORA_TEST_REDIS_URL, else the embedded one.
func TestThrottle(t *testing.T) {
	c := apptest.RedisClient(t, apptest.RedisURL(t))
	ctx := context.Background()
	const window = 400 * time.Millisecond
	th := throttle.New(c, 2, window)
	reserve := func(key string) (bool, time.Duration) {
		t.Helper()
		ok, wait, err := th.Reserve(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return ok, wait
	}
	for i := range 2 {
		if ok, _ := reserve("k"); !ok {
			t.Fatalf("attempt %d refused under the limit", i+1)
		}
	}
	ok, wait := reserve("k")
	if ok || wait <= 0 || wait > window {
		t.Fatalf("third attempt: ok %v, wait %v; want refused within %v", ok, wait, window)
	}
	if ok, _ := reserve("other"); !ok {
		t.Fatal("another key is limited apart")
	}
	if err := th.Release(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := reserve("k"); !ok {
		t.Fatal("an attempt given back by Release is not counted")
	}
	time.Sleep(wait + 50*time.Millisecond)
	if ok, _ := reserve("k"); !ok {
		t.Fatal("refused after the window passed")
	}
	if err := th.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _ := reserve("k"); !ok {
			t.Fatalf("attempt %d after Reset refused", i+1)
		}
	}
	// Release never creates a key.
	if err := th.Release(ctx, "never"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, c.B().Exists().Key("never").Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("Release created a key: %d %v", n, err)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 59 * time.Second: 59} {
		if got := throttle.RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
