package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// The permission matrix of issue 12: every action, over real WebSockets
// and real HTTP against the running chat role, for every role in every
// room type, on SQLite and on MongoDB (FerretDB) alike. The rules
// themselves are membership.Decide's (app/membership/rules_test.go tests
// them as a table); this test proves the gateway and the HTTP API apply
// them, answer each refusal with its documented code, and change nothing
// when they refuse.

// roles is the order of the letters of a permAction's want: the issue's
// seven roles (owner, admin, member, readonly, non-member, banned, server
// admin) and a muted member. In a direct room only "member" (and the
// target, the other member) are members; the others are users of
// elsewhere, so for them a direct room is a room of others.
var roles = []string{"owner", "admin", "member", "readonly", "muted", "stranger", "banned", "sadmin"}

// roomTypes is the order of a permAction's want.
var roomTypes = []string{store.RoomPublic, store.RoomPrivate, store.RoomDirect}

// Outcomes (letters of want): allowed, or the documented refusal.
const (
	allowed     = '.'
	isNotFound  = 'N' // HTTP 404, WS not_found
	isForbidden = 'F' // HTTP 403, WS forbidden
	isBanned    = 'B' // HTTP 403 "...banned...", WS banned
	isMuted     = 'M' // WS muted
	isConflict  = 'C' // HTTP 409
	isInvalid   = 'I' // HTTP 400
	notJoined   = 'J' // WS not_member: a message or typing of a room the connection could not join
	notApplic   = '-' // the action has no such case
)

// fixture is one case's room and people, all new.
type fixture struct {
	typ    string
	room   string
	people map[string]person
	// target is a plain member every moderation action is aimed at;
	// invitee is a user in no room; link is an invite link to the room
	// made by its owner (none for a direct room).
	target, invitee person
	link            string
}

// newFixture makes the case's room, with the shared users in their roles
// there and a member and target of its own (a direct room is the room of
// a pair of users, so each case needs a new pair). Every grant is of the
// new room only, so no case sees another's.
func newFixture(t *testing.T, e *roomsEnv, typ string, shared map[string]person) *fixture {
	t.Helper()
	f := &fixture{typ: typ, people: map[string]person{}, invitee: shared["invitee"]}
	for r, p := range shared {
		f.people[r] = p
	}
	f.people["member"], f.target = e.user(t, "member"), e.user(t, "target")
	p := f.people
	if typ == store.RoomDirect {
		f.room = e.direct(t, p["member"], f.target)
		return f
	}
	f.room = e.room(t, typ, p["owner"])
	e.member(t, f.room, p["admin"], store.RoleAdmin, time.Time{})
	e.member(t, f.room, p["member"], store.RoleMember, time.Time{})
	e.member(t, f.room, p["readonly"], store.RoleReadonly, time.Time{})
	e.member(t, f.room, p["muted"], store.RoleMember, time.Now().Add(time.Hour))
	e.member(t, f.room, f.target, store.RoleMember, time.Time{})
	e.ban(t, f.room, p["banned"], p["owner"])
	f.link = e.link(t, f.room, p["owner"])
	return f
}

// result is what one request answered: its outcome letter and the answer
// itself (status or code, and text), which TestPermissionMatrix compares
// between a hidden room and one that does not exist.
type result struct {
	letter rune
	raw    string
	body   map[string]any
}

func httpResult(t *testing.T, e *roomsEnv, method, path string, actor person, body any) result {
	t.Helper()
	st, raw := e.callRaw(t, method, path, actor.token, body)
	r := result{raw: fmt.Sprintf("%d %s", st, raw)}
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("%s %s: %d, body %q is not a JSON object", method, path, st, raw)
	}
	r.body = b
	msg, _ := b["error"].(string)
	switch {
	case st == http.StatusOK || st == http.StatusCreated:
		r.letter = allowed
	case st == http.StatusNotFound:
		r.letter = isNotFound
	case st == http.StatusForbidden && strings.Contains(msg, "banned"):
		r.letter = isBanned
	case st == http.StatusForbidden:
		r.letter = isForbidden
	case st == http.StatusConflict:
		r.letter = isConflict
	case st == http.StatusBadRequest:
		r.letter = isInvalid
	default:
		r.letter = '?'
	}
	if st >= 300 && msg == "" {
		t.Fatalf("%s %s: %d without {\"error\"}: %s", method, path, st, raw)
	}
	return r
}

