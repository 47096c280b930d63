package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// Lookup finds the entry with id in room, for the chat role to check the
// target of an edit, delete, reaction, reply or read: the room's shard
// stream first (a message just sent is there long before ingest stores
// it, and reading one id is a single XRANGE), then the store, whose copy
// carries the message's state (edited, deleted). A stream entry is the
// entry as sent: its state is not applied (a delete still in the stream
// is not reflected in it), which the chat role covers by its own
// tombstone keys. It answers store.ErrNotFound when neither has an entry
// of room with that id (an entry of another room with the id is not
// room's), and whatever else failed otherwise; ctx should carry a
// deadline, since the Redis client retries reads while Redis is
// unreachable.
func (s *Service) Lookup(ctx context.Context, room string, id bus.ID) (bus.Entry, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	got, err := bus.ReadRange(ctx, s.redis, s.Shards.StreamOf(room), id, id, true, 1)
	if err != nil {
		return bus.Entry{}, fmt.Errorf("look up message %s of room %s in the stream: %w", id, room, err)
	}
	if len(got) == 1 && got[0].FieldValues[bus.FieldRoomID] == room {
		e, err := bus.DecodeEntry(got[0].ID, got[0].FieldValues)
		if err == nil {
			return e, nil
		}
		// A damaged entry is not a message anyone can act on; the store
		// may still hold what ingest made of it.
		s.log.Debug("stream entry does not decode", "id", got[0].ID, "err", err)
	}
	m, err := s.store.Message(ctx, room, id)
	if errors.Is(err, store.ErrNotFound) {
		return bus.Entry{}, fmt.Errorf("message %s of room %s: %w", id, room, store.ErrNotFound)
	}
	if err != nil {
		return bus.Entry{}, fmt.Errorf("look up message %s of room %s in the store: %w", id, room, err)
	}
	if m.RoomID != room {
		return bus.Entry{}, fmt.Errorf("message %s of room %s: %w", id, room, store.ErrNotFound)
	}
	return m.Entry(), nil
}
