package history

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// chunk is how many stream entries one XRANGE/XREVRANGE round trip reads.
const chunk = 500

// scanCap bounds how many stream entries (of all rooms) one read may scan
// to find want entries of a room: 10 per wanted message plus 1000. The scan
// starts at the oldest entry the ingest role has not acknowledged (see
// tailStart), so it only bites when ingest is that far behind; then the read
// stops there and reports truncated, and callers serve only the part they
// scanned (never a page with a hole in it) and say that more exists.
func scanCap(want int) int { return 10*want + 1000 }

// tailInfo is what the stream says about what may not be in the store yet.
type tailInfo struct {
	// from is the lowest id that may not be ingested yet: every stream
	// entry below it has been acknowledged by the ingest group, and the
	// ingest role acknowledges an entry only once it is in the store (or
	// dead-lettered), as AuroraChat's worker does and as the ingest role's
	// trimming of acknowledged entries already relies on.
	from bus.ID
	// oldest is the oldest entry the stream holds; ok is false when the
	// stream is empty or missing.
	oldest   bus.ID
	oldestOK bool
}

// tail reads the ingest group's progress and the stream's oldest entry in one
// round trip. When the group's progress cannot be read (no group because no
// ingest ever ran, an ACL forbidding XINFO, an unexpected reply) from is 0-0:
// scanning more of the stream costs time, never correctness.
//
// It must run before the store is read: an entry acknowledged after this
// read is then in the store by the time the store is read, and one that is
// not yet acknowledged is still in the stream (the ingest role trims only
// acknowledged entries).
func (s *Service) tail(ctx context.Context) (tailInfo, error) {
	c := s.redis
	res := c.DoMulti(ctx,
		c.B().Xrange().Key(bus.Stream).Start("-").End("+").Count(1).Build(),
		c.B().XinfoGroups().Key(bus.Stream).Build(),
		c.B().Xpending().Key(bus.Stream).Group(bus.Group).Build(),
	)
	var ti tailInfo
	first, err := res[0].AsXRange()
	if err != nil {
		return ti, fmt.Errorf("read oldest entry of %s: %w", bus.Stream, err)
	}
	if len(first) == 0 {
		return ti, nil // no stream: nothing is waiting for ingest
	}
	if id, err := bus.ParseID(first[0].ID); err == nil {
		ti.oldest, ti.oldestOK = id, true
	}
	if from, ok := groupFrom(res[1], res[2]); ok {
		ti.from = from
	}
	return ti, nil
}

// groupFrom computes the lowest id the ingest group may not have
// acknowledged: the smallest pending id, or the one after the group's
// last-delivered id, whichever is lower (both are read, not atomically, so
// the lower is the safe one).
func groupFrom(groups, pending rueidis.RedisResult) (bus.ID, bool) {
	list, err := groups.ToArray()
	if err != nil {
		return bus.ID{}, false
	}
	var last bus.ID
	found := false
	for _, g := range list {
		m, err := g.AsMap()
		if err != nil {
			return bus.ID{}, false
		}
		name := m["name"]
		if n, err := name.ToString(); err != nil || n != bus.Group {
			continue
		}
		ld := m["last-delivered-id"]
		s, err := ld.ToString()
		if err != nil {
			return bus.ID{}, false
		}
		if last, err = bus.ParseID(s); err != nil {
			// The embedded Redis reports a group created at "0" as "0".
			ms, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return bus.ID{}, false
			}
			last = bus.ID{Ms: ms}
		}
		found = true
	}
	if !found {
		return bus.ID{}, false
	}
	from, ok := succ(last)
	if !ok {
		from = last
	}
	// XPENDING summary: count, smallest id, greatest id, consumers.
	summary, err := pending.ToArray()
	if err != nil || len(summary) < 2 {
		return bus.ID{}, false
	}
	n, err := summary[0].AsInt64()
	if err != nil {
		return bus.ID{}, false
	}
	if n > 0 {
		s, err := summary[1].ToString()
		if err != nil {
			return bus.ID{}, false
		}
		p, err := bus.ParseID(s)
		if err != nil {
			return bus.ID{}, false
		}
		if p.Compare(from) < 0 {
			from = p
		}
	}
	return from, true
}

// scan is the outcome of a stream read.
type scan struct {
	entries []bus.Entry // the room's entries, in scan order
	// truncated: the scan cap was reached before want entries or the end
	// of the range; entries beyond edge (in scan order) were not seen.
	truncated bool
	edge      bus.ID
}

// scanRoom reads the stream between lo and hi (both inclusive), oldest
// first when asc, else newest first, keeping the entries of room, until it
// has want of them, the range ends, or it scanned scanCap(want) entries.
// Entries that do not decode (foreign or damaged) are skipped.
func (s *Service) scanRoom(ctx context.Context, room string, lo, hi bus.ID, asc bool, want int) (scan, error) {
	var out scan
	limit := scanCap(want)
	for scanned := 0; lo.Compare(hi) <= 0; {
		if scanned >= limit {
			out.truncated = true
			return out, nil
		}
		n := min(chunk, limit-scanned)
		var cmd rueidis.Completed
		if asc {
			cmd = s.redis.B().Xrange().Key(bus.Stream).Start(lo.String()).End(hi.String()).Count(int64(n)).Build()
		} else {
			cmd = s.redis.B().Xrevrange().Key(bus.Stream).End(hi.String()).Start(lo.String()).Count(int64(n)).Build()
		}
		got, err := s.redis.Do(ctx, cmd).AsXRange()
		if err != nil {
			return out, fmt.Errorf("read %s from %s to %s: %w", bus.Stream, lo, hi, err)
		}
		scanned += len(got)
		for _, x := range got {
			id, err := bus.ParseID(x.ID)
			if err != nil {
				continue
			}
			out.edge = id
			if x.FieldValues[bus.FieldRoomID] != room {
				continue
			}
			e, err := bus.DecodeEntry(x.ID, x.FieldValues)
			if err != nil {
				s.log.Debug("skip undecodable stream entry", "id", x.ID, "err", err)
				continue
			}
			out.entries = append(out.entries, e)
			if len(out.entries) == want {
				return out, nil
			}
		}
		if len(got) < n {
			return out, nil // the range is exhausted
		}
		var ok bool
		if asc {
			lo, ok = succ(out.edge)
		} else {
			hi, ok = pred(out.edge)
		}
		if !ok {
			return out, nil
		}
	}
	return out, nil
}

// succ returns the id right after id; false for the largest id.
func succ(id bus.ID) (bus.ID, bool) {
	switch {
	case id.Seq < math.MaxUint64:
		return bus.ID{Ms: id.Ms, Seq: id.Seq + 1}, true
	case id.Ms < math.MaxUint64:
		return bus.ID{Ms: id.Ms + 1}, true
	}
	return id, false
}

// pred returns the id right before id; false for 0-0.
func pred(id bus.ID) (bus.ID, bool) {
	switch {
	case id.Seq > 0:
		return bus.ID{Ms: id.Ms, Seq: id.Seq - 1}, true
	case id.Ms > 0:
		return bus.ID{Ms: id.Ms - 1, Seq: math.MaxUint64}, true
	}
	return id, false
}

// maxID is the largest message id, the inclusive form of "+".
func maxID() bus.ID { return bus.ID{Ms: math.MaxUint64, Seq: math.MaxUint64} }
