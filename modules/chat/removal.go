package chat

import (
	"context"
	"encoding/json"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
)

// removals are the room events that take members out of the room, and the
// removed frame's reason for each.
var removals = map[string]string{
	bus.EventMemberKicked: membership.RemovedKicked,
	bus.EventMemberBanned: membership.RemovedBanned,
	bus.EventMemberLeft:   membership.RemovedLeft,
	bus.EventRoomDeleted:  membership.RemovedDeleted,
}

// afterEvent acts on a room event frame fan-out has just delivered: a
// removal's event arrives on the room's channel in order with its
// messages, so taking the target out right after it (rather than when
// the change's announcement on membership.Channel arrives, on another
// connection) means nothing sent after the removal reaches them. The
// announcement still comes, for the replica's cache and for replicas
// without members in the room; acting on it again does nothing. Any
// other frame costs a prefix comparison (bus.PeekEvent).
func (r *rooms) afterEvent(room string, frame []byte) {
	event, target, ok := bus.PeekEvent(frame)
	if !ok {
		return
	}
	reason, ok := removals[event]
	if !ok {
		return
	}
	var ev bus.RoomEvent
	_ = json.Unmarshal(frame, &ev) // PeekEvent decoded it already
	if event == bus.EventRoomDeleted {
		target = ""
	}
	ch := membership.Change{Room: room, UserID: target, Removed: reason, Detail: ev.Reason}
	if r.onRemoval != nil {
		r.onRemoval(ch)
	}
	r.applyChange(ch)
}

// applyChange acts on a membership change announced on
// membership.Channel (the cache has dropped its entries already): a
// removal takes the user's local connections out of the room, each told
// with a "removed" frame queued after the last frame of the room it gets;
// a user disabled server-wide has every local connection closed.
func (r *rooms) applyChange(ch membership.Change) {
	if ch.Removed == "" {
		if ch.Notify && ch.Room != "" && ch.UserID != "" {
			r.notify(ch.UserID, ch.Room)
		}
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

// notify tells every local connection of userID that their rooms changed.
func (r *rooms) notify(userID, room string) {
	for _, m := range r.hub.ofUser(userID) {
		m.reply(roomsChangedFrame{Type: "rooms_changed", Room: room})
	}
}

// revoke closes every local connection of userID, joined to a room or not.
func (r *rooms) revoke(userID, why string) {
	for _, m := range r.hub.ofUser(userID) {
		m.ep.closeWith(closeRevoked, why)
	}
}
