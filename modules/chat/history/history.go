// Package history serves a room's messages from the store merged with the not-yet-ingested tail in the Redis stream.
//
// A message is acknowledged to its sender once it is in the Redis stream
// (bus.Stream, or its room's shard stream with bus.shards); the ingest role copies it to the store later, possibly much
// later when ingest is behind or stopped. So that a sender always reads its
// own writes, every read here merges the store (authoritative for what was
// ingested) with the stream entries the ingest group has not acknowledged
// yet, counting a message present in both once and ordering by id.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// Limits of the history API and of Since.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	// MaxSince is the most frames Since replays; a client further behind
	// pages the rest through the history API.
	MaxSince = 1000
	// storePage is the page size Since asks the store for.
	storePage = 200
)

// DefaultTimeout bounds one history request's store and Redis work.
const DefaultTimeout = 5 * time.Second

// Service reads room history.
type Service struct {
	// Timeout bounds the store and Redis work of one history request: the
	// Redis client retries reads while Redis is unreachable, and the
	// client must get its 503 rather than wait with it. Set it before
	// serving; New sets DefaultTimeout, zero means no bound.
	Timeout time.Duration
	// Rooms, when not empty, are the only rooms the history API serves
	// (chat.rooms_allowed); any other is answered 400. Set it before serving.
	Rooms []string

	// Shards is bus.shards: a room's not-yet-stored tail is in the stream
	// of its shard (the zero value: one stream, bus.Stream).
	Shards bus.Shards

	store store.MessageReader
	redis rueidis.Client
	log   *slog.Logger
}

// New returns a Service over the store and the Redis holding the message
// streams (one, bus.Stream, until Shards is set).
func New(s store.MessageReader, r rueidis.Client, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{Timeout: DefaultTimeout, store: s, redis: r, log: log}
}

// bound is ctx under s.Timeout, the one bound of a history request's store
// and Redis work (none when Timeout is zero).
func (s *Service) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.Timeout)
}

// page is one page of the history API: frames (encoded, see merged) in the
// order asked for.
type page struct {
	frames  []json.RawMessage
	hasMore bool
}

// page returns up to limit messages of room before the exclusive bound
// before (newest first; nil means the newest), or after after (oldest first).
//
// The store page and the stream entries not yet acknowledged by the ingest
// group are merged. Taking the first limit of the union of the store's first
// limit and the stream's first limit+1 (in the page's order) gives the first
// limit of the whole room; hasMore is then exact: more lie beyond when the
// store says so or the union holds more than limit. When the store says more
// lie beyond its page, the stream is read only up to the store page's last
// id: nothing further can make it into this page. When the stream read hits
// its cap (ingest far behind), the page stops where the read stopped, so it
// never skips a message, and hasMore is true.
//
// Life entries (edits, deletes, reactions, read markers) are never items of
// a page: the store applies them to their messages, and those still in the
// stream tail are applied here (pending), so a sender reads its own edit,
// delete or reaction before ingest stored it. viewer is the reader (whose
// reactions the messages' Reaction.Me shows).
func (s *Service) page(ctx context.Context, room, viewer string, before, after *bus.ID, limit int) (page, error) {
	asc := after != nil
	ti, err := bus.ReadBacklog(ctx, s.redis, s.Shards.StreamOf(room)) // before the store: see its doc
	if err != nil {
		return page{}, err
	}
	msgs, more, err := s.store.Messages(ctx, room, store.Page{Before: before, After: after, Limit: limit, Viewer: viewer})
	if err != nil {
		return page{}, fmt.Errorf("read messages of room %s from the store: %w", room, err)
	}

	// The stream range that can matter, inclusive, oldest to newest; ok
	// turns false when it is empty.
	lo, hi, ok := ti.From, bus.MaxID(), ti.HasOldest
	if asc {
		ok = raise(&lo, *after) && ok
		if more && len(msgs) > 0 {
			ok = lower(&hi, msgs[len(msgs)-1].ID) && ok
		}
	} else {
		if before != nil {
			ok = lower(&hi, *before) && ok
		}
		if more && len(msgs) > 0 {
			ok = raise(&lo, msgs[len(msgs)-1].ID) && ok
		}
	}
	var sc scan
	if ok {
		sc, err = s.scanRoom(ctx, room, lo, hi, asc, limit+1, notLife)
		if err != nil {
			return page{}, err
		}
	}

	all := merge(msgs, sc.entries)
	if len(all) > 0 && ti.HasOldest {
		life, err := s.pendingLife(ctx, room, ti.From)
		if err != nil {
			return page{}, err
		}
		applyLife(all, life, viewer)
	}
	if !asc {
		slices.Reverse(all)
	}
	if sc.truncated {
		// Keep only what lies on the scanned side of the edge.
		n := 0
		for _, f := range all {
			if c := f.id.Compare(sc.edge); (asc && c <= 0) || (!asc && c >= 0) {
				all[n] = f
				n++
			}
		}
		all = all[:n]
	}
	p := page{hasMore: more || sc.truncated || len(all) > limit}
	if len(all) > limit {
		all = all[:limit]
	}
	p.frames = make([]json.RawMessage, len(all))
	for i, f := range all {
		p.frames[i] = f.entry.FrameJSON()
	}
	return p, nil
}

