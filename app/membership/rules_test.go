package membership_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
)

// The rules' outcomes, one letter each so a row of the table reads as the
// outcomes of every action in actions' order.
const (
	ok        = '.'
	notFound  = 'N'
	forbidden = 'F'
	banned    = 'B'
	muted     = 'M'
	conflict  = 'C'
	invalid   = 'I'
)

// actions is the order of the letters of a rulesCase's want.
var actions = []membership.Action{
	membership.View, membership.Join, membership.Read, membership.Send, membership.Typing,
	membership.Invite, membership.Moderate, membership.SetRole, membership.Transfer,
	membership.Update, membership.Delete, membership.LeaveRoom,
	membership.Edit, membership.React, membership.DeleteAny,
}

// outcome is the letter of a rule's answer.
func outcome(err error) rune {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, membership.ErrNotFound):
		return notFound
	case errors.Is(err, membership.ErrForbidden):
		return forbidden
	case errors.Is(err, membership.ErrBanned):
		return banned
	case errors.Is(err, membership.ErrMuted):
		return muted
	case errors.Is(err, membership.ErrConflict):
		return conflict
	case errors.Is(err, membership.ErrInvalid):
		return invalid
	}
	return '?'
}

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// who is one kind of user of a room, as the rules see them.
type who struct {
	name string
	role string // "" not a member
	// mutedUntil, banExpires: relative to now; 0 none. A ban's zero
	// expiry is "until lifted", so a ban is given by banned.
	mutedUntil  time.Duration
	banned      bool
	banExpires  time.Duration
	serverAdmin bool
}

func (w who) access(room *store.Room) membership.Access {
	a := membership.Access{Room: room, ServerAdmin: w.serverAdmin}
	if room == nil {
		return a
	}
	if w.role != "" {
		a.Member = &store.Member{Room: room.Name, UserID: "u-" + w.name, Username: w.name, Role: w.role, JoinedAt: now.Add(-time.Hour)}
		if w.mutedUntil != 0 {
			a.Member.MutedUntil = now.Add(w.mutedUntil)
		}
	}
	if w.banned {
		a.Ban = &store.Ban{Room: room.Name, UserID: "u-" + w.name, Reason: "spam", At: now.Add(-time.Hour)}
		if w.banExpires != 0 {
			a.Ban.ExpiresAt = now.Add(w.banExpires)
		}
	}
	return a
}

// The users of the matrix: the seven roles (owner, admin, member,
// readonly, non-member, banned, server admin) and the variants the rules
// treat apart (muted, an expired mute or ban, a server admin who is also a
// member or banned).
var (
	owner          = who{name: "owner", role: store.RoleOwner}
	admin          = who{name: "admin", role: store.RoleAdmin}
	member         = who{name: "member", role: store.RoleMember}
	readonly       = who{name: "readonly", role: store.RoleReadonly}
	mutedMember    = who{name: "muted", role: store.RoleMember, mutedUntil: time.Minute}
	mutedReadonly  = who{name: "mutedro", role: store.RoleReadonly, mutedUntil: time.Minute}
	mutedAdmin     = who{name: "mutedadmin", role: store.RoleAdmin, mutedUntil: time.Minute}
	expiredMute    = who{name: "wasmuted", role: store.RoleMember, mutedUntil: -time.Second}
	nonMember      = who{name: "stranger"}
	bannedUser     = who{name: "banned", banned: true}
	bannedTimed    = who{name: "bannedtimed", banned: true, banExpires: time.Hour}
	expiredBan     = who{name: "wasbanned", banned: true, banExpires: -time.Second}
	bannedMember   = who{name: "bannedmember", role: store.RoleMember, banned: true}
	serverAdmin    = who{name: "sadmin", serverAdmin: true}
	serverAdminMem = who{name: "sadminmember", role: store.RoleMember, serverAdmin: true}
	serverAdminBan = who{name: "sadminbanned", banned: true, serverAdmin: true}
)

func room(name, typ string) *store.Room {
	return &store.Room{Name: name, Type: typ, CreatedBy: "u-owner", CreatedAt: now.Add(-24 * time.Hour)}
}

