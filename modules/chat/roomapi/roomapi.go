// Package roomapi is the chat role's HTTP API of rooms and people: rooms,
// the directory, direct rooms, invitations, members and moderation
// (docs/protocol.md, "Rooms and people"). Every handler verifies the
// bearer token, decodes a bounded JSON body, and hands the action to
// membership.Service, whose refusals become 400, 403, 404 or 409 with
// {"error"}; nothing here decides who may do what.
package roomapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
)

// maxBody bounds request bodies: every one is a few short fields.
const maxBody = 16 << 10

// Page sizes of the directory and the user search.
const (
	defaultPage = 50
	maxPage     = 100
	userPage    = 20
)

// timeout bounds the store and Redis work of one request.
const timeout = 5 * time.Second

// Verifier reads and checks a request's bearer token.
type Verifier func(*http.Request) (token.Claims, error)

type api struct {
	svc    *membership.Service
	counts *Counts
	verify Verifier
	log    *slog.Logger
}

// Register adds the routes to mux. counts, when not nil, gives GET
// /api/rooms its unread and mention counts (nil: they read 0).
func Register(mux *http.ServeMux, svc *membership.Service, counts *Counts, verify Verifier, log *slog.Logger) {
	a := &api{svc: svc, counts: counts, verify: verify, log: log}
	routes := []struct {
		pattern string
		h       func(context.Context, membership.Actor, *http.Request) (int, any, error)
	}{
		{"POST /api/rooms", a.createRoom},
		{"GET /api/rooms", a.myRooms},
		{"GET /api/rooms/directory", a.directory},
		{"GET /api/rooms/{room}", a.room},
		{"PATCH /api/rooms/{room}", a.updateRoom},
		{"DELETE /api/rooms/{room}", a.deleteRoom},
		{"POST /api/rooms/{room}/join", a.join},
		{"POST /api/rooms/{room}/leave", a.leave},
		{"GET /api/rooms/{room}/members", a.members},
		{"PUT /api/rooms/{room}/members/{userId}", a.setRole},
		{"POST /api/rooms/{room}/kick", a.kick},
		{"GET /api/rooms/{room}/bans", a.bans},
		{"POST /api/rooms/{room}/bans", a.ban},
		{"DELETE /api/rooms/{room}/bans/{userId}", a.unban},
		{"POST /api/rooms/{room}/mutes", a.mute},
		{"GET /api/rooms/{room}/invites", a.roomInvites},
		{"POST /api/rooms/{room}/invites", a.invite},
		{"GET /api/invites", a.myInvites},
		{"DELETE /api/invites/{token}", a.revoke},
		{"POST /api/invites/{token}/accept", a.accept},
		{"POST /api/invites/{token}/decline", a.decline},
		{"POST /api/dm", a.dm},
		{"GET /api/users", a.users},
		{"POST /api/users/{userId}/disable", a.disable},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, a.handle(rt.h))
	}
}

// handle verifies the token, runs h and writes its answer or error.
func (a *api) handle(h func(context.Context, membership.Actor, *http.Request) (int, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := a.verify(r)
		if err != nil {
			tokenauth.Unauthorized(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		status, body, err := h(ctx, membership.Actor{UserID: claims.UserID, Username: claims.Username}, r)
		if err != nil {
			WriteError(w, r, a.log, err)
			return
		}
		app.WriteJSON(w, status, body)
	})
}

// badRequest is a request the API itself refuses (a body it cannot read).
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error {
	return &badRequest{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// WriteError answers err: a membership refusal with its status and text,
// a bad request with 400 (413 when too large), anything else with 503
// (logged): the store or Redis failed, and the client may retry.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		app.WriteError(w, br.status, br.msg)
	case errors.Is(err, membership.ErrNotFound):
		app.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, membership.ErrForbidden), errors.Is(err, membership.ErrBanned), errors.Is(err, membership.ErrMuted):
		app.WriteError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, membership.ErrInvalid):
		app.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, membership.ErrConflict):
		app.WriteError(w, http.StatusConflict, err.Error())
	default:
		app.Logger(r.Context(), log).Error("room request failed", "path", r.URL.Path, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "service unavailable, retry later")
	}
}

