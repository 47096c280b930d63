package membership

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auroradev/aurora/app/audit"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// Limits of what users give the room actions.
const (
	MaxTopic       = 250 // characters
	MaxTitle       = 64  // characters
	MaxReason      = 500 // characters
	MaxLinkUses    = 10000
	MaxLinkExpiry  = 30 * 24 * time.Hour
	DefaultLinkTTL = 7 * 24 * time.Hour
	// DirectPrefix starts the name of every direct room; nobody may create
	// a room with it.
	DirectPrefix = "dm-"
)

// Operator is the actor of the operator commands: it has a server
// administrator's rights, and its events carry this user id and name.
var Operator = Actor{UserID: "operator", Username: "operator", operator: true}

// Actor is who acts: a user of a verified token, or Operator.
type Actor struct {
	UserID   string
	Username string
	operator bool
}

// Events appends room events to the message stream (stored, in history,
// delivered live to the room's members).
type Events interface {
	Append(ctx context.Context, room string, actor Actor, ev bus.RoomEvent) error
}

// Store is what the actions read and write.
type Store interface {
	store.Rooms
	store.Users
}

// Service runs the room actions: each checks the rules (Decide) against
// the store's current state (not a cache: actions are rare and must not
// act on a stale role), writes the store, appends the room event and
// announces the change to every replica.
type Service struct {
	Store   Store
	Events  Events
	Changes Publisher
	// Users, when set, is told of users this process disabled.
	Users *Users
	Log   *slog.Logger
	// CreateOnJoin: joining an unknown room creates it, public, with the
	// joiner as owner (chat.create_on_join).
	CreateOnJoin bool
	Now          func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// access reads the actor's access to room from the store.
func (s *Service) access(ctx context.Context, actor Actor, room string) (Access, error) {
	a, err := Load(ctx, s.Store, room, actor.UserID, s.now())
	if err != nil {
		return a, err
	}
	a.ServerAdmin, err = s.serverAdmin(ctx, actor)
	return a, err
}

func (s *Service) serverAdmin(ctx context.Context, actor Actor) (bool, error) {
	if actor.operator {
		return true, nil
	}
	u, err := s.Store.UserByID(ctx, actor.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read user %s: %w", actor.UserID, err)
	}
	return u.Admin && !u.Disabled, nil
}

// decided reads the actor's access to room and decides act.
func (s *Service) decided(ctx context.Context, actor Actor, room string, act Action) (Access, error) {
	if !bus.ValidRoom(room) {
		return Access{}, refuse(ErrInvalid, "%s", bus.RoomRule)
	}
	a, err := s.access(ctx, actor, room)
	if err != nil {
		return a, err
	}
	return a, Decide(a, act, s.now())
}

// event appends ev to room's stream (none when ev.Event is "") and
// announces ch (none when nil); the store was
// written already, so a failure here is logged and returned (the caller
// answers 503 and the client may retry the action, which is idempotent in
// effect).
func (s *Service) event(ctx context.Context, room string, actor Actor, ev bus.RoomEvent, ch *Change) error {
	var errs []error
	if s.Events != nil && ev.Event != "" {
		if err := s.Events.Append(ctx, room, actor, ev); err != nil {
			errs = append(errs, fmt.Errorf("append %s event to %s: %w", ev.Event, room, err))
		}
	}
	if ch != nil && s.Changes != nil {
		if err := s.Changes.Publish(ctx, *ch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) audit(ctx context.Context, e audit.Entry) {
	if s.Log != nil {
		audit.Log(ctx, s.Log, e)
	}
}

func actorAudit(actor Actor, e audit.Entry) audit.Entry {
	if actor.operator {
		e.Actor = audit.CLI()
	} else {
		e.ActorID = actor.UserID
	}
	return e
}

func checkText(what, s string, limit int) error {
	if n := utf8.RuneCountInString(s); n > limit {
		return refuse(ErrInvalid, "%s has %d characters, the limit is %d", what, n, limit)
	}
	if !utf8.ValidString(s) {
		return refuse(ErrInvalid, "%s is not valid UTF-8", what)
	}
	return nil
}

// CreateRoom creates a public or private room with actor as its owner.
func (s *Service) CreateRoom(ctx context.Context, actor Actor, name, typ, topic string) (store.Room, error) {
	if !bus.ValidRoom(name) {
		return store.Room{}, refuse(ErrInvalid, "%s", bus.RoomRule)
	}
	if strings.HasPrefix(name, DirectPrefix) {
		return store.Room{}, refuse(ErrInvalid, "room names starting with %q are kept for direct messages", DirectPrefix)
	}
	if typ == "" {
		typ = store.RoomPublic
	}
	if typ != store.RoomPublic && typ != store.RoomPrivate {
		return store.Room{}, refuse(ErrInvalid, "type must be public or private")
	}
	if err := checkText("topic", topic, MaxTopic); err != nil {
		return store.Room{}, err
	}
	now := s.now()
	r := store.Room{Name: name, Type: typ, Topic: topic, CreatedBy: actor.UserID, CreatedAt: now}
	var owner *store.Member
	if !actor.operator {
		owner = &store.Member{Room: name, UserID: actor.UserID, Username: actor.Username, Role: store.RoleOwner, JoinedAt: now}
	} else {
		r.CreatedBy = ""
	}
	r, err := s.Store.CreateRoom(ctx, r, owner)
	switch {
	case errors.Is(err, store.ErrRoomExists):
		return store.Room{}, refuse(ErrConflict, "room %s exists", name)
	case err != nil:
		return store.Room{}, fmt.Errorf("create room %s: %w", name, err)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomCreate, Room: name}))
	// The change drops any replica's cached "no such room".
	return r, s.event(ctx, name, actor, bus.RoomEvent{Event: bus.EventRoomCreated, RoomType: typ, Topic: topic}, &Change{Room: name})
}

// RoomView is a room as one user sees it.
type RoomView struct {
	Room        store.Room
	Role        string // "" when not a member
	ServerAdmin bool
	// Peer is the other member of a direct room.
	Peer *store.Member
}

// Room returns the room as actor sees it.
func (s *Service) Room(ctx context.Context, actor Actor, name string) (RoomView, error) {
	a, err := s.decided(ctx, actor, name, View)
	if err != nil {
		return RoomView{}, err
	}
	v := RoomView{Room: *a.Room, Role: a.Role(), ServerAdmin: a.ServerAdmin}
	if a.Room.Type == store.RoomDirect {
		v.Peer, err = s.peer(ctx, name, actor.UserID)
	}
	return v, err
}

func (s *Service) peer(ctx context.Context, room, self string) (*store.Member, error) {
	ms, err := s.Store.Members(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("read members of %s: %w", room, err)
	}
	for _, m := range ms {
		if m.UserID != self {
			return &m, nil
		}
	}
	return nil, nil
}

// MyRooms returns the rooms actor is a member of.
func (s *Service) MyRooms(ctx context.Context, actor Actor) ([]RoomView, error) {
	mrs, err := s.Store.MemberRooms(ctx, actor.UserID)
	if err != nil {
		return nil, fmt.Errorf("read rooms of %s: %w", actor.UserID, err)
	}
	out := make([]RoomView, 0, len(mrs)+1)
	hasGeneral := false
	for _, mr := range mrs {
		hasGeneral = hasGeneral || mr.Room.Name == General
		v := RoomView{Room: mr.Room, Role: mr.Member.Role}
		if mr.Room.Type == store.RoomDirect {
			if v.Peer, err = s.peer(ctx, mr.Room.Name, actor.UserID); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	if !hasGeneral {
		// Everyone is in general, with or without a row.
		a, err := s.access(ctx, actor, General)
		if err != nil {
			return nil, err
		}
		if a.Room != nil && a.Member != nil {
			out = append([]RoomView{{Room: *a.Room, Role: a.Member.Role}}, out...)
		}
	}
	return out, nil
}

// Directory returns a page of public rooms matching q after cursor (a
// room name), and the cursor of the next page ("" at the end).
func (s *Service) Directory(ctx context.Context, q, cursor string, limit int) ([]store.Room, string, error) {
	if err := checkText("q", q, 64); err != nil {
		return nil, "", err
	}
	rooms, err := s.Store.Directory(ctx, q, cursor, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("read the room directory: %w", err)
	}
	next := ""
	if len(rooms) > limit {
		rooms = rooms[:limit]
		next = rooms[limit-1].Name
	}
	return rooms, next, nil
}

// Join makes actor a member of a public room, or of a new public room it
// then owns when none has the name and CreateOnJoin is set, and returns
// the access after the join. A member (or a server administrator opening
// a private room) is let in unchanged. The join of general, on every
// connect, appends no event: it would tell everyone of every new user.
func (s *Service) Join(ctx context.Context, actor Actor, name string) (Access, error) {
	a, err := s.access(ctx, actor, name)
	if err != nil {
		return a, err
	}
	if a.Room == nil && s.CreateOnJoin && !strings.HasPrefix(name, DirectPrefix) {
		_, err := s.CreateRoom(ctx, actor, name, store.RoomPublic, "")
		if err != nil && !errors.Is(err, ErrConflict) {
			return a, err
		}
		// Created here or by a concurrent join: read what is there.
		return s.Join(ctx, actor, name)
	}
	if err := Decide(a, Join, s.now()); err != nil {
		return a, err
	}
	if a.Member != nil || a.Room.Type != store.RoomPublic || name == General {
		return a, nil
	}
	m := store.Member{Room: name, UserID: actor.UserID, Username: actor.Username, Role: store.RoleMember, JoinedAt: s.now()}
	if err := s.Store.PutMember(ctx, m); err != nil {
		return a, fmt.Errorf("add %s to %s: %w", actor.UserID, name, err)
	}
	a.Member = &m
	return a, s.event(ctx, name, actor, bus.RoomEvent{Event: bus.EventMemberJoined, Target: actor.UserID, TargetName: actor.Username},
		&Change{Room: name, UserID: actor.UserID})
}

// Leave ends actor's membership of room.
func (s *Service) Leave(ctx context.Context, actor Actor, room string) error {
	if room == General {
		return refuse(ErrConflict, "everyone is in %s", General)
	}
	if _, err := s.decided(ctx, actor, room, LeaveRoom); err != nil {
		return err
	}
	if err := s.Store.RemoveMember(ctx, room, actor.UserID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove %s from %s: %w", actor.UserID, room, err)
	}
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventMemberLeft, Target: actor.UserID, TargetName: actor.Username},
		&Change{Room: room, UserID: actor.UserID, Removed: RemovedLeft})
}

// DirectName is the name of the direct room of two users: the same for
// both, whichever opens it.
func DirectName(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return DirectPrefix + a + "-" + b
}

// OpenDirect returns the direct room of actor and the user named
// username, creating it on first use.
func (s *Service) OpenDirect(ctx context.Context, actor Actor, username string) (RoomView, error) {
	peer, err := s.Store.UserByName(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return RoomView{}, refuse(ErrNotFound, "no user %s", username)
	case err != nil:
		return RoomView{}, fmt.Errorf("read user %s: %w", username, err)
	}
	if peer.Disabled {
		return RoomView{}, refuse(ErrNotFound, "no user %s", username)
	}
	if peer.ID == actor.UserID {
		return RoomView{}, refuse(ErrInvalid, "a direct room needs another user")
	}
	name := DirectName(actor.UserID, peer.ID)
	if !bus.ValidRoom(name) {
		return RoomView{}, refuse(ErrInvalid, "these users cannot have a direct room")
	}
	r, err := s.Store.Room(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		now := s.now()
		r, err = s.Store.CreateRoom(ctx, store.Room{Name: name, Type: store.RoomDirect, CreatedBy: actor.UserID, CreatedAt: now},
			&store.Member{Room: name, UserID: actor.UserID, Username: actor.Username, Role: store.RoleMember, JoinedAt: now})
		switch {
		case errors.Is(err, store.ErrRoomExists):
			r, err = s.Store.Room(ctx, name)
		case err == nil:
			pm := store.Member{Room: name, UserID: peer.ID, Username: peer.Username, Role: store.RoleMember, JoinedAt: now}
			if err := s.Store.PutMember(ctx, pm); err != nil {
				return RoomView{}, fmt.Errorf("add %s to %s: %w", peer.ID, name, err)
			}
			// Per user, so both users' connections hear of the room
			// (rooms_changed).
			if err := s.event(ctx, name, actor, bus.RoomEvent{Event: bus.EventRoomCreated, RoomType: store.RoomDirect, Target: peer.ID, TargetName: peer.Username},
				&Change{Room: name, UserID: peer.ID, Notify: true}); err != nil {
				return RoomView{}, err
			}
			if s.Changes != nil {
				if err := s.Changes.Publish(ctx, Change{Room: name, UserID: actor.UserID, Notify: true}); err != nil {
					return RoomView{}, err
				}
			}
		}
	}
	if err != nil {
		return RoomView{}, fmt.Errorf("open direct room %s: %w", name, err)
	}
	pm := store.Member{Room: name, UserID: peer.ID, Username: peer.Username, Role: store.RoleMember}
	return RoomView{Room: r, Role: store.RoleMember, Peer: &pm}, nil
}

func newToken() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make an invitation token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// InviteUser invites the user named username to room.
func (s *Service) InviteUser(ctx context.Context, actor Actor, room, username string) (store.Invite, error) {
	if _, err := s.decided(ctx, actor, room, Invite); err != nil {
		return store.Invite{}, err
	}
	u, err := s.Store.UserByName(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Invite{}, refuse(ErrNotFound, "no user %s", username)
	case err != nil:
		return store.Invite{}, fmt.Errorf("read user %s: %w", username, err)
	}
	ta, err := Load(ctx, s.Store, room, u.ID, s.now())
	if err != nil {
		return store.Invite{}, err
	}
	if ta.Ban != nil {
		return store.Invite{}, refuse(ErrForbidden, "%s is banned from %s: lift the ban first", u.Username, room)
	}
	if ta.Member != nil {
		return store.Invite{}, refuse(ErrConflict, "%s is a member of %s already", u.Username, room)
	}
	tok, err := newToken()
	if err != nil {
		return store.Invite{}, err
	}
	inv := store.Invite{Token: tok, Room: room, UserID: u.ID, By: actor.UserID, CreatedAt: s.now(), MaxUses: 1}
	if err := s.Store.CreateInvite(ctx, inv); err != nil {
		return store.Invite{}, fmt.Errorf("store the invitation of %s to %s: %w", u.ID, room, err)
	}
	// The change tells the invitee's connections (rooms_changed).
	return inv, s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventMemberInvited, Target: u.ID, TargetName: u.Username},
		&Change{Room: room, UserID: u.ID, Notify: true})
}

