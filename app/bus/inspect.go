package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// This file holds what an operator (`aurora streams`) and the ingest
// role's gauges read of the stream: its state, its groups and their
// pending entries, and reads outside the group.

// StreamInfo describes the stream, its consumer groups and the dead stream.
type StreamInfo struct {
	Stream     string      `json:"stream"`
	Exists     bool        `json:"exists"`
	Length     int64       `json:"length"`
	FirstID    string      `json:"firstId,omitempty"`
	LastID     string      `json:"lastId,omitempty"`
	Groups     []GroupInfo `json:"groups"`
	DeadStream string      `json:"deadStream"`
	DeadLength int64       `json:"deadLength"`
}

// GroupInfo describes one consumer group.
type GroupInfo struct {
	Name            string `json:"name"`
	LastDeliveredID string `json:"lastDeliveredId"`
	// Pending counts entries delivered to a consumer and not acknowledged.
	Pending         int64  `json:"pending"`
	OldestPendingID string `json:"oldestPendingId,omitempty"`
	// Lag counts entries not delivered to any consumer of the group yet.
	Lag int64 `json:"lag"`
	// LagAtLeast is set when Lag was counted up to a limit and may be more.
	LagAtLeast bool           `json:"lagAtLeast,omitempty"`
	Consumers  []ConsumerInfo `json:"consumers"`
}

// Info reads the state of the stream, of every consumer group on it and the
// length of the dead stream.
func Info(ctx context.Context, c rueidis.Client, stream string) (StreamInfo, error) {
	info := StreamInfo{Stream: stream, DeadStream: DeadStream, Groups: []GroupInfo{}}
	var err error
	if info.DeadLength, err = c.Do(ctx, c.B().Xlen().Key(DeadStream).Build()).AsInt64(); err != nil {
		return info, fmt.Errorf("length of %s: %w", DeadStream, err)
	}
	groups, exists, err := Groups(ctx, c, stream)
	if err != nil {
		return info, err
	}
	if !exists {
		return info, nil
	}
	info.Exists = true
	if info.Length, err = c.Do(ctx, c.B().Xlen().Key(stream).Build()).AsInt64(); err != nil {
		return info, fmt.Errorf("length of %s: %w", stream, err)
	}
	if info.FirstID, err = FirstID(ctx, c, stream); err != nil {
		return info, err
	}
	if info.LastID, err = edgeID(ctx, c, stream, true); err != nil {
		return info, err
	}
	for _, g := range groups {
		if g.Consumers, err = Consumers(ctx, c, stream, g.Name); err != nil {
			return info, err
		}
		info.Groups = append(info.Groups, g)
	}
	return info, nil
}

// Groups lists the consumer groups of the stream by name, with their
// pending summary and lag (Consumers is left empty); exists is false when
// there is no stream.
func Groups(ctx context.Context, c rueidis.Client, stream string) (gs []GroupInfo, exists bool, err error) {
	ps, exists, err := readProgress(ctx, c, stream)
	if err != nil || !exists {
		return nil, exists, err
	}
	for _, p := range ps {
		g := GroupInfo{Name: p.name, LastDeliveredID: p.lastDelivered.String(), Pending: p.pending,
			Lag: p.lag, Consumers: []ConsumerInfo{}}
		if p.pending > 0 {
			g.OldestPendingID = p.oldestPending.String()
		}
		if !p.lagKnown {
			if g.Lag, g.LagAtLeast, err = countAfter(ctx, c, stream, g.LastDeliveredID, lagCountLimit); err != nil {
				return nil, true, err
			}
		}
		gs = append(gs, g)
	}
	return gs, true, nil
}

// countAfter counts the entries after id, up to limit.
func countAfter(ctx context.Context, c rueidis.Client, stream, id string, limit int64) (int64, bool, error) {
	es, err := c.Do(ctx, c.B().Xrange().Key(stream).Start("("+id).End("+").Count(limit).Build()).ToArray()
	if err != nil {
		return 0, false, fmt.Errorf("count entries of %s after %s: %w", stream, id, err)
	}
	return int64(len(es)), int64(len(es)) >= limit, nil
}

// edgeID returns the id of the first (or last) entry of the stream, or "".
func edgeID(ctx context.Context, c rueidis.Client, stream string, last bool) (string, error) {
	cmd := c.B().Xrange().Key(stream).Start("-").End("+").Count(1).Build()
	if last {
		cmd = c.B().Xrevrange().Key(stream).End("+").Start("-").Count(1).Build()
	}
	es, err := c.Do(ctx, cmd).AsXRangeSlices()
	if err != nil {
		return "", fmt.Errorf("read the edge of %s: %w", stream, err)
	}
	if len(es) == 0 {
		return "", nil
	}
	return es[0].ID, nil
}

// FirstID returns the id of the oldest entry of the stream, "" when empty.
func FirstID(ctx context.Context, c rueidis.Client, stream string) (string, error) {
	return edgeID(ctx, c, stream, false)
}

// LastID returns the id of the newest entry of the stream, "0-0" when empty.
func LastID(ctx context.Context, c rueidis.Client, stream string) (string, error) {
	id, err := edgeID(ctx, c, stream, true)
	if err != nil || id != "" {
		return id, err
	}
	return "0-0", nil
}

