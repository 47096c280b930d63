package chat

import (
	"slices"
	"time"

	"github.com/auroradev/aurora/modules/chat/history"
)

// redisTimeout bounds every Redis call made for a client request.
const redisTimeout = 5 * time.Second

// allowedRooms is chat.rooms_allowed: when not empty, the only rooms served.
type allowedRooms []string

// allows reports whether users may be in room (an empty list lets them
// into every room).
func (a allowedRooms) allows(room string) bool {
	return len(a) == 0 || slices.Contains(a, room)
}

// refusal is the human part of refusing a room chat.rooms_allowed keeps
// closed.
func (a allowedRooms) refusal(room string) string {
	return history.RoomRefusal(room, a)
}