// CreateLink creates an invite link to room: maxUses 0 is unlimited,
// expiresIn 0 is DefaultLinkTTL.
func (s *Service) CreateLink(ctx context.Context, actor Actor, room string, maxUses int, expiresIn time.Duration) (store.Invite, error) {
	if _, err := s.decided(ctx, actor, room, Invite); err != nil {
		return store.Invite{}, err
	}
	if maxUses < 0 || maxUses > MaxLinkUses {
		return store.Invite{}, refuse(ErrInvalid, "maxUses must be between 0 (unlimited) and %d", MaxLinkUses)
	}
	if expiresIn < 0 || expiresIn > MaxLinkExpiry {
		return store.Invite{}, refuse(ErrInvalid, "expiresIn must be between 0 (%s) and %s in seconds", DefaultLinkTTL, MaxLinkExpiry)
	}
	if expiresIn == 0 {
		expiresIn = DefaultLinkTTL
	}
	tok, err := newToken()
	if err != nil {
		return store.Invite{}, err
	}
	now := s.now()
	inv := store.Invite{Token: tok, Room: room, By: actor.UserID, CreatedAt: now, ExpiresAt: now.Add(expiresIn), MaxUses: maxUses}
	if err := s.Store.CreateInvite(ctx, inv); err != nil {
		return store.Invite{}, fmt.Errorf("store an invite link to %s: %w", room, err)
	}
	return inv, nil
}