func wsResult(code, msg string) result {
	r := result{raw: code + " " + msg}
	switch code {
	case "":
		r.letter = allowed
	case codeNotFound:
		r.letter = isNotFound
	case codeForbidden:
		r.letter = isForbidden
	case codeBanned:
		r.letter = isBanned
	case codeMuted:
		r.letter = isMuted
	case codeNotMember:
		r.letter = notJoined
	default:
		r.letter = '?'
	}
	return r
}

// permAction is one action of the matrix.
type permAction struct {
	name string
	// want: per room type (roomTypes' order), the outcome for each role
	// (roles' order).
	want [3]string
	// run does the action as actor in room (f.room, or a room that does
	// not exist for the comparison).
	run func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result
	// effect checks an allowed action did what it says.
	effect func(t *testing.T, e *roomsEnv, f *fixture, actor person, r result)
	// hiddenLikeAbsent: the answer of a room the actor may not see is
	// compared with that of a room that does not exist (not for actions
	// that create a room of an unknown name: joins, under
	// chat.create_on_join, which TestHiddenRoomLooksAbsent covers).
	hiddenLikeAbsent bool
}

func path(room, rest string) string { return "/api/rooms/" + room + rest }

var permActions = []permAction{
	{
		name: "ws join",
		want: [3]string{"......B.", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			c := e.dialAs(t, actor)
			return wsResult(wsJoin(c, room, "j1"))
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, _ result) {
			if actor == f.people["stranger"] {
				if m, ok := e.isMember(t, f.room, actor); !ok || m.Role != store.RoleMember {
					t.Errorf("a stranger's join of a public room left membership %v %v, want member", m, ok)
				}
			}
		},
	},
	{
		name: "ws message",
		want: [3]string{"...FM.J.", "...FMJJ.", "JJ.JJJJJ"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			c := e.dialAs(t, actor)
			// A refused join leaves the connection out of the room: the
			// message is then one of a room it is not in (not_member).
			wsJoin(c, room, "j1")
			return wsResult(wsSend(c, room, "hello", "m1"))
		},
	},
	{
		name: "ws typing",
		want: [3]string{"...FM.J.", "...FMJJ.", "JJ.JJJJJ"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			// The target, a member, watches for the typing frame.
			watcher := e.dialAs(t, f.target)
			if code, msg := wsJoin(watcher, f.room, "w1"); code != "" {
				t.Fatalf("the target cannot join %s: %s %s", f.room, code, msg)
			}
			c := e.dialAs(t, actor)
			wsJoin(c, room, "j1")
			r := wsResult(wsTyping(c, room, "t1"))
			if r.letter == allowed {
				watcher.Expect("typing of "+actor.name, func(fr map[string]any) bool {
					return fr["type"] == "typing" && fr["room"] == f.room && fr["userId"] == actor.id && fr["isTyping"] == true
				})
			}
			return r
		},
	},
	{
		name: "history GET",
		want: [3]string{".....FB.", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodGet, path(room, "/messages"), actor, nil)
		},
		effect: func(t *testing.T, _ *roomsEnv, _ *fixture, _ person, r result) {
			if _, ok := r.body["messages"].([]any); !ok {
				t.Errorf("history answer %s has no messages list", r.raw)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "presence GET",
		want: [3]string{".....FB.", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodGet, path(room, "/presence"), actor, nil)
		},
		effect: func(t *testing.T, _ *roomsEnv, _ *fixture, _ person, r result) {
			if _, ok := r.body["members"].([]any); !ok {
				t.Errorf("presence answer %s has no members list", r.raw)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		// A new room of the room type, named by the actor: anyone may
		// create one; a direct room is not created this way.
		name: "create",
		want: [3]string{"........", "........", "IIIIIIII"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, _ string) result {
			r := httpResult(t, e, http.MethodPost, "/api/rooms", actor, map[string]any{"name": e.name("new"), "type": f.typ, "topic": "t"})
			return r
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, r result) {
			room, _ := r.body["room"].(map[string]any)
			name, _ := room["name"].(string)
			if room["type"] != f.typ || room["topic"] != "t" || room["createdBy"] != actor.id || room["createdAt"] == "" {
				t.Fatalf("created %s", r.raw)
			}
			if m, ok := e.isMember(t, name, actor); !ok || m.Role != store.RoleOwner {
				t.Errorf("the creator of %s is %v %v, want owner", name, m, ok)
			}
		},
	},
	{
		name: "get",
		want: [3]string{"........", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodGet, path(room, ""), actor, nil)
		},
		effect: func(t *testing.T, _ *roomsEnv, f *fixture, _ person, r result) {
			if room, _ := r.body["room"].(map[string]any); room["name"] != f.room || room["type"] != f.typ {
				t.Errorf("got %s, want room %s of type %s", r.raw, f.room, f.typ)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "update",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPatch, path(room, ""), actor, map[string]any{"topic": "new topic", "title": "New"})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			r, err := e.store.Room(ctxT(t), f.room)
			if err != nil || r.Topic != "new topic" || r.Title != "New" {
				t.Errorf("after the update the room is %+v, %v", r, err)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "delete",
		want: [3]string{".FFFFFB.", ".FFFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodDelete, path(room, ""), actor, nil)
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if _, err := e.store.Room(ctxT(t), f.room); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after the delete, reading the room: %v, want not found", err)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "join",
		want: [3]string{"......B.", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/join"), actor, nil)
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, r result) {
			if room, _ := r.body["room"].(map[string]any); room["name"] != f.room {
				t.Errorf("join answered %s", r.raw)
			}
			_, ok := e.isMember(t, f.room, actor)
			if want := f.typ == store.RoomPublic || actor != f.people["sadmin"]; ok != want {
				t.Errorf("after the join, %s member of %s: %v, want %v", actor.name, f.room, ok, want)
			}
		},
	},
	{
		name: "leave",
		// A direct room cannot be left: its two members are the room.
		want: [3]string{"C....FBF", "C....NNF", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/leave"), actor, nil)
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, _ result) {
			if _, ok := e.isMember(t, f.room, actor); ok {
				t.Errorf("%s still a member of %s after leaving", actor.name, f.room)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "members",
		want: [3]string{".....FB.", ".....NN.", "NN.NNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodGet, path(room, "/members"), actor, nil)
		},
		effect: func(t *testing.T, _ *roomsEnv, f *fixture, _ person, r result) {
			ms, _ := r.body["members"].([]any)
			if !strings.Contains(r.raw, f.target.id) || len(ms) < 2 {
				t.Errorf("members %s do not list the target %s", r.raw, f.target.id)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "invite user",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/invites"), actor, map[string]any{"username": f.invitee.name})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, r result) {
			inv, _ := r.body["invite"].(map[string]any)
			tok, _ := inv["token"].(string)
			got, err := e.store.Invite(ctxT(t), tok)
			if err != nil || got.UserID != f.invitee.id || got.Room != f.room {
				t.Errorf("invitation %s stored as %+v, %v", r.raw, got, err)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "invite link",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/invites"), actor, map[string]any{"maxUses": 5, "expiresIn": 3600})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, r result) {
			inv, _ := r.body["invite"].(map[string]any)
			tok, _ := inv["token"].(string)
			got, err := e.store.Invite(ctxT(t), tok)
			if err != nil || got.UserID != "" || got.MaxUses != 5 || got.Room != f.room || time.Until(got.ExpiresAt) > time.Hour {
				t.Errorf("link %s stored as %+v, %v", r.raw, got, err)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		// The owner's link to the room, accepted by the actor: a link
		// lets anyone not banned in. Direct rooms have no links
		// (creating one is refused above).
		name: "accept",
		want: [3]string{"......B.", "......B.", "--------"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, _ string) result {
			return httpResult(t, e, http.MethodPost, "/api/invites/"+f.link+"/accept", actor, nil)
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, r result) {
			if room, _ := r.body["room"].(map[string]any); room["name"] != f.room {
				t.Errorf("accept answered %s", r.raw)
			}
			if _, ok := e.isMember(t, f.room, actor); !ok {
				t.Errorf("%s accepted a link to %s and is not a member", actor.name, f.room)
			}
		},
	},
	{
		name: "kick",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/kick"), actor, map[string]any{"userId": f.target.id, "reason": "off topic"})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if _, ok := e.isMember(t, f.room, f.target); ok {
				t.Errorf("the target is still a member of %s after the kick", f.room)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "ban",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/bans"), actor,
				map[string]any{"userId": f.target.id, "reason": "spam", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			b, err := e.store.Ban(ctxT(t), f.room, f.target.id)
			if err != nil || !b.Active(time.Now()) || b.Reason != "spam" {
				t.Errorf("the target's ban of %s is %+v, %v", f.room, b, err)
			}
			if _, ok := e.isMember(t, f.room, f.target); ok {
				t.Errorf("the banned target is still a member of %s", f.room)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "unban",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodDelete, path(room, "/bans/"+f.people["banned"].id), actor, nil)
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if _, err := e.store.Ban(ctxT(t), f.room, f.people["banned"].id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after the unban, reading the ban: %v, want not found", err)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "mute",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPost, path(room, "/mutes"), actor,
				map[string]any{"userId": f.target.id, "until": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if m, ok := e.isMember(t, f.room, f.target); !ok || !m.MutedUntil.After(time.Now()) {
				t.Errorf("after the mute the target is %+v %v", m, ok)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "set role",
		want: [3]string{"..FFFFB.", "..FFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPut, path(room, "/members/"+f.target.id), actor, map[string]any{"role": store.RoleReadonly})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if m, ok := e.isMember(t, f.room, f.target); !ok || m.Role != store.RoleReadonly {
				t.Errorf("after the role change the target is %+v %v, want readonly", m, ok)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		name: "transfer",
		want: [3]string{".FFFFFB.", ".FFFFNN.", "NNFNNNNN"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, room string) result {
			return httpResult(t, e, http.MethodPut, path(room, "/members/"+f.target.id), actor, map[string]any{"role": store.RoleOwner})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, _ person, _ result) {
			if m, ok := e.isMember(t, f.room, f.target); !ok || m.Role != store.RoleOwner {
				t.Errorf("after the transfer the target is %+v %v, want owner", m, ok)
			}
			if m, ok := e.isMember(t, f.room, f.people["owner"]); !ok || m.Role != store.RoleAdmin {
				t.Errorf("after the transfer the old owner is %+v %v, want admin", m, ok)
			}
		},
		hiddenLikeAbsent: true,
	},
	{
		// The actor opens a direct room with the target (the room type
		// does not matter: in the direct fixture, member and target
		// have theirs already, and get it back).
		name: "dm",
		want: [3]string{"........", "........", "........"},
		run: func(t *testing.T, e *roomsEnv, f *fixture, actor person, _ string) result {
			return httpResult(t, e, http.MethodPost, "/api/dm", actor, map[string]any{"username": f.target.name})
		},
		effect: func(t *testing.T, e *roomsEnv, f *fixture, actor person, r result) {
			room, _ := r.body["room"].(map[string]any)
			want := membership.DirectName(actor.id, f.target.id)
			peer, _ := room["peer"].(map[string]any)
			if room["name"] != want || room["type"] != store.RoomDirect || peer["userId"] != f.target.id || peer["username"] != f.target.name {
				t.Fatalf("dm answered %s, want room %s with peer %s", r.raw, want, f.target.name)
			}
			// The same room for the other user, and again for the first.
			for _, p := range []person{f.target, actor} {
				st, body := e.call(t, http.MethodPost, "/api/dm", p.token, map[string]any{"username": otherName(p, actor, f.target)})
				if again, _ := body["room"].(map[string]any); st != http.StatusOK || again["name"] != want {
					t.Errorf("dm as %s: %d %v, want room %s", p.name, st, body, want)
				}
			}
			for _, p := range []person{f.target, actor} {
				if m, ok := e.isMember(t, want, p); !ok || m.Role != store.RoleMember {
					t.Errorf("%s in %s: %+v %v, want member", p.name, want, m, ok)
				}
			}
		},
	},
}

func otherName(p, a, b person) string {
	if p == a {
		return b.name
	}
	return a.name
}

// unchanged checks a refused action changed nothing: the target is still
// a plain member, the banned user still banned, the room still there
// with no topic.
func unchanged(t *testing.T, e *roomsEnv, f *fixture) {
	t.Helper()
	if m, ok := e.isMember(t, f.room, f.target); !ok || m.Role != store.RoleMember || !m.MutedUntil.IsZero() {
		t.Errorf("after a refusal the target is %+v %v, want a plain member", m, ok)
	}
	r, err := e.store.Room(ctxT(t), f.room)
	if err != nil || r.Topic != "" || r.Title != "" {
		t.Errorf("after a refusal the room is %+v, %v", r, err)
	}
	if f.typ == store.RoomDirect {
		return
	}
	if b, err := e.store.Ban(ctxT(t), f.room, f.people["banned"].id); err != nil || !b.Active(time.Now()) {
		t.Errorf("after a refusal the ban is %+v, %v", b, err)
	}
	invs, err := e.store.Invites(ctxT(t), f.room)
	if err != nil || len(invs) != 1 {
		t.Errorf("after a refusal the room's invitations are %+v, %v; want the one link", invs, err)
	}
}

// TestPermissionMatrix runs every action for every role in every room
// type, each case with a room and people of its own, on both stores.
func TestPermissionMatrix(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, act := range permActions {
				t.Run(strings.ReplaceAll(act.name, " ", "_"), func(t *testing.T) {
					// A server of its own per action: FerretDB evaluates
					// filters over whole collections, so one store for all
					// 500 cases makes each query slower than the last.
					e := startRoomsEnv(t, b, nil)
					// Users in no room yet, given their roles in each
					// case's room (making nine users a case is most of
					// the time the matrix takes on MongoDB).
					shared := map[string]person{"sadmin": e.serverAdmin(t), "invitee": e.user(t, "invitee")}
					for _, r := range roles {
						if _, ok := shared[r]; !ok && r != "member" {
							shared[r] = e.user(t, r)
						}
					}
					for ti, typ := range roomTypes {
						for ri, role := range roles {
							want := rune(act.want[ti][ri])
							if want == notApplic {
								continue
							}
							t.Run(typ+"/"+role, func(t *testing.T) {
								f := newFixture(t, e, typ, shared)
								actor := f.people[role]
								got := act.run(t, e, f, actor, f.room)
								if got.letter != want {
									t.Fatalf("got %c (%s), want %c", got.letter, got.raw, want)
								}
								switch {
								case got.letter == allowed && act.effect != nil:
									act.effect(t, e, f, actor, got)
								case got.letter != allowed && act.name != "create" && act.name != "dm":
									unchanged(t, e, f)
								}
								if got.letter == isNotFound && act.hiddenLikeAbsent {
									absent := e.name("absent")
									if typ == store.RoomDirect {
										absent = membership.DirectPrefix + absent
									}
									other := act.run(t, e, f, actor, absent)
									if a, b := normalize(got.raw, f.room), normalize(other.raw, absent); a != b {
										t.Errorf("a %s room of others answers %q, a room that does not exist %q", typ, a, b)
									}
								}
							})
						}
					}
				})
			}
		})
	}
}

// TestHiddenRoomLooksAbsent: with chat.create_on_join off (a join of an
// unknown name is then refused, not a new room), joining a private or
// direct room of others over WebSocket and HTTP, and then sending and
// typing in it, answers exactly what a room that does not exist answers.
// With create_on_join on (the default), a dm- name is never created by a
// join, so it too reads as not found.
func TestHiddenRoomLooksAbsent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, createOnJoin := range []bool{false, true} {
				t.Run(fmt.Sprintf("create_on_join=%v", createOnJoin), func(t *testing.T) {
					// The one setting this test changes from the default:
					// a join of an unknown name would otherwise create it.
					e := startRoomsEnv(t, b, func(c *config.Config) { c.Chat.CreateOnJoin = createOnJoin })
					owner, peer, stranger := e.user(t, "owner"), e.user(t, "peer"), e.user(t, "stranger")
					hidden := map[string][2]string{
						store.RoomDirect: {e.direct(t, owner, peer), membership.DirectPrefix + e.name("absent")},
					}
					if !createOnJoin {
						hidden[store.RoomPrivate] = [2]string{e.room(t, store.RoomPrivate, owner), e.name("absent")}
					}
					for typ, rooms := range hidden {
						var answers [2]string
						for i, room := range rooms {
							c := e.dialAs(t, stranger)
							var parts []string
							code, msg := wsJoin(c, room, "j")
							parts = append(parts, code+" "+msg)
							code, msg = wsSend(c, room, "hi", "m")
							parts = append(parts, code+" "+msg)
							code, msg = wsTyping(c, room, "t")
							parts = append(parts, code+" "+msg)
							st, raw := e.callRaw(t, http.MethodPost, path(room, "/join"), stranger.token, nil)
							parts = append(parts, fmt.Sprintf("%d %s", st, raw))
							answers[i] = normalize(strings.Join(parts, " | "), room)
							if !strings.HasPrefix(answers[i], codeNotFound+" ") {
								t.Errorf("%s: the join of %s answered %s, want %s", typ, room, answers[i], codeNotFound)
							}
						}
						if answers[0] != answers[1] {
							t.Errorf("%s room of others: %q; a room that does not exist: %q", typ, answers[0], answers[1])
						}
						if _, err := e.store.Room(ctxT(t), rooms[1]); !errors.Is(err, store.ErrNotFound) {
							t.Errorf("the refused joins of %s created it: %v", rooms[1], err)
						}
					}
				})
			}
		})
	}
}

// TestRefusedTypingKeepsConnection: a muted or readonly member's client
// that keeps sending typing frames as they type is answered each time,
// and stays connected: a refusal of the rules is not a malformed frame,
// and must not count toward the invalid-frame limit (20 in 10 s) that
// closes abusive connections with 1008.
func TestRefusedTypingKeepsConnection(t *testing.T) {
	e := startRoomsEnv(t, backends[0], nil)
	owner := e.user(t, "owner")
	room := e.room(t, store.RoomPublic, owner)
	for _, tc := range []struct {
		role       string
		mutedUntil time.Time
		code       string
	}{
		{store.RoleMember, time.Now().Add(time.Hour), codeMuted},
		{store.RoleReadonly, time.Time{}, codeForbidden},
	} {
		u := e.user(t, tc.role)
		e.member(t, room, u, tc.role, tc.mutedUntil)
		c := e.dialAs(t, u)
		if code, msg := wsJoin(c, room, "j"); code != "" {
			t.Fatalf("%s joins: %s %s", tc.role, code, msg)
		}
		// 25 typing frames: what a client that sends one per keystroke
		// sends in under 10 s of typing (the invalid-frame window), sent
		// here back to back.
		for i := range 25 {
			cid := fmt.Sprintf("k%d", i)
			if code, _ := wsTyping(c, room, cid); code != tc.code {
				t.Fatalf("%s typing frame %d: %q, want %s", tc.role, i, code, tc.code)
			}
		}
	}
}

// TestRoomAPIBadInput: every way a request to the rooms API can be wrong
// is answered with its status and {"error"}, never a 5xx.
func TestRoomAPIBadInput(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := startRoomsEnv(t, b, nil)
			owner, member, stranger, banned := e.user(t, "owner"), e.user(t, "member"), e.user(t, "stranger"), e.user(t, "banned")
			sadmin := e.serverAdmin(t)
			room := e.room(t, store.RoomPublic, owner)
			e.member(t, room, member, store.RoleMember, time.Time{})
			e.ban(t, room, banned, owner)
			spent := e.name("tok-spent-")
			if err := e.store.CreateInvite(ctxT(t), store.Invite{Token: spent, Room: room, By: owner.id, MaxUses: 1, Uses: 1}); err != nil {
				t.Fatal(err)
			}
			direct := e.name("tok-direct-")
			if err := e.store.CreateInvite(ctxT(t), store.Invite{Token: direct, Room: room, UserID: member.id, By: owner.id, MaxUses: 1}); err != nil {
				t.Fatal(err)
			}
			past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			long := func(n int) string { return strings.Repeat("x", n) }
			r := func(rest string) string { return path(room, rest) }
			cases := []struct {
				name         string
				method, path string
				as           person
				body         any
				want         int
			}{
				{"create: no name", http.MethodPost, "/api/rooms", owner, map[string]any{"type": "public"}, 400},
				{"create: bad name", http.MethodPost, "/api/rooms", owner, map[string]any{"name": "Bad Name!"}, 400},
				{"create: name too long", http.MethodPost, "/api/rooms", owner, map[string]any{"name": long(65)}, 400},
				{"create: dm- name", http.MethodPost, "/api/rooms", owner, map[string]any{"name": "dm-mine"}, 400},
				{"create: bad type", http.MethodPost, "/api/rooms", owner, map[string]any{"name": e.name("n"), "type": "secret"}, 400},
				{"create: topic too long", http.MethodPost, "/api/rooms", owner, map[string]any{"name": e.name("n"), "topic": long(251)}, 400},
				{"create: name taken", http.MethodPost, "/api/rooms", stranger, map[string]any{"name": room}, 409},
				{"create: general taken", http.MethodPost, "/api/rooms", stranger, map[string]any{"name": membership.General}, 409},
				{"create: unknown field", http.MethodPost, "/api/rooms", owner, map[string]any{"name": e.name("n"), "owner": "me"}, 400},
				{"create: wrong field type", http.MethodPost, "/api/rooms", owner, map[string]any{"name": 5}, 400},
				{"create: not an object", http.MethodPost, "/api/rooms", owner, []string{"x"}, 400},
				{"create: too large", http.MethodPost, "/api/rooms", owner, map[string]any{"name": e.name("n"), "topic": long(17 << 10)}, 413},
				{"room: bad name in path", http.MethodGet, "/api/rooms/BAD!", owner, nil, 400},
				{"members: bad name in path", http.MethodGet, "/api/rooms/BAD!/members", owner, nil, 400},
				{"history: bad name in path", http.MethodGet, "/api/rooms/BAD!/messages", owner, nil, 400},
				{"presence: bad name in path", http.MethodGet, "/api/rooms/BAD!/presence", owner, nil, 400},
				{"update: title too long", http.MethodPatch, r(""), owner, map[string]any{"title": long(65)}, 400},
				{"update: topic too long", http.MethodPatch, r(""), owner, map[string]any{"topic": long(251)}, 400},
				{"delete general", http.MethodDelete, path(membership.General, ""), sadmin, nil, 409},
				{"leave general", http.MethodPost, path(membership.General, "/leave"), member, nil, 409},
				{"role: unknown", http.MethodPut, r("/members/" + member.id), owner, map[string]any{"role": "superuser"}, 400},
				{"role: missing", http.MethodPut, r("/members/" + member.id), owner, map[string]any{}, 400},
				{"role: not a member", http.MethodPut, r("/members/" + stranger.id), owner, map[string]any{"role": "admin"}, 404},
				{"role: of oneself", http.MethodPut, r("/members/" + owner.id), owner, map[string]any{"role": "member"}, 403},
				{"kick: no userId", http.MethodPost, r("/kick"), owner, map[string]any{"reason": "x"}, 400},
				{"kick: not a member", http.MethodPost, r("/kick"), owner, map[string]any{"userId": stranger.id}, 404},
				{"kick: oneself", http.MethodPost, r("/kick"), owner, map[string]any{"userId": owner.id}, 403},
				{"kick: reason too long", http.MethodPost, r("/kick"), owner, map[string]any{"userId": member.id, "reason": long(501)}, 400},
				{"kick: from general", http.MethodPost, path(membership.General, "/kick"), sadmin, map[string]any{"userId": member.id}, 409},
				{"ban: no userId", http.MethodPost, r("/bans"), owner, map[string]any{}, 400},
				{"ban: bad expiresAt", http.MethodPost, r("/bans"), owner, map[string]any{"userId": member.id, "expiresAt": "tomorrow"}, 400},
				{"ban: expiresAt past", http.MethodPost, r("/bans"), owner, map[string]any{"userId": member.id, "expiresAt": past}, 400},
				{"ban: unknown user", http.MethodPost, r("/bans"), owner, map[string]any{"userId": "0123456789abcdef01234567"}, 404},
				{"ban: oneself", http.MethodPost, r("/bans"), owner, map[string]any{"userId": owner.id}, 403},
				{"unban: not banned", http.MethodDelete, r("/bans/" + member.id), owner, nil, 404},
				{"mute: no userId", http.MethodPost, r("/mutes"), owner, map[string]any{"until": past}, 400},
				{"mute: bad until", http.MethodPost, r("/mutes"), owner, map[string]any{"userId": member.id, "until": "soon"}, 400},
				{"mute: not a member", http.MethodPost, r("/mutes"), owner, map[string]any{"userId": stranger.id, "until": past}, 404},
				{"invite: both kinds", http.MethodPost, r("/invites"), owner, map[string]any{"username": stranger.name, "maxUses": 1}, 400},
				{"invite: unknown user", http.MethodPost, r("/invites"), owner, map[string]any{"username": "nobody-at-all"}, 404},
				{"invite: a member", http.MethodPost, r("/invites"), owner, map[string]any{"username": member.name}, 409},
				{"invite: a banned user", http.MethodPost, r("/invites"), owner, map[string]any{"username": banned.name}, 403},
				{"link: maxUses negative", http.MethodPost, r("/invites"), owner, map[string]any{"maxUses": -1}, 400},
				{"link: maxUses too many", http.MethodPost, r("/invites"), owner, map[string]any{"maxUses": membership.MaxLinkUses + 1}, 400},
				{"link: expiresIn too long", http.MethodPost, r("/invites"), owner, map[string]any{"expiresIn": 31 * 24 * 3600}, 400},
				{"link: expiresIn negative", http.MethodPost, r("/invites"), owner, map[string]any{"expiresIn": -1}, 400},
				{"accept: unknown token", http.MethodPost, "/api/invites/nosuchtoken/accept", stranger, nil, 404},
				{"accept: another's invitation", http.MethodPost, "/api/invites/" + direct + "/accept", stranger, nil, 404},
				{"accept: used up", http.MethodPost, "/api/invites/" + spent + "/accept", stranger, nil, 409},
				{"decline: a link", http.MethodPost, "/api/invites/" + spent + "/decline", stranger, nil, 400},
				{"decline: unknown token", http.MethodPost, "/api/invites/nosuchtoken/decline", stranger, nil, 404},
				{"revoke: unknown token", http.MethodDelete, "/api/invites/nosuchtoken", owner, nil, 404},
				{"revoke: not an admin", http.MethodDelete, "/api/invites/" + spent, member, nil, 403},
				{"dm: no username", http.MethodPost, "/api/dm", owner, map[string]any{}, 400},
				{"dm: oneself", http.MethodPost, "/api/dm", owner, map[string]any{"username": owner.name}, 400},
				{"dm: unknown user", http.MethodPost, "/api/dm", owner, map[string]any{"username": "nobody-at-all"}, 404},
				{"directory: limit 0", http.MethodGet, "/api/rooms/directory?limit=0", owner, nil, 400},
				{"directory: limit not a number", http.MethodGet, "/api/rooms/directory?limit=ten", owner, nil, 400},
				{"directory: limit too high", http.MethodGet, "/api/rooms/directory?limit=101", owner, nil, 400},
				{"disable: not a server admin", http.MethodPost, "/api/users/" + member.id + "/disable", owner, nil, 403},
				{"disable: oneself", http.MethodPost, "/api/users/" + sadmin.id + "/disable", sadmin, nil, 403},
				{"disable: unknown user", http.MethodPost, "/api/users/0123456789abcdef01234567/disable", sadmin, nil, 404},
				{"no token", http.MethodGet, "/api/rooms", person{}, nil, 401},
				{"bad token", http.MethodPost, "/api/rooms", person{token: "not.a.jwt"}, map[string]any{"name": e.name("n")}, 401},
			}
			for _, tc := range cases {
				st, body := e.call(t, tc.method, tc.path, tc.as.token, tc.body)
				if st != tc.want {
					t.Errorf("%s: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, st, body, tc.want)
				}
			}
			// Nothing above changed the room.
			if m, ok := e.isMember(t, room, member); !ok || m.Role != store.RoleMember || !m.MutedUntil.IsZero() {
				t.Errorf("after the bad requests the member is %+v %v", m, ok)
			}
		})
	}
}
