// Package membership is who may do what in which room, and the actions that
// change it. It holds the one owner of each rule (rules.go: AuroraChat's
// planned canAccessRoom, canSendMessage, canBanUser… as Decide), the
// per-replica cache of what the rules read (cache.go, invalidated over Redis
// Pub/Sub, changes.go), the server-wide view of users (users.go: disabled,
// tokens revoked, server administrators; polled from the store), and the
// room actions (service.go: create, join, invite, kick, ban, mute, roles…),
// each of which checks the rules, writes the store, appends a room event to
// the message stream and tells every replica.
//
// The chat role's WebSocket gateway and HTTP API, and the operator
// commands, all go through it; it imports no role.
package membership

import (
	"errors"
	"fmt"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// General is the room every user is in: public, joined on connect, owned by
// nobody (server administrators moderate it).
const General = "general"

// Refusals. Every refusal wraps one of these; the chat role maps them to
// WebSocket error codes (not_found, forbidden, banned, muted) and HTTP
// statuses (404, 403, 403, 403).
var (
	// ErrNotFound: no such room, or one the caller may not see (a private
	// or direct room of others reads exactly like a room that does not
	// exist).
	ErrNotFound  = errors.New("not_found")
	ErrForbidden = errors.New("forbidden")
	ErrBanned    = errors.New("banned")
	ErrMuted     = errors.New("muted")
	// ErrInvalid: the request itself is wrong (a bad name, type or role);
	// HTTP 400.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the name is taken, or the change conflicts with the
	// room's state; HTTP 409.
	ErrConflict = errors.New("conflict")
)

// refusal is a refusal with its human text.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Action is something a user does in a room.
type Action int

// The actions the rules decide.
const (
	View      Action = iota // see the room exists: its record, its members
	Join                    // become a member (public rooms) or open it on a connection
	Read                    // history, presence, recovery, live delivery
	Send                    // send a message
	Typing                  // typing indicators
	Invite                  // invite a user, create or revoke an invite link
	Moderate                // kick, ban, unban, mute a member below oneself
	SetRole                 // change a member's role
	Transfer                // give ownership away
	Update                  // change title and topic
	Delete                  // delete the room
	LeaveRoom               // stop being a member
	// A message's life. Deleting one's own message needs only Read (a
	// muted or readonly member may still take back what they wrote);
	// whether the message is the user's is the caller's to check.
	Edit      // edit one's own message: the Send rules
	React     // add or remove a reaction: the Send rules
	DeleteAny // delete others' messages: room admins and the owner, server admins (not in direct rooms)
)

var actionNames = [...]string{"view", "join", "read", "send", "typing", "invite", "moderate", "set role", "transfer", "update", "delete", "leave",
	"edit", "react", "delete any message"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Access is everything the rules read about one user and one room.
type Access struct {
	// Room is nil when no room has the name.
	Room *store.Room
	// Member is nil when the user is not a member.
	Member *store.Member
	// Ban is nil when the user is not banned (an expired ban is nil too).
	Ban *store.Ban
	// ServerAdmin: the user is a server-wide administrator.
	ServerAdmin bool
}

// rank orders roles; a higher rank manages the lower ones.
func rank(role string) int {
	switch role {
	case store.RoleOwner:
		return 4
	case store.RoleAdmin:
		return 3
	case store.RoleMember:
		return 2
	case store.RoleReadonly:
		return 1
	}
	return 0
}

// ValidRole reports whether role is one of the four.
func ValidRole(role string) bool { return rank(role) > 0 }

// Role is the user's role in the room ("" when not a member).
func (a Access) Role() string {
	if a.Member == nil {
		return ""
	}
	return a.Member.Role
}

// visible reports whether the room exists for the user: public rooms for
// everyone, others for their members, and private rooms for server
// administrators.
func (a Access) visible() bool {
	switch {
	case a.Room == nil:
		return false
	case a.Member != nil, a.Room.Type == store.RoomPublic:
		return true
	case a.Room.Type == store.RoomPrivate:
		return a.ServerAdmin
	}
	return false
}

// moderator reports whether the user may moderate the room: an admin or
// the owner, or a server administrator (not in direct rooms).
func (a Access) moderator() bool {
	if a.Room.Type == store.RoomDirect {
		return false
	}
	return a.ServerAdmin || rank(a.Role()) >= rank(store.RoleAdmin)
}

// Decide says whether the user of a may do act in a's room at now: nil,
// or a refusal wrapping ErrNotFound, ErrForbidden, ErrBanned or ErrMuted.
// It is the one place the rules are written (docs/protocol.md has them as
// a table). Actions on another member (Moderate, SetRole) are decided
// further by DecideOn.
func Decide(a Access, act Action, now time.Time) error {
	if !a.visible() {
		return noRoom()
	}
	name := a.Room.Name
	if a.Ban != nil && a.Ban.Active(now) && !a.ServerAdmin {
		// A banned user sees a public room exists but cannot be in it;
		// a private room's ban reads as not found once the membership is
		// gone (visible already said so).
		switch act {
		case View:
		default:
			return refuse(ErrBanned, "you are banned from %s", name)
		}
		return nil
	}
	role := a.Role()
	switch act {
	case View:
		return nil
	case Join:
		if a.Member != nil || a.Room.Type == store.RoomPublic {
			return nil
		}
		if a.ServerAdmin && a.Room.Type == store.RoomPrivate {
			return nil
		}
		return noRoom()
	case Read:
		if a.Member != nil || a.ServerAdmin && a.Room.Type != store.RoomDirect {
			return nil
		}
		return refuse(ErrForbidden, "join %s first", name)
	case Send, Typing, Edit, React:
		if a.Member == nil {
			if a.ServerAdmin && a.Room.Type != store.RoomDirect {
				return nil
			}
			return refuse(ErrForbidden, "join %s first", name)
		}
		if role == store.RoleReadonly {
			return refuse(ErrForbidden, "you can read %s but not write in it", name)
		}
		if !a.Member.MutedUntil.IsZero() && now.Before(a.Member.MutedUntil) {
			return refuse(ErrMuted, "you are muted in %s until %s", name, a.Member.MutedUntil.UTC().Format(time.RFC3339))
		}
		return nil
	case Invite, Moderate, SetRole, Update:
		if a.moderator() {
			return nil
		}
		return refuse(ErrForbidden, "only admins of %s may do that", name)
	case DeleteAny:
		if a.moderator() {
			return nil
		}
		return refuse(ErrForbidden, "only admins of %s may delete others' messages", name)
	case Transfer, Delete:
		if a.Room.Type != store.RoomDirect && (a.ServerAdmin || role == store.RoleOwner) {
			return nil
		}
		return refuse(ErrForbidden, "only the owner of %s may do that", name)
	case LeaveRoom:
		if a.Member == nil {
			return refuse(ErrForbidden, "you are not a member of %s", name)
		}
		if a.Room.Type == store.RoomDirect {
			// Its two members are what a direct room is; POST /api/dm
			// would return it without them.
			return refuse(ErrForbidden, "a direct room cannot be left")
		}
		if role == store.RoleOwner {
			return refuse(ErrConflict, "the owner of %s cannot leave it: transfer ownership first", name)
		}
		return nil
	}
	return refuse(ErrForbidden, "%s is not allowed", act)
}

// DecideOn says whether the actor may act on target (a member's current
// role, "" for a non-member), after Decide allowed the action itself:
// admins manage members and readonly users only, the owner everyone but
// itself, server administrators everyone. Nobody moderates themself.
func DecideOn(actor Access, actorID, targetID, targetRole string) error {
	if actorID == targetID {
		return refuse(ErrForbidden, "you cannot do that to yourself")
	}
	if targetRole == store.RoleOwner && !actor.ServerAdmin {
		return refuse(ErrForbidden, "the owner of %s cannot be moderated", actor.Room.Name)
	}
	if actor.ServerAdmin || actor.Role() == store.RoleOwner {
		return nil
	}
	if rank(targetRole) >= rank(actor.Role()) {
		return refuse(ErrForbidden, "admins manage only members below them")
	}
	return nil
}

// DecideRole says whether the actor may give a member the role role
// (after DecideOn): owners and server administrators any role but owner
// (that is Transfer), admins member and readonly.
func DecideRole(actor Access, role string) error {
	if !ValidRole(role) {
		return refuse(ErrInvalid, "role must be one of owner, admin, member, readonly")
	}
	if role == store.RoleOwner {
		return refuse(ErrInvalid, "ownership is transferred, not set")
	}
	if actor.ServerAdmin || actor.Role() == store.RoleOwner || rank(role) < rank(store.RoleAdmin) {
		return nil
	}
	return refuse(ErrForbidden, "only the owner may make admins")
}

// noRoom is the refusal of a room the user may not see: the same words
// whether it exists or not, so the answer never tells that a private or
// direct room has the name.
func noRoom() error { return refuse(ErrNotFound, "no such room") }
