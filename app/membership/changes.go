package membership

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// Channel is the Redis Pub/Sub channel on which a membership change is
// announced to every chat replica, so each drops what it cached of it and
// removes the connections a removal concerns. Its payload is a Change as
// JSON. Its name is app/bus's, the owner of every Redis name the roles
// share.
const Channel = bus.RoomsChangedChannel

// Why a user was removed from a room (Change.Removed, and the reason of
// the "removed" frame the user's connections get).
const (
	RemovedKicked   = "kicked"
	RemovedBanned   = "banned"
	RemovedLeft     = "left"
	RemovedDeleted  = "deleted"  // the room was deleted
	RemovedDisabled = "disabled" // the user was disabled server-wide
)

// Change says what changed: one user's access to a room (UserID set), a
// whole room (UserID ""), or a user everywhere (Room ""). Removed, when
// set, says the user (or, with UserID "", every member) is out of the
// room now; Detail is the moderator's reason. Notify: tell the user's
// connections (a rooms_changed frame) that their rooms or invitations
// changed by someone else's doing or in another tab (invited, a direct
// room opened, added, an invitation accepted, a new role or mute), so
// clients refresh their room list without polling.
type Change struct {
	Room    string `json:"room,omitempty"`
	UserID  string `json:"userId,omitempty"`
	Removed string `json:"removed,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Notify  bool   `json:"notify,omitempty"`
}

// Publisher announces changes to every replica.
type Publisher interface {
	Publish(ctx context.Context, c Change) error
}

// LocalFirst applies a change to this replica's cache, then announces it
// through Next. The replica that made a change must not decide from an
// entry the announcement has yet to drop: without it, a message sent
// right after the join that created its room could be refused not_found
// from the entry the join's own access check cached, until the
// announcement came back over Redis. (The Watcher applies it again when it
// arrives: dropping entries twice is harmless.)
type LocalFirst struct {
	Cache *Cache
	Next  Publisher
}

// Publish applies c to the cache and announces it.
func (p LocalFirst) Publish(ctx context.Context, c Change) error {
	p.Cache.Apply(c)
	return p.Next.Publish(ctx, c)
}

// RedisPublisher publishes changes on Channel: PUBLISH, or on a Redis
// Cluster SPUBLISH (bus.PubSub), which goes to the one node owning the
// channel's slot rather than to whichever node a keyless command would
// find first (the Watcher SSUBSCRIBEs there).
type RedisPublisher struct{ Client rueidis.Client }

// Publish sends c on Channel.
func (p RedisPublisher) Publish(ctx context.Context, c Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode membership change: %w", err)
	}
	ps := bus.PubSubOf(p.Client)
	if err := p.Client.Do(ctx, ps.Publish(p.Client.B(), Channel, string(b))).Error(); err != nil {
		return fmt.Errorf("publish membership change on %s: %w", Channel, err)
	}
	return nil
}

// DecodeChange reads a payload of Channel.
func DecodeChange(payload string) (Change, error) {
	var c Change
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		return Change{}, fmt.Errorf("decode membership change: %w", err)
	}
	return c, nil
}
