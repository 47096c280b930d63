package chat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

func members(t *testing.T, f map[string]any) []string {
	t.Helper()
	list, ok := f["members"].([]any)
	if !ok {
		t.Fatalf("frame %v has no members array", f)
	}
	var out []string
	for _, m := range list {
		mm := m.(map[string]any)
		out = append(out, fmt.Sprintf("%s/%s", mm["userId"], mm["username"]))
	}
	return out
}

func TestJoinLeaveTypingPresence(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")

	if got := members(t, alice.join("dev")); fmt.Sprint(got) != "[u1/alice]" {
		t.Errorf("alice's joined members = %v", got)
	}
	// Members are what has been announced: once alice's own online event
	// for dev went out, a later joiner finds her in the list.
	awaitPresence(alice, "dev", "alice", "online")
	if got := members(t, bob.join("dev")); fmt.Sprint(got) != "[u1/alice u2/bob]" {
		t.Errorf("bob's joined members = %v", got)
	}
	// alice hears bob come online in dev.
	for {
		f := alice.next("presence")
		if f["room"] == "dev" && f["user"] == "bob" {
			if f["userId"] != "u2" || f["status"] != "online" {
				t.Errorf("presence = %v", f)
			}
			break
		}
	}

	// Messages stay in their room.
	ack := alice.msg("dev", "in dev", "d1")
	if ack["room"] != "dev" {
		t.Errorf("ack = %v", ack)
	}
	if f := bob.next("message"); f["room"] != "dev" || f["text"] != "in dev" {
		t.Errorf("bob got %v", f)
	}
	carol := s.dial("u3", "carol") // in general only
	carol.send(map[string]any{"type": "ping"})
	carol.next("pong") // nothing from dev came first

	// Typing reaches the others, not the typist.
	alice.send(map[string]any{"type": "typing", "room": "dev", "isTyping": true})
	f := bob.next("typing")
	if f["room"] != "dev" || f["user"] != "alice" || f["userId"] != "u1" || f["isTyping"] != true {
		t.Errorf("typing = %v", f)
	}
	// Published after the typing frame on the same connection, so alice
	// would see her typing frame before her message if she got it.
	alice.send(map[string]any{"type": "message", "room": "dev", "text": "after typing", "clientId": "d2"})
	for acked, seen := false, false; !acked || !seen; {
		f := alice.read()
		switch {
		case f["type"] == "typing":
			t.Fatalf("the typist got her own typing frame")
		case f["type"] == "ack":
			acked = true
		case f["type"] == "message" && f["clientId"] == "d2":
			seen = true
		}
	}

	// Leave.
	bob.send(map[string]any{"type": "leave", "room": "dev"})
	if f := bob.next("left", "message"); f["room"] != "dev" {
		t.Errorf("left = %v", f)
	}
	if code, _ := bob.errorCode(`{"type":"message","room":"dev","text":"x"}`); code != codeNotMember {
		t.Errorf("after leave: %s", code)
	}
	// Leaving general too: the AuroraChat form has no room left.
	bob.send(map[string]any{"type": "leave", "room": "general"})
	bob.next("left", "message", "typing")
	if code, _ := bob.errorCode(`{"text":"x"}`); code != codeNotMember {
		t.Errorf("text-only frame with no room: %s", code)
	}
}

func TestPresenceAndHistoryHTTP(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice := s.dial("u1", "alice")
	awaitPresence(alice, "general", "alice", "online")
	ack := alice.msg("general", "remember me", "h1")

	get := s.getJSON
	tok := s.token("u2", "bob")

	status, body := get("/api/rooms/general/presence", tok)
	if status != 200 || body["count"] != float64(1) || fmt.Sprint(members(t, body)) != "[u1/alice]" {
		t.Errorf("presence: %d %v", status, body)
	}
	if status, body := get("/api/rooms/general/presence", ""); status != 401 || body["error"] == nil {
		t.Errorf("presence without token: %d %v", status, body)
	}
	if status, body := get("/api/rooms/Bad!/presence", tok); status != 400 || body["error"] == nil {
		t.Errorf("presence of a bad room: %d %v", status, body)
	}

	status, body = get("/api/rooms/general/messages", tok)
	msgs, _ := body["messages"].([]any)
	if status != 200 || len(msgs) != 1 || msgs[0].(map[string]any)["id"] != ack["id"] {
		t.Errorf("history: %d %v", status, body)
	}
	if status, _ := get("/api/rooms/general/messages", ""); status != 401 {
		t.Errorf("history without token: %d", status)
	}
}