// TestDecide is the rules' matrix: every action (actions' order) for every
// kind of user in every room type, and in a room that does not exist.
func TestDecide(t *testing.T) {
	public, private, direct := room("town", store.RoomPublic), room("secret", store.RoomPrivate), room("dm-a-b", store.RoomDirect)
	general := room(membership.General, store.RoomPublic)
	cases := []struct {
		room *store.Room
		who  who
		// want: view join read send typing invite moderate setrole
		// transfer update delete leave, then a message's life: edit
		// react deleteany.
		want string
	}{
		{public, owner, "...........C..."},
		{public, admin, "........F.F...."},
		{public, member, ".....FFFFFF...F"},
		{public, readonly, "...FFFFFFFF.FFF"},
		{public, mutedMember, "...MMFFFFFF.MMF"},
		{public, mutedReadonly, "...FFFFFFFF.FFF"}, // readonly first: it says more than "muted"
		{public, mutedAdmin, "...MM...F.F.MM."},    // a muted admin still moderates
		{public, expiredMute, ".....FFFFFF...F"},
		{public, nonMember, "..FFFFFFFFFFFFF"},
		{public, bannedUser, ".BBBBBBBBBBBBBB"},
		{public, bannedTimed, ".BBBBBBBBBBBBBB"},
		{public, expiredBan, "..FFFFFFFFFFFFF"},
		{public, bannedMember, ".BBBBBBBBBBBBBB"},
		{public, serverAdmin, "...........F..."},
		{public, serverAdminMem, "..............."},
		{public, serverAdminBan, "...........F..."},

		{private, owner, "...........C..."},
		{private, admin, "........F.F...."},
		{private, member, ".....FFFFFF...F"},
		{private, readonly, "...FFFFFFFF.FFF"},
		{private, mutedMember, "...MMFFFFFF.MMF"},
		{private, expiredMute, ".....FFFFFF...F"},
		{private, nonMember, "NNNNNNNNNNNNNNN"},
		// A ban removed the membership: the room is not there for them.
		{private, bannedUser, "NNNNNNNNNNNNNNN"},
		{private, bannedTimed, "NNNNNNNNNNNNNNN"},
		{private, expiredBan, "NNNNNNNNNNNNNNN"},
		{private, bannedMember, ".BBBBBBBBBBBBBB"},
		{private, serverAdmin, "...........F..."},
		{private, serverAdminMem, "..............."},
		{private, serverAdminBan, "...........F..."},

		// Direct rooms: two members, no moderation, no owner, no leaving
		// (the two are what the room is); nobody else sees them, not
		// even a server administrator.
		{direct, member, ".....FFFFFFF..F"},
		{direct, nonMember, "NNNNNNNNNNNNNNN"},
		{direct, bannedUser, "NNNNNNNNNNNNNNN"},
		{direct, expiredBan, "NNNNNNNNNNNNNNN"},
		{direct, serverAdmin, "NNNNNNNNNNNNNNN"},
		{direct, serverAdminBan, "NNNNNNNNNNNNNNN"},
		{direct, serverAdminMem, ".....FFFFFFF..F"},

		// general: everyone is a member (Load gives a member row), nobody
		// owns it, server administrators moderate it.
		{general, member, ".....FFFFFF...F"},
		{general, bannedUser, ".BBBBBBBBBBBBBB"},
		{general, serverAdminMem, "..............."},

		// No room at all: not found for everyone, server admins too.
		{nil, owner, "NNNNNNNNNNNNNNN"},
		{nil, nonMember, "NNNNNNNNNNNNNNN"},
		{nil, serverAdmin, "NNNNNNNNNNNNNNN"},
	}
	for _, tc := range cases {
		typ := "none"
		if tc.room != nil {
			typ = tc.room.Name + "(" + tc.room.Type + ")"
		}
		t.Run(typ+"/"+tc.who.name, func(t *testing.T) {
			if len(tc.want) != len(actions) {
				t.Fatalf("want %q has %d outcomes, there are %d actions", tc.want, len(tc.want), len(actions))
			}
			a := tc.who.access(tc.room)
			for i, act := range actions {
				err := membership.Decide(a, act, now)
				if got, want := outcome(err), rune(tc.want[i]); got != want {
					t.Errorf("%s: got %c (%v), want %c", act, got, err, want)
				}
				if err != nil && err.Error() == "" {
					t.Errorf("%s: refusal without a message", act)
				}
			}
		})
	}
}

// TestDecideMuteEnds: a mute refuses sends until its instant and not from
// it on, and the refusal says until when.
func TestDecideMuteEnds(t *testing.T) {
	until := now.Add(time.Minute)
	a := membership.Access{Room: room("town", store.RoomPublic),
		Member: &store.Member{Room: "town", UserID: "u", Role: store.RoleMember, MutedUntil: until}}
	err := membership.Decide(a, membership.Send, until.Add(-time.Millisecond))
	if !errors.Is(err, membership.ErrMuted) {
		t.Fatalf("send a millisecond before the mute ends: %v, want muted", err)
	}
	if want := until.Format(time.RFC3339); !strings.Contains(err.Error(), want) {
		t.Errorf("muted refusal %q does not say until %s", err, want)
	}
	for _, at := range []time.Time{until, until.Add(time.Millisecond)} {
		if err := membership.Decide(a, membership.Send, at); err != nil {
			t.Errorf("send at %s, mute until %s: %v", at, until, err)
		}
	}
}

