package auth

import (
	"context"
	"crypto/sha256"
	_ "embed" // the Lua scripts
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/store"
)

// failKeyPrefix starts the Redis keys counting failed logins. The keys are
// private to the auth role, so they live here and not in app/bus.
const failKeyPrefix = "auth:fail:"

// FailKey is the Redis key that counts failed logins for username (folded
// like the store folds usernames, so "Alice" and "ALICE" share a counter).
// Deleting it lifts the throttle early. Very long names, which a client may
// send at login, are hashed so a key stays small.
func FailKey(username string) string {
	k := store.UsernameKey(username)
	if len(k) > 64 {
		sum := sha256.Sum256([]byte(k))
		return failKeyPrefix + "sha256:" + hex.EncodeToString(sum[:])
	}
	return failKeyPrefix + k
}

// reserveScript counts an attempt against the limit before the password is
// checked, so concurrent guesses cannot all slip in under it: either the
// limit is already reached (returns {0, ms until it lifts}), or the attempt is
// counted as a failure in advance (returns {1, count}); a success deletes the
// counter. The counter and its expiry are set in the same script, so no key
// is ever left without one. The window is fixed from the first failure.
//
// KEYS[1] counter; ARGV[1] max failures; ARGV[2] window in ms.
var reserveScript = rueidis.NewLuaScript(reserveLua)

//go:embed reserve.lua
var reserveLua string

// releaseScript takes back an attempt that reserve counted but that failed
// for a reason of ours (the store did not answer), so an outage does not
// lock users out. It never creates the key.
var releaseScript = rueidis.NewLuaScript(releaseLua)

//go:embed release.lua
var releaseLua string

// throttle limits failed logins per username, in Redis so that the limit is
// shared by every replica.
type throttle struct {
	redis  rueidis.Client
	max    int
	window time.Duration
}

func newThrottle(c rueidis.Client, max int, window time.Duration) *throttle {
	return &throttle{redis: c, max: max, window: window}
}

// reserve counts a login attempt for key. When the limit is reached it
// returns ok false and how long until an attempt is allowed again.
func (t *throttle) reserve(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	args := []string{strconv.Itoa(t.max), strconv.FormatInt(t.window.Milliseconds(), 10)}
	res, err := reserveScript.Exec(ctx, t.redis, []string{key}, args).ToArray()
	if err != nil {
		return false, 0, fmt.Errorf("count login attempt in redis: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("count login attempt in redis: script returned %d values, want 2", len(res))
	}
	allowed, err := res[0].AsInt64()
	if err != nil {
		return false, 0, fmt.Errorf("count login attempt in redis: %w", err)
	}
	v, err := res[1].AsInt64()
	if err != nil {
		return false, 0, fmt.Errorf("count login attempt in redis: %w", err)
	}
	if allowed == 1 {
		return true, 0, nil
	}
	return false, time.Duration(v) * time.Millisecond, nil
}

// release takes back an attempt counted by reserve.
func (t *throttle) release(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if err := releaseScript.Exec(ctx, t.redis, []string{key}, nil).Error(); err != nil {
		return fmt.Errorf("release login attempt in redis: %w", err)
	}
	return nil
}

// reset clears the failures of key after a successful login.
func (t *throttle) reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if err := t.redis.Do(ctx, t.redis.B().Del().Key(key).Build()).Error(); err != nil {
		return fmt.Errorf("reset failed logins in redis: %w", err)
	}
	return nil
}

// retryAfterSeconds is the Retry-After value for d: whole seconds, rounded
// up so a client that waits that long is allowed, and at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
