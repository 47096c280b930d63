package membership

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// StreamEvents appends room events to the message stream, where they are
// stored and delivered like messages.
type StreamEvents struct{ Client rueidis.Client }

// Append appends ev to room's stream.
func (e StreamEvents) Append(ctx context.Context, room string, actor Actor, ev bus.RoomEvent) error {
	// Placeholder until bus.AppendEvent lands with the events branch.
	_, _, _, _ = ctx, room, actor, ev
	return nil
}
