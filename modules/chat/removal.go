package chat

import (
	"context"

	"github.com/auroradev/aurora/app/membership"
)

// applyChange acts on a membership change announced on
// membership.Channel (the cache has dropped its entries already): a
// removal takes the user's local connections out of the room, each told
// with a "removed" frame queued after the last frame of the room it gets;
// a user disabled server-wide has every local connection closed.
func (r *rooms) applyChange(ch membership.Change) {
	if ch.Removed == "" {
		return
	}
	if ch.Room == "" {
		if ch.UserID != "" {
			r.revoke(ch.UserID, "user disabled")
		}
		return
	}
	for _, m := range r.hub.inRoom(ch.Room) {
		if ch.UserID != "" && m.userID != ch.UserID {
			continue
		}
		f := removedFrame{Type: "removed", Room: ch.Room, Reason: ch.Removed, Detail: ch.Detail}
		m.remove(ch.Room, f)
		r.hub.leave(ch.Room, m)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
			defer cancel()
			r.settle(ctx, m, ch.Room)
		}()
	}
}

// revoke closes every local connection of userID.
func (r *rooms) revoke(userID, why string) {
	for _, m := range r.hub.members() {
		if m.userID == userID {
			m.ep.closeWith(closeRevoked, why)
		}
	}
}
