package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

// waitFor bounds every wait of a test for something that must happen.
const waitFor = 15 * time.Second

// chatConfig is a test configuration running the chat role alone.
func chatConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = []string{"chat"}
	cfg.Chat.PresenceInterval = 20 * time.Millisecond
	return cfg
}

// server is a running chat server in this process.
type server struct {
	*apptest.Server
	t     testing.TB
	cfg   *config.Config
	redis rueidis.Client
}

func startChat(t testing.TB, cfg *config.Config) *server {
	t.Helper()
	s := apptest.Start(t, cfg)
	return &server{Server: s, t: t, cfg: cfg, redis: apptest.RedisClient(t, cfg.Redis.URL)}
}

func (s *server) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

// token mints a token for a user with the server's secret.
func (s *server) token(userID, username string) string {
	s.t.Helper()
	tok, _, err := s.App.Host().Tokens.Issue(userID, username)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// client is a test WebSocket client: apptest's, with the names these
// tests use.
type client struct {
	*apptest.WS
	// ws is the connection, for the tests that write or read raw frames.
	ws *websocket.Conn
	// t is the test the client fails.
	t testing.TB
}

// dial connects as the user through ?token= and reads the welcome frame.
func (s *server) dial(userID, username string) *client {
	s.t.Helper()
	c := apptest.DialChat(s.t, waitFor, apptest.WSURL(s.URL, "/ws", s.token(userID, username)), nil)
	return &client{WS: c, ws: c.Conn, t: s.t}
}

// dialRaw connects to path with opts and fails the test when refused.
func (s *server) dialRaw(path string, opts *websocket.DialOptions) *client {
	s.t.Helper()
	c := apptest.DialWS(s.t, waitFor, s.wsURL()+path, opts)
	return &client{WS: c, ws: c.Conn, t: s.t}
}

// dialStatus tries to connect and returns the HTTP status and error body
// of a refusal (0 when the upgrade succeeded).
func (s *server) dialStatus(path string, hdr http.Header) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.wsURL()+path, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil {
		ws.CloseNow()
		return 0, ""
	}
	if resp == nil {
		s.t.Fatalf("dial %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
		s.t.Fatalf("dial %s: status %d body %q is not {\"error\"}", path, resp.StatusCode, b)
	}
	return resp.StatusCode, body.Error
}

func (c *client) send(v any) {
	c.t.Helper()
	c.Send(v)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	c.SendRaw(b)
}

// read returns the next frame decoded.
func (c *client) read() map[string]any {
	c.t.Helper()
	return c.Read()
}

// next reads until a frame of type typ, skipping presence frames and the
// types in skip; any other frame fails the test.
func (c *client) next(typ string, skip ...string) map[string]any {
	c.t.Helper()
	return c.Next(typ, skip...)
}

// closeStatus reads until the connection closes and returns its close code.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	return c.CloseStatus()
}

// msg sends a typed message and returns its ack, once the sender's own
// copy of the message has arrived too. Other frames read meanwhile stay
// pending for later reads.
func (c *client) msg(room, text, clientID string) map[string]any {
	c.t.Helper()
	return c.sendAndAck(room, text, clientID, true)
}

// resend is msg for a resend: acked, not delivered again.
func (c *client) resend(room, text, clientID string) map[string]any {
	c.t.Helper()
	return c.sendAndAck(room, text, clientID, false)
}

func (c *client) sendAndAck(room, text, clientID string, echo bool) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"type": "message", "room": room, "text": text, "clientId": clientID})
	var ack map[string]any
	var held []map[string]any
	for ack == nil || echo {
		f := c.read()
		switch {
		case f["type"] == "ack" && f["clientId"] == clientID:
			ack = f
		case f["type"] == "message" && f["clientId"] == clientID && f["room"] == room && echo:
			echo = false
		case f["type"] == "error" && f["clientId"] == clientID, f["type"] == "rate_limited" && f["clientId"] == clientID:
			c.t.Fatalf("message %s refused: %v", clientID, f)
		default:
			held = append(held, f)
		}
	}
	c.Unread(held...)
	return ack
}

// join joins room and returns the joined frame.
func (c *client) join(room string) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room})
	return c.next("joined")
}

// errorCode sends raw and returns the code of the error frame answering it.
func (c *client) errorCode(raw string) (code, clientID string) {
	c.t.Helper()
	c.sendRaw([]byte(raw))
	f := c.next("error")
	cid, _ := f["clientId"].(string)
	if msg, _ := f["message"].(string); msg == "" {
		c.t.Errorf("error frame %v has no message", f)
	}
	return f["code"].(string), cid
}

// metric returns the value of an unlabelled metric (or a labelled series
// given as `name{label="v"}`) from /metrics; 0 when absent.
func (s *server) metric(name string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				s.t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// eventually polls cond until it holds or waitFor passes. Used only where
// the server offers no signal to wait on (metrics, readiness, Redis state).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) readyStatus() int {
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// do runs a Redis command of the test's own client.
func do(t testing.TB, r rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return r.Do(ctx, r.B().Arbitrary(args...).Build())
}

// messageEntries are the stream's entries that are messages, not room
// events (joins and room creations append those).
func messageEntries(t testing.TB, r rueidis.Client) []rueidis.XRangeEntry {
	t.Helper()
	entries, err := do(t, r, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	var out []rueidis.XRangeEntry
	for _, e := range entries {
		if e.FieldValues[bus.FieldType] == "" {
			out = append(out, e)
		}
	}
	return out
}

// xlen is the stream's length.
func xlen(t testing.TB, r rueidis.Client, stream string) int64 {
	t.Helper()
	n, err := do(t, r, "XLEN", stream).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