// Frame is a message or room event of a replay: its id and its encoded
// frame (bus.Entry.FrameJSON: the message frame, or the room_event frame).
type Frame struct {
	ID   bus.ID
	JSON []byte
}

// Since returns the frames of room (messages, room events and the life
// frames of edits, deletes, reactions and read markers, in id order)
// with an id after since, oldest
// first, at most limit of them (at most MaxSince) and at most maxBytes of
// encoded frames, for a client that reconnects and saw everything up to
// since; ctx should carry a deadline, since the Redis client retries reads
// while Redis is unreachable. complete is false when the client must not
// trust the replay to be gap-free from since to now: more messages than
// limit or maxBytes allow (the frames are then the oldest that fit, so the
// client can page on with the history API; a limit or maxBytes below 1
// reads nothing), the stream read hit its cap, or coverage cannot be
// vouched for.
//
// viewer is the reader: its reactions are Reaction.Me of the replayed
// messages, and read frames of other users are left out (a read marker is
// delivered live only to its user's connections) unless direct says the
// room is a direct room, whose other member sees it ("seen").
//
// Coverage: the replay is complete when the store and the stream together
// hold every message after since. The store holds everything ingested and
// the stream everything not yet acknowledged, and the ingest role trims only
// acknowledged entries, so this holds unless something was lost (a Redis
// without persistence restarted, a stream trimmed by hand). The server
// vouches for it when since is 0-0 (the client asks for the whole room),
// when since is at least as new as the oldest stream entry (the stream
// itself still holds everything after since), or when the store holds a
// message of the room at or before since (the store reaches back to since,
// so what the stream lost before its oldest entry is in the store).
func (s *Service) Since(ctx context.Context, room string, since bus.ID, viewer string, direct bool, limit, maxBytes int) (frames []Frame, complete bool, err error) {
	limit = min(limit, MaxSince)
	if limit < 1 || maxBytes < 1 {
		return nil, false, nil
	}
	ti, err := bus.ReadBacklog(ctx, s.redis, s.Shards.StreamOf(room)) // before the store: see its doc
	if err != nil {
		return nil, false, err
	}
	shown := func(e bus.Entry) bool { return direct || e.Type != bus.TypeRead || e.UserID == viewer }
	var msgs []store.Message
	storeMore := false
	// Other users' read entries are read and dropped; read is bounded
	// like a stream scan, so a room of mostly read markers costs a
	// bounded number of rows (the replay is then not complete).
	read, readCap := 0, scanCap(limit+1)
	var lastRead *bus.ID // the newest store row read, kept or not
	for after := since; len(msgs) <= limit; {
		if read >= readCap {
			storeMore = true
			break
		}
		// One more than limit tells whether more lie beyond.
		// Once rows were dropped, more may be: read whole pages.
		size := min(storePage, limit+1-len(msgs))
		if read > len(msgs) {
			size = storePage
		}
		page, more, err := s.store.Messages(ctx, room, store.Page{After: &after, Limit: size, Life: true, Viewer: viewer})
		if err != nil {
			return nil, false, fmt.Errorf("read messages of room %s after %s from the store: %w", room, after, err)
		}
		read += len(page)
		if len(page) > 0 {
			lastRead = &page[len(page)-1].ID
		}
		for _, m := range page {
			if shown(bus.Entry{Type: m.Type, UserID: m.UserID}) {
				msgs = append(msgs, m)
			}
		}
		storeMore = more
		if !more || len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
	}

	lo, hi, ok := ti.From, bus.MaxID(), ti.HasOldest
	ok = raise(&lo, since) && ok
	if storeMore && lastRead != nil {
		// As in page: nothing beyond the store's last can be among the
		// first limit (nor be replayed without a gap, when the read
		// stopped at its cap).
		ok = lower(&hi, *lastRead) && ok
	}
	var sc scan
	if ok {
		sc, err = s.scanRoom(ctx, room, lo, hi, true, limit+1, shown)
		if err != nil {
			return nil, false, err
		}
	}

	all := merge(msgs, sc.entries)
	complete = !storeMore && !sc.truncated
	if sc.truncated {
		n, _ := slices.BinarySearchFunc(all, sc.edge, func(f merged, id bus.ID) int { return f.id.Compare(id) })
		if n < len(all) && all[n].id == sc.edge {
			n++
		}
		all = all[:n]
	}
	if len(all) > limit {
		all, complete = all[:limit], false
	}
	if complete && !since.IsZero() && !(ti.HasOldest && since.Compare(ti.Oldest) >= 0) {
		complete, err = s.storeReaches(ctx, room, since)
		if err != nil {
			return nil, false, err
		}
	}

	frames = make([]Frame, 0, len(all))
	size := 0
	for _, f := range all {
		b := f.entry.FrameJSON()
		if size += len(b); size > maxBytes {
			return frames, false, nil
		}
		frames = append(frames, Frame{ID: f.id, JSON: b})
	}
	return frames, complete, nil
}