func TestJoinSinceRecovers(t *testing.T) {
	s := startChat(t, configWith(t, func(c *config.Chat) { c.RoomRate = 100 }))
	alice := s.dial("u1", "alice")
	alice.join("dev")
	ids := sendNumbered(alice, "dev", "m", "r", 3)

	bob := s.dial("u2", "bob")
	bob.send(map[string]any{"type": "join", "room": "dev", "since": ids[0]})
	j := bob.next("joined")
	if j["recovered"] != true {
		t.Errorf("joined = %v, want recovered", j)
	}
	for _, want := range ids[1:] {
		if f := bob.next("message"); f["id"] != want || f["room"] != "dev" {
			t.Fatalf("replayed %v, want id %s", f, want)
		}
	}
	// Then live, without a duplicate.
	live := alice.msg("dev", "live", "r-live")["id"].(string)
	if f := bob.next("message"); f["id"] != live {
		t.Fatalf("after replay got %v, want live %s", f, live)
	}

	// A join of a room the connection is in replays nothing again: the
	// connection got everything since its first join. recovered is false:
	// whatever the client misses before since is the history API's.
	bob.send(map[string]any{"type": "join", "room": "dev", "since": "0-0"})
	if j := bob.next("joined"); j["recovered"] != false {
		t.Errorf("rejoin: %v, want recovered false", j)
	}
	bob.send(map[string]any{"type": "ping"})
	bob.next("pong") // fails on a replayed message first

	// since 0-0 replays the whole room.
	carol := s.dial("u3", "carol")
	carol.send(map[string]any{"type": "join", "room": "dev", "since": "0-0"})
	if j := carol.next("joined"); j["recovered"] != true {
		t.Errorf("joined = %v, want recovered", j)
	}
	for _, want := range append(ids, live) {
		if f := carol.next("message"); f["id"] != want {
			t.Fatalf("replayed %v, want %s", f, want)
		}
	}
	if _, err := bus.ParseID(live); err != nil {
		t.Fatal(err)
	}

	// general is joined on connect, but its first join frame still
	// replays (the web client joins every room with since after welcome);
	// the next one does not.
	inGeneral := alice.msg("general", "g", "r-g")["id"].(string)
	dave := s.dial("u4", "dave")
	dave.send(map[string]any{"type": "join", "room": "general", "since": ids[0]})
	if j := dave.next("joined"); j["recovered"] != true {
		t.Errorf("first join of general: %v, want recovered", j)
	}
	if f := dave.next("message"); f["id"] != inGeneral {
		t.Fatalf("general replayed %v, want %s", f, inGeneral)
	}
	dave.send(map[string]any{"type": "join", "room": "general", "since": ids[0]})
	if j := dave.next("joined"); j["recovered"] != false {
		t.Errorf("second join of general: %v, want recovered false", j)
	}
	dave.send(map[string]any{"type": "ping"})
	dave.next("pong")
}

// awaitPresence reads c's frames until the presence event of user in room
// with status, skipping everything else.
func awaitPresence(c *client, room, user, status string) {
	for {
		f := c.next("presence")
		if f["room"] == room && f["user"] == user && f["status"] == status {
			return
		}
	}
}

func TestRoomsAllowedConfinesUsers(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.RoomsAllowed = []string{"general", "lobby"}
	s := startChat(t, cfg)
	alice := s.dial("u1", "alice") // welcome: general is allowed
	bob := s.dial("u2", "bob")

	// Every frame naming a room outside the list is refused as invalid_room,
	// the clientId echoed and the message naming the setting.
	for _, raw := range []string{
		`{"type":"join","room":"dev","clientId":"j1"}`,
		`{"type":"join","room":"dev","since":"0-0","clientId":"j2"}`,
		`{"type":"message","room":"dev","text":"hi","clientId":"m1"}`,
		`{"type":"typing","room":"dev","isTyping":true,"clientId":"t1"}`,
		`{"type":"leave","room":"dev","clientId":"l1"}`,
	} {
		alice.sendRaw([]byte(raw))
		f := alice.next("error")
		var in map[string]any
		_ = json.Unmarshal([]byte(raw), &in)
		msg, _ := f["message"].(string)
		if f["code"] != codeInvalidRoom || f["clientId"] != in["clientId"] || !strings.Contains(msg, "chat.rooms_allowed") {
			t.Errorf("%s: got %v, want invalid_room naming chat.rooms_allowed", raw, f)
		}
	}
	// A bad name is still refused for its name.
	if code, _ := alice.errorCode(`{"type":"join","room":"Bad!"}`); code != codeInvalidRoom {
		t.Errorf("bad room name: %s", code)
	}

	// The listed rooms work as usual, the AuroraChat form included.
	if f := alice.join("lobby"); f["room"] != "lobby" {
		t.Errorf("joined = %v", f)
	}
	alice.msg("lobby", "in lobby", "ok1")
	alice.send(map[string]any{"text": "hi from the old form"})
	if f := bob.next("message"); f["room"] != "general" || f["text"] != "hi from the old form" {
		t.Errorf("bob got %v", f)
	}
	alice.next("ack", "message")

	// Nothing reached Redis for dev: no stream entry, so no chat.dev publish
	// for an AuroraChat chat-service to trip over either.
	entries, err := do(t, s.redis, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.FieldValues[bus.FieldRoomID] == "dev" {
			t.Errorf("a refused message was queued: %v", e)
		}
	}

	// The HTTP APIs refuse the room the same way: 400 {"error"}, after the
	// token check.
	tok := s.token("u2", "bob")
	get := s.getJSON
	for _, path := range []string{"/api/rooms/dev/messages", "/api/rooms/dev/messages?limit=5", "/api/rooms/dev/presence"} {
		status, body := get(path, tok)
		msg, _ := body["error"].(string)
		if status != http.StatusBadRequest || len(body) != 1 || !strings.Contains(msg, "chat.rooms_allowed") {
			t.Errorf("GET %s: %d %v, want 400 naming chat.rooms_allowed", path, status, body)
		}
		if status, body := get(path, ""); status != http.StatusUnauthorized || body["error"] == nil {
			t.Errorf("GET %s without token: %d %v, want 401", path, status, body)
		}
	}
	// alice's token: history needs read access, and she joined lobby.
	status, body := get("/api/rooms/lobby/messages", s.token("u1", "alice"))
	if msgs, _ := body["messages"].([]any); status != http.StatusOK || len(msgs) != 2 { // the message, and lobby's room_created
		t.Errorf("history of lobby: %d %v", status, body)
	}
	if status, body := get("/api/rooms/general/presence", tok); status != http.StatusOK {
		t.Errorf("presence of general: %d %v", status, body)
	}
}
