package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/config"
)

// The harness of the rooms-and-people tests (permissions_test.go): a chat
// server on one store backend, users made in its store, rooms with their
// members set up in the store, and one HTTP or WebSocket request as a user
// read back as the rules' outcome.

// backend is a store the permission tests run on.
type backend struct {
	name string
	// configure points cfg at the backend.
	configure func(t *testing.T, cfg *config.Config)
}

var backends = []backend{
	{"sqlite", func(*testing.T, *config.Config) {}},
	{"mongodb", func(t *testing.T, cfg *config.Config) { cfg.Mongo.URL = storetest.MongoURL(t) }},
}

// roomsEnv is a running chat server and its store.
type roomsEnv struct {
	*server
	store store.Store
	n     int // names made so far
}

func startRoomsEnv(t *testing.T, b backend, edit func(*config.Config)) *roomsEnv {
	t.Helper()
	cfg := chatConfig(t)
	b.configure(t, cfg)
	if edit != nil {
		edit(cfg)
	}
	s := startChat(t, cfg)
	return &roomsEnv{server: s, store: s.App.Host().Store}
}

// name returns a name no earlier call returned: rooms and users of each
// case are new, so no cached access and no rate limit carries over.
func (e *roomsEnv) name(prefix string) string {
	e.n++
	return fmt.Sprintf("%s%d", prefix, e.n)
}

// person is a user of the store and a token of theirs.
type person struct {
	id, name, token string
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// user creates a user in the store.
func (e *roomsEnv) user(t testing.TB, prefix string) person {
	t.Helper()
	u, err := e.store.CreateUser(ctxT(t), store.User{Username: e.name(prefix), PasswordHash: "x"})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return person{id: u.ID, name: u.Username, token: e.token(u.ID, u.Username)}
}

// serverAdmin creates a user and makes them a server administrator, as
// `aurora users promote` does (in the store), and waits until the
// server's users view (polled every membership.PollInterval) knows: the
// server admin may then read a private room they are not in.
func (e *roomsEnv) serverAdmin(t testing.TB) person {
	t.Helper()
	p := e.user(t, "sadmin")
	u, err := e.store.UserByID(ctxT(t), p.id)
	if err != nil {
		t.Fatal(err)
	}
	u.Admin = true
	if err := e.store.UpdateUser(ctxT(t), u); err != nil {
		t.Fatalf("promote %s: %v", p.name, err)
	}
	owner := e.user(t, "probeowner")
	probe := e.room(t, store.RoomPrivate, owner)
	eventually(t, "the server to know "+p.name+" is a server administrator", func() bool {
		st, _ := e.call(t, http.MethodGet, "/api/rooms/"+probe+"/messages", p.token, nil)
		return st == http.StatusOK
	})
	return p
}

// room creates a public or private room owned by owner in the store.
func (e *roomsEnv) room(t testing.TB, typ string, owner person) string {
	t.Helper()
	name := e.name("r")
	_, err := e.store.CreateRoom(ctxT(t), store.Room{Name: name, Type: typ, CreatedBy: owner.id},
		&store.Member{Room: name, UserID: owner.id, Username: owner.name, Role: store.RoleOwner})
	if err != nil {
		t.Fatalf("create room %s: %v", name, err)
	}
	return name
}

// direct creates the direct room of a and b in the store.
func (e *roomsEnv) direct(t testing.TB, a, b person) string {
	t.Helper()
	name := membership.DirectName(a.id, b.id)
	_, err := e.store.CreateRoom(ctxT(t), store.Room{Name: name, Type: store.RoomDirect, CreatedBy: a.id},
		&store.Member{Room: name, UserID: a.id, Username: a.name, Role: store.RoleMember})
	if err != nil {
		t.Fatalf("create direct room %s: %v", name, err)
	}
	e.member(t, name, b, store.RoleMember, time.Time{})
	return name
}

// member puts p in room with role, muted until mutedUntil (zero: not).
func (e *roomsEnv) member(t testing.TB, room string, p person, role string, mutedUntil time.Time) {
	t.Helper()
	m := store.Member{Room: room, UserID: p.id, Username: p.name, Role: role, MutedUntil: mutedUntil}
	if err := e.store.PutMember(ctxT(t), m); err != nil {
		t.Fatalf("put %s in %s: %v", p.name, room, err)
	}
}

// ban bans p from room until lifted.
func (e *roomsEnv) ban(t testing.TB, room string, p person, by person) {
	t.Helper()
	if err := e.store.PutBan(ctxT(t), store.Ban{Room: room, UserID: p.id, Reason: "spam", By: by.id}); err != nil {
		t.Fatalf("ban %s from %s: %v", p.name, room, err)
	}
}

// link stores an invite link to room by p and returns its token.
func (e *roomsEnv) link(t testing.TB, room string, by person) string {
	t.Helper()
	tok := e.name("tok-link-")
	inv := store.Invite{Token: tok, Room: room, By: by.id, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 100}
	if err := e.store.CreateInvite(ctxT(t), inv); err != nil {
		t.Fatalf("create a link to %s: %v", room, err)
	}
	return tok
}

// call does one JSON request as the token's user (none when token is "")
// and returns the status and the decoded body; every answer must be a
// JSON object, and every refusal must carry {"error"}.
func (e *roomsEnv) call(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	st, raw := e.callRaw(t, method, path, token, body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, body %q is not a JSON object", method, path, st, raw)
	}
	if st >= 300 {
		if msg, _ := v["error"].(string); msg == "" {
			t.Fatalf("%s %s: %d without {\"error\"}: %s", method, path, st, raw)
		}
	}
	return st, v
}

func (e *roomsEnv) callRaw(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %s: %d %s (a refusal is 4xx, never 5xx)", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, raw
}

// dialAs connects p and reads the welcome frame.
func (e *roomsEnv) dialAs(t testing.TB, p person) *client {
	t.Helper()
	c := e.dial(p.id, p.name)
	t.Cleanup(func() { c.ws.CloseNow() })
	return c
}

// frameOf reads frames until fn says one is the answer (skipping the
// rest: presence, typing, room events of other actions).
func frameOf(c *client, fn func(map[string]any) bool) map[string]any {
	c.t.Helper()
	for {
		if f := c.read(); fn(f) {
			return f
		}
	}
}

// errorOf reports whether f is the error frame answering clientID, and
// checks it is well formed.
func errorOf(t testing.TB, f map[string]any, clientID string) bool {
	t.Helper()
	if f["type"] != "error" {
		return false
	}
	if f["clientId"] != clientID {
		// An error frame of another request would be a bug of the test.
		t.Fatalf("error frame %v does not echo clientId %s", f, clientID)
	}
	if code, _ := f["code"].(string); code == "" {
		t.Fatalf("error frame %v has no code", f)
	}
	if msg, _ := f["message"].(string); msg == "" {
		t.Fatalf("error frame %v has no message", f)
	}
	return true
}

// wsJoin joins room and returns "" or the error frame's code and message.
func wsJoin(c *client, room, clientID string) (code, msg string) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room, "clientId": clientID})
	f := frameOf(c, func(f map[string]any) bool {
		return f["type"] == "joined" && f["room"] == room || errorOf(c.t, f, clientID)
	})
	if f["type"] == "joined" {
		return "", ""
	}
	return f["code"].(string), f["message"].(string)
}