// storeReaches reports whether the store holds a message of room at or
// before id.
func (s *Service) storeReaches(ctx context.Context, room string, id bus.ID) (bool, error) {
	b, _ := id.Next() // the largest id itself when it has no next
	msgs, _, err := s.store.Messages(ctx, room, store.Page{Before: &b, Limit: 1, Life: true})
	if err != nil {
		return false, fmt.Errorf("read the message of room %s at or before %s: %w", room, id, err)
	}
	return len(msgs) > 0, nil
}

// merged is a message or room event of either source, by id. Its client
// frame is entry.FrameJSON(), the bytes the live copy had (a message's is
// json.Marshal of its bus.MessageFrame, as the history API always
// answered; a room event's the room_event frame), encoded only for what
// is answered.
type merged struct {
	id    bus.ID
	entry bus.Entry
}

// merge returns the messages of both sources oldest first, each id once.
// The store's copy wins: it is the permanent one, so a message reads the
// same before and after its stream entry is trimmed.
func merge(msgs []store.Message, entries []bus.Entry) []merged {
	all := make([]bus.Entry, 0, len(msgs)+len(entries))
	for _, m := range msgs {
		all = append(all, m.Entry())
	}
	all = append(all, entries...)
	// Stable, store copies first: Compact keeps the first of equal ids.
	slices.SortStableFunc(all, func(a, b bus.Entry) int { return a.ID.Compare(b.ID) })
	all = slices.CompactFunc(all, func(a, b bus.Entry) bool { return a.ID == b.ID })
	out := make([]merged, len(all))
	for i, e := range all {
		out[i] = merged{e.ID, e}
	}
	return out
}

// raise moves the inclusive lower bound lo above the exclusive bound after
// when that is higher; false when nothing lies above after.
func raise(lo *bus.ID, after bus.ID) bool {
	a, ok := after.Next()
	if ok && a.Compare(*lo) > 0 {
		*lo = a
	}
	return ok
}

// lower moves the inclusive upper bound hi below the exclusive bound before
// when that is lower; false when nothing lies below before.
func lower(hi *bus.ID, before bus.ID) bool {
	b, ok := before.Prev()
	if ok && b.Compare(*hi) < 0 {
		*hi = b
	}
	return ok
}
