package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
)

func TestConnectTokenTransportsAndWelcome(t *testing.T) {
	s := startChat(t, chatConfig(t))
	tok := s.token("u1", "alice")

	cases := []struct {
		name    string
		path    string
		opts    *websocket.DialOptions
		subprot string
	}{
		{"query", "/ws?token=" + url.QueryEscape(tok), nil, ""},
		{"bearer header", "/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}, ""},
		{"subprotocol", "/ws", &websocket.DialOptions{Subprotocols: []string{"aurora.v1", "aurora.bearer." + tok}}, "aurora.v1"},
		{"auroraChat root path", "/?token=" + url.QueryEscape(tok), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dialRaw(tc.path, tc.opts)
			defer c.ws.CloseNow()
			if got := c.ws.Subprotocol(); got != tc.subprot {
				t.Errorf("subprotocol = %q, want %q", got, tc.subprot)
			}
			w := c.read()
			user, _ := w["user"].(map[string]any)
			if w["type"] != "welcome" || user["id"] != "u1" || user["username"] != "alice" {
				t.Fatalf("welcome = %v", w)
			}
			c.send(map[string]any{"type": "ping"})
			c.next("pong")
		})
	}
}

func TestRefusedBeforeUpgrade(t *testing.T) {
	cfg := chatConfig(t)
	cfg.HTTP.CORSOrigins = []string{"https://chat.example.com"}
	s := startChat(t, cfg)
	tok := s.token("u1", "alice")
	expired, _, err := token.NewIssuer([]byte(cfg.Auth.JWTSecret), -time.Minute).Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, _, err := token.NewIssuer([]byte("another-secret-0123456789abcdef0123"), time.Hour).Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	q := func(tok string) string { return "/ws?token=" + url.QueryEscape(tok) }

	cases := []struct {
		name   string
		path   string
		hdr    http.Header
		status int
	}{
		{"no token", "/ws", nil, 401},
		{"garbage token", q("not-a-jwt"), nil, 401},
		{"wrong secret", q(otherSecret), nil, 401},
		{"expired token", q(expired), nil, 401},
		{"bad bearer", "/ws", http.Header{"Authorization": {"Bearer nope"}}, 401},
		{"foreign origin", q(tok), http.Header{"Origin": {"https://evil.example"}}, 403},
		{"allow-listed origin", q(tok), http.Header{"Origin": {"https://chat.example.com"}}, 0},
		{"own origin", q(tok), http.Header{"Origin": {s.URL}}, 0},
		{"no origin", q(tok), nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := s.dialStatus(tc.path, tc.hdr)
			if status != tc.status {
				t.Fatalf("status = %d (%q), want %d", status, msg, tc.status)
			}
		})
	}

	t.Run("expired says so", func(t *testing.T) {
		_, msg := s.dialStatus(q(expired), nil)
		if msg != "token expired" {
			t.Errorf("error = %q", msg)
		}
	})
	t.Run("plain GET /ws", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+q(tok), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if resp.StatusCode != http.StatusUpgradeRequired || json.NewDecoder(resp.Body).Decode(&body) != nil || body["error"] == "" {
			t.Fatalf("status %d body %v, want 426 with an error", resp.StatusCode, body)
		}
	})
}

func TestNullOriginUpgrade(t *testing.T) {
	// A page opened as a file sends Origin: null. It is refused unless
	// http.cors_origins lists "null" itself; "*" means http(s) origins only.
	cases := []struct {
		name    string
		origins []string
		status  int
	}{
		{"default", nil, http.StatusForbidden},
		{"star", []string{"*"}, http.StatusForbidden},
		{"other origins", []string{"https://chat.example.com"}, http.StatusForbidden},
		{"null listed", []string{"null"}, 0},
		{"star and null", []string{"*", "null"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := chatConfig(t)
			cfg.HTTP.CORSOrigins = tc.origins
			s := startChat(t, cfg)
			for _, path := range []string{"/ws", "/"} { // Aurora's path and AuroraChat's
				status, msg := s.dialStatus(path+"?token="+url.QueryEscape(s.token("u1", "alice")), http.Header{"Origin": {"null"}})
				if status != tc.status {
					t.Fatalf("%s: status %d (%q), want %d", path, status, msg, tc.status)
				}
				if status == http.StatusForbidden && msg != "origin not allowed" {
					t.Errorf("%s: error %q", path, msg)
				}
			}
			if tc.status == 0 {
				c := s.dialRaw("/?token="+url.QueryEscape(s.token("u1", "alice")),
					&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"null"}}})
				if w := c.read(); w["type"] != "welcome" {
					t.Fatalf("first frame = %v", w)
				}
				c.send(map[string]any{"text": "from a file"})
				if ack := c.next("ack", "message"); ack["room"] != "general" {
					t.Errorf("ack = %v", ack)
				}
			}
		})
	}
}