// wsSend sends a message and returns "" once acked, or the refusal.
func wsSend(c *client, room, text, clientID string) (code, msg string) {
	c.t.Helper()
	c.send(map[string]any{"type": "message", "room": room, "text": text, "clientId": clientID})
	f := frameOf(c, func(f map[string]any) bool {
		if f["type"] == "rate_limited" && f["clientId"] == clientID {
			c.t.Fatalf("message %s rate limited at the default limits: %v", clientID, f)
		}
		return f["type"] == "ack" && f["clientId"] == clientID || errorOf(c.t, f, clientID)
	})
	if f["type"] == "ack" {
		return "", ""
	}
	return f["code"].(string), f["message"].(string)
}

// wsTyping sends a typing frame and then a ping: a refusal answers before
// the pong; "" when none came before it.
func wsTyping(c *client, room, clientID string) (code, msg string) {
	c.t.Helper()
	c.send(map[string]any{"type": "typing", "room": room, "isTyping": true, "clientId": clientID})
	c.send(map[string]any{"type": "ping"})
	// Read up to the pong, so no pong is left for the next call.
	frameOf(c, func(f map[string]any) bool {
		if errorOf(c.t, f, clientID) {
			code, msg = f["code"].(string), f["message"].(string)
		}
		return f["type"] == "pong"
	})
	return code, msg
}

// isMember reports whether the store has p in room, and with which role.
func (e *roomsEnv) isMember(t testing.TB, room string, p person) (store.Member, bool) {
	t.Helper()
	m, err := e.store.Member(ctxT(t), room, p.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return m, false
	case err != nil:
		t.Fatalf("read member %s of %s: %v", p.name, room, err)
	}
	return m, true
}

// normalize replaces the room name the caller gave in an answer, so two
// answers that differ only by echoing the caller's own input compare
// equal.
func normalize(s, room string) string { return strings.ReplaceAll(s, room, "ROOM") }

// TestUserChangesReachConnectionsInNoRoom: a connection that joined no
// room yet is still its user's: an invitation tells it rooms_changed, and
// disabling the user closes it (4003) like their joined ones.
func TestUserChangesReachConnectionsInNoRoom(t *testing.T) {
	e := startRoomsEnv(t, backends[0], nil)
	owner, guest := e.user(t, "owner"), e.user(t, "guest")
	sadmin := e.serverAdmin(t)
	room := e.room(t, store.RoomPrivate, owner)
	idle, joined := e.dialAs(t, guest), e.dialAs(t, guest)
	// A connection starts in general (as AuroraChat's did): leaving it
	// leaves idle in no room.
	for _, c := range []*client{idle, joined} {
		c.send(map[string]any{"type": "leave", "room": membership.General})
		c.next("left", "message", "room_event")
	}
	joined.join(membership.General)

	if code, body := e.call(t, http.MethodPost, "/api/rooms/"+room+"/invites", owner.token, map[string]any{"username": guest.name}); code != http.StatusCreated {
		t.Fatalf("invite: %d %v", code, body)
	}
	for _, c := range []*client{idle, joined} {
		if f := c.next("rooms_changed", "room_event", "message"); f["room"] != room {
			t.Errorf("rooms_changed %v, want room %s", f, room)
		}
	}
	if code, body := e.call(t, http.MethodPost, "/api/users/"+guest.id+"/disable", sadmin.token, nil); code != http.StatusOK {
		t.Fatalf("disable: %d %v", code, body)
	}
	for name, c := range map[string]*client{"in no room": idle, "in general": joined} {
		if got := c.closeStatus(); got != closeRevoked {
			t.Errorf("the connection %s closed with %v, want %v", name, got, closeRevoked)
		}
	}
}
