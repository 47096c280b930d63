package history

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
	"github.com/auroradev/aurora/modules/chat/roomapi"
)

// Limits of the search API.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
)

// SearchDeps is what the search API reads besides the messages: who the
// user is searched for (user=), which rooms the reader is in, and the
// reader's access to one room (room=), read fresh so a member kicked a
// moment ago finds nothing.
type SearchDeps struct {
	Users interface {
		UserByName(ctx context.Context, username string) (store.User, error)
	}
	Rooms interface {
		MemberRooms(ctx context.Context, userID string) ([]store.MemberRoom, error)
	}
	Access interface {
		Fresh(ctx context.Context, room, userID string) (membership.Access, error)
	}
}

// searchHit is a result: the message frame, with where the terms occur
// in its text.
type searchHit struct {
	bus.MessageFrame
	Highlights []store.Span `json:"highlights"`
}

type searchResponse struct {
	Messages []searchHit `json:"messages"`
	HasMore  bool        `json:"hasMore"`
}

// searchQuery is a validated search request (the store's query but for
// the rooms, which depend on the reader).
type searchQuery struct {
	store.SearchQuery
	room, user string
}

// SearchHandler serves GET /api/search: the messages of the rooms the
// reader may read (their rooms and general, or room= alone) whose text
// holds every word of q, newest first:
//
//	?q=words        required; store.ParseSearch's rules
//	?room=<room>    one room (404 not visible, 403 not readable)
//	?user=<name>    messages of that user only (400 when unknown)
//	?before=<id>    older than id; ?after=<id> newer than id (both: between,
//	                before later than after)
//	?limit=N        1..100, default 20 (larger values are clamped)
//
// The answer is 200 {"messages": [frame + "highlights": [{start,end}]],
// "hasMore"}, highlights in UTF-16 code units of text; a bad parameter
// is 400 naming it, a bad token 401, an unreachable store 503.
func (s *Service) SearchHandler(verify func(*http.Request) (token.Claims, error), d SearchDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := app.Logger(r.Context(), s.log)
		claims, err := verify(r)
		if err != nil {
			tokenauth.Unauthorized(w, err)
			return
		}
		q, err := parseSearch(r, s.Rooms)
		if err != nil {
			app.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := s.bound(r.Context())
		defer cancel()
		q.Viewer = claims.UserID
		if q.user != "" {
			u, err := d.Users.UserByName(ctx, q.user)
			switch {
			case errors.Is(err, store.ErrNotFound):
				app.WriteError(w, http.StatusBadRequest, "user: no user "+q.user)
				return
			case err != nil:
				log.Error("search: find user", "user", q.user, "err", err)
				app.WriteError(w, http.StatusServiceUnavailable, "service unavailable")
				return
			}
			q.UserID = u.ID
		}
		q.Rooms, err = s.searchRooms(ctx, d, claims.UserID, q.room)
		if err != nil {
			roomapi.WriteError(w, r, s.log, err)
			return
		}
		msgs, more, err := s.store.Search(ctx, q.SearchQuery)
		if err != nil {
			log.Error("search messages", "err", err)
			app.WriteError(w, http.StatusServiceUnavailable, "service unavailable")
			return
		}
		out := searchResponse{Messages: make([]searchHit, 0, len(msgs)), HasMore: more}
		for _, m := range msgs {
			spans := store.Highlight(m.Text, q.Terms)
			if spans == nil {
				spans = []store.Span{}
			}
			out.Messages = append(out.Messages, searchHit{MessageFrame: m.Entry().Frame(), Highlights: spans})
		}
		app.WriteJSON(w, http.StatusOK, out)
	})
}

// searchRooms returns the rooms searched for userID: room alone once the
// reader may read it, else the reader's rooms and general (restricted to
// chat.rooms_allowed when set). Its refusals are membership's, answered
// as the room API does.
func (s *Service) searchRooms(ctx context.Context, d SearchDeps, userID, room string) ([]string, error) {
	if room != "" {
		a, err := d.Access.Fresh(ctx, room, userID)
		if err == nil {
			err = membership.Decide(a, membership.Read, time.Now())
		}
		if err != nil {
			return nil, err
		}
		return []string{room}, nil
	}
	mrs, err := d.Rooms.MemberRooms(ctx, userID)
	if err != nil {
		return nil, err
	}
	rooms := make([]string, 0, len(mrs)+1)
	for _, mr := range mrs {
		rooms = append(rooms, mr.Room.Name)
	}
	if !slices.Contains(rooms, membership.General) {
		// Everyone reads general, with or without a member row, unless
		// banned from it.
		a, err := d.Access.Fresh(ctx, membership.General, userID)
		if err != nil {
			return nil, err
		}
		if membership.Decide(a, membership.Read, time.Now()) == nil {
			rooms = append(rooms, membership.General)
		}
	}
	if len(s.Rooms) > 0 {
		rooms = slices.DeleteFunc(rooms, func(r string) bool { return !slices.Contains(s.Rooms, r) })
	}
	return rooms, nil
}

// parseSearch validates the search parameters; its errors are the 400
// messages, each naming the parameter. Empty parameters count as absent
// (but q, which is required).
func parseSearch(r *http.Request, allowed []string) (searchQuery, error) {
	var q searchQuery
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, errors.New("malformed query string")
	}
	q.Terms, err = store.ParseSearch(v.Get("q"))
	if err != nil {
		return q, errors.New(err.Error())
	}
	q.Limit = DefaultSearchLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && isInteger(l) && l[0] != '-':
			n = MaxSearchLimit
		case err != nil || n < 1:
			return q, errors.New("limit must be an integer from 1 to 100")
		}
		q.Limit = int(min(n, MaxSearchLimit))
	}
	if q.room = v.Get("room"); q.room != "" {
		if !bus.ValidRoom(q.room) {
			return q, errors.New("room: " + bus.RoomRule)
		}
		if len(allowed) > 0 && !slices.Contains(allowed, q.room) {
			return q, errors.New(RoomRefusal(q.room, allowed))
		}
	}
	q.user = v.Get("user")
	for _, b := range []struct {
		name string
		dst  **bus.ID
	}{{"before", &q.Before}, {"after", &q.After}} {
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
	if q.Before != nil && q.After != nil && q.Before.Compare(*q.After) <= 0 {
		// No id lies between: say so rather than answer an empty page.
		return q, errors.New("before must be a later id than after")
	}
	return q, nil
}
