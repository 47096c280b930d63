package history_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/modules/chat/history"
)

// searchEnv is the search API over a real store and Redis: users alice,
// bob and carol; alice and bob in the public room dev, bob alone in the
// private room secret.
type searchEnv struct {
	t     *testing.T
	st    store.Store
	url   string
	users map[string]store.User // by token (= username)
	n     int
	svc   *history.Service
}

func newSearchEnv(t *testing.T, open func(*testing.T) store.Store) *searchEnv {
	t.Helper()
	ctx := context.Background()
	e := &searchEnv{t: t, st: open(t), users: map[string]store.User{}}
	for _, name := range []string{"alice", "bob", "carol"} {
		u, err := e.st.CreateUser(ctx, store.User{Username: name, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		e.users[name] = u
	}
	for _, r := range []store.Room{{Name: "dev", Type: store.RoomPublic}, {Name: "secret", Type: store.RoomPrivate}} {
		if _, err := e.st.CreateRoom(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []store.Member{{Room: "dev", UserID: e.users["alice"].ID, Role: store.RoleMember},
		{Room: "dev", UserID: e.users["bob"].ID, Role: store.RoleMember}, {Room: "secret", UserID: e.users["bob"].ID, Role: store.RoleOwner}} {
		if err := e.st.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	svc := history.New(e.st, apptest.RedisClient(t, apptest.RedisURL(t)), slog.New(slog.DiscardHandler))
	e.svc = svc
	verify := func(r *http.Request) (token.Claims, error) {
		u, ok := e.users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			return token.Claims{}, token.ErrInvalid
		}
		return token.Claims{UserID: u.ID, Username: u.Username}, nil
	}
	access := membership.NewCache(e.st, membership.NewUsers(e.st, slog.New(slog.DiscardHandler)))
	mux := http.NewServeMux()
	mux.Handle("GET /api/search", svc.SearchHandler(verify, history.SearchDeps{Users: e.st, Rooms: e.st, Access: access}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// say stores a message of user in room, ids increasing.
func (e *searchEnv) say(room, user, text string) bus.Entry {
	e.t.Helper()
	e.n++
	u := e.users[user]
	en := bus.Entry{ID: id(e.n), RoomID: room, UserID: u.ID, Username: u.Username, Text: text, TS: int64(id(e.n).Ms)}
	if _, err := e.st.InsertMessages(context.Background(), []store.Message{store.MessageFromEntry(en, time.Now())}); err != nil {
		e.t.Fatal(err)
	}
	return en
}

type hit struct {
	bus.MessageFrame
	Highlights []store.Span `json:"highlights"`
}

type searchBody struct {
	Messages []hit `json:"messages"`
	HasMore  bool  `json:"hasMore"`
	Error    string
}

func (e *searchEnv) search(t *testing.T, user string, params url.Values) (int, searchBody) {
	t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + user
	}
	code, body := getWith(t, e.url+"/api/search?"+params.Encode(), auth)
	var b searchBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("search %v: %d %s: %v", params, code, body, err)
	}
	if code == http.StatusOK && b.Messages == nil {
		t.Fatalf("search %v: messages is not an array: %s", params, body)
	}
	return code, b
}

func (e *searchEnv) ok(t *testing.T, user string, kv ...string) searchBody {
	t.Helper()
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	code, b := e.search(t, user, v)
	if code != http.StatusOK {
		t.Fatalf("search %v as %s: %d %s", v, user, code, b.Error)
	}
	return b
}

func texts(hs []hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Text
	}
	return out
}

func TestSearch(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newSearchEnv(t, k.open)
			e.say(membership.General, "alice", "Hello world")
			e.say("dev", "bob", "hello from dev")
			e.say("secret", "bob", "hello secret")
			e.say(membership.General, "bob", "goodbye")
			emoji := e.say(membership.General, "carol", "😀 HELLO 😀 hello")

			t.Run("rooms the reader reads", func(t *testing.T) {
				b := e.ok(t, "alice", "q", "hello")
				if got := texts(b.Messages); !slices.Equal(got, []string{"😀 HELLO 😀 hello", "hello from dev", "Hello world"}) || b.HasMore {
					t.Errorf("alice's results, newest first: %q more %v", got, b.HasMore)
				}
				if got := texts(e.ok(t, "bob", "q", "hello").Messages); len(got) != 4 {
					t.Errorf("bob reads secret too: %q", got)
				}
				if got := texts(e.ok(t, "carol", "q", "hello").Messages); !slices.Equal(got, []string{"😀 HELLO 😀 hello", "Hello world"}) {
					t.Errorf("carol reads general only: %q", got)
				}
			})
			t.Run("frames and highlights", func(t *testing.T) {
				b := e.ok(t, "alice", "q", "HeLLo", "room", membership.General)
				h := b.Messages[0]
				if h.Type != "message" || h.ID != emoji.ID.String() || h.Room != membership.General || h.User != "carol" || h.TS != emoji.TS {
					t.Errorf("a result is the message frame: %+v", h.MessageFrame)
				}
				// 😀 is two UTF-16 code units.
				if want := []store.Span{{Start: 3, End: 8}, {Start: 12, End: 17}}; !slices.Equal(h.Highlights, want) {
					t.Errorf("highlights %v, want %v", h.Highlights, want)
				}
				if got := e.ok(t, "alice", "q", "hello world").Messages; len(got) != 1 || !slices.Equal(got[0].Highlights, []store.Span{{Start: 0, End: 5}, {Start: 6, End: 11}}) {
					t.Errorf("every word must match, each highlighted: %+v", got)
				}
			})
			t.Run("filters and paging", func(t *testing.T) {
				if got := texts(e.ok(t, "alice", "q", "hello", "user", "BOB").Messages); !slices.Equal(got, []string{"hello from dev"}) {
					t.Errorf("user=bob: %q", got)
				}
				if got := texts(e.ok(t, "alice", "q", "hello", "room", "dev").Messages); !slices.Equal(got, []string{"hello from dev"}) {
					t.Errorf("room=dev: %q", got)
				}
				b := e.ok(t, "alice", "q", "hello", "limit", "1")
				if len(b.Messages) != 1 || !b.HasMore {
					t.Fatalf("limit 1: %q more %v", texts(b.Messages), b.HasMore)
				}
				b = e.ok(t, "alice", "q", "hello", "limit", "1", "before", b.Messages[0].ID)
				if got := texts(b.Messages); !slices.Equal(got, []string{"hello from dev"}) || !b.HasMore {
					t.Errorf("the next page: %q more %v", got, b.HasMore)
				}
				if got := texts(e.ok(t, "alice", "q", "hello", "after", id(1).String()).Messages); len(got) != 2 {
					t.Errorf("after the first: %q", got)
				}
				if got := e.ok(t, "alice", "q", "nothing").Messages; len(got) != 0 {
					t.Errorf("no match: %+v", got)
				}
			})
			t.Run("edits and deletes", func(t *testing.T) {
				m := e.say(membership.General, "alice", "a typo here")
				life := func(typ, text string) {
					e.n++
					l := bus.Entry{ID: id(e.n), RoomID: m.RoomID, UserID: m.UserID, Username: m.Username, Text: text, Type: typ, MessageID: m.ID}
					if _, err := e.st.InsertMessages(context.Background(), []store.Message{store.MessageFromEntry(l, time.Now())}); err != nil {
						t.Fatal(err)
					}
				}
				life(bus.TypeEdit, "fixed here")
				if got := e.ok(t, "alice", "q", "typo").Messages; len(got) != 0 {
					t.Errorf("the text before the edit is found: %+v", got)
				}
				if got := e.ok(t, "alice", "q", "fixed").Messages; len(got) != 1 || got[0].ID != m.ID.String() || got[0].Edited == 0 {
					t.Errorf("the edited text: %+v", got)
				}
				life(bus.TypeDelete, "")
				if got := e.ok(t, "alice", "q", "fixed").Messages; len(got) != 0 {
					t.Errorf("a deleted message is found: %+v", got)
				}
			})
			t.Run("refused", func(t *testing.T) {
				for _, c := range []struct {
					user  string
					query url.Values
					code  int
					want  string
				}{
					{"", url.Values{"q": {"hello"}}, 401, ""},
					{"nobody", url.Values{"q": {"hello"}}, 401, ""},
					{"alice", url.Values{}, 400, "no word"},
					{"alice", url.Values{"q": {"!!! ..."}}, 400, "no word"},
					{"alice", url.Values{"q": {"a b c d e f g h i"}}, 400, "at most 8"},
					{"alice", url.Values{"q": {strings.Repeat("x", 201)}}, 400, "longer than 200"},
					{"alice", url.Values{"q": {"\xff"}}, 400, "UTF-8"},
					{"alice", url.Values{"q": {"hello"}, "limit": {"ten"}}, 400, "limit"},
					{"alice", url.Values{"q": {"hello"}, "limit": {"0"}}, 400, "limit"},
					{"alice", url.Values{"q": {"hello"}, "before": {"x"}}, 400, "before"},
					{"alice", url.Values{"q": {"hello"}, "after": {"1-2-3"}}, 400, "after"},
					{"alice", url.Values{"q": {"hello"}, "before": {"5-0"}, "after": {"5-0"}}, 400, "before must be a later id than after"},
					{"alice", url.Values{"q": {"hello"}, "before": {"4-0"}, "after": {"5-0"}}, 400, "before must be a later id than after"},
					{"alice", url.Values{"q": {"hello"}, "room": {"Bad Room"}}, 400, "room"},
					{"alice", url.Values{"q": {"hello"}, "user": {"nobody"}}, 400, "nobody"},
					{"alice", url.Values{"q": {"hello"}, "room": {"secret"}}, 404, "no such room"},
					{"alice", url.Values{"q": {"hello"}, "room": {"nowhere"}}, 404, "no such room"},
					{"carol", url.Values{"q": {"hello"}, "room": {"dev"}}, 403, "join dev first"},
				} {
					code, b := e.search(t, c.user, c.query)
					if code != c.code || !strings.Contains(b.Error, c.want) {
						t.Errorf("%s %v: %d %q, want %d with %q", c.user, c.query, code, b.Error, c.code, c.want)
					}
				}
				// A large limit is clamped, not refused.
				e.ok(t, "alice", "q", "hello", "limit", "100000000000000000000000")
			})
		})
	}
}

// TestSearchUnavailable: a store that fails answers 503, never 500.
func TestSearchUnavailable(t *testing.T) {
	e := newSearchEnv(t, openSQLite)
	if err := e.st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, b := e.search(t, "alice", url.Values{"q": {"hello"}})
	if code != http.StatusServiceUnavailable {
		t.Errorf("closed store: %d %q, want 503", code, b.Error)
	}
}

// TestSearchRoomsAllowed: with chat.rooms_allowed, only those rooms are
// searched, and room= of another is 400.
func TestSearchRoomsAllowed(t *testing.T) {
	e := newSearchEnv(t, openSQLite)
	e.svc.Rooms = []string{membership.General}
	e.say(membership.General, "alice", "hello general")
	e.say("dev", "alice", "hello dev")
	if got := texts(e.ok(t, "alice", "q", "hello").Messages); !slices.Equal(got, []string{"hello general"}) {
		t.Errorf("searched %q, want general's only", got)
	}
	if code, b := e.search(t, "alice", url.Values{"q": {"hello"}, "room": {"dev"}}); code != http.StatusBadRequest || !strings.Contains(b.Error, "rooms_allowed") {
		t.Errorf("room=dev outside rooms_allowed: %d %q", code, b.Error)
	}
}