// decode reads the JSON object body into v; fields of the wrong type and
// unknown fields are refused by name.
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large (limit %d bytes)", maxBody)}
		}
		return bad("could not read the request body")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return bad("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return bad("%s must be a %s", te.Field, te.Type.Kind())
		default:
			return bad("malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return bad("unexpected data after the JSON object")
	}
	return nil
}

// Room is a room on the wire.
type Room struct {
	Name      string  `json:"name"`
	Type      string  `json:"type"`
	Title     string  `json:"title,omitempty"`
	Topic     string  `json:"topic"`
	CreatedBy string  `json:"createdBy"`
	CreatedAt string  `json:"createdAt"`
	Role      string  `json:"role,omitempty"`
	Peer      *Person `json:"peer,omitempty"`
	// Unread and Mentions are the caller's unread state (GET /api/rooms
	// only; each at most MaxUnread).
	Unread   *int `json:"unread,omitempty"`
	Mentions *int `json:"mentions,omitempty"`
}

// Person is a user as other users see them.
type Person struct {
	UserID   string `json:"userId"`
	Username string `json:"username"`
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func roomOut(r store.Room) Room {
	return Room{Name: r.Name, Type: r.Type, Title: r.Title, Topic: r.Topic, CreatedBy: r.CreatedBy, CreatedAt: stamp(r.CreatedAt)}
}

func viewOut(v membership.RoomView) Room {
	out := roomOut(v.Room)
	out.Role = v.Role
	if v.Peer != nil {
		out.Peer = &Person{UserID: v.Peer.UserID, Username: v.Peer.Username}
	}
	return out
}

func (a *api) createRoom(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Topic string `json:"topic"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	room, err := a.svc.CreateRoom(ctx, actor, in.Name, in.Type, in.Topic)
	if err != nil && room.Name == "" {
		return 0, nil, err
	}
	// A room created but its event not appended is still created: 201.
	a.logPartial(r, err)
	return http.StatusCreated, map[string]any{"room": roomOut(room)}, nil
}

// logPartial logs an action that changed the store but whose event or
// announcement failed (the change stands; replicas catch up by TTL).
func (a *api) logPartial(r *http.Request, err error) {
	if err != nil {
		app.Logger(r.Context(), a.log).Warn("room action done, event or announcement failed", "path", r.URL.Path, "err", err)
	}
}

func (a *api) myRooms(ctx context.Context, actor membership.Actor, _ *http.Request) (int, any, error) {
	views, err := a.svc.MyRooms(ctx, actor)
	if err != nil {
		return 0, nil, err
	}
	names := make([]string, len(views))
	for i, v := range views {
		names[i] = v.Room.Name
	}
	counts, err := a.counts.read(ctx, a.log, actor.UserID, names)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Room, 0, len(views))
	for i, v := range views {
		r := viewOut(v)
		r.Unread, r.Mentions = &counts[i].Unread, &counts[i].Mentions
		out = append(out, r)
	}
	return http.StatusOK, map[string]any{"rooms": out}, nil
}

func pageLimit(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		return 0, bad("limit must be a number from 1 to %d", maxPage)
	}
	return n, nil
}

func (a *api) directory(ctx context.Context, _ membership.Actor, r *http.Request) (int, any, error) {
	limit, err := pageLimit(r, defaultPage)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	rooms, next, err := a.svc.Directory(ctx, q.Get("q"), q.Get("cursor"), limit)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Room, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, roomOut(r))
	}
	body := map[string]any{"rooms": out}
	if next != "" {
		body["cursor"] = next
	}
	return http.StatusOK, body, nil
}

func (a *api) room(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	v, err := a.svc.Room(ctx, actor, r.PathValue("room"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"room": viewOut(v), "role": v.Role, "serverAdmin": v.ServerAdmin}, nil
}

func (a *api) updateRoom(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		Title *string `json:"title"`
		Topic *string `json:"topic"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	room, err := a.svc.UpdateRoom(ctx, actor, r.PathValue("room"), in.Title, in.Topic)
	if err != nil && room.Name == "" {
		return 0, nil, err
	}
	a.logPartial(r, err)
	return http.StatusOK, map[string]any{"room": roomOut(room)}, nil
}

func ok(err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"ok": true}, nil
}

func (a *api) deleteRoom(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.DeleteRoom(ctx, actor, r.PathValue("room")))
}