// invite reads an invitation actor may see: a link, or their own.
func (s *Service) invite(ctx context.Context, actor Actor, token string) (store.Invite, error) {
	inv, err := s.Store.Invite(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return inv, refuse(ErrNotFound, "no such invitation")
	case err != nil:
		return inv, fmt.Errorf("read invitation: %w", err)
	}
	if inv.UserID != "" && inv.UserID != actor.UserID {
		return inv, refuse(ErrNotFound, "no such invitation")
	}
	return inv, nil
}

// Accept makes actor a member of the invitation's room.
func (s *Service) Accept(ctx context.Context, actor Actor, token string) (store.Room, error) {
	inv, err := s.invite(ctx, actor, token)
	if err != nil {
		return store.Room{}, err
	}
	a, err := s.access(ctx, actor, inv.Room)
	if err != nil {
		return store.Room{}, err
	}
	switch {
	case a.Room == nil:
		return store.Room{}, refuse(ErrNotFound, "no such invitation")
	case a.Ban != nil && a.Ban.Active(s.now()):
		return store.Room{}, refuse(ErrBanned, "you are banned from %s", inv.Room)
	case a.Member != nil:
		return *a.Room, nil
	}
	if _, err := s.Store.UseInvite(ctx, token, s.now()); err != nil {
		if errors.Is(err, store.ErrInviteSpent) || errors.Is(err, store.ErrNotFound) {
			return store.Room{}, refuse(ErrConflict, "the invitation is revoked, expired or used up")
		}
		return store.Room{}, fmt.Errorf("use invitation: %w", err)
	}
	m := store.Member{Room: inv.Room, UserID: actor.UserID, Username: actor.Username, Role: store.RoleMember, JoinedAt: s.now()}
	if err := s.Store.PutMember(ctx, m); err != nil {
		return store.Room{}, fmt.Errorf("add %s to %s: %w", actor.UserID, inv.Room, err)
	}
	return *a.Room, s.event(ctx, inv.Room, actor, bus.RoomEvent{Event: bus.EventMemberJoined, Target: actor.UserID, TargetName: actor.Username},
		&Change{Room: inv.Room, UserID: actor.UserID, Notify: true})
}