// ReadAfter returns up to count entries after id, waiting up to block for
// the first one (0: no wait). It reads outside the consumer group, so it
// disturbs no worker.
func ReadAfter(ctx context.Context, c rueidis.Client, stream, id string, count int64, block time.Duration) ([]rueidis.XRangeSlice, error) {
	var cmd rueidis.Completed
	if block > 0 {
		cmd = c.B().Xread().Count(count).Block(max(block.Milliseconds(), 1)).Streams().Key(stream).Id(id).Build()
	} else {
		cmd = c.B().Xread().Count(count).Streams().Key(stream).Id(id).Build()
	}
	res, err := c.Do(ctx, cmd).AsXReadSlices()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s after %s: %w", stream, id, err)
	}
	return res[stream], nil
}

// ReadRange returns up to count entries between lo and hi, both inclusive,
// oldest first when asc, else newest first. It reads outside the group.
func ReadRange(ctx context.Context, c rueidis.Client, stream string, lo, hi ID, asc bool, count int64) ([]rueidis.XRangeEntry, error) {
	var cmd rueidis.Completed
	if asc {
		cmd = c.B().Xrange().Key(stream).Start(lo.String()).End(hi.String()).Count(count).Build()
	} else {
		cmd = c.B().Xrevrange().Key(stream).End(hi.String()).Start(lo.String()).Count(count).Build()
	}
	got, err := c.Do(ctx, cmd).AsXRange()
	if err != nil {
		return nil, fmt.Errorf("read %s from %s to %s: %w", stream, lo, hi, err)
	}
	return got, nil
}

// PendingEntry is an entry delivered to a consumer and not acknowledged.
type PendingEntry struct {
	ID         string `json:"id"`
	Consumer   string `json:"consumer"`
	IdleMs     int64  `json:"idleMs"`
	Deliveries int64  `json:"deliveries"`
}

// PendingFilter selects pending entries; the zero value selects the first
// 100 of any consumer.
type PendingFilter struct {
	Consumer string        // "" for every consumer
	MinIdle  time.Duration // only entries idle at least this long
	Count    int64         // at most this many (default 100)
	Start    string        // first id (default "-")
}

// Pending lists the pending entries of the ingest group, oldest first.
func Pending(ctx context.Context, c rueidis.Client, stream string, f PendingFilter) ([]PendingEntry, error) {
	if f.Count <= 0 {
		f.Count = 100
	}
	if f.Start == "" {
		f.Start = "-"
	}
	var cmd rueidis.Completed
	switch {
	case f.MinIdle > 0 && f.Consumer != "":
		cmd = c.B().Xpending().Key(stream).Group(Group).Idle(f.MinIdle.Milliseconds()).Start(f.Start).End("+").Count(f.Count).Consumer(f.Consumer).Build()
	case f.MinIdle > 0:
		cmd = c.B().Xpending().Key(stream).Group(Group).Idle(f.MinIdle.Milliseconds()).Start(f.Start).End("+").Count(f.Count).Build()
	case f.Consumer != "":
		cmd = c.B().Xpending().Key(stream).Group(Group).Start(f.Start).End("+").Count(f.Count).Consumer(f.Consumer).Build()
	default:
		cmd = c.B().Xpending().Key(stream).Group(Group).Start(f.Start).End("+").Count(f.Count).Build()
	}
	arr, err := c.Do(ctx, cmd).ToArray()
	if err != nil {
		return nil, fmt.Errorf("list pending entries of group %s: %w", Group, err)
	}
	out := make([]PendingEntry, 0, len(arr))
	for _, m := range arr {
		pe, err := parsePending(m)
		if err != nil {
			return nil, fmt.Errorf("list pending entries of group %s: %w", Group, err)
		}
		out = append(out, pe)
	}
	return out, nil
}

func parsePending(m rueidis.RedisMessage) (PendingEntry, error) {
	f, err := m.ToArray()
	if err != nil {
		return PendingEntry{}, err
	}
	if len(f) != 4 {
		return PendingEntry{}, fmt.Errorf("pending entry of %d elements, want 4", len(f))
	}
	var pe PendingEntry
	if pe.ID, err = f[0].ToString(); err != nil {
		return pe, err
	}
	if pe.Consumer, err = f[1].ToString(); err != nil {
		return pe, err
	}
	if pe.IdleMs, err = f[2].AsInt64(); err != nil {
		return pe, err
	}
	if pe.Deliveries, err = f[3].AsInt64(); err != nil {
		return pe, err
	}
	return pe, nil
}

// Claim moves up to count pending entries idle for at least minIdle (of
// the consumer from, or of any consumer when from is "") to the consumer
// to, and returns their ids. It uses XCLAIM JUSTID, which does not count as
// a delivery: claiming by hand never pushes an entry to the dead stream.
// The entries stay pending; a worker named to stores them at its next
// look at its own pending entries (every claim_idle/2), and any worker
// takes them over once they are idle for claim_idle.
func Claim(ctx context.Context, c rueidis.Client, stream, to, from string, minIdle time.Duration, count int64) ([]string, error) {
	if to == "" {
		return nil, errors.New("claim: no consumer to claim the entries for")
	}
	pend, err := Pending(ctx, c, stream, PendingFilter{Consumer: from, MinIdle: minIdle, Count: count})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(pend))
	for _, p := range pend {
		if p.Consumer != to {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return []string{}, nil
	}
	claimed, err := c.Do(ctx, c.B().Xclaim().Key(stream).Group(Group).Consumer(to).
		MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Id(ids...).Justid().Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("claim %d entries for %s: %w", len(ids), to, err)
	}
	return claimed, nil
}
