package proctest_test

import (
	"context"
	"testing"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// The state of the message stream and its ingest group, as the tests read
// it with their own Redis client.

// redisDo runs a command of the test's own Redis client within procWait.
func redisDo(t *testing.T, rc rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	return rc.Do(ctx, rc.B().Arbitrary(args...).Build())
}

// redisDoKey runs cmd (one or two words) on key with args: a keyed
// command, which a cluster client sends to the key's node (redisDo's go
// to whichever node it lists first, possibly a dead one).
func redisDoKey(t *testing.T, rc rueidis.Client, cmd []string, key string, args ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	return rc.Do(ctx, rc.B().Arbitrary(cmd...).Keys(key).Args(args...).Build())
}

// ingestState is what the ingest group has left to do: entries delivered
// and not acknowledged (XPENDING), and whether entries are still
// undelivered (the group's last delivered id is behind the stream's last).
func ingestState(t *testing.T, rc rueidis.Client) (pending int64, behind bool) {
	t.Helper()
	sum, err := redisDoKey(t, rc, []string{"XPENDING"}, bus.Stream, bus.Group).ToArray()
	if err != nil || len(sum) == 0 {
		t.Fatalf("XPENDING %s %s: %v", bus.Stream, bus.Group, err)
	}
	pending, err = sum[0].AsInt64()
	if err != nil {
		t.Fatalf("XPENDING count: %v", err)
	}
	groups, err := redisDoKey(t, rc, []string{"XINFO", "GROUPS"}, bus.Stream).ToArray()
	if err != nil {
		t.Fatalf("XINFO GROUPS: %v", err)
	}
	delivered := ""
	for _, g := range groups {
		// A flat array of pairs in RESP2, a map in RESP3: AsMap reads both.
		m, err := g.AsMap()
		if err != nil {
			t.Fatalf("XINFO GROUPS entry: %v", err)
		}
		name, ld := m["name"], m["last-delivered-id"]
		if n, _ := name.ToString(); n == bus.Group {
			delivered, _ = ld.ToString()
		}
	}
	last, err := redisDoKey(t, rc, []string{"XREVRANGE"}, bus.Stream, "+", "-", "COUNT", "1").AsXRange()
	if err != nil {
		t.Fatalf("XREVRANGE: %v", err)
	}
	if len(last) == 0 {
		return pending, false
	}
	return pending, delivered != last[0].ID
}

// consumerPending is how many entries the consumer holds unacknowledged.
func consumerPending(t *testing.T, rc rueidis.Client, consumer string) int64 {
	t.Helper()
	res, err := redisDoKey(t, rc, []string{"XINFO", "CONSUMERS"}, bus.Stream, bus.Group).ToArray()
	if err != nil {
		t.Fatalf("XINFO CONSUMERS: %v", err)
	}
	for _, c := range res {
		m, err := c.AsMap() // RESP2 pairs or RESP3 map
		if err != nil {
			t.Fatalf("XINFO CONSUMERS entry: %v", err)
		}
		name, pending := m["name"], m["pending"]
		if n, _ := name.ToString(); n == consumer {
			n, err := pending.AsInt64()
			if err != nil {
				t.Fatalf("XINFO CONSUMERS pending of %s: %v", consumer, err)
			}
			return n
		}
	}
	return 0
}

// deadLetters is the length of the dead-letter stream.
func deadLetters(t *testing.T, rc rueidis.Client) int64 {
	t.Helper()
	n, err := redisDoKey(t, rc, []string{"XLEN"}, bus.DeadStream).AsInt64()
	if err != nil {
		t.Fatalf("XLEN %s: %v", bus.DeadStream, err)
	}
	return n
}