// Decline refuses a direct invitation of actor.
func (s *Service) Decline(ctx context.Context, actor Actor, token string) error {
	inv, err := s.invite(ctx, actor, token)
	if err != nil {
		return err
	}
	if inv.UserID == "" {
		return refuse(ErrInvalid, "an invite link is declined by not using it")
	}
	if err := s.Store.RevokeInvite(ctx, token); err != nil {
		return fmt.Errorf("decline invitation: %w", err)
	}
	return nil
}

// RevokeInvite revokes an invitation of a room actor may invite to.
func (s *Service) RevokeInvite(ctx context.Context, actor Actor, token string) error {
	inv, err := s.Store.Invite(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(ErrNotFound, "no such invitation")
	case err != nil:
		return fmt.Errorf("read invitation: %w", err)
	}
	if _, err := s.decided(ctx, actor, inv.Room, Invite); err != nil {
		if errors.Is(err, ErrNotFound) {
			return refuse(ErrNotFound, "no such invitation")
		}
		return err
	}
	if err := s.Store.RevokeInvite(ctx, token); err != nil {
		return fmt.Errorf("revoke invitation: %w", err)
	}
	return nil
}

// RoomInvites returns the invitations of room.
func (s *Service) RoomInvites(ctx context.Context, actor Actor, room string) ([]store.Invite, error) {
	if _, err := s.decided(ctx, actor, room, Invite); err != nil {
		return nil, err
	}
	return s.Store.Invites(ctx, room)
}

