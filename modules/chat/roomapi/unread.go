package roomapi

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// MaxUnread caps each unread and mention count of GET /api/rooms (the
// client shows 999+ at it): the store's work per room is bounded by it,
// never by the room's size.
const MaxUnread = 1000

// Counts computes a user's unread and mention counts per room from their
// read marker: the later of the store's (what ingest stored) and the
// chat role's Redis key (bus.ReadMarkerKey, moved before ingest stores
// the read), so a marker counts the moment its read is acknowledged.
type Counts struct {
	Store  store.MessageReader
	Redis  rueidis.Client
	Shards bus.Shards
}

// read returns the counts of userID in each of rooms, in order. A nil
// Counts counts nothing. When Redis cannot be read, the store's markers
// alone are used (logged): the counts may then be high until ingest
// catches up, which beats failing the room list.
func (c *Counts) read(ctx context.Context, log *slog.Logger, userID string, rooms []string) ([]store.UnreadCount, error) {
	out := make([]store.UnreadCount, len(rooms))
	if c == nil || len(rooms) == 0 {
		return out, nil
	}
	markers, err := c.Store.ReadMarkers(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("read the read markers of %s: %w", userID, err)
	}
	if markers == nil {
		markers = map[string]bus.ID{}
	}
	if c.Redis != nil {
		cmds := make(rueidis.Commands, len(rooms))
		for i, r := range rooms {
			cmds[i] = c.Redis.B().Get().Key(bus.ReadMarkerKey(c.Shards, r, userID)).Build()
		}
		for i, res := range c.Redis.DoMulti(ctx, cmds...) {
			s, err := res.ToString()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				log.Warn("read a read marker from Redis; counting from the store's", "room", rooms[i], "err", err)
				continue
			}
			id, err := bus.ParseID(s)
			if err != nil {
				log.Warn("skip a bad read marker in Redis", "room", rooms[i], "value", s)
				continue
			}
			if m, ok := markers[rooms[i]]; !ok || m.Compare(id) < 0 {
				markers[rooms[i]] = id
			}
		}
	}
	for i, r := range rooms {
		n, err := c.Store.Unread(ctx, userID, r, markers[r], MaxUnread)
		if err != nil {
			return nil, fmt.Errorf("count unread messages of %s in %s: %w", userID, r, err)
		}
		out[i] = n
	}
	return out, nil
}
