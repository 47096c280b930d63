package apptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WS is a test's WebSocket connection to a chat endpoint, speaking JSON
// frames (decoded as maps). The methods without an error result fail the
// test and belong to the test's goroutine; ReadFrame and WriteFrame return
// errors and may be called from any goroutine. Every wait is bounded: by
// the client's wait (given at the dial) or by the caller's context.
type WS struct {
	// Conn is the connection itself, for tests that write raw frames, close
	// with a code or read what the client does not decode.
	Conn *websocket.Conn
	t    testing.TB
	wait time.Duration

	mu   sync.Mutex
	held []map[string]any // put back by Unread, read first
	// frames is set by ReadInBackground: its reader's frames; closed, with
	// bgErr set, when the connection ends.
	frames chan map[string]any
	bgErr  error
}

// WSURL is the WebSocket address of path on the server at base
// (http://host:port), with the token in the query as browsers send it.
func WSURL(base, path, token string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path + "?token=" + url.QueryEscape(token)
}

// BearerProtocols are the dial options that carry the token as the web
// client does: in the subprotocol list beside aurora.v1, not in the URL.
func BearerProtocols(token string) *websocket.DialOptions {
	return &websocket.DialOptions{Subprotocols: []string{"aurora.v1", "aurora.bearer." + token}}
}

// DialWS connects to url with opts, failing the test when the server
// refuses. Every later read and write of the client waits at most wait. The
// connection is closed when the test ends.
func DialWS(t testing.TB, wait time.Duration, url string, opts *websocket.DialOptions) *WS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", strings.Split(url, "?")[0], err, status)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return &WS{Conn: ws, t: t, wait: wait}
}

// TryDialChat is DialChat for a server that may still refuse: it returns
// nil and the refusal's HTTP status (0 when the dial failed without one)
// instead of failing the test.
func TryDialChat(t testing.TB, wait time.Duration, url string, opts *websocket.DialOptions) (*WS, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err != nil {
		if resp != nil {
			return nil, resp.StatusCode
		}
		return nil, 0
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	c := &WS{Conn: ws, t: t, wait: wait}
	if f := c.Read(); f["type"] != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c, 0
}

// DialChat is DialWS for a client that must be let in: the first frame has
// to be the welcome, which it consumes.
func DialChat(t testing.TB, wait time.Duration, url string, opts *websocket.DialOptions) *WS {
	t.Helper()
	c := DialWS(t, wait, url, opts)
	if f := c.Read(); f["type"] != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

// ReadInBackground reads the connection on a goroutine of its own from now
// on, so the client answers the server's pings even while the test does
// not read (a server closes a connection that stops answering). Frames for
// which keep returns false are dropped there (keep nil keeps all); the
// others wait, up to 256, for the client's reads.
func (c *WS) ReadInBackground(keep func(map[string]any) bool) {
	frames := make(chan map[string]any, 256)
	c.mu.Lock()
	c.frames = frames
	c.mu.Unlock()
	go func() {
		defer close(frames)
		for {
			f, err := c.readConn(context.Background())
			if err != nil {
				c.mu.Lock()
				c.bgErr = err
				c.mu.Unlock()
				return
			}
			if keep == nil || keep(f) {
				frames <- f
			}
		}
	}()
}

// ReadFrame returns the next frame, waiting as long as ctx allows.
func (c *WS) ReadFrame(ctx context.Context) (map[string]any, error) {
	c.mu.Lock()
	if len(c.held) > 0 {
		f := c.held[0]
		c.held = c.held[1:]
		c.mu.Unlock()
		return f, nil
	}
	frames := c.frames
	c.mu.Unlock()
	if frames == nil {
		return c.readConn(ctx)
	}
	select {
	case f, ok := <-frames:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, fmt.Errorf("connection closed: %w", c.bgErr)
		}
		return f, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("read frame: %w", ctx.Err())
	}
}

// readConn reads one frame from the connection as a JSON object.
func (c *WS) readConn(ctx context.Context) (map[string]any, error) {
	typ, b, err := c.Conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	if typ != websocket.MessageText {
		return nil, errors.New("got a binary frame")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("frame %q is not a JSON object: %w", b, err)
	}
	return m, nil
}

// WriteFrame writes v as one JSON text frame, waiting at most the client's
// wait (or less, as ctx allows).
func (c *WS) WriteFrame(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	return c.writeRaw(ctx, b)
}

func (c *WS) writeRaw(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// Send writes v as a JSON frame.
func (c *WS) Send(v any) {
	c.t.Helper()
	if err := c.WriteFrame(context.Background(), v); err != nil {
		c.t.Fatal(err)
	}
}

// SendRaw writes b as a text frame as it is, valid JSON or not.
func (c *WS) SendRaw(b []byte) {
	c.t.Helper()
	if err := c.writeRaw(context.Background(), b); err != nil {
		c.t.Fatal(err)
	}
}

// Read returns the next frame, waiting at most the client's wait.
func (c *WS) Read() map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	f, err := c.ReadFrame(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// Unread puts frames back, in order, before those not read yet: a helper
// that reads ahead for one frame leaves the others to later reads.
func (c *WS) Unread(frames ...map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = append(append([]map[string]any{}, frames...), c.held...)
}

// Next reads until a frame of type typ, skipping presence frames, room
// events (a join or a room's creation appends one) and rooms_changed
// notices (tests of those read them with Next of their type or Expect),
// and those of the types in skip; any other frame fails the test.
func (c *WS) Next(typ string, skip ...string) map[string]any {
	c.t.Helper()
	for {
		f := c.Read()
		if f["type"] == typ {
			return f
		}
		if f["type"] == "presence" || f["type"] == "room_event" || f["type"] == "rooms_changed" || isOneOf(f["type"], skip) {
			continue
		}
		c.t.Fatalf("got %v while waiting for a %s frame", f, typ)
	}
}

func isOneOf(v any, list []string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// Expect reads frames until one for which match holds, within the client's
// wait in all; an error or rate_limited frame it does not match fails the
// test, and any other frame is skipped.
func (c *WS) Expect(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
		if f["type"] == "error" || f["type"] == "rate_limited" {
			c.t.Fatalf("got %v while waiting for %s", f, what)
		}
	}
}

// Join joins room (with since when not empty) and returns the joined
// frame, skipping presence and typing frames before it; a joined frame of
// another room fails the test.
func (c *WS) Join(room, since string) map[string]any {
	c.t.Helper()
	f := map[string]any{"type": "join", "room": room}
	if since != "" {
		f["since"] = since
	}
	c.Send(f)
	j := c.Next("joined", "typing")
	if j["room"] != room {
		c.t.Fatalf("joined %v, want room %s", j, room)
	}
	return j
}

// CloseStatus reads until the server closes the connection and returns the
// close code, failing the test when it stays open for the client's wait.
func (c *WS) CloseStatus() websocket.StatusCode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	c.mu.Lock()
	frames := c.frames
	c.mu.Unlock()
	if frames != nil {
		for {
			select {
			case _, ok := <-frames:
				if !ok {
					c.mu.Lock()
					defer c.mu.Unlock()
					return websocket.CloseStatus(c.bgErr)
				}
			case <-ctx.Done():
				c.t.Fatalf("connection not closed in %s", c.wait)
			}
		}
	}
	for {
		_, _, err := c.Conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				c.t.Fatalf("connection not closed in %s", c.wait)
			}
			return websocket.CloseStatus(err)
		}
	}
}
