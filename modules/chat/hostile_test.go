package chat

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/store"
)

// Hostile input through a real server, a real WebSocket and real HTTP, at
// the default limits: each row is what a client sends and the answer the
// server gives today (docs/protocol.md, docs/security.md#hostile-input).
// The frame decoder alone is fuzzed by FuzzDecodeFrame (fuzz_test.go).

// answer is what the server answers a hostile frame with: an error frame
// (code, and the clientId it echoes), an ack (and the echo of the message,
// with text), a pong, or a close code.
type answer struct {
	code     string // error frame code
	clientID string // echoed on the error frame or the ack
	ack      bool
	text     string // the text of the acked message as delivered
	pong     bool
	close    websocket.StatusCode
}

func errAnswer(code, clientID string) answer { return answer{code: code, clientID: clientID} }
func ackAnswer(clientID, text string) answer {
	return answer{ack: true, clientID: clientID, text: text}
}
func closeAnswer(code websocket.StatusCode) answer {
	return answer{close: code}
}

type hostileFrame struct {
	name   string
	frame  string
	binary bool
	want   answer
}

func hostileFrames() []hostileFrame {
	msg := func(text, clientID string) string {
		return fmt.Sprintf(`{"type":"message","room":"general","text":%s,"clientId":%q}`, text, clientID)
	}
	join := func(room string) string { return `{"type":"join","room":"` + room + `"}` }
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	return []hostileFrame{
		// Types: a number, an array or an object where a string is expected.
		{"text number", msg(`123`, "t1"), false, errAnswer(codeInvalidMessage, "t1")},
		{"text array", msg(`["a"]`, "t2"), false, errAnswer(codeInvalidMessage, "t2")},
		{"text object (query operator)", msg(`{"$gt":""}`, "t3"), false, errAnswer(codeInvalidMessage, "t3")},
		{"room number", `{"type":"message","room":7,"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"room array", `{"type":"join","room":["general","dev"]}`, false, errAnswer(codeInvalidMessage, "")},
		{"type array", `{"type":["message"],"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"type object", `{"type":{"a":1}}`, false, errAnswer(codeInvalidMessage, "")},
		{"type bool", `{"type":true}`, false, errAnswer(codeInvalidMessage, "")},
		{"clientId object", `{"clientId":{"a":1},"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"isTyping string", `{"type":"typing","room":"general","isTyping":"true"}`, false, errAnswer(codeInvalidMessage, "")},
		{"frame is an array", `[{"type":"ping"}]`, false, errAnswer(codeInvalidMessage, "")},
		{"frame is a string", `"hello"`, false, errAnswer(codeInvalidMessage, "")},
		{"frame is a number", `42`, false, errAnswer(codeInvalidMessage, "")},
		// Nulls.
		{"null frame", `null`, false, errAnswer(codeInvalidMessage, "")},
		{"null type", `{"type":null,"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"null room", `{"type":"join","room":null}`, false, errAnswer(codeInvalidMessage, "")},
		{"null text", msg(`null`, "n1"), false, errAnswer(codeInvalidMessage, "n1")},
		{"null since", `{"type":"join","room":"dev","since":null,"clientId":"n2"}`, false, errAnswer(codeInvalidMessage, "n2")},
		{"null clientId", `{"clientId":null,"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"null isTyping", `{"type":"typing","room":"general","isTyping":null}`, false, errAnswer(codeInvalidMessage, "")},
		// Huge numbers.
		{"since 1e400", `{"type":"join","room":"dev","since":1e400}`, false, errAnswer(codeInvalidMessage, "")},
		{"since past uint64", `{"type":"join","room":"dev","since":"18446744073709551616-0"}`, false, errAnswer(codeInvalidMessage, "")},
		{"type 1e400", `{"type":1e400}`, false, errAnswer(codeInvalidMessage, "")},
		{"clientId 30 digits", `{"clientId":123456789012345678901234567890,"text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"unknown field 1e400 is ignored", `{"type":"message","room":"general","text":"big","clientId":"h1","n":1e400}`, false, ackAnswer("h1", "big")},
		// Invalid UTF-8: the whole frame is refused before it is parsed.
		{"invalid UTF-8 in text", msg("\"\xff\xfe\"", "u8"), false, errAnswer(codeInvalidMessage, "")},
		{"invalid UTF-8 in a key", "{\"\xc3\x28\":1,\"text\":\"x\"}", false, errAnswer(codeInvalidMessage, "")},
		{"overlong / in room", "{\"type\":\"join\",\"room\":\"\xc0\xaf\"}", false, errAnswer(codeInvalidMessage, "")},
		{"escaped lone surrogate becomes U+FFFD", msg(`"\ud800"`, "u9"), false, ackAnswer("u9", "\ufffd")},
		// Control characters.
		{"raw control character in a string", msg("\"a\x01b\"", "c1"), false, errAnswer(codeInvalidJSON, "")},
		{"raw newline in a string", msg("\"a\nb\"", "c2"), false, errAnswer(codeInvalidJSON, "")},
		{"escaped NUL in text is text", msg(`"a\u0000b"`, "c3"), false, ackAnswer("c3", "a\x00b")},
		{"escaped ANSI in text is text", msg(`"\u001b[2J\r\n"`, "c4"), false, ackAnswer("c4", "\x1b[2J\r\n")},
		{"escaped NUL in room", `{"type":"join","room":"dev\u0000"}`, false, errAnswer(codeInvalidRoom, "")},
		{"newline in room", `{"type":"join","room":"dev\n"}`, false, errAnswer(codeInvalidRoom, "")},
		// Oversize.
		{"text 4001 characters", msg(`"`+strings.Repeat("é", 4001)+`"`, "o1"), false, errAnswer(codeTextTooLong, "o1")},
		{"text 4000 characters", msg(`"`+strings.Repeat("é", 4000)+`"`, "o2"), false, ackAnswer("o2", strings.Repeat("é", 4000))},
		{"clientId 129 bytes", `{"clientId":"` + strings.Repeat("c", 129) + `","text":"x"}`, false, errAnswer(codeInvalidMessage, "")},
		{"clientId 128 bytes", msg(`"x"`, strings.Repeat("c", 128)), false, ackAnswer(strings.Repeat("c", 128), "x")},
		{"room 65 characters", join(strings.Repeat("a", 65)), false, errAnswer(codeInvalidRoom, "")},
		{"frame of exactly 64 KiB", `{"text":"` + strings.Repeat("x", maxFrameBytes-12) + `"}`, false, errAnswer(codeTextTooLong, "")},
		{"frame over 64 KiB", `{"text":"` + strings.Repeat("x", maxFrameBytes) + `"}`, false, closeAnswer(websocket.StatusMessageTooBig)},
		{"nesting 10001 deep", deep(10001), false, errAnswer(codeInvalidJSON, "")},
		{"nesting 5000 deep in an unknown field", `{"type":"message","room":"general","text":"deep","clientId":"d1","x":` + deep(5000) + `}`, false, ackAnswer("d1", "deep")},
		// Unknown fields are ignored: the server sets who sent a message.
		{"spoofed sender fields", `{"type":"message","room":"general","text":"me","clientId":"s1","userId":"admin","user":"root","username":"root","id":"1-1","ts":1}`, false, ackAnswer("s1", "me")},
		{"ping with extras", `{"type":"ping","room":7,"x":[null]}`, false, answer{pong: true}},
		{"duplicate type key: the last wins", `{"type":"join","type":"message","room":"general","text":"dup","clientId":"k1"}`, false, ackAnswer("k1", "dup")},
		{"unknown type", `{"type":"shout","clientId":"k2"}`, false, errAnswer(codeUnknownType, "k2")},
		{"type in capitals", `{"type":"MESSAGE","room":"general","text":"x"}`, false, errAnswer(codeUnknownType, "")},
		{"type __proto__", `{"type":"__proto__"}`, false, errAnswer(codeUnknownType, "")},
		// Not JSON.
		{"empty frame", ``, false, errAnswer(codeInvalidJSON, "")},
		{"byte order mark", "\ufeff{\"type\":\"ping\"}", false, errAnswer(codeInvalidJSON, "")},
		{"trailing garbage", `{"type":"ping"}x`, false, errAnswer(codeInvalidJSON, "")},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, false, errAnswer(codeInvalidJSON, "")},
		// Binary frames.
		{"binary JSON frame", `{"type":"ping"}`, true, closeAnswer(websocket.StatusUnsupportedData)},
		{"binary empty frame", ``, true, closeAnswer(websocket.StatusUnsupportedData)},
		// Room names: only 1-64 of a-z 0-9 _ - (no pattern, key or path
		// characters, no look-alikes).
		{"room *", join("*"), false, errAnswer(codeInvalidRoom, "")},
		{"room with .", join("dev.ops"), false, errAnswer(codeInvalidRoom, "")},
		{"room with :", join("chat:messages"), false, errAnswer(codeInvalidRoom, "")},
		{"room with { }", join("{general}"), false, errAnswer(codeInvalidRoom, "")},
		{"room ../", join("../../etc/passwd"), false, errAnswer(codeInvalidRoom, "")},
		{"room with Cyrillic а", join("gener\u0430l"), false, errAnswer(codeInvalidRoom, "")},
		{"room in fullwidth", join("ｇｅｎｅｒａｌ"), false, errAnswer(codeInvalidRoom, "")},
		{"room in capitals", join("General"), false, errAnswer(codeInvalidRoom, "")},
		{"room empty", join(""), false, errAnswer(codeInvalidRoom, "")},
		{"message to room *", `{"type":"message","room":"*","text":"x","clientId":"r1"}`, false, errAnswer(codeInvalidRoom, "r1")},
		{"typing to room chat.general", `{"type":"typing","room":"chat.general","isTyping":true}`, false, errAnswer(codeInvalidRoom, "")},
	}
}

// TestHostileFrames sends each hostile frame on a connection of its own,
// as a user of its own, so no other row's frames count towards the abuse
// close (the 21st invalid frame within 10 s, TestHostileFloods) or the
// message rate limits (3/s per room and user, 10/s per user).
func TestHostileFrames(t *testing.T) {
	srv := startChat(t, chatConfig(t))
	for i, row := range hostileFrames() {
		t.Run(row.name, func(t *testing.T) {
			s := srv.in(t)
			user := fmt.Sprint("h", i)
			c := s.dial(user, user+"-name")
			defer c.ws.CloseNow()
			sendFrame(t, c, row)
			w := row.want
			switch {
			case w.ack:
				wantAck(t, c, user, w)
			case w.close != 0:
				if got := c.closeStatus(); got != w.close {
					t.Fatalf("close %v, want %v", got, w.close)
				}
			case w.pong:
				c.next("pong")
			default:
				f := c.next("error")
				cid, _ := f["clientId"].(string)
				if f["code"] != w.code || cid != w.clientID {
					t.Fatalf("error %v, want code %s clientId %q", f, w.code, w.clientID)
				}
				if msg, _ := f["message"].(string); msg == "" {
					t.Fatalf("error %v has no message", f)
				}
			}
		})
	}
}

// in is s for a subtest: its helpers fail t.
func (s *server) in(t testing.TB) *server {
	c := *s
	c.t = t
	return &c
}

func sendFrame(t *testing.T, c *client, row hostileFrame) {
	t.Helper()
	typ := websocket.MessageText
	if row.binary {
		typ = websocket.MessageBinary
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, typ, []byte(row.frame)); err != nil && row.want.close == 0 {
		t.Fatal(err)
	}
}

// wantAck reads the ack of w.clientID and the message's delivery back to
// the sender: its text as w.text, its sender the connection's user
// whatever the frame claimed.
func wantAck(t *testing.T, c *client, user string, w answer) {
	t.Helper()
	var acked, echoed bool
	for !acked || !echoed {
		f := c.read()
		switch {
		case f["type"] == "ack" && f["clientId"] == w.clientID:
			acked = true
		case f["type"] == "message" && f["clientId"] == w.clientID:
			if f["text"] != w.text || f["userId"] != user || f["user"] != user+"-name" || f["room"] != "general" {
				t.Fatalf("delivered %.200v, want text %.40q from %s in general", f, w.text, user)
			}
			echoed = true
		case f["type"] == "presence":
		default:
			t.Fatalf("got %.200v waiting for the ack of %s", f, w.clientID)
		}
	}
}

// TestHostileFloods: floods of one client, at the default limits.
func TestHostileFloods(t *testing.T) {
	srv := startChat(t, chatConfig(t))
	burst := srv.cfg.Chat.MaxRoomsPerConn + joinBurstExtra

	// 10,000 joins on one connection: the first burst (60) is answered
	// joined, the rest refused with rate_limited errors, which count as
	// invalid frames, so the 21st closes the connection with 1008.
	t.Run("10000 joins", func(t *testing.T) {
		s := srv.in(t)
		c := s.dial("j1", "joiner")
		start := time.Now()
		go func() {
			for i := 0; i < 10000; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"dev"}`))
				cancel()
				if err != nil {
					return // closed
				}
			}
		}()
		joined, limited := 0, 0
		c.ReadInBackground(nil)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		for {
			f, err := c.ReadFrame(ctx)
			if err != nil {
				break
			}
			switch {
			case f["type"] == "joined":
				joined++
			case f["type"] == "error" && f["code"] == codeRateLimited:
				limited++
			case f["type"] == "presence", f["type"] == "room_event":
			default:
				t.Fatalf("unexpected %v", f)
			}
		}
		if got := c.closeStatus(); got != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want 1008", got)
		}
		// The bucket refills while the frames are handled.
		most := burst + int(time.Since(start).Seconds()*joinRate) + 1
		if joined < burst || joined > most || limited != garbageLimit+1 {
			t.Fatalf("%d joined and %d rate_limited, want %d..%d and %d", joined, limited, burst, most, garbageLimit+1)
		}
	})

	// A join-with-since flood: re-joining a room already joined replays
	// nothing again (recovered false), so 200 such joins of a room with
	// messages replay them once; past the join bucket they are refused,
	// and the 21st refusal closes the connection.
	t.Run("join with since flood", func(t *testing.T) {
		s := srv.in(t)
		sender := s.dial("j2", "sender")
		sender.join("dev")
		ids := sendNumbered(sender, "dev", "m", "m", 3)
		c := s.dial("j3", "rejoiner")
		for i := 0; i < 200; i++ {
			c.send(map[string]any{"type": "join", "room": "dev", "since": "0-0"})
		}
		var replayed []string
		joined, recovered, limited := 0, 0, 0
		for limited <= garbageLimit {
			f := c.read()
			switch {
			case f["type"] == "joined":
				joined++
				if f["recovered"] == true {
					recovered++
				}
			case f["type"] == "message":
				replayed = append(replayed, f["id"].(string))
			case f["type"] == "error" && f["code"] == codeRateLimited:
				limited++
			case f["type"] == "presence", f["type"] == "room_event":
			default:
				t.Fatalf("unexpected %v", f)
			}
		}
		if got := c.closeStatus(); got != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want 1008", got)
		}
		if fmt.Sprint(replayed) != fmt.Sprint(ids) || recovered != 1 || joined < burst {
			t.Fatalf("replayed %v (want %v once), %d joined, %d recovered", replayed, ids, joined, recovered)
		}
	})

	// 1,000 connection attempts of one user, from ten client addresses
	// (100 each: within the per-address handshake burst, so every one
	// reaches the per-user cap): exactly chat.max_conns_per_user (10) are
	// let in, every other is 429 {"error":"too many connections for this
	// user"} before the upgrade.
	t.Run("1000 connections of one user", func(t *testing.T) {
		s := srv.in(t)
		tok := url.QueryEscape(s.token("j4", "many"))
		var mu sync.Mutex
		var open []*websocket.Conn
		refused := map[string]int{}
		var wg sync.WaitGroup
		for a := 0; a < 10; a++ {
			wg.Add(1)
			go func(ip string) {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), waitFor)
					ws, resp, err := websocket.Dial(ctx, s.wsURL()+"/ws?token="+tok, apptest.DialOptionsFrom(ip)) //nolint:bodyclose // coder/websocket closes it
					cancel()
					mu.Lock()
					switch {
					case err == nil:
						open = append(open, ws)
					case resp != nil:
						refused[fmt.Sprint(resp.StatusCode, " ", errorBody(resp))]++
					default:
						refused[err.Error()]++
					}
					mu.Unlock()
				}
			}(fmt.Sprintf("127.0.0.%d", 10+a))
		}
		wg.Wait()
		for _, ws := range open {
			ws.CloseNow()
		}
		max := s.cfg.Chat.MaxConnsPerUser
		want := map[string]int{"429 too many connections for this user": 1000 - max}
		if len(open) != max || fmt.Sprint(refused) != fmt.Sprint(want) {
			t.Fatalf("%d let in, refused %v; want %d let in, refused %v", len(open), refused, max, want)
		}
	})
}

// TestHostileTokens: the upgrade refuses, before anything else, a token
// signed with alg none, with another key, expired or not yet valid, with
// 401 {"error"}; a token is verified without the store, so that of a user
// disabled since it was issued is let in until it expires
// (docs/security.md#hostile-input).
func TestHostileTokens(t *testing.T) {
	srv := startChat(t, chatConfig(t))
	secret := []byte(srv.cfg.Auth.JWTSecret)
	now := time.Now()
	claims := func(userID string, iat, nbf, exp time.Time) map[string]any {
		m := map[string]any{"userId": userID, "username": "tok", "iat": iat.Unix(), "exp": exp.Unix()}
		if !nbf.IsZero() {
			m["nbf"] = nbf.Unix()
		}
		return m
	}
	valid := claims("t1", now, time.Time{}, now.Add(time.Hour))
	// A user disabled after the token was issued (aurora users disable).
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	st := srv.App.Host().Store
	u, err := st.CreateUser(ctx, store.User{Username: "disabled-user", PasswordHash: "$2a$04$unused"})
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		name, token string
		status      int // 0: let in
		msg         string
	}{
		{"alg none", unsignedToken(valid), http.StatusUnauthorized, "invalid token"},
		{"wrong key", apptest.SignJWT(t, jwa.HS256, []byte("another-secret-0123456789abcdef0123"), valid), http.StatusUnauthorized, "invalid token"},
		{"HS512 with the right key", apptest.SignJWT(t, jwa.HS512, secret, valid), http.StatusUnauthorized, "invalid token"},
		{"expired", apptest.SignJWT(t, jwa.HS256, secret, claims("t1", now.Add(-2*time.Hour), time.Time{}, now.Add(-time.Hour))), http.StatusUnauthorized, "token expired"},
		{"not yet valid", apptest.SignJWT(t, jwa.HS256, secret, claims("t1", now, now.Add(time.Hour), now.Add(2*time.Hour))), http.StatusUnauthorized, "invalid token"},
		{"garbage", "not.a.token", http.StatusUnauthorized, "invalid token"},
		{"disabled user (stateless: let in until it expires)", apptest.SignJWT(t, jwa.HS256, secret, claims(u.ID, now, time.Time{}, now.Add(time.Hour))), 0, ""},
	} {
		t.Run(row.name, func(t *testing.T) {
			s := srv.in(t)
			status, msg := s.dialStatus("/ws?token="+url.QueryEscape(row.token), nil)
			if status != row.status || msg != row.msg {
				t.Fatalf("upgrade: %d %q, want %d %q", status, msg, row.status, row.msg)
			}
			code, body := s.getJSON("/api/rooms/general/messages", row.token)
			want := row.status
			if want == 0 {
				want = http.StatusOK
			}
			if code != want || row.msg != "" && body["error"] != row.msg {
				t.Fatalf("history: %d %v, want %d %q", code, body, want, row.msg)
			}
		})
	}
}

// TestHostileHistoryRooms: the history API refuses the same room names
// as join, with 400 {"error"} naming the rule.
func TestHostileHistoryRooms(t *testing.T) {
	s := startChat(t, chatConfig(t))
	tok := s.token("u1", "alice")
	for _, room := range []string{"*", "dev.ops", "chat:messages", "{general}", "..%2F..%2Fetc", "gener\u0430l", "ｇｅｎｅｒａｌ", "General", "dev%00", strings.Repeat("a", 65)} {
		code, body := s.getJSON("/api/rooms/"+url.PathEscape(room)+"/messages", tok)
		if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), "room names are") {
			t.Errorf("room %q: %d %v, want 400 naming the room rule", room, code, body)
		}
	}
	for _, q := range []string{"limit=" + strings.Repeat("9", 400), "limit=-" + strings.Repeat("9", 400)} {
		if code, body := s.getJSON("/api/rooms/general/messages?"+q, tok); code != http.StatusOK {
			t.Errorf("%.30s: %d %v, want 200 (clamped)", q, code, body)
		}
	}
	for q, param := range map[string]string{"limit=1e3": "limit", "before=18446744073709551616-0": "before", "after=%zz": "query", "before=1-0&after=0-1": "before and after"} {
		if code, body := s.getJSON("/api/rooms/general/messages?"+q, tok); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), param) {
			t.Errorf("%s: %d %v, want 400 naming %s", q, code, body, param)
		}
	}
}

// unsignedToken is a token with alg none, built by hand.
func unsignedToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload) + "."
}

// errorBody is the error of a refused upgrade's {"error"} body.
func errorBody(resp *http.Response) string {
	var body struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		return fmt.Sprintf("not {\"error\"}: %q", b)
	}
	return body.Error
}
