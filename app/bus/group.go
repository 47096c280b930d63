package bus

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// This file holds the consumer group's side of the stream: what an ingest
// worker does with it (read, claim, acknowledge, leave).

// EnsureGroup creates the consumer group on the stream, and the stream, if
// they do not exist yet. The group starts at "0", not "$", so that entries
// an AuroraChat chat-service wrote before any ingest worker ran are ingested
// too instead of silently skipped.
func EnsureGroup(ctx context.Context, c rueidis.Client, stream string) error {
	err := c.Do(ctx, c.B().XgroupCreate().Key(stream).Group(Group).Id("0").Mkstream().Build()).Error()
	if err != nil && !IsBusyGroup(err) {
		return fmt.Errorf("create consumer group %s on %s: %w", Group, stream, err)
	}
	return nil
}

// ReadGroup reads up to count entries as consumer of the group: new ones
// (id ">"), waiting up to block for the first (0: no wait), or the
// consumer's own pending entries after id. No entry is no error. A missing
// group is an error IsNoGroup recognises.
func ReadGroup(ctx context.Context, c rueidis.Client, stream, consumer, id string, count int64, block time.Duration) ([]rueidis.XRangeSlice, error) {
	var cmd rueidis.Completed
	if block > 0 {
		ms := max(block.Milliseconds(), 1) // BLOCK 0 would wait forever
		cmd = c.B().Xreadgroup().Group(Group, consumer).Count(count).Block(ms).Streams().Key(stream).Id(id).Build()
	} else {
		cmd = c.B().Xreadgroup().Group(Group, consumer).Count(count).Streams().Key(stream).Id(id).Build()
	}
	res, err := c.Do(ctx, cmd).AsXReadSlices()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s as %s/%s: %w", stream, Group, consumer, err)
	}
	return res[stream], nil
}

// AutoClaimed is one XAUTOCLAIM round.
type AutoClaimed struct {
	// Next is the cursor of the next round.
	Next string
	// Entries were claimed for the consumer (and count as a delivery).
	Entries []rueidis.XRangeSlice
	// Deleted are pending ids whose stream entry is gone (Redis 7 drops
	// them from the pending list).
	Deleted []string
	// Unreadable are the claimed items that did not parse.
	Unreadable []error
}

// Done reports whether the scan of the pending list is complete.
func (a AutoClaimed) Done() bool { return a.Next == "" || a.Next == "0-0" || a.Next == "0" }

// AutoClaim claims for consumer up to count entries of the group idle for
// at least minIdle, scanning the pending list from cursor start ("0-0" for
// the beginning).
func AutoClaim(ctx context.Context, c rueidis.Client, stream, consumer string, minIdle time.Duration, start string, count int64) (AutoClaimed, error) {
	cmd := c.B().Xautoclaim().Key(stream).Group(Group).Consumer(consumer).
		MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Start(start).Count(count).Build()
	arr, err := c.Do(ctx, cmd).ToArray()
	if err == nil && len(arr) < 2 {
		err = fmt.Errorf("reply of %d elements", len(arr))
	}
	if err != nil {
		return AutoClaimed{}, fmt.Errorf("claim idle entries of %s: %w", Group, err)
	}
	var out AutoClaimed
	out.Next, _ = arr[0].ToString()
	items, _ := arr[1].ToArray()
	out.Entries = make([]rueidis.XRangeSlice, 0, len(items))
	for _, it := range items {
		if it.IsNil() {
			continue
		}
		e, err := it.AsXRangeSlice()
		if err != nil {
			out.Unreadable = append(out.Unreadable, err)
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	if len(arr) >= 3 {
		out.Deleted, _ = arr[2].AsStrSlice()
	}
	return out, nil
}

// Ack acknowledges ids in the group. The ingest role acknowledges an entry
// only once the store has it (or it went to the dead stream): that is what
// FirstUnstored and Trim rely on.
func Ack(ctx context.Context, c rueidis.Client, stream string, ids ...string) error {
	if err := c.Do(ctx, c.B().Xack().Key(stream).Group(Group).Id(ids...).Build()).Error(); err != nil {
		return fmt.Errorf("acknowledge %d entries: %w", len(ids), err)
	}
	return nil
}

// Deliveries returns the delivery count of each of ids still pending for
// consumer, in one round trip; an id missing from the map is no longer
// that consumer's.
func Deliveries(ctx context.Context, c rueidis.Client, stream, consumer string, ids []string) (map[string]int64, error) {
	cmds := make(rueidis.Commands, len(ids))
	for i, id := range ids {
		cmds[i] = c.B().Xpending().Key(stream).Group(Group).Start(id).End(id).Count(1).Consumer(consumer).Build()
	}
	out := make(map[string]int64, len(ids))
	for i, r := range c.DoMulti(ctx, cmds...) {
		arr, err := r.ToArray()
		if err != nil {
			return nil, fmt.Errorf("delivery count of %s: %w", ids[i], err)
		}
		if len(arr) == 0 {
			continue
		}
		pe, err := parsePending(arr[0])
		if err != nil {
			return nil, fmt.Errorf("delivery count of %s: %w", ids[i], err)
		}
		out[pe.ID] = pe.Deliveries
	}
	return out, nil
}

// RemoveConsumer deletes consumer from the group if it has nothing pending
// (lua/remove_consumer.lua), and reports whether it did.
func RemoveConsumer(ctx context.Context, c rueidis.Client, stream, consumer string) (bool, error) {
	n, err := removeConsumerScript.Exec(ctx, c, []string{stream}, []string{Group, consumer}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("remove consumer %s from group %s: %w", consumer, Group, err)
	}
	return n == 1, nil
}

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	// IdleMs is the time since the consumer last read, or -1 when the
	// server does not tell.
	IdleMs int64 `json:"idleMs"`
}

// Consumers lists the consumers of a group, by name.
func Consumers(ctx context.Context, c rueidis.Client, stream, group string) ([]ConsumerInfo, error) {
	arr, err := c.Do(ctx, c.B().XinfoConsumers().Key(stream).Group(group).Build()).ToArray()
	if err != nil {
		return nil, fmt.Errorf("list consumers of group %s: %w", group, err)
	}
	out := []ConsumerInfo{}
	for _, m := range arr {
		fields, err := m.AsMap()
		if err != nil {
			return nil, fmt.Errorf("list consumers of group %s: %w", group, err)
		}
		ci := ConsumerInfo{IdleMs: -1}
		name := fields["name"]
		ci.Name, _ = name.ToString()
		if p, ok := fields["pending"]; ok {
			ci.Pending, _ = p.AsInt64()
		}
		if idle, ok := fields["idle"]; ok {
			if n, err := idle.AsInt64(); err == nil && n >= 0 {
				ci.IdleMs = n
			}
		}
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