// TestDecideBanEnds: a timed ban holds until its instant, then the user is
// a plain non-member again (Decide reads the ban's expiry itself, so a
// cached access whose ban ran out does not keep them out).
func TestDecideBanEnds(t *testing.T) {
	exp := now.Add(time.Hour)
	a := membership.Access{Room: room("town", store.RoomPublic), Ban: &store.Ban{Room: "town", UserID: "u", ExpiresAt: exp}}
	if err := membership.Decide(a, membership.Join, exp.Add(-time.Millisecond)); !errors.Is(err, membership.ErrBanned) {
		t.Errorf("join before the ban ends: %v, want banned", err)
	}
	if err := membership.Decide(a, membership.Join, exp); err != nil {
		t.Errorf("join when the ban ends: %v", err)
	}
}

// TestNotFoundIsTheSame: the refusal of a private or direct room to a
// non-member is word for word the refusal of a room that does not exist,
// so neither the code nor the text tells whether the name is taken.
func TestNotFoundIsTheSame(t *testing.T) {
	absent := membership.Decide(membership.Access{}, membership.View, now)
	for _, r := range []*store.Room{room("secret", store.RoomPrivate), room("dm-a-b", store.RoomDirect)} {
		for _, act := range actions {
			got := membership.Decide(membership.Access{Room: r}, act, now)
			if !errors.Is(got, membership.ErrNotFound) || got.Error() != absent.Error() {
				t.Errorf("%s of %s room by a non-member: %q, a room that does not exist: %q", act, r.Type, got, absent)
			}
		}
	}
}

// TestDecideOn: who may act on whom (kick, ban, mute, set role), after
// Decide allowed the action.
func TestDecideOn(t *testing.T) {
	public := room("town", store.RoomPublic)
	// Targets in this order: owner, admin, member, readonly, non-member.
	targets := []string{store.RoleOwner, store.RoleAdmin, store.RoleMember, store.RoleReadonly, ""}
	cases := []struct {
		actor who
		want  string
	}{
		{owner, "F...."}, // the owner target is the owner itself here, and the owner is never moderated
		{admin, "FF..."},
		{serverAdmin, "....."},
		{serverAdminMem, "....."},
		{mutedAdmin, "FF..."},
	}
	for _, tc := range cases {
		a := tc.actor.access(public)
		for i, role := range targets {
			err := membership.DecideOn(a, "u-"+tc.actor.name, "u-target", role)
			if got, want := outcome(err), rune(tc.want[i]); got != want {
				t.Errorf("%s on a target with role %q: got %c (%v), want %c", tc.actor.name, role, got, err, want)
			}
		}
		// Nobody acts on themself, whatever their rights.
		if err := membership.DecideOn(a, "u-"+tc.actor.name, "u-"+tc.actor.name, tc.actor.role); !errors.Is(err, membership.ErrForbidden) {
			t.Errorf("%s on themself: %v, want forbidden", tc.actor.name, err)
		}
	}
}

// TestDecideRole: which roles an actor may give.
func TestDecideRole(t *testing.T) {
	public := room("town", store.RoomPublic)
	// Roles in this order: owner, admin, member, readonly, "", bogus.
	roles := []string{store.RoleOwner, store.RoleAdmin, store.RoleMember, store.RoleReadonly, "", "superuser"}
	cases := []struct {
		actor who
		want  string
	}{
		{owner, "I...II"},
		{admin, "IF..II"},
		{serverAdmin, "I...II"},
		{serverAdminMem, "I...II"},
	}
	for _, tc := range cases {
		a := tc.actor.access(public)
		for i, role := range roles {
			err := membership.DecideRole(a, role)
			if got, want := outcome(err), rune(tc.want[i]); got != want {
				t.Errorf("%s gives role %q: got %c (%v), want %c", tc.actor.name, role, got, err, want)
			}
		}
	}
}

// TestValidRole: the four roles and nothing else.
func TestValidRole(t *testing.T) {
	for role, want := range map[string]bool{"owner": true, "admin": true, "member": true, "readonly": true, "": false, "Owner": false, "root": false} {
		if got := membership.ValidRole(role); got != want {
			t.Errorf("ValidRole(%q) = %v, want %v", role, got, want)
		}
	}
}

// TestActionNames: every action has a name for logs and refusals.
func TestActionNames(t *testing.T) {
	seen := map[string]bool{}
	for _, act := range actions {
		s := act.String()
		if s == "" || s == fmt.Sprintf("action(%d)", int(act)) || seen[s] {
			t.Errorf("action %d has name %q", int(act), s)
		}
		seen[s] = true
	}
}
