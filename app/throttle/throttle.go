// Package throttle holds fixed-window attempt counters in Redis, so a
// limit is shared by every replica of a role: failed logins per username
// and registrations per address (the auth role), uploads per user (the
// chat role). An attempt is counted before the work it guards runs, so
// concurrent attempts cannot all slip in under the limit.
package throttle

import (
	"context"
	_ "embed" // the Lua scripts
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// reserveScript counts an attempt against the limit: either the limit is
// already reached (returns {0, ms until it lifts}), or the attempt is
// counted (returns {1, count}). The counter and its expiry are set in the
// same script, so no key is ever left without one. The window is fixed
// from the first attempt.
//
// KEYS[1] counter; ARGV[1] max attempts; ARGV[2] window in ms.
var reserveScript = rueidis.NewLuaScript(reserveLua)

//go:embed reserve.lua
var reserveLua string

// releaseScript takes back an attempt that Reserve counted but that should
// not count (it failed for a reason of the server's, say). It never
// creates the key.
var releaseScript = rueidis.NewLuaScript(releaseLua)

//go:embed release.lua
var releaseLua string

// timeout bounds one Redis round trip of a Throttle.
const timeout = 2 * time.Second

// Throttle allows Max attempts per key per Window.
type Throttle struct {
	redis  rueidis.Client
	max    int
	window time.Duration
}

// New returns a Throttle of max attempts per window on c.
func New(c rueidis.Client, max int, window time.Duration) *Throttle {
	return &Throttle{redis: c, max: max, window: window}
}

// Reserve counts an attempt for key. When the limit is reached it returns
// ok false and how long until an attempt is allowed again.
func (t *Throttle) Reserve(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{strconv.Itoa(t.max), strconv.FormatInt(t.window.Milliseconds(), 10)}
	res, err := reserveScript.Exec(ctx, t.redis, []string{key}, args).ToArray()
	if err != nil {
		return false, 0, fmt.Errorf("count attempt %s in redis: %w", key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("count attempt %s in redis: script returned %d values, want 2", key, len(res))
	}
	allowed, err := res[0].AsInt64()
	if err != nil {
		return false, 0, fmt.Errorf("count attempt %s in redis: %w", key, err)
	}
	v, err := res[1].AsInt64()
	if err != nil {
		return false, 0, fmt.Errorf("count attempt %s in redis: %w", key, err)
	}
	if allowed == 1 {
		return true, 0, nil
	}
	return false, time.Duration(v) * time.Millisecond, nil
}

// Release takes back an attempt counted by Reserve.
func (t *Throttle) Release(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := releaseScript.Exec(ctx, t.redis, []string{key}, nil).Error(); err != nil {
		return fmt.Errorf("release attempt %s in redis: %w", key, err)
	}
	return nil
}

// Reset clears the attempts of key (a successful login clears its
// failures).
func (t *Throttle) Reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := t.redis.Do(ctx, t.redis.B().Del().Key(key).Build()).Error(); err != nil {
		return fmt.Errorf("reset attempts %s in redis: %w", key, err)
	}
	return nil
}

// RetryAfterSeconds is the Retry-After value for d: whole seconds, rounded
// up so a client that waits that long is allowed, and at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}
