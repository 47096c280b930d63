package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// This file holds the stream operations the worker and the `aurora streams`
// command share, so that both compute the trim point, the lag and the dead
// letters the same way.

// lagCountLimit bounds the XRANGE used to count undelivered entries when the
// server does not report a group's lag (Redis before 7, the embedded Redis,
// or a stream with deletions): a larger lag is reported as at least this.
const lagCountLimit = 10000

// EnsureGroup creates the consumer group on the stream, and the stream, if
// they do not exist yet. The group starts at "0", not "$", so that entries
// an AuroraChat chat-service wrote before any ingest worker ran are ingested
// too instead of silently skipped.
func EnsureGroup(ctx context.Context, c rueidis.Client) error {
	err := c.Do(ctx, c.B().XgroupCreate().Key(bus.Stream).Group(bus.Group).Id("0").Mkstream().Build()).Error()
	if err != nil && !rueidis.IsRedisBusyGroup(err) {
		return fmt.Errorf("create consumer group %s on %s: %w", bus.Group, bus.Stream, err)
	}
	return nil
}

// isNoGroup reports whether err says the stream or the group is gone (the
// key was deleted or Redis was flushed); the group is then created again.
func isNoGroup(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

// isNoKey reports whether err is XINFO's answer for a missing stream.
func isNoKey(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such key")
}

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

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	// IdleMs is the time since the consumer last read, or -1 when the
	// server does not tell.
	IdleMs int64 `json:"idleMs"`
}

// Info reads the state of the stream, of every consumer group on it and the
// length of the dead stream.
func Info(ctx context.Context, c rueidis.Client) (StreamInfo, error) {
	info := StreamInfo{Stream: bus.Stream, DeadStream: bus.DeadStream, Groups: []GroupInfo{}}
	var err error
	if info.DeadLength, err = c.Do(ctx, c.B().Xlen().Key(bus.DeadStream).Build()).AsInt64(); err != nil {
		return info, fmt.Errorf("length of %s: %w", bus.DeadStream, err)
	}
	groups, exists, err := groups(ctx, c)
	if err != nil {
		return info, err
	}
	if !exists {
		return info, nil
	}
	info.Exists = true
	if info.Length, err = c.Do(ctx, c.B().Xlen().Key(bus.Stream).Build()).AsInt64(); err != nil {
		return info, fmt.Errorf("length of %s: %w", bus.Stream, err)
	}
	if info.FirstID, err = edgeID(ctx, c, false); err != nil {
		return info, err
	}
	if info.LastID, err = edgeID(ctx, c, true); err != nil {
		return info, err
	}
	for _, g := range groups {
		if g.Consumers, err = consumers(ctx, c, g.Name); err != nil {
			return info, err
		}
		info.Groups = append(info.Groups, g)
	}
	return info, nil
}

// edgeID returns the id of the first (or last) entry of the stream, or "".
func edgeID(ctx context.Context, c rueidis.Client, last bool) (string, error) {
	cmd := c.B().Xrange().Key(bus.Stream).Start("-").End("+").Count(1).Build()
	if last {
		cmd = c.B().Xrevrange().Key(bus.Stream).End("+").Start("-").Count(1).Build()
	}
	es, err := c.Do(ctx, cmd).AsXRangeSlices()
	if err != nil {
		return "", fmt.Errorf("read the edge of %s: %w", bus.Stream, err)
	}
	if len(es) == 0 {
		return "", nil
	}
	return es[0].ID, nil
}