func (a *api) join(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	acc, err := a.svc.Join(ctx, actor, r.PathValue("room"))
	if err != nil {
		return 0, nil, err
	}
	if acc.Room == nil {
		// Created by the join: read it back.
		v, err := a.svc.Room(ctx, actor, r.PathValue("room"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"room": viewOut(v)}, nil
	}
	out := roomOut(*acc.Room)
	out.Role = acc.Role()
	return http.StatusOK, map[string]any{"room": out}, nil
}

func (a *api) leave(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.Leave(ctx, actor, r.PathValue("room")))
}

// Member is a member on the wire.
type Member struct {
	UserID     string `json:"userId"`
	Username   string `json:"username"`
	Role       string `json:"role"`
	JoinedAt   string `json:"joinedAt,omitempty"`
	MutedUntil string `json:"mutedUntil,omitempty"`
}

func (a *api) members(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	ms, err := a.svc.Members(ctx, actor, r.PathValue("room"))
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		o := Member{UserID: m.UserID, Username: m.Username, Role: m.Role, JoinedAt: stamp(m.JoinedAt)}
		if m.MutedUntil.After(now) {
			o.MutedUntil = stamp(m.MutedUntil)
		}
		out = append(out, o)
	}
	return http.StatusOK, map[string]any{"members": out}, nil
}

func (a *api) setRole(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		Role string `json:"role"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	return ok(a.svc.SetRole(ctx, actor, r.PathValue("room"), r.PathValue("userId"), in.Role))
}

type targetBody struct {
	UserID string `json:"userId"`
	Reason string `json:"reason"`
}

func (a *api) kick(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in targetBody
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.UserID == "" {
		return 0, nil, bad("userId is required")
	}
	return ok(a.svc.Kick(ctx, actor, r.PathValue("room"), in.UserID, in.Reason))
}

// parseTime reads an optional RFC 3339 time field.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, bad("%s must be an RFC 3339 time like 2026-12-01T18:00:00Z", field)
	}
	return t, nil
}

// Ban is a ban on the wire.
type Ban struct {
	UserID    string `json:"userId"`
	Reason    string `json:"reason,omitempty"`
	By        string `json:"by,omitempty"`
	At        string `json:"at"`
	ExpiresAt string `json:"expiresAt,omitempty"`
}

func (a *api) bans(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	bs, err := a.svc.Bans(ctx, actor, r.PathValue("room"))
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	out := make([]Ban, 0, len(bs))
	for _, b := range bs {
		if b.Active(now) {
			out = append(out, Ban{UserID: b.UserID, Reason: b.Reason, By: b.By, At: stamp(b.At), ExpiresAt: stamp(b.ExpiresAt)})
		}
	}
	return http.StatusOK, map[string]any{"bans": out}, nil
}

func (a *api) ban(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		UserID    string `json:"userId"`
		Reason    string `json:"reason"`
		ExpiresAt string `json:"expiresAt"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.UserID == "" {
		return 0, nil, bad("userId is required")
	}
	exp, err := parseTime("expiresAt", in.ExpiresAt)
	if err != nil {
		return 0, nil, err
	}
	if err := a.svc.Ban(ctx, actor, r.PathValue("room"), in.UserID, in.Reason, exp); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]any{"ok": true}, nil
}

func (a *api) unban(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.Unban(ctx, actor, r.PathValue("room"), r.PathValue("userId")))
}

