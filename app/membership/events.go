package membership

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// StreamEvents appends room events to the message stream of the room's
// shard (of Shards, bus.shards), where they are stored and delivered like
// messages (bus.AppendEvent).
type StreamEvents struct {
	Client rueidis.Client
	Shards bus.Shards
}

// Append appends ev, done by actor, to room's stream.
func (e StreamEvents) Append(ctx context.Context, room string, actor Actor, ev bus.RoomEvent) error {
	entry, err := bus.NewEvent(room, actor.UserID, actor.Username, ev)
	if err != nil {
		return err
	}
	_, err = bus.AppendEvent(ctx, e.Client, e.Shards, entry)
	return err
}