func TestConnectionCapAcrossReplicas(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.MaxConnsPerUser = 2
	// Both configurations before either server starts: with a real Redis,
	// making one flushes it, which would wipe a's heartbeat.
	cfgB := chatConfig(t)
	cfgB.Redis.URL = cfg.Redis.URL
	cfgB.Chat.MaxConnsPerUser = 2
	a := startChat(t, cfg)
	b := startChat(t, cfgB)

	first := a.dial("u1", "alice")
	b.dial("u1", "alice")
	path := "/ws?token=" + url.QueryEscape(a.token("u1", "alice"))
	for _, s := range []*server{a, b} {
		if status, _ := s.dialStatus(path, nil); status != http.StatusTooManyRequests {
			t.Fatalf("third connection: status %d, want 429", status)
		}
	}
	// Another user is not affected.
	a.dial("u2", "bob")

	// Closing a connection frees its slot (within 5 s).
	if err := first.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the slot to be freed", func() bool {
		status, _ := b.dialStatus(path, nil)
		return status == 0
	})

	// The entries of a replica that died stop counting once expired.
	past := fmt.Sprint(time.Now().Add(-time.Second).UnixMilli())
	future := fmt.Sprint(time.Now().Add(time.Minute).UnixMilli())
	do(t, a.redis, "ZADD", connsKey("u9"), past, "dead:1", past, "dead:2")
	a.dial("u9", "ghost")
	// A replica is alive while its heartbeat is.
	do(t, a.redis, "SET", replicaKey("live"), "1", "PX", "60000")
	do(t, a.redis, "ZADD", connsKey("u8"), future, "live:1", future, "live:2")
	if status, _ := a.dialStatus("/ws?token="+url.QueryEscape(a.token("u8", "x")), nil); status != http.StatusTooManyRequests {
		t.Errorf("user with 2 live entries elsewhere: status %d, want 429", status)
	}
}

// TestCrashedReplicaFreesSlotsFast: the entries of a replica that stopped
// without closing its connections (SIGKILL, a lost node) stop counting as
// soon as its heartbeat expires, not when the entries do (30 s later).
// Before, a user at the cap was locked out for those 30 s.
func TestCrashedReplicaFreesSlotsFast(t *testing.T) {
	s := startChat(t, chatConfig(t))
	max := s.cfg.Chat.MaxConnsPerUser
	// What a replica that crashed a moment ago leaves: a heartbeat about to
	// expire (shortened from replicaTTL so the test need not wait 5 s) and
	// entries good for 30 s.
	do(t, s.redis, "SET", replicaKey("crashed"), "1", "PX", "800")
	future := fmt.Sprint(time.Now().Add(slotTTL).UnixMilli())
	for i := 0; i < max; i++ {
		do(t, s.redis, "ZADD", connsKey("u1"), future, fmt.Sprintf("crashed:c%d", i))
	}
	path := "/ws?token=" + url.QueryEscape(s.token("u1", "alice"))
	if status, _ := s.dialStatus(path, nil); status != http.StatusTooManyRequests {
		t.Fatalf("at the cap on a live replica: status %d, want 429", status)
	}
	time.Sleep(time.Second)
	// The connection stays open while its entry is counted: dialStatus
	// closes at once, and the close removes the entry it would count.
	s.dial("u1", "alice")
	if n, err := do(t, s.redis, "ZCARD", connsKey("u1")).AsInt64(); err != nil || n != 1 {
		t.Fatalf("entries after the purge: %d %v, want only the new connection's", n, err)
	}
}

// TestConnectionCapAfterRedisWipe: Redis losing its data (a restart without
// persistence) does not lift the cap: each replica notices its heartbeat is
// gone and adds its connections back. Before, the refresh only updated
// entries that still existed, so the cap was gone until every connection
// had been replaced.
func TestConnectionCapAfterRedisWipe(t *testing.T) {
	s := startChat(t, chatConfig(t))
	max := s.cfg.Chat.MaxConnsPerUser
	for i := 0; i < max; i++ {
		s.dial("u1", "alice")
	}
	path := "/ws?token=" + url.QueryEscape(s.token("u1", "alice"))
	if status, _ := s.dialStatus(path, nil); status != http.StatusTooManyRequests {
		t.Fatalf("connection %d: status %d, want 429", max+1, status)
	}
	do(t, s.redis, "FLUSHALL")
	eventually(t, "the connections to be counted again after the wipe", func() bool {
		n, err := s.redis.Do(context.Background(), s.redis.B().Zcard().Key(connsKey("u1")).Build()).AsInt64()
		return err == nil && n == int64(max)
	})
	if status, _ := s.dialStatus(path, nil); status != http.StatusTooManyRequests {
		t.Fatalf("connection %d after the wipe: status %d, want 429", max+1, status)
	}
}

