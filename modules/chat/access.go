package chat

import (
	"context"
	"errors"
	"time"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
)

// refusalCode is the error code of a membership refusal, or
// codeUnavailable for any other error (the store or Redis failed).
func refusalCode(err error) string {
	switch {
	case errors.Is(err, membership.ErrNotFound):
		return codeNotFound
	case errors.Is(err, membership.ErrForbidden), errors.Is(err, membership.ErrConflict), errors.Is(err, membership.ErrInvalid):
		return codeForbidden
	case errors.Is(err, membership.ErrBanned):
		return codeBanned
	case errors.Is(err, membership.ErrMuted):
		return codeMuted
	}
	return codeUnavailable
}

// refusal is the error frame's code and text for err.
func refusal(err error, what string) (code, msg string) {
	code = refusalCode(err)
	if code == codeUnavailable {
		return code, what + ": service unavailable, retry later"
	}
	return code, err.Error()
}

// allowed decides act in room for the connection's user from the
// replica's membership cache (no store round trip when it holds the
// answer). It returns the error code and text of a refusal, or "".
func (c *conn) allowed(room string, act membership.Action) (code, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	a, err := c.d.access.Access(ctx, room, c.userID)
	if err != nil {
		c.log.Warn("read room access", "room", room, "err", err)
		return refusal(err, "cannot check access to "+room)
	}
	if err := membership.Decide(a, act, time.Now()); err != nil {
		return refusal(err, "")
	}
	return "", ""
}

// admit lets the connection's user into room for a join: a member (or
// anyone allowed in who need not become one) from the cache; otherwise
// through the membership service, which makes them a member of a public
// room or creates the room (chat.create_on_join).
func (c *conn) admit(ctx context.Context, room string) (code, msg string) {
	a, err := c.d.access.Access(ctx, room, c.userID)
	if err == nil && a.Room != nil && a.Room.Type != store.RoomPublic {
		// A private or direct room: not on a cached entry, which a kick
		// announced a moment ago may be about to drop.
		a, err = c.d.access.Fresh(ctx, room, c.userID)
	}
	if err != nil {
		c.log.Warn("read room access", "room", room, "err", err)
		return refusal(err, "cannot join "+room)
	}
	if a.Room != nil && (a.Member != nil || a.ServerAdmin) {
		if err := membership.Decide(a, membership.Join, time.Now()); err != nil {
			return refusal(err, "")
		}
		return "", ""
	}
	if _, err := c.d.members.Join(ctx, membership.Actor{UserID: c.userID, Username: c.username}, room); err != nil {
		if refusalCode(err) == codeUnavailable {
			c.log.Warn("join room", "room", room, "err", err)
		}
		return refusal(err, "cannot join "+room)
	}
	return "", ""
}