// MyInvites returns actor's pending direct invitations.
func (s *Service) MyInvites(ctx context.Context, actor Actor) ([]store.Invite, error) {
	return s.Store.UserInvites(ctx, actor.UserID, s.now())
}

// AddMember makes a user a member of room with role (not owner: that is
// SetRole's transfer), without an invitation: an operator's (or a
// moderator's) way into a private room.
func (s *Service) AddMember(ctx context.Context, actor Actor, room, targetID, role string) error {
	a, err := s.decided(ctx, actor, room, Invite)
	if err != nil {
		return err
	}
	if role == "" {
		role = store.RoleMember
	}
	if err := DecideRole(a, role); err != nil {
		return err
	}
	if a.Room.Type == store.RoomDirect {
		return refuse(ErrForbidden, "a direct room has exactly its two users")
	}
	u, err := s.userNamed(ctx, targetID)
	if err != nil {
		return err
	}
	ta, err := Load(ctx, s.Store, room, targetID, s.now())
	if err != nil {
		return err
	}
	if ta.Ban != nil {
		return refuse(ErrForbidden, "%s is banned from %s: lift the ban first", u.Username, room)
	}
	if ta.Member != nil && room != General {
		return refuse(ErrConflict, "%s is a member of %s already", u.Username, room)
	}
	m := store.Member{Room: room, UserID: targetID, Username: u.Username, Role: role, JoinedAt: s.now()}
	if err := s.Store.PutMember(ctx, m); err != nil {
		return fmt.Errorf("add %s to %s: %w", targetID, room, err)
	}
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventMemberJoined, Target: targetID, TargetName: u.Username, Role: role},
		&Change{Room: room, UserID: targetID, Notify: true})
}

