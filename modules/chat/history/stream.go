package history

import (
	"context"
	"slices"

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
// first when asc, else newest first, keeping the entries of room that keep
// accepts, until it has want of them, the range ends, or it scanned
// scanCap(want) entries. Entries that do not decode (foreign or damaged)
// are skipped.
func (s *Service) scanRoom(ctx context.Context, room string, lo, hi bus.ID, asc bool, want int, keep func(bus.Entry) bool) (scan, error) {
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
			if !keep(e) {
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

// notLife keeps messages and room events: a history page's items.
func notLife(e bus.Entry) bool { return !bus.IsLife(e.Type) }

// pendingLife returns the edits, deletes and reactions of room in the
// stream from from (the oldest entry the ingest role has not
// acknowledged) on, oldest first: the newest MaxLimit of them, read
// newest first scanning at most scanCap(MaxLimit) entries, so a far-behind
// ingest costs a bounded read. The newest are what a sender just did, and
// what they leave out is older: an edit or delete is overridden by a later
// one anyway, and applyLife applies a reaction by the state it sets. The
// read does not depend on the page's size: the entries acting on a page's
// messages may lie anywhere in the tail.
func (s *Service) pendingLife(ctx context.Context, room string, from bus.ID) ([]bus.Entry, error) {
	sc, err := s.scanRoom(ctx, room, from, bus.MaxID(), false, MaxLimit, func(e bus.Entry) bool {
		return bus.IsLife(e.Type) && e.Type != bus.TypeRead
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(sc.entries)
	return sc.entries, nil
}

// applyLife applies life entries (oldest first) to the messages of a page
// as the store does once it ingests them, so a page reads the same before
// and after: an edit sets the text and edited time, a delete the
// tombstone; later entries win, and nothing changes a deleted message.
// Entries already ingested are in the stream tail too (the tail starts at
// the oldest unacknowledged entry); applying an edit or delete again
// changes nothing. A reaction's count cannot tell whether the store has
// it, so only viewer's reactions are applied, by Reaction.Me, which does
// tell: a sender sees their own reaction at once, others' arrive live.
func applyLife(page []merged, life []bus.Entry, viewer string) {
	if len(life) == 0 {
		return
	}
	at := make(map[bus.ID]int, len(page))
	for i, f := range page {
		if f.entry.Type == "" {
			at[f.id] = i
		}
	}
	for _, l := range life {
		i, ok := at[l.MessageID]
		if !ok {
			continue
		}
		m := &page[i].entry
		if m.Deleted {
			continue
		}
		switch l.Type {
		case bus.TypeEdit:
			// The store keeps the edit's creation time, the id's.
			m.Text, m.Edited = l.Text, int64(l.ID.Ms)
		case bus.TypeDelete:
			m.Deleted, m.Text, m.Attachments, m.Mentions, m.Reactions = true, "", nil, nil, nil
		case bus.TypeReact:
			if l.UserID == viewer {
				m.Reactions = react(m.Reactions, l.Emoji, l.On)
			}
		}
	}
}

// react returns rs with the reader's reaction emoji set on or off.
func react(rs []bus.Reaction, emoji string, on bool) []bus.Reaction {
	for i, r := range rs {
		if r.Emoji != emoji {
			continue
		}
		if r.Me == on {
			return rs
		}
		out := slices.Clone(rs)
		if on {
			out[i].Count++
		} else {
			out[i].Count--
		}
		out[i].Me = on
		if out[i].Count <= 0 {
			out = slices.Delete(out, i, i+1)
		}
		return out
	}
	if !on {
		return rs
	}
	return append(slices.Clone(rs), bus.Reaction{Emoji: emoji, Count: 1, Me: true})
}