func (a *api) mute(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		UserID string `json:"userId"`
		Until  string `json:"until"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.UserID == "" {
		return 0, nil, bad("userId is required")
	}
	until, err := parseTime("until", in.Until)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Mute(ctx, actor, r.PathValue("room"), in.UserID, until))
}

// Invite is an invitation on the wire.
type Invite struct {
	Token     string `json:"token"`
	Room      string `json:"room"`
	UserID    string `json:"userId,omitempty"`
	By        string `json:"by,omitempty"`
	ByName    string `json:"byName,omitempty"`
	CreatedAt string `json:"createdAt"`
	ExpiresAt string `json:"expiresAt,omitempty"`
	MaxUses   int    `json:"maxUses"`
	Uses      int    `json:"uses"`
	Revoked   bool   `json:"revoked,omitempty"`
}

func inviteOut(i store.Invite) Invite {
	return Invite{Token: i.Token, Room: i.Room, UserID: i.UserID, By: i.By, CreatedAt: stamp(i.CreatedAt), ExpiresAt: stamp(i.ExpiresAt),
		MaxUses: i.MaxUses, Uses: i.Uses, Revoked: i.Revoked}
}

func invitesOut(is []store.Invite) []Invite {
	out := make([]Invite, 0, len(is))
	for _, i := range is {
		out = append(out, inviteOut(i))
	}
	return out
}

func (a *api) invite(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		Username  string `json:"username"`
		MaxUses   *int   `json:"maxUses"`
		ExpiresIn *int   `json:"expiresIn"` // seconds
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	room := r.PathValue("room")
	var inv store.Invite
	var err error
	switch {
	case in.Username != "" && (in.MaxUses != nil || in.ExpiresIn != nil):
		return 0, nil, bad("give username (an invitation) or maxUses and expiresIn (a link), not both")
	case in.Username != "":
		inv, err = a.svc.InviteUser(ctx, actor, room, in.Username)
	default:
		uses, secs := 0, 0
		if in.MaxUses != nil {
			uses = *in.MaxUses
		}
		if in.ExpiresIn != nil {
			secs = *in.ExpiresIn
			if secs < 0 || time.Duration(secs)*time.Second > membership.MaxLinkExpiry {
				return 0, nil, bad("expiresIn must be between 0 and %d seconds", int(membership.MaxLinkExpiry/time.Second))
			}
		}
		inv, err = a.svc.CreateLink(ctx, actor, room, uses, time.Duration(secs)*time.Second)
	}
	if err != nil && inv.Token == "" {
		return 0, nil, err
	}
	a.logPartial(r, err)
	return http.StatusCreated, map[string]any{"invite": inviteOut(inv)}, nil
}

func (a *api) roomInvites(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	is, err := a.svc.RoomInvites(ctx, actor, r.PathValue("room"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"invites": invitesOut(is)}, nil
}

func (a *api) myInvites(ctx context.Context, actor membership.Actor, _ *http.Request) (int, any, error) {
	is, err := a.svc.MyInvites(ctx, actor)
	if err != nil {
		return 0, nil, err
	}
	out := invitesOut(is)
	names := map[string]string{}
	for i := range out {
		// The inviter's name, so the invitee sees who asked (a user
		// deleted since shows none).
		id := out[i].By
		if _, ok := names[id]; !ok && id != "" {
			if u, err := a.svc.Store.UserByID(ctx, id); err == nil {
				names[id] = u.Username
			}
		}
		out[i].ByName = names[id]
	}
	return http.StatusOK, map[string]any{"invites": out}, nil
}

func (a *api) revoke(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.RevokeInvite(ctx, actor, r.PathValue("token")))
}

func (a *api) accept(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	room, err := a.svc.Accept(ctx, actor, r.PathValue("token"))
	if err != nil && room.Name == "" {
		return 0, nil, err
	}
	a.logPartial(r, err)
	return http.StatusOK, map[string]any{"room": roomOut(room)}, nil
}

func (a *api) decline(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.Decline(ctx, actor, r.PathValue("token")))
}

func (a *api) dm(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	var in struct {
		Username string `json:"username"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Username == "" {
		return 0, nil, bad("username is required")
	}
	v, err := a.svc.OpenDirect(ctx, actor, in.Username)
	if err != nil && v.Room.Name == "" {
		return 0, nil, err
	}
	a.logPartial(r, err)
	return http.StatusOK, map[string]any{"room": viewOut(v)}, nil
}

func (a *api) users(ctx context.Context, _ membership.Actor, r *http.Request) (int, any, error) {
	us, err := a.svc.SearchUsers(ctx, r.URL.Query().Get("q"), userPage)
	if err != nil {
		return 0, nil, err
	}
	out := make([]map[string]string, 0, len(us))
	for _, u := range us {
		if !u.Disabled {
			out = append(out, map[string]string{"id": u.ID, "username": u.Username})
		}
	}
	return http.StatusOK, map[string]any{"users": out}, nil
}

func (a *api) disable(ctx context.Context, actor membership.Actor, r *http.Request) (int, any, error) {
	return ok(a.svc.DisableUser(ctx, actor, r.PathValue("userId")))
}