// Members returns room's members.
func (s *Service) Members(ctx context.Context, actor Actor, room string) ([]store.Member, error) {
	if _, err := s.decided(ctx, actor, room, Read); err != nil {
		return nil, err
	}
	return s.Store.Members(ctx, room)
}

// Bans returns room's bans.
func (s *Service) Bans(ctx context.Context, actor Actor, room string) ([]store.Ban, error) {
	if _, err := s.decided(ctx, actor, room, Moderate); err != nil {
		return nil, err
	}
	return s.Store.Bans(ctx, room)
}

// target reads the member targetID of room for a moderation action by
// actor (access a), checking the actor may act on them.
func (s *Service) target(ctx context.Context, a Access, actor Actor, room, targetID string) (store.Member, error) {
	m, err := s.Store.Member(ctx, room, targetID)
	switch {
	case errors.Is(err, store.ErrNotFound) && room == General:
		// Everyone is in general; a row is written for a role or a mute.
		u, err := s.userNamed(ctx, targetID)
		if err != nil {
			return m, err
		}
		m = store.Member{Room: General, UserID: targetID, Username: u.Username, Role: store.RoleMember, JoinedAt: u.CreatedAt}
	case errors.Is(err, store.ErrNotFound):
		return m, refuse(ErrNotFound, "%s is not a member of %s", targetID, room)
	case err != nil:
		return m, fmt.Errorf("read member %s of %s: %w", targetID, room, err)
	}
	return m, DecideOn(a, actor.UserID, targetID, m.Role)
}

// Kick removes a member from room.
func (s *Service) Kick(ctx context.Context, actor Actor, room, targetID, reason string) error {
	if err := checkText("reason", reason, MaxReason); err != nil {
		return err
	}
	a, err := s.decided(ctx, actor, room, Moderate)
	if err != nil {
		return err
	}
	if room == General {
		return refuse(ErrConflict, "everyone is in %s: ban instead", General)
	}
	m, err := s.target(ctx, a, actor, room, targetID)
	if err != nil {
		return err
	}
	if err := s.Store.RemoveMember(ctx, room, targetID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove %s from %s: %w", targetID, room, err)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomKick, Room: room, UserID: targetID, Note: reason}))
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventMemberKicked, Target: targetID, TargetName: m.Username, Reason: reason},
		&Change{Room: room, UserID: targetID, Removed: RemovedKicked, Detail: reason})
}

// Ban keeps a user out of room until expiresAt (zero: until lifted),
// removing them when they are a member and revoking their invitations.
func (s *Service) Ban(ctx context.Context, actor Actor, room, targetID, reason string, expiresAt time.Time) error {
	if err := checkText("reason", reason, MaxReason); err != nil {
		return err
	}
	if !expiresAt.IsZero() && !expiresAt.After(s.now()) {
		return refuse(ErrInvalid, "expiresAt is in the past")
	}
	a, err := s.decided(ctx, actor, room, Moderate)
	if err != nil {
		return err
	}
	u, err := s.userNamed(ctx, targetID)
	if err != nil {
		return err
	}
	role := ""
	if m, err := s.Store.Member(ctx, room, targetID); err == nil {
		role = m.Role
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read member %s of %s: %w", targetID, room, err)
	}
	if err := DecideOn(a, actor.UserID, targetID, role); err != nil {
		return err
	}
	if err := s.Store.PutBan(ctx, store.Ban{Room: room, UserID: targetID, Reason: reason, By: actor.UserID, At: s.now(), ExpiresAt: expiresAt}); err != nil {
		return fmt.Errorf("ban %s from %s: %w", targetID, room, err)
	}
	if role != "" {
		if err := s.Store.RemoveMember(ctx, room, targetID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove %s from %s: %w", targetID, room, err)
		}
	}
	invs, err := s.Store.Invites(ctx, room)
	if err != nil {
		return fmt.Errorf("read invitations of %s: %w", room, err)
	}
	for _, inv := range invs {
		if inv.UserID == targetID && !inv.Revoked {
			if err := s.Store.RevokeInvite(ctx, inv.Token); err != nil {
				return fmt.Errorf("revoke the invitation of %s: %w", targetID, err)
			}
		}
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomBan, Room: room, UserID: targetID, Note: reason}))
	ev := bus.RoomEvent{Event: bus.EventMemberBanned, Target: targetID, TargetName: u.Username, Reason: reason}
	if !expiresAt.IsZero() {
		ev.Until = expiresAt.UnixMilli()
	}
	return s.event(ctx, room, actor, ev, &Change{Room: room, UserID: targetID, Removed: RemovedBanned, Detail: reason})
}

