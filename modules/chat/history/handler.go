package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
)

// response is the body of a history page. Messages are exactly the live
// frames, message frames and room_event frames in id order, so a client
// renders both the same way.
type response struct {
	Messages []json.RawMessage `json:"messages"`
	HasMore  bool              `json:"hasMore"`
}

// Handler serves GET /api/rooms/{room}/messages (mount it with that pattern:
// the room comes from r.PathValue("room")):
//
//	?limit=N       1..200, default 50 (out-of-range values are clamped)
//	?before=<id>   messages older than id, newest first
//	?after=<id>    messages newer than id, oldest first
//	neither        the newest messages, newest first
//
// Both bounds are exclusive. Items are message frames (in their current
// state: edited, deleted, reactions with "me" for the caller) and
// room_event frames; edits, deletes, reactions and reads are never items.
// The answer is 200 {"messages": [...],
// "hasMore": bool}; a bad parameter, or a room outside s.Rooms, is 400
// naming it, a missing or bad token 401, an unreachable store or Redis 503.
func (s *Service) Handler(verify func(*http.Request) (token.Claims, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := app.Logger(r.Context(), s.log)
		claims, err := verify(r)
		if err != nil {
			tokenauth.Unauthorized(w, err)
			return
		}
		q, err := parseQuery(r, s.Rooms)
		if err != nil {
			app.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := s.bound(r.Context())
		defer cancel()
		p, err := s.page(ctx, q.room, claims.UserID, q.before, q.after, q.limit)
		if err != nil {
			log.Error("read room history", "room", q.room, "err", err)
			app.WriteError(w, http.StatusServiceUnavailable, "service unavailable")
			return
		}
		app.WriteJSON(w, http.StatusOK, response{Messages: p.frames, HasMore: p.hasMore})
	})
}

// RoomRefusal is the message refusing room because chat.rooms_allowed
// (rooms) does not list it; the WebSocket and the HTTP APIs say the same.
func RoomRefusal(room string, rooms []string) string {
	return fmt.Sprintf("room %s is not open on this server (chat.rooms_allowed: %s)", room, strings.Join(rooms, ", "))
}

// query is a validated history request.
type query struct {
	room          string
	limit         int
	before, after *bus.ID
}

// parseQuery validates the room (a name, and on rooms unless that is empty)
// and the query parameters; its errors are the 400 messages, each naming
// the parameter. An empty parameter counts as absent, so a client may send
// "before=" when it has no cursor.
func parseQuery(r *http.Request, rooms []string) (query, error) {
	q := query{room: r.PathValue("room"), limit: DefaultLimit}
	if !bus.ValidRoom(q.room) {
		return q, errors.New(bus.RoomRule)
	}
	if len(rooms) > 0 && !slices.Contains(rooms, q.room) {
		return q, errors.New(RoomRefusal(q.room, rooms))
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, errors.New("malformed query string")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && isInteger(l):
			// An integer too large either way: clamp like any other.
			// (ParseInt reports the overflow before any junk after the
			// digits, hence the check.)
			n = 0
			if l[0] != '-' {
				n = MaxLimit
			}
		case err != nil:
			return q, errors.New("limit must be an integer")
		}
		q.limit = int(max(1, min(n, MaxLimit)))
	}
	for _, b := range []struct {
		name string
		dst  **bus.ID
	}{{"before", &q.before}, {"after", &q.after}} {
		raw := v.Get(b.name)
		if raw == "" {
			continue
		}
		id, err := bus.ParseID(raw)
		if err != nil {
			return q, errors.New(b.name + " must be a message id <ms>-<seq>")
		}
		*b.dst = &id
	}
	if q.before != nil && q.after != nil {
		return q, errors.New("before and after cannot both be given")
	}
	return q, nil
}

// isInteger reports whether s is an optional sign and decimal digits.
func isInteger(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
