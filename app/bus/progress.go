package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/rueidis"
)

// This file answers "which stream entries may not be in the store yet",
// for the history API (what to merge from the stream) and for trimming
// (what may go). Both ask firstUnacked.

// lagCountLimit bounds the XRANGE used to count undelivered entries when the
// server does not report a group's lag (Redis before 7, the embedded Redis,
// or a stream with deletions): a larger lag is reported as at least this.
const lagCountLimit = 10000

// progress is how far one consumer group got, as XINFO GROUPS and the
// XPENDING summary tell.
type progress struct {
	name          string
	lastDelivered ID
	// lag is the server's count of entries not delivered yet; lagKnown is
	// false when it gave none to trust.
	lag      int64
	lagKnown bool
	pending  int64
	// oldestPending is meaningful when pending > 0.
	oldestPending ID
}

// firstUnacked is the one answer to "the lowest id the group may not have
// acknowledged": the lower of its oldest pending entry and the entry after
// its last-delivered id. The ingest group acknowledges an entry only once
// it is stored (or dead-lettered), so for it this is "the lowest id not yet
// stored": every entry below it is in the store. The two parts are read in
// two commands, not atomically, and the lower of them is the safe one: an
// entry delivered between the reads lies after the last-delivered id read.
func (p progress) firstUnacked() ID {
	from, ok := p.lastDelivered.Next()
	if !ok {
		from = p.lastDelivered
	}
	if p.pending > 0 && p.oldestPending.Compare(from) < 0 {
		from = p.oldestPending
	}
	return from
}

// parseGroups reads an XINFO GROUPS reply (RESP3 maps from a real Redis,
// flat RESP2 arrays from the embedded one: AsMap reads both).
func parseGroups(r rueidis.RedisResult) ([]progress, error) {
	arr, err := r.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]progress, 0, len(arr))
	for _, m := range arr {
		fields, err := m.AsMap()
		if err != nil {
			return nil, err
		}
		var p progress
		name := fields["name"]
		p.name, _ = name.ToString()
		last := fields["last-delivered-id"]
		s, err := last.ToString()
		if err != nil {
			return nil, fmt.Errorf("group %s: last-delivered-id: %w", p.name, err)
		}
		if p.lastDelivered, err = parseGroupID(s); err != nil {
			return nil, fmt.Errorf("group %s: last-delivered-id: %w", p.name, err)
		}
		// The server's lag is trusted only with entries-read beside it:
		// the embedded Redis reports the stream length as lag.
		if er, ok := fields["entries-read"]; ok && !er.IsNil() {
			if lag, ok := fields["lag"]; ok && !lag.IsNil() {
				if n, err := lag.AsInt64(); err == nil {
					p.lag, p.lagKnown = n, true
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// parsePendingSummary reads an XPENDING summary reply: count, smallest id,
// greatest id, consumers.
func parsePendingSummary(r rueidis.RedisResult) (n int64, oldest ID, err error) {
	arr, err := r.ToArray()
	if err != nil {
		return 0, ID{}, err
	}
	if len(arr) < 2 {
		return 0, ID{}, fmt.Errorf("unexpected reply of %d elements", len(arr))
	}
	if n, err = arr[0].AsInt64(); err != nil {
		return 0, ID{}, err
	}
	if n == 0 || arr[1].IsNil() {
		return n, ID{}, nil
	}
	s, err := arr[1].ToString()
	if err != nil {
		return 0, ID{}, err
	}
	if oldest, err = ParseID(s); err != nil {
		return 0, ID{}, err
	}
	return n, oldest, nil
}

// readProgress reads the progress of every group on the stream: the groups
// first, then their pending summaries in one round trip. exists is false
// when there is no stream.
func readProgress(ctx context.Context, c rueidis.Client, stream string) (ps []progress, exists bool, err error) {
	ps, err = parseGroups(c.Do(ctx, c.B().XinfoGroups().Key(stream).Build()))
	if IsNoKey(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list consumer groups of %s: %w", stream, err)
	}
	if len(ps) == 0 {
		return ps, true, nil
	}
	cmds := make(rueidis.Commands, len(ps))
	for i, p := range ps {
		cmds[i] = c.B().Xpending().Key(stream).Group(p.name).Build()
	}
	for i, r := range c.DoMulti(ctx, cmds...) {
		if ps[i].pending, ps[i].oldestPending, err = parsePendingSummary(r); err != nil {
			return nil, true, fmt.Errorf("pending summary of group %s: %w", ps[i].name, err)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	return ps, true, nil
}

// TrimPoint returns the first id some consumer group still needs: the
// minimum of firstUnacked over every group, since any of them may be a
// reader that has not stored the entry yet. ok is false when the stream has
// no group.
func TrimPoint(ctx context.Context, c rueidis.Client, stream string) (id ID, ok bool, err error) {
	ps, _, err := readProgress(ctx, c, stream)
	if err != nil {
		return ID{}, false, err
	}
	for _, p := range ps {
		if f := p.firstUnacked(); !ok || f.Compare(id) < 0 {
			id, ok = f, true
		}
	}
	return id, ok, nil
}

// Backlog is what the stream says about what may not be in the store yet.
type Backlog struct {
	// From is the lowest id not yet stored (firstUnacked of the ingest
	// group): every entry below it is in the store. It is 0-0 when that is
	// not known (no ingest group, an ACL forbidding XINFO, an unexpected
	// reply): reading more of the stream then costs time, not correctness.
	From ID
	// Oldest is the oldest entry the stream holds; HasOldest is false when
	// the stream is empty or missing.
	Oldest    ID
	HasOldest bool
}

// ReadBacklog reads the ingest group's progress and the stream's oldest
// entry in one round trip. A reader that merges the stream with the store
// must call it before reading the store: an entry acknowledged after this
// read is then in the store by the time the store is read, and one that is
// not is still in the stream (Trim removes only acknowledged entries).
func ReadBacklog(ctx context.Context, c rueidis.Client, stream string) (Backlog, error) {
	res := c.DoMulti(ctx,
		c.B().Xrange().Key(stream).Start("-").End("+").Count(1).Build(),
		c.B().XinfoGroups().Key(stream).Build(),
		c.B().Xpending().Key(stream).Group(Group).Build(),
	)
	var b Backlog
	first, err := res[0].AsXRange()
	if err != nil {
		return b, fmt.Errorf("read oldest entry of %s: %w", stream, err)
	}
	if len(first) == 0 {
		return b, nil // no stream: nothing is waiting for ingest
	}
	if id, err := ParseID(first[0].ID); err == nil {
		b.Oldest, b.HasOldest = id, true
	}
	if p, err := ingestProgress(res[1], res[2]); err == nil {
		b.From = p.firstUnacked()
	}
	return b, nil
}

var errNoIngestGroup = errors.New("no ingest group")

// ingestProgress picks the ingest group out of XINFO GROUPS and adds its
// XPENDING summary.
func ingestProgress(groups, pending rueidis.RedisResult) (progress, error) {
	ps, err := parseGroups(groups)
	if err != nil {
		return progress{}, err
	}
	for _, p := range ps {
		if p.name == Group {
			p.pending, p.oldestPending, err = parsePendingSummary(pending)
			return p, err
		}
	}
	return progress{}, errNoIngestGroup
}