// Unban lifts a ban.
func (s *Service) Unban(ctx context.Context, actor Actor, room, targetID string) error {
	if _, err := s.decided(ctx, actor, room, Moderate); err != nil {
		return err
	}
	b, err := s.Store.Ban(ctx, room, targetID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(ErrNotFound, "%s is not banned from %s", targetID, room)
	case err != nil:
		return fmt.Errorf("read ban of %s in %s: %w", targetID, room, err)
	}
	if err := s.Store.RemoveBan(ctx, room, targetID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("unban %s from %s: %w", targetID, room, err)
	}
	name := ""
	if u, err := s.Store.UserByID(ctx, b.UserID); err == nil {
		name = u.Username
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomUnban, Room: room, UserID: targetID}))
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventMemberUnbanned, Target: targetID, TargetName: name}, &Change{Room: room, UserID: targetID})
}

// Mute stops a member sending to room until until (zero or past: unmute).
func (s *Service) Mute(ctx context.Context, actor Actor, room, targetID string, until time.Time) error {
	a, err := s.decided(ctx, actor, room, Moderate)
	if err != nil {
		return err
	}
	m, err := s.target(ctx, a, actor, room, targetID)
	if err != nil {
		return err
	}
	if !until.After(s.now()) {
		until = time.Time{}
	}
	m.MutedUntil = until
	if err := s.Store.PutMember(ctx, m); err != nil {
		return fmt.Errorf("mute %s in %s: %w", targetID, room, err)
	}
	ev := bus.RoomEvent{Event: bus.EventMemberMuted, Target: targetID, TargetName: m.Username}
	note := "unmuted"
	if !until.IsZero() {
		ev.Until = until.UnixMilli()
		note = "until " + until.UTC().Format(time.RFC3339)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomMute, Room: room, UserID: targetID, Note: note}))
	return s.event(ctx, room, actor, ev, &Change{Room: room, UserID: targetID, Notify: true})
}

// SetRole changes a member's role; role owner transfers ownership (the
// old owner becomes an admin).
func (s *Service) SetRole(ctx context.Context, actor Actor, room, targetID, role string) error {
	if role == store.RoleOwner {
		return s.transfer(ctx, actor, room, targetID)
	}
	a, err := s.decided(ctx, actor, room, SetRole)
	if err != nil {
		return err
	}
	m, err := s.target(ctx, a, actor, room, targetID)
	if err != nil {
		return err
	}
	if err := DecideRole(a, role); err != nil {
		return err
	}
	m.Role = role
	if err := s.Store.PutMember(ctx, m); err != nil {
		return fmt.Errorf("set the role of %s in %s: %w", targetID, room, err)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomRole, Room: room, UserID: targetID, Note: role}))
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventRoleChanged, Target: targetID, TargetName: m.Username, Role: role},
		&Change{Room: room, UserID: targetID, Notify: true})
}

func (s *Service) transfer(ctx context.Context, actor Actor, room, targetID string) error {
	if _, err := s.decided(ctx, actor, room, Transfer); err != nil {
		return err
	}
	m, err := s.Store.Member(ctx, room, targetID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(ErrNotFound, "%s is not a member of %s", targetID, room)
	case err != nil:
		return fmt.Errorf("read member %s of %s: %w", targetID, room, err)
	}
	if m.Role == store.RoleOwner {
		return nil
	}
	members, err := s.Store.Members(ctx, room)
	if err != nil {
		return fmt.Errorf("read members of %s: %w", room, err)
	}
	m.Role = store.RoleOwner
	if err := s.Store.PutMember(ctx, m); err != nil {
		return fmt.Errorf("make %s owner of %s: %w", targetID, room, err)
	}
	for _, old := range members {
		if old.Role == store.RoleOwner && old.UserID != targetID {
			old.Role = store.RoleAdmin
			if err := s.Store.PutMember(ctx, old); err != nil {
				return fmt.Errorf("make %s admin of %s: %w", old.UserID, room, err)
			}
			if s.Changes != nil {
				if err := s.Changes.Publish(ctx, Change{Room: room, UserID: old.UserID}); err != nil {
					return err
				}
			}
		}
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomTransfer, Room: room, UserID: targetID}))
	return s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventOwnerTransferred, Target: targetID, TargetName: m.Username, Role: store.RoleOwner},
		&Change{Room: room, UserID: targetID, Notify: true})
}

