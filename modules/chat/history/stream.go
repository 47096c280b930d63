package history

import (
	"context"

	"github.com/auroradev/aurora/app/bus"
)

// chunk is how many stream entries one XRANGE/XREVRANGE round trip reads.
const chunk = 500

// scanCap bounds how many stream entries (of all rooms) one read may scan
// to find want entries of a room: 10 per wanted message plus 1000. The scan
// starts at the oldest entry the ingest role has not acknowledged
// (bus.Backlog.From), so it only bites when ingest is that far behind; then
// the read stops there and reports truncated, and callers serve only the
// part they scanned (never a page with a hole in it) and say that more
// exists.
func scanCap(want int) int { return 10*want + 1000 }

// scan is the outcome of a stream read.
type scan struct {
	entries []bus.Entry // the room's entries, in scan order
	// truncated: the scan cap was reached before want entries or the end
	// of the range; entries beyond edge (in scan order) were not seen.
	truncated bool
	edge      bus.ID
}

// scanRoom reads the room's stream (its shard's) between lo and hi (both inclusive), oldest
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
		got, err := bus.ReadRange(ctx, s.redis, s.Shards.StreamOf(room), lo, hi, asc, int64(n))
		if err != nil {
			return out, err
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
			lo, ok = out.edge.Next()
		} else {
			hi, ok = out.edge.Prev()
		}
		if !ok {
			return out, nil
		}
	}
	return out, nil
}