func TestMessageAckAndFanOut(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")
	alice2 := s.dial("u1", "alice") // the sender's other tab

	alice.send(map[string]any{"type": "message", "room": "general", "text": "héllo <b>", "clientId": "c-1"})
	var ack, own map[string]any
	for ack == nil || own == nil {
		f := alice.read()
		switch f["type"] {
		case "ack":
			ack = f
		case "message":
			own = f
		case "presence":
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	id, err := bus.ParseID(ack["id"].(string))
	if err != nil {
		t.Fatalf("ack id: %v", err)
	}
	if ack["clientId"] != "c-1" || ack["room"] != "general" || ack["ts"] != float64(id.Ms) {
		t.Errorf("ack = %v", ack)
	}
	want := map[string]any{"type": "message", "id": id.String(), "room": "general", "user": "alice",
		"userId": "u1", "text": "héllo <b>", "ts": float64(id.Ms), "clientId": "c-1"}
	for _, got := range []map[string]any{own, bob.next("message"), alice2.next("message")} {
		if len(got) != len(want) {
			t.Errorf("frame %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("frame[%s] = %v, want %v", k, got[k], v)
			}
		}
	}

	// The stream holds the entry with every field, and the frame decodes
	// as bus.MessageFrame.
	entries, err := do(t, s.redis, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream = %v, %v", entries, err)
	}
	e, err := bus.DecodeEntry(entries[0].ID, entries[0].FieldValues)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != id || e.RoomID != "general" || e.UserID != "u1" || e.Username != "alice" || e.Text != "héllo <b>" ||
		e.ClientID != "c-1" || e.TS != int64(id.Ms) {
		t.Errorf("entry = %+v", e)
	}

	// Ids increase in acceptance order.
	ack2 := bob.msg("general", "second", "c-2")
	id2, _ := bus.ParseID(ack2["id"].(string))
	if id2.Compare(id) <= 0 {
		t.Errorf("second id %s not after %s", id2, id)
	}
}

func TestAuroraChatCompatibility(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")

	t.Run("text-only frame goes to general", func(t *testing.T) {
		alice.send(map[string]any{"text": "hi"})
		f := bob.next("message")
		if f["room"] != "general" || f["text"] != "hi" || f["user"] != "alice" {
			t.Errorf("frame = %v", f)
		}
		if ack := alice.next("ack", "message"); ack["room"] != "general" {
			t.Errorf("ack = %v", ack)
		}
	})
	t.Run("chat-service payload is delivered", func(t *testing.T) {
		do(t, s.redis, "PUBLISH", "chat.general", `{"user":"old","text":"from auroraChat","ts":1704936000000}`)
		f := bob.next("message")
		if f["user"] != "old" || f["text"] != "from auroraChat" || f["ts"] != float64(1704936000000) || f["room"] != "general" {
			t.Errorf("frame = %v", f)
		}
		alice.next("message", "ack")
	})
}

func TestErrorFrames(t *testing.T) {
	s := startChat(t, configWith(t, func(c *config.Chat) { c.MaxTextLength, c.MaxRoomsPerConn = 10, 2 }))
	c := s.dial("u1", "alice")

	cases := []struct {
		frame, code, clientID string
	}{
		{`{"type":"message",`, codeInvalidJSON, ""},
		{`hello`, codeInvalidJSON, ""},
		{`null`, codeInvalidMessage, ""},
		{`[1,2]`, codeInvalidMessage, ""},
		{`"text"`, codeInvalidMessage, ""},
		{`{"type":1}`, codeInvalidMessage, ""},
		{`{"type":null,"text":"x"}`, codeInvalidMessage, ""},
		{`{"clientId":5,"text":"x"}`, codeInvalidMessage, ""},
		{`{"type":"message","room":"general","text":5,"clientId":"k1"}`, codeInvalidMessage, "k1"},
		{`{"type":"message","room":"general","text":null,"clientId":"k2"}`, codeInvalidMessage, "k2"},
		{`{"type":"message","room":"general","clientId":"k3"}`, codeInvalidMessage, "k3"},
		{`{}`, codeInvalidMessage, ""},
		{`{"type":"message","room":7,"text":"x"}`, codeInvalidMessage, ""},
		{`{"type":"join","room":"dev","since":"yesterday","clientId":"k4"}`, codeInvalidMessage, "k4"},
		{`{"type":"join","room":"dev","since":12}`, codeInvalidMessage, ""},
		{`{"type":"typing","room":"general","isTyping":"yes"}`, codeInvalidMessage, ""},
		{`{"type":"shout","clientId":"k5"}`, codeUnknownType, "k5"},
		{`{"type":"","text":"x"}`, codeUnknownType, ""},
		{`{"type":"message","room":"general","text":"   ","clientId":"k6"}`, codeEmptyText, "k6"},
		{`{"text":""}`, codeEmptyText, ""},
		{`{"type":"message","room":"general","text":"ééééééééééé","clientId":"k7"}`, codeTextTooLong, "k7"},
		{`{"type":"message","room":"General","text":"x"}`, codeInvalidRoom, ""},
		{`{"type":"join","room":""}`, codeInvalidRoom, ""},
		{`{"type":"join"}`, codeInvalidRoom, ""},
		{`{"type":"join","room":"` + strings.Repeat("a", 65) + `"}`, codeInvalidRoom, ""},
		{`{"type":"join","room":"a.b"}`, codeInvalidRoom, ""},
		{`{"type":"message","room":"dev","text":"x","clientId":"k8"}`, codeNotMember, "k8"},
		{`{"type":"typing","room":"dev","isTyping":true}`, codeNotMember, ""},
		{`{"type":"leave","room":"dev"}`, codeNotMember, ""},
	}
	for i, tc := range cases {
		// Stay under the garbage threshold: a fresh connection every 15 frames.
		if i > 0 && i%15 == 0 {
			c.ws.CloseNow()
			c = s.dial("u1", "alice")
		}
		code, cid := c.errorCode(tc.frame)
		if code != tc.code || cid != tc.clientID {
			t.Errorf("%s: code %q clientId %q, want %q %q", tc.frame, code, cid, tc.code, tc.clientID)
		}
	}

	t.Run("invalid utf-8", func(t *testing.T) {
		c := s.dial("u1", "alice")
		code, _ := c.errorCode("{\"text\":\"\xff\xfe\"}")
		if code != codeInvalidMessage {
			t.Errorf("code = %q", code)
		}
	})
	t.Run("text limit counts code points", func(t *testing.T) {
		c := s.dial("u1", "alice")
		if ack := c.msg("general", "éééééééééé", "ten"); ack["id"] == nil {
			t.Errorf("ack = %v", ack)
		}
	})
	t.Run("too many rooms", func(t *testing.T) {
		c := s.dial("u1", "alice")
		c.join("dev")
		code, _ := c.errorCode(`{"type":"join","room":"ops"}`)
		if code != codeTooManyRooms {
			t.Errorf("code = %q", code)
		}
		// Joining a room again is not one more room.
		if f := c.join("dev"); f["room"] != "dev" {
			t.Errorf("joined = %v", f)
		}
	})
	if n := s.metric(`aurora_chat_errors_total{code="invalid_json"}`); n != 2 {
		t.Errorf("invalid_json errors metric = %v, want 2", n)
	}
}

func TestAbuseCloseCodes(t *testing.T) {
	s := startChat(t, chatConfig(t))

	t.Run("binary frame 1003", func(t *testing.T) {
		c := s.dial("u1", "alice")
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := c.ws.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if got := c.closeStatus(); got != websocket.StatusUnsupportedData {
			t.Errorf("close = %v, want 1003", got)
		}
	})
	t.Run("frame over 64KiB 1009", func(t *testing.T) {
		c := s.dial("u1", "alice")
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		big := `{"text":"` + strings.Repeat("x", 70<<10) + `"}`
		_ = c.ws.Write(ctx, websocket.MessageText, []byte(big)) // may fail once the server closes
		if got := c.closeStatus(); got != websocket.StatusMessageTooBig {
			t.Errorf("close = %v, want 1009", got)
		}
	})
	t.Run("persistent garbage 1008", func(t *testing.T) {
		c := s.dial("u1", "alice")
		for i := 0; i < garbageLimit; i++ {
			if code, _ := c.errorCode("garbage"); code != codeInvalidJSON {
				t.Fatalf("code = %q", code)
			}
		}
		c.sendRaw([]byte("garbage"))
		if got := c.closeStatus(); got != websocket.StatusPolicyViolation {
			t.Errorf("close = %v, want 1008", got)
		}
	})
	t.Run("token expiry 4001", func(t *testing.T) {
		tok, exp, err := token.NewIssuer([]byte(s.cfg.Auth.JWTSecret), 2*time.Second).Issue("u3", "carol")
		if err != nil {
			t.Fatal(err)
		}
		c := s.dialRaw("/ws?token="+url.QueryEscape(tok), nil)
		if f := c.read(); f["type"] != "welcome" {
			t.Fatalf("first frame %v", f)
		}
		if got := c.closeStatus(); got != closeTokenExpired {
			t.Errorf("close = %v, want 4001", got)
		}
		if time.Now().Before(exp) {
			t.Errorf("closed before the token expired")
		}
	})
}
