// Package redistest is the contract between Aurora and Redis: the behaviour
// of every Redis command and pattern Aurora relies on, written once as tests
// and run against every Redis Aurora can use (the embedded one always, a
// real redis-server when AURORA_TEST_REDIS_URL names one). Where the two
// would disagree, one of them fails the same assertion.
//
// Time-dependent behaviour is checked over real elapsed time with short
// windows (a few hundred milliseconds), never by moving a clock by hand:
// that is how the embedded Redis' frozen clock went unnoticed before.
package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/redis/rueidis"
)

// Dial returns a client of the Redis under test; the Redis is empty when
// Run starts each check (Run flushes it).
type Dial func(t *testing.T) rueidis.Client

// Run runs every check of the contract against the Redis dial connects to.
func Run(t *testing.T, dial Dial) {
	checks := []struct {
		name string
		fn   func(t *testing.T, c rueidis.Client)
	}{
		{"SetPXExpires", setPXExpires},
		{"PExpireAndTTLDecrease", pexpireAndTTL},
		{"UntouchedKeysExpire", untouchedKeysExpire},
		{"RateWindowReopensAfterPTTL", rateWindowReopens},
		{"DedupeKeyExpires", dedupeKeyExpires},
		{"ThrottleUnlocksAfterWindow", throttleUnlocks},
		{"ScriptTimeIsWallClock", scriptTime},
		{"SortedSetSlotsExpireAfterCrash", slotsExpire},
		{"StreamAddReadAck", streamAddReadAck},
		{"StreamAddBehindLastAppendsAfter", streamIDBehind},
		{"StreamBlockTimesOut", streamBlockTimesOut},
		{"StreamBlockWokenByAdd", streamBlockWoken},
		{"StreamPendingIdleAndAutoClaim", streamPendingAutoClaim},
		{"StreamTrimMinID", streamTrimMinID},
		{"PubSubDelivery", pubSubDelivery},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			c := dial(t)
			if err := c.Do(ctx(t), c.B().Flushall().Build()).Error(); err != nil {
				t.Fatalf("flush: %v", err)
			}
			ck.fn(t, c)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func do(t *testing.T, c rueidis.Client, cmd ...string) rueidis.RedisResult {
	t.Helper()
	return c.Do(ctx(t), c.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build())
}

func doInt(t *testing.T, c rueidis.Client, cmd ...string) int64 {
	t.Helper()
	n, err := do(t, c, cmd...).AsInt64()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(cmd, " "), err)
	}
	return n
}

func exists(t *testing.T, c rueidis.Client, key string) bool {
	t.Helper()
	return doInt(t, c, "EXISTS", key) == 1
}

