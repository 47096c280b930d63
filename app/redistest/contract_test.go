package redistest_test

import (
	"os"
	"testing"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/redistest"
)

// frozenEnv, set to 1, starts the embedded Redis with its clock off (keys
// age only by FastForward, as plain miniredis): the suite must then fail,
// which is how it shows it would have caught the quick start's
// rate-limited-forever bug. CI never sets it.
const frozenEnv = "AURORA_REDISTEST_FROZEN_CLOCK"

func TestEmbeddedRedis(t *testing.T) {
	redistest.Run(t, func(t *testing.T) rueidis.Client {
		s := apptest.EmbeddedRedis(t, embeddedredis.Options{FrozenClock: os.Getenv(frozenEnv) == "1"})
		return apptest.RedisClient(t, s.URL())
	})
}

// TestRealRedis runs the same contract against AURORA_TEST_REDIS_URL; it
// fails (never skips) when that is set and unreachable.
func TestRealRedis(t *testing.T) {
	url := os.Getenv(apptest.RedisEnv)
	if url == "" {
		t.Skipf("%s is not set: the contract runs against the embedded Redis only (CI sets it)", apptest.RedisEnv)
	}
	redistest.Run(t, func(t *testing.T) rueidis.Client {
		return apptest.RedisClient(t, url)
	})
}