// UpdateRoom sets the title and/or topic (nil leaves one as it is).
func (s *Service) UpdateRoom(ctx context.Context, actor Actor, room string, title, topic *string) (store.Room, error) {
	a, err := s.decided(ctx, actor, room, Update)
	if err != nil {
		return store.Room{}, err
	}
	r := *a.Room
	if title != nil {
		if err := checkText("title", *title, MaxTitle); err != nil {
			return store.Room{}, err
		}
		r.Title = *title
	}
	if topic != nil {
		if err := checkText("topic", *topic, MaxTopic); err != nil {
			return store.Room{}, err
		}
		r.Topic = *topic
	}
	if err := s.Store.UpdateRoom(ctx, r); err != nil {
		return store.Room{}, fmt.Errorf("update room %s: %w", room, err)
	}
	return r, s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventRoomUpdated, Title: r.Title, Topic: r.Topic}, &Change{Room: room})
}

// DeleteRoom deletes a room (its messages stay stored); every member's
// connections are removed from it.
func (s *Service) DeleteRoom(ctx context.Context, actor Actor, room string) error {
	if room == General {
		return refuse(ErrConflict, "%s cannot be deleted", General)
	}
	if _, err := s.decided(ctx, actor, room, Delete); err != nil {
		return err
	}
	// The event first, while the room's members still read it.
	if err := s.event(ctx, room, actor, bus.RoomEvent{Event: bus.EventRoomDeleted}, nil); err != nil {
		return err
	}
	if err := s.Store.DeleteRoom(ctx, room); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete room %s: %w", room, err)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.RoomDelete, Room: room}))
	return s.event(ctx, room, actor, bus.RoomEvent{}, &Change{Room: room, Removed: RemovedDeleted})
}

// DisableUser disables a user server-wide (a server administrator's
// ban): their tokens stop working and every replica closes their
// connections.
func (s *Service) DisableUser(ctx context.Context, actor Actor, targetID string) error {
	admin, err := s.serverAdmin(ctx, actor)
	if err != nil {
		return err
	}
	if !admin {
		return refuse(ErrForbidden, "only server administrators may disable users")
	}
	if targetID == actor.UserID {
		return refuse(ErrForbidden, "you cannot do that to yourself")
	}
	u, err := s.userNamed(ctx, targetID)
	if err != nil {
		return err
	}
	u.Disabled, u.ValidAfter = true, s.now()
	if err := s.Store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("disable user %s: %w", targetID, err)
	}
	if s.Users != nil {
		s.Users.Note(u)
	}
	s.audit(ctx, actorAudit(actor, audit.Entry{Event: audit.UserBan, UserID: targetID, User: u.Username}))
	if s.Changes != nil {
		return s.Changes.Publish(ctx, Change{UserID: targetID, Removed: RemovedDisabled})
	}
	return nil
}

// SearchUsers returns up to limit users whose name starts with q: the
// invitation picker.
func (s *Service) SearchUsers(ctx context.Context, q string, limit int) ([]store.User, error) {
	if err := checkText("q", q, 64); err != nil {
		return nil, err
	}
	users, err := s.Store.SearchUsers(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return users, nil
}

// userNamed reads the user an action names: a refusal (ErrNotFound) when
// there is none.
func (s *Service) userNamed(ctx context.Context, userID string) (store.User, error) {
	u, err := s.Store.UserByID(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return u, refuse(ErrNotFound, "no user %s", userID)
	case err != nil:
		return u, fmt.Errorf("read user %s: %w", userID, err)
	}
	return u, nil
}