// execInt runs script with keys and args and returns its integer answer.
func execInt(t *testing.T, c rueidis.Client, script *rueidis.Lua, keys, args []string) int64 {
	t.Helper()
	n, err := script.Exec(ctx(t), c, keys, args).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func setPXExpires(t *testing.T, c rueidis.Client) {
	if err := do(t, c, "SET", "k", "v", "PX", "500").Error(); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	if v, err := do(t, c, "GET", "k").ToString(); err != nil || v != "v" {
		t.Fatalf("GET right after SET PX: %q %v", v, err)
	}
	time.Sleep(100 * time.Millisecond)
	if !exists(t, c, "k") {
		t.Fatalf("key gone %v into its 500 ms", time.Since(set))
	}
	time.Sleep(time.Until(set.Add(550 * time.Millisecond)))
	if exists(t, c, "k") {
		t.Fatal("key still there 550 ms after SET PX 500")
	}
	if err := do(t, c, "GET", "k").Error(); !rueidis.IsRedisNil(err) {
		t.Fatalf("GET of an expired key: %v, want nil", err)
	}
}

func pexpireAndTTL(t *testing.T, c rueidis.Client) {
	do(t, c, "SET", "k", "v")
	if got := doInt(t, c, "PTTL", "k"); got != -1 {
		t.Fatalf("PTTL without expiry = %d, want -1", got)
	}
	if got := doInt(t, c, "PTTL", "missing"); got != -2 {
		t.Fatalf("PTTL of a missing key = %d, want -2", got)
	}
	if doInt(t, c, "PEXPIRE", "k", "2500") != 1 {
		t.Fatal("PEXPIRE on an existing key answered 0")
	}
	first := doInt(t, c, "PTTL", "k")
	if first <= 2300 || first > 2500 {
		t.Fatalf("PTTL right after PEXPIRE 2500 = %d", first)
	}
	if s := doInt(t, c, "TTL", "k"); s < 2 || s > 3 {
		t.Fatalf("TTL right after PEXPIRE 2500 = %d, want 2 or 3", s)
	}
	after1 := time.Now()
	time.Sleep(300 * time.Millisecond)
	before2 := time.Now()
	second := doInt(t, c, "PTTL", "k")
	after2 := time.Now()
	// The decrease matches the time between the two reads, to within the
	// reads' own round trips.
	lo, hi := before2.Sub(after1).Milliseconds()-5, after2.Sub(after1).Milliseconds()+50
	if dec := first - second; dec < lo || dec > hi {
		t.Fatalf("PTTL went from %d to %d (decrease %d ms) over %d-%d ms", first, second, dec, lo, hi)
	}
	time.Sleep(time.Duration(second+100) * time.Millisecond)
	if exists(t, c, "k") {
		t.Fatal("key still there after its PTTL had passed")
	}
}

// untouchedKeysExpire: keys nobody reads again are gone too, so a Redis that
// only ever writes new keys (dedupe, throttles) stays bounded.
func untouchedKeysExpire(t *testing.T, c rueidis.Client) {
	// One pipeline, so the keys are written well within their TTL even on a
	// loaded machine.
	cmds := make(rueidis.Commands, 0, 202)
	for i := 0; i < 200; i++ {
		cmds = append(cmds, c.B().Set().Key("short:"+strconv.Itoa(i)).Value("x").Px(time.Second).Build())
	}
	cmds = append(cmds, c.B().Set().Key("long").Value("x").Px(time.Minute).Build(), c.B().Set().Key("forever").Value("x").Build())
	for _, r := range c.DoMulti(ctx(t), cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	written := time.Now()
	if n := doInt(t, c, "DBSIZE"); n != 202 {
		t.Fatalf("DBSIZE = %d, want 202", n)
	}
	time.Sleep(time.Until(written.Add(1100 * time.Millisecond)))
	if n := doInt(t, c, "DBSIZE"); n != 2 {
		t.Fatalf("DBSIZE 1.1 s after 200 keys with PX 1000 = %d, want 2", n)
	}
	keys, err := do(t, c, "KEYS", "*").AsStrSlice()
	if err != nil || len(keys) != 2 {
		t.Fatalf("KEYS * = %v %v", keys, err)
	}
}

// rateScript is the shape of the chat role's fixed-window limit: INCR, the
// expiry set by the script that creates the counter, and the PTTL answered
// when over the limit.
var rateScript = rueidis.NewLuaScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local t = redis.call('PTTL', KEYS[1])
  if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); t = tonumber(ARGV[2]) end
  return t
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// rateWindowReopens: a client that waits the answered time is let in on its
// first retry, as with a real Redis.
func rateWindowReopens(t *testing.T, c rueidis.Client) {
	try := func() int64 { return execInt(t, c, rateScript, []string{"rl"}, []string{"3", "1000"}) }
	for round := 0; round < 3; round++ {
		for i := 0; i < 3; i++ {
			if wait := try(); wait != 0 {
				t.Fatalf("round %d: send %d limited (%d ms)", round, i+1, wait)
			}
		}
		wait := try()
		if wait <= 0 || wait > 1000 {
			t.Fatalf("round %d: 4th send answered %d, want a wait in (0, 1000]", round, wait)
		}
		// PTTL is whole milliseconds rounded down (in Redis and the
		// embedded one alike): the window opens within the next one, which
		// is why the chat role answers retryAfterMs = PTTL + 1.
		time.Sleep(time.Duration(wait+1) * time.Millisecond)
	}
}

func dedupeKeyExpires(t *testing.T, c rueidis.Client) {
	if err := do(t, c, "SET", "dd", "1-0", "PX", "600").Error(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if v, err := do(t, c, "GET", "dd").ToString(); err != nil || v != "1-0" {
			t.Fatalf("GET dedupe key: %q %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	apptest.Eventually(t, time.Second, "the dedupe key to expire", func() bool { return !exists(t, c, "dd") })
}

// throttleScript is the login throttle's shape: count failures in a window
// that starts with the first one, lock when over, answer the time left.
var throttleScript = rueidis.NewLuaScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return redis.call('PTTL', KEYS[1]) end
return 0
`)

func throttleUnlocks(t *testing.T, c rueidis.Client) {
	fail := func() int64 { return execInt(t, c, throttleScript, []string{"th"}, []string{"5", "1500"}) }
	for i := 0; i < 5; i++ {
		if fail() != 0 {
			t.Fatalf("failure %d locked", i+1)
		}
	}
	left := fail()
	if left <= 0 || left > 1500 {
		t.Fatalf("6th failure: %d ms left, want (0, 1500]", left)
	}
	time.Sleep(time.Duration(left+1) * time.Millisecond) // see rateWindowReopens
	if got := fail(); got != 0 {
		t.Fatalf("after the window: still locked (%d ms)", got)
	}
}

var timeScript = rueidis.NewLuaScript(`local t = redis.call('TIME') return {t[1], t[2]}`)

func scriptTime(t *testing.T, c rueidis.Client) {
	read := func() time.Time {
		v, err := timeScript.Exec(ctx(t), c, nil, nil).AsStrSlice()
		if err != nil || len(v) != 2 {
			t.Fatalf("TIME in a script: %v %v", v, err)
		}
		s, _ := strconv.ParseInt(v[0], 10, 64)
		us, _ := strconv.ParseInt(v[1], 10, 64)
		return time.Unix(s, us*1000)
	}
	a := read()
	if d := time.Since(a); d < -time.Second || d > time.Second {
		t.Fatalf("TIME is %v off the wall clock", d)
	}
	time.Sleep(200 * time.Millisecond)
	if d := read().Sub(a); d < 150*time.Millisecond || d > time.Second {
		t.Fatalf("TIME moved %v over 200 ms", d)
	}
}

// slotsExpire: a sorted set refreshed by a live process (PEXPIRE on every
// refresh) outlives its refreshes, then goes when the process stops.
func slotsExpire(t *testing.T, c rueidis.Client) {
	for i := 0; i < 4; i++ {
		do(t, c, "ZADD", "conns", strconv.Itoa(i), "c"+strconv.Itoa(i))
		do(t, c, "PEXPIRE", "conns", "600")
		time.Sleep(100 * time.Millisecond)
	}
	if n := doInt(t, c, "ZCARD", "conns"); n != 4 {
		t.Fatalf("refreshed set has %d members, want 4", n)
	}
	apptest.Eventually(t, 2*time.Second, "the set to expire after its refreshes stopped", func() bool { return doInt(t, c, "ZCARD", "conns") == 0 })
}

func streamAddReadAck(t *testing.T, c rueidis.Client) {
	if err := do(t, c, "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM").Error(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		id, err := do(t, c, "XADD", "s", "*", "n", strconv.Itoa(i)).ToString()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	res, err := do(t, c, "XREADGROUP", "GROUP", "g", "w1", "COUNT", "10", "STREAMS", "s", ">").AsXRead()
	if err != nil || len(res["s"]) != 3 {
		t.Fatalf("XREADGROUP: %v %v", res, err)
	}
	for i, e := range res["s"] {
		if e.ID != ids[i] || e.FieldValues["n"] != strconv.Itoa(i) {
			t.Fatalf("entry %d = %+v, want id %s", i, e, ids[i])
		}
	}
	if n := doInt(t, c, "XACK", "s", "g", ids[0], ids[1]); n != 2 {
		t.Fatalf("XACK = %d, want 2", n)
	}
	sum, err := do(t, c, "XPENDING", "s", "g").ToArray()
	if err != nil || len(sum) != 4 {
		t.Fatalf("XPENDING summary: %v %v", sum, err)
	}
	if n, _ := sum[0].AsInt64(); n != 1 {
		t.Fatalf("pending after acking 2 of 3 = %d", n)
	}
	if lo, _ := sum[1].ToString(); lo != ids[2] {
		t.Fatalf("lowest pending = %s, want %s", lo, ids[2])
	}
}

// streamIDBehind: "<ms>-*" with a ms behind the stream's last id (a clock
// step back) must still append after the last id, as the send script
// relies on: it tries "<ms>-*" with pcall and falls back to "*". (Redis
// answers the first XADD with an error, miniredis with the next id; the
// script's result is the same, and that is the contract.)
func streamIDBehind(t *testing.T, c rueidis.Client) {
	now := time.Now().UnixMilli()
	last := fmt.Sprintf("%d-0", now+60000)
	if err := do(t, c, "XADD", "s", last, "f", "v").Error(); err != nil {
		t.Fatal(err)
	}
	script := rueidis.NewLuaScript(`
local id = redis.pcall('XADD', KEYS[1], ARGV[1] .. '-*', 'f', 'v')
if type(id) == 'table' and id.err then id = redis.call('XADD', KEYS[1], '*', 'f', 'v') end
return id`)
	id, err := script.Exec(ctx(t), c, []string{"s"}, []string{strconv.FormatInt(now, 10)}).ToString()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, strconv.FormatInt(now+60000, 10)+"-") || id == last {
		t.Fatalf("XADD behind the last id %s appended %s, want the next id after it", last, id)
	}
}

func streamBlockTimesOut(t *testing.T, c rueidis.Client) {
	do(t, c, "XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
	start := time.Now()
	err := do(t, c, "XREADGROUP", "GROUP", "g", "w", "BLOCK", "200", "STREAMS", "s", ">").Error()
	if !rueidis.IsRedisNil(err) {
		t.Fatalf("XREADGROUP BLOCK on an empty stream: %v, want nil", err)
	}
	if d := time.Since(start); d < 180*time.Millisecond || d > 2*time.Second {
		t.Fatalf("BLOCK 200 returned after %v", d)
	}
}

func streamBlockWoken(t *testing.T, c rueidis.Client) {
	do(t, c, "XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
	got := make(chan map[string][]rueidis.XRangeEntry, 1)
	go func() {
		// The builder marks the command blocking, so rueidis sends it on a
		// connection of its own, as Aurora's readers do.
		res, _ := c.Do(context.Background(), c.B().Xreadgroup().Group("g", "w").Block(5000).Streams().Key("s").Id(">").Build()).AsXRead()
		got <- res
	}()
	time.Sleep(100 * time.Millisecond)
	// Other commands run while the read waits (the embedded Redis must not
	// hold them behind it).
	start := time.Now()
	do(t, c, "SET", "other", "x", "PX", "1000")
	id, err := do(t, c, "XADD", "s", "*", "f", "v").ToString()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if len(res["s"]) != 1 || res["s"][0].ID != id {
			t.Fatalf("woken read got %v, want %s", res, id)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("XREADGROUP BLOCK not woken by XADD")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("commands beside a blocked read took %v", d)
	}
}

func streamPendingAutoClaim(t *testing.T, c rueidis.Client) {
	do(t, c, "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM")
	id, _ := do(t, c, "XADD", "s", "*", "f", "v").ToString()
	do(t, c, "XREADGROUP", "GROUP", "g", "dead", "STREAMS", "s", ">")
	claim := func() []string {
		v, err := do(t, c, "XAUTOCLAIM", "s", "g", "alive", "500", "0-0", "COUNT", "10").ToArray()
		if err != nil || len(v) < 2 {
			t.Fatalf("XAUTOCLAIM: %v %v", v, err)
		}
		entries, err := v[1].AsXRange()
		if err != nil {
			t.Fatalf("XAUTOCLAIM entries: %v", err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if ids := claim(); len(ids) != 0 {
		t.Fatalf("claimed %v before it was idle 500 ms", ids)
	}
	time.Sleep(600 * time.Millisecond)
	ext, err := do(t, c, "XPENDING", "s", "g", "IDLE", "500", "-", "+", "10").ToArray()
	if err != nil || len(ext) != 1 {
		t.Fatalf("XPENDING IDLE 500 after 600 ms: %v %v", ext, err)
	}
	if ids := claim(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("claimed %v after 600 ms idle, want [%s]", ids, id)
	}
	row, _ := do(t, c, "XPENDING", "s", "g", "-", "+", "10").ToArray()
	fields, _ := row[0].ToArray()
	if owner, _ := fields[1].ToString(); owner != "alive" {
		t.Fatalf("owner after claim = %q", owner)
	}
	if n, _ := fields[3].AsInt64(); n != 2 {
		t.Fatalf("deliveries after claim = %d, want 2", n)
	}
}

func streamTrimMinID(t *testing.T, c rueidis.Client) {
	var ids []string
	for i := 0; i < 5; i++ {
		id, _ := do(t, c, "XADD", "s", "*", "n", strconv.Itoa(i)).ToString()
		ids = append(ids, id)
	}
	if n := doInt(t, c, "XTRIM", "s", "MINID", ids[2]); n != 2 {
		t.Fatalf("XTRIM MINID = %d, want 2", n)
	}
	if n := doInt(t, c, "XLEN", "s"); n != 3 {
		t.Fatalf("XLEN after trim = %d", n)
	}
	first, err := do(t, c, "XRANGE", "s", "-", "+", "COUNT", "1").AsXRange()
	if err != nil || len(first) != 1 || first[0].ID != ids[2] {
		t.Fatalf("first after trim: %v %v", first, err)
	}
}

func pubSubDelivery(t *testing.T, c rueidis.Client) {
	var mu sync.Mutex
	var got []string
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Receive(rctx, c.B().Subscribe().Channel("chat.general").Build(), func(m rueidis.PubSubMessage) {
			mu.Lock()
			got = append(got, m.Message)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	// The subscription is live once a publish reaches one subscriber.
	apptest.Eventually(t, 3*time.Second, "SUBSCRIBE to take effect", func() bool {
		return doInt(t, c, "PUBLISH", "chat.general", "warm-up") == 1
	})
	if n := doInt(t, c, "PUBLISH", "chat.general", "one"); n != 1 {
		t.Fatalf("PUBLISH reached %d subscribers, want 1", n)
	}
	pub := rueidis.NewLuaScript(`return redis.call('PUBLISH', ARGV[1], ARGV[2])`)
	if n, err := pub.Exec(ctx(t), c, nil, []string{"chat.general", "two"}).AsInt64(); err != nil || n != 1 {
		t.Fatalf("PUBLISH from a script: %d %v", n, err)
	}
	if n := doInt(t, c, "PUBLISH", "chat.other", "not for us"); n != 0 {
		t.Fatalf("PUBLISH to an unsubscribed channel reached %d", n)
	}
	var real []string
	apptest.Eventually(t, 2*time.Second, "the messages to be delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		real = real[:0]
		for _, m := range got {
			if m != "warm-up" {
				real = append(real, m)
			}
		}
		return len(real) >= 2
	})
	if strings.Join(real, ",") != "one,two" {
		t.Fatalf("delivered %v, want one,two in order", real)
	}
}
