package roomapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/token"
)

// TestUnreadCounts: GET /api/rooms counts each room's messages by others
// after the later of the store's read marker and the Redis one, and
// those mentioning the reader, each capped at MaxUnread.
func TestUnreadCounts(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	users := map[string]store.User{}
	for _, name := range []string{"alice", "bob"} {
		u, err := st.CreateUser(ctx, store.User{Username: name, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		users[name] = u
	}
	alice, bob := users["alice"], users["bob"]
	if _, err := st.CreateRoom(ctx, store.Room{Name: "dev"}, &store.Member{UserID: alice.ID, Username: "alice", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMember(ctx, store.Member{Room: "dev", UserID: bob.ID, Username: "bob", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	rc := apptest.RedisClient(t, apptest.RedisURL(t))

	const base = 1_700_000_000_000
	id := func(i int) bus.ID { return bus.ID{Ms: base + uint64(i), Seq: 0} }
	var msgs []store.Message
	put := func(e bus.Entry) {
		msgs = append(msgs, store.MessageFromEntry(e, time.Now()))
	}
	// dev: bob's 1..6 (3 and 5 mention alice), alice's own 7; general:
	// bob's 1..3.
	for i := 1; i <= 6; i++ {
		e := bus.Entry{ID: id(i), RoomID: "dev", UserID: bob.ID, Username: "bob", Text: "hi"}
		if i == 3 || i == 5 {
			e.Text, e.Mentions = "hi @alice", []string{alice.ID}
		}
		put(e)
	}
	put(bus.Entry{ID: id(7), RoomID: "dev", UserID: alice.ID, Username: "alice", Text: "mine"})
	for i := 1; i <= 3; i++ {
		put(bus.Entry{ID: id(10 + i), RoomID: membership.General, UserID: bob.ID, Username: "bob", Text: "hello"})
	}
	// alice read dev up to 2 (stored).
	put(bus.Entry{ID: id(20), RoomID: "dev", UserID: alice.ID, Username: "alice", Type: bus.TypeRead, MessageID: id(2)})
	if _, err := st.InsertMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	verify := func(r *http.Request) (token.Claims, error) {
		if r.Header.Get("Authorization") != "Bearer alice" {
			return token.Claims{}, token.ErrInvalid
		}
		return token.Claims{UserID: alice.ID, Username: "alice"}, nil
	}
	Register(mux, &membership.Service{Store: st}, &Counts{Store: st, Redis: rc}, verify, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	type counts struct{ unread, mentions int }
	get := func(t *testing.T) map[string]counts {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/rooms", nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/rooms: %d %s", resp.StatusCode, body)
		}
		if !strings.Contains(string(body), `"unread":`) || !strings.Contains(string(body), `"mentions":`) {
			t.Errorf("items carry unread and mentions even when 0: %s", body)
		}
		var out struct {
			Rooms []Room `json:"rooms"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		m := map[string]counts{}
		for _, r := range out.Rooms {
			if r.Unread == nil || r.Mentions == nil {
				t.Fatalf("room %s without counts: %s", r.Name, body)
			}
			m[r.Name] = counts{*r.Unread, *r.Mentions}
		}
		return m
	}
	setRedis := func(t *testing.T, room string, marker bus.ID) {
		t.Helper()
		if err := rc.Do(ctx, rc.B().Set().Key(bus.ReadMarkerKey(0, room, alice.ID)).Value(marker.String()).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, want map[string]counts) {
		t.Helper()
		if got := get(t); len(got) != len(want) || got["dev"] != want["dev"] || got[membership.General] != want[membership.General] {
			t.Errorf("counts %+v, want %+v", got, want)
		}
	}

	t.Run("store markers", func(t *testing.T) {
		// dev: 3..6 by bob after marker 2, 3 and 5 mention alice; general:
		// no marker, all 3.
		check(t, map[string]counts{"dev": {4, 2}, membership.General: {3, 0}})
	})
	t.Run("a newer Redis marker wins", func(t *testing.T) {
		setRedis(t, "dev", id(4))
		setRedis(t, membership.General, id(13))
		check(t, map[string]counts{"dev": {2, 1}, membership.General: {0, 0}})
	})
	t.Run("an older Redis marker does not", func(t *testing.T) {
		setRedis(t, "dev", id(1))
		check(t, map[string]counts{"dev": {4, 2}, membership.General: {0, 0}})
	})
	t.Run("a bad Redis marker is ignored", func(t *testing.T) {
		if err := rc.Do(ctx, rc.B().Set().Key(bus.ReadMarkerKey(0, "dev", alice.ID)).Value("junk").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		check(t, map[string]counts{"dev": {4, 2}, membership.General: {0, 0}})
	})
	t.Run("capped", func(t *testing.T) {
		var many []store.Message
		for i := range MaxUnread + 5 {
			many = append(many, store.MessageFromEntry(bus.Entry{ID: bus.ID{Ms: base + 100, Seq: uint64(i)}, RoomID: membership.General,
				UserID: bob.ID, Username: "bob", Text: "flood"}, time.Now()))
		}
		for len(many) > 0 {
			n := min(len(many), 500)
			if _, err := st.InsertMessages(ctx, many[:n]); err != nil {
				t.Fatal(err)
			}
			many = many[n:]
		}
		check(t, map[string]counts{"dev": {4, 2}, membership.General: {MaxUnread, 0}})
	})
	t.Run("store down", func(t *testing.T) {
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/rooms", nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("closed store: %d, want 503", resp.StatusCode)
		}
	})
}