// groups lists the consumer groups of the stream with their pending
// summary and lag; exists is false when there is no stream.
func groups(ctx context.Context, c rueidis.Client) (gs []GroupInfo, exists bool, err error) {
	arr, err := c.Do(ctx, c.B().XinfoGroups().Key(bus.Stream).Build()).ToArray()
	if isNoKey(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list consumer groups of %s: %w", bus.Stream, err)
	}
	for _, m := range arr {
		fields, err := m.AsMap()
		if err != nil {
			return nil, true, fmt.Errorf("list consumer groups of %s: %w", bus.Stream, err)
		}
		g := GroupInfo{Consumers: []ConsumerInfo{}}
		name := fields["name"]
		g.Name, _ = name.ToString()
		last := fields["last-delivered-id"]
		g.LastDeliveredID, _ = last.ToString()
		if !strings.Contains(g.LastDeliveredID, "-") {
			// The embedded Redis keeps the id given at XGROUP CREATE as is.
			g.LastDeliveredID += "-0"
		}
		// The server's lag is trusted only with entries-read beside it:
		// the embedded Redis reports the stream length as lag.
		lagKnown := false
		if er, ok := fields["entries-read"]; ok && !er.IsNil() {
			if lag, ok := fields["lag"]; ok && !lag.IsNil() {
				if n, err := lag.AsInt64(); err == nil {
					g.Lag, lagKnown = n, true
				}
			}
		}
		if !lagKnown {
			if g.Lag, g.LagAtLeast, err = countAfter(ctx, c, g.LastDeliveredID, lagCountLimit); err != nil {
				return nil, true, err
			}
		}
		if g.Pending, g.OldestPendingID, err = pendingSummary(ctx, c, g.Name); err != nil {
			return nil, true, err
		}
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	return gs, true, nil
}

// countAfter counts the entries after id, up to limit.
func countAfter(ctx context.Context, c rueidis.Client, id string, limit int64) (int64, bool, error) {
	es, err := c.Do(ctx, c.B().Xrange().Key(bus.Stream).Start("("+id).End("+").Count(limit).Build()).ToArray()
	if err != nil {
		return 0, false, fmt.Errorf("count entries of %s after %s: %w", bus.Stream, id, err)
	}
	return int64(len(es)), int64(len(es)) >= limit, nil
}

// pendingSummary returns how many entries the group has pending and the
// oldest of them ("" when none).
func pendingSummary(ctx context.Context, c rueidis.Client, group string) (int64, string, error) {
	arr, err := c.Do(ctx, c.B().Xpending().Key(bus.Stream).Group(group).Build()).ToArray()
	if err != nil {
		return 0, "", fmt.Errorf("pending summary of group %s: %w", group, err)
	}
	if len(arr) < 2 {
		return 0, "", fmt.Errorf("pending summary of group %s: unexpected reply of %d elements", group, len(arr))
	}
	n, err := arr[0].AsInt64()
	if err != nil {
		return 0, "", fmt.Errorf("pending summary of group %s: %w", group, err)
	}
	if n == 0 || arr[1].IsNil() {
		return n, "", nil
	}
	oldest, err := arr[1].ToString()
	if err != nil {
		return 0, "", fmt.Errorf("pending summary of group %s: %w", group, err)
	}
	return n, oldest, nil
}

// consumers lists the consumers of a group.
func consumers(ctx context.Context, c rueidis.Client, group string) ([]ConsumerInfo, error) {
	arr, err := c.Do(ctx, c.B().XinfoConsumers().Key(bus.Stream).Group(group).Build()).ToArray()
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
func Pending(ctx context.Context, c rueidis.Client, f PendingFilter) ([]PendingEntry, error) {
	if f.Count <= 0 {
		f.Count = 100
	}
	if f.Start == "" {
		f.Start = "-"
	}
	var cmd rueidis.Completed
	switch {
	case f.MinIdle > 0 && f.Consumer != "":
		cmd = c.B().Xpending().Key(bus.Stream).Group(bus.Group).Idle(f.MinIdle.Milliseconds()).Start(f.Start).End("+").Count(f.Count).Consumer(f.Consumer).Build()
	case f.MinIdle > 0:
		cmd = c.B().Xpending().Key(bus.Stream).Group(bus.Group).Idle(f.MinIdle.Milliseconds()).Start(f.Start).End("+").Count(f.Count).Build()
	case f.Consumer != "":
		cmd = c.B().Xpending().Key(bus.Stream).Group(bus.Group).Start(f.Start).End("+").Count(f.Count).Consumer(f.Consumer).Build()
	default:
		cmd = c.B().Xpending().Key(bus.Stream).Group(bus.Group).Start(f.Start).End("+").Count(f.Count).Build()
	}
	arr, err := c.Do(ctx, cmd).ToArray()
	if err != nil {
		return nil, fmt.Errorf("list pending entries of group %s: %w", bus.Group, err)
	}
	out := make([]PendingEntry, 0, len(arr))
	for _, m := range arr {
		pe, err := parsePending(m)
		if err != nil {
			return nil, fmt.Errorf("list pending entries of group %s: %w", bus.Group, err)
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
func Claim(ctx context.Context, c rueidis.Client, to, from string, minIdle time.Duration, count int64) ([]string, error) {
	if to == "" {
		return nil, errors.New("claim: no consumer to claim the entries for")
	}
	pend, err := Pending(ctx, c, PendingFilter{Consumer: from, MinIdle: minIdle, Count: count})
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
	claimed, err := c.Do(ctx, c.B().Xclaim().Key(bus.Stream).Group(bus.Group).Consumer(to).
		MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Id(ids...).Justid().Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("claim %d entries for %s: %w", len(ids), to, err)
	}
	return claimed, nil
}

// TrimResult tells what Trim did or, with dryRun, would do.
type TrimResult struct {
	// LengthBefore is the stream's length before trimming.
	LengthBefore int64 `json:"lengthBefore"`
	// SafeID is the first id some consumer group still needs: every entry
	// before it is acknowledged by every group.
	SafeID string `json:"safeId,omitempty"`
	// MinID is the XTRIM MINID threshold used: entries before it went.
	MinID   string `json:"minId,omitempty"`
	Trimmed int64  `json:"trimmed"`
	// Reason says why nothing (more) could be trimmed, if so.
	Reason string `json:"reason,omitempty"`
	DryRun bool   `json:"dryRun,omitempty"`
}

// Trim removes from the stream at most limit entries that every consumer
// group has acknowledged, always keeping the newest keepRecent entries (for
// reconnect recovery). It never removes an entry that is pending or not yet
// delivered to some group; with no group on the stream it removes nothing,
// since nothing is known to be stored.
//
// The safe point of a group is the older of its oldest pending entry and the
// entry after its last-delivered id: everything before it was delivered and
// acknowledged. Groups are read before their pending lists, so an entry
// delivered meanwhile lies after the last-delivered id read and is kept.
func Trim(ctx context.Context, c rueidis.Client, keepRecent, limit int64, dryRun bool) (TrimResult, error) {
	res := TrimResult{DryRun: dryRun}
	if limit <= 0 {
		limit = math.MaxInt32
	}
	var err error
	if res.LengthBefore, err = c.Do(ctx, c.B().Xlen().Key(bus.Stream).Build()).AsInt64(); err != nil {
		return res, fmt.Errorf("length of %s: %w", bus.Stream, err)
	}
	excess := res.LengthBefore - keepRecent
	if excess <= 0 {
		res.Reason = fmt.Sprintf("the stream holds %d entries, not more than the %d kept for recovery", res.LengthBefore, keepRecent)
		return res, nil
	}
	safe, ok, err := SafeTrimPoint(ctx, c)
	if err != nil {
		return res, err
	}
	if !ok {
		res.Reason = "no consumer group reads the stream, so no entry is known to be stored"
		return res, nil
	}
	res.SafeID = safe.String()
	n := min(excess, limit)
	es, err := c.Do(ctx, c.B().Xrange().Key(bus.Stream).Start("-").End("("+safe.String()).Count(n).Build()).ToArray()
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", bus.Stream, err)
	}
	if len(es) == 0 {
		res.Reason = "the oldest entry is not acknowledged yet"
		return res, nil
	}
	last, err := es[len(es)-1].AsXRangeSlice()
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", bus.Stream, err)
	}
	lastID, err := bus.ParseID(last.ID)
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", bus.Stream, err)
	}
	res.MinID = next(lastID).String()
	if dryRun {
		res.Trimmed = int64(len(es))
		return res, nil
	}
	if res.Trimmed, err = c.Do(ctx, c.B().Xtrim().Key(bus.Stream).Minid().Exact().Threshold(res.MinID).Build()).AsInt64(); err != nil {
		return res, fmt.Errorf("trim %s before %s: %w", bus.Stream, res.MinID, err)
	}
	return res, nil
}

// SafeTrimPoint returns the first id some consumer group still needs (the
// minimum over all groups); ok is false when the stream has no group.
func SafeTrimPoint(ctx context.Context, c rueidis.Client) (id bus.ID, ok bool, err error) {
	gs, _, err := groups(ctx, c)
	if err != nil {
		return bus.ID{}, false, err
	}
	for _, g := range gs {
		last, err := bus.ParseID(g.LastDeliveredID)
		if err != nil {
			return bus.ID{}, false, fmt.Errorf("group %s: last-delivered-id: %w", g.Name, err)
		}
		p := next(last)
		if g.OldestPendingID != "" {
			oldest, err := bus.ParseID(g.OldestPendingID)
			if err != nil {
				return bus.ID{}, false, fmt.Errorf("group %s: oldest pending id: %w", g.Name, err)
			}
			if oldest.Compare(p) < 0 {
				p = oldest
			}
		}
		if !ok || p.Compare(id) < 0 {
			id, ok = p, true
		}
	}
	return id, ok, nil
}

// next returns the smallest id after id.
func next(id bus.ID) bus.ID {
	if id.Seq == math.MaxUint64 {
		return bus.ID{Ms: id.Ms + 1}
	}
	return bus.ID{Ms: id.Ms, Seq: id.Seq + 1}
}

// DeadEntry is an entry of the dead stream.
type DeadEntry struct {
	// ID is the entry's id in the dead stream.
	ID string `json:"id"`
	// DeadID is the message id of the entry that could not be stored.
	DeadID string `json:"deadId"`
	Reason string `json:"reason"`
	// Fields are the original entry's fields.
	Fields map[string]string `json:"fields"`

	original []rueidis.XRangeFieldValue
}

// DeadEntries lists up to count entries of the dead stream, oldest first.
func DeadEntries(ctx context.Context, c rueidis.Client, count int64) ([]DeadEntry, error) {
	if count <= 0 {
		count = 100
	}
	es, err := c.Do(ctx, c.B().Xrange().Key(bus.DeadStream).Start("-").End("+").Count(count).Build()).AsXRangeSlices()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bus.DeadStream, err)
	}
	out := make([]DeadEntry, 0, len(es))
	for _, e := range es {
		d := DeadEntry{ID: e.ID, Fields: map[string]string{}}
		for _, fv := range e.FieldValues {
			switch fv.Field {
			case bus.FieldDeadID:
				d.DeadID = fv.Value
			case bus.FieldDeadReason:
				d.Reason = fv.Value
			default:
				d.Fields[fv.Field] = fv.Value
				d.original = append(d.original, fv)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Requeued tells where a dead entry went back to.
type Requeued struct {
	DeadEntryID string `json:"deadEntryId"`
	DeadID      string `json:"deadId"`
	// NewID is the id of the new entry on the stream ("" when the entry
	// repeated a dead id already requeued and was only removed).
	NewID string `json:"newId,omitempty"`
	// Error says why the entry was left in the dead stream.
	Error string `json:"error,omitempty"`
}

// Requeue appends the dead entries back to the stream with their original
// fields and removes them from the dead stream. The new entry carries
// deadId (and ts, when it had none), and the worker stores a requeued entry
// under that original message id and time: so the stored message keeps the
// id clients saw, and requeueing the same dead entry twice (after a crash
// between XADD and XDEL, or two dead copies of one entry) stores it once.
func Requeue(ctx context.Context, c rueidis.Client, entries []DeadEntry) ([]Requeued, error) {
	out := []Requeued{}
	seen := map[string]bool{}
	for _, d := range entries {
		r := Requeued{DeadEntryID: d.ID, DeadID: d.DeadID}
		if len(d.original) == 0 {
			r.Error = "no original fields to requeue"
			out = append(out, r)
			continue
		}
		if d.DeadID == "" || !seen[d.DeadID] {
			cmd := c.B().Xadd().Key(bus.Stream).Id("*").FieldValue()
			hasTS := false
			for _, fv := range d.original {
				cmd = cmd.FieldValue(fv.Field, fv.Value)
				hasTS = hasTS || fv.Field == bus.FieldTS
			}
			if id, err := bus.ParseID(d.DeadID); err == nil {
				cmd = cmd.FieldValue(bus.FieldDeadID, d.DeadID)
				if !hasTS {
					cmd = cmd.FieldValue(bus.FieldTS, strconv.FormatUint(id.Ms, 10))
				}
			}
			newID, err := c.Do(ctx, cmd.Build()).ToString()
			if err != nil {
				return out, fmt.Errorf("requeue dead entry %s (message %s): %w", d.ID, d.DeadID, err)
			}
			r.NewID = newID
			seen[d.DeadID] = true
		}
		if err := c.Do(ctx, c.B().Xdel().Key(bus.DeadStream).Id(d.ID).Build()).Error(); err != nil {
			return out, fmt.Errorf("remove requeued entry %s from %s: %w", d.ID, bus.DeadStream, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// LastID returns the id of the newest entry of the stream, "0-0" when empty.
func LastID(ctx context.Context, c rueidis.Client) (string, error) {
	id, err := edgeID(ctx, c, true)
	if err != nil || id != "" {
		return id, err
	}
	return "0-0", nil
}

// ReadAfter returns up to count entries after id, waiting up to block for
// the first one (0: no wait). It reads outside the consumer group, so it
// disturbs no worker.
func ReadAfter(ctx context.Context, c rueidis.Client, id string, count int64, block time.Duration) ([]rueidis.XRangeSlice, error) {
	var cmd rueidis.Completed
	if block > 0 {
		cmd = c.B().Xread().Count(count).Block(max(block.Milliseconds(), 1)).Streams().Key(bus.Stream).Id(id).Build()
	} else {
		cmd = c.B().Xread().Count(count).Streams().Key(bus.Stream).Id(id).Build()
	}
	res, err := c.Do(ctx, cmd).AsXReadSlices()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s after %s: %w", bus.Stream, id, err)
	}
	return res[bus.Stream], nil
}
