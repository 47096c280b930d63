package cmd_test

// The HTTP server's limits (timeouts, connections and handshakes per
// address), tested on servers running the real roles: here, not in app,
// because the runtime's tests must not import a role.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
	_ "github.com/auroradev/aurora/modules/auth" // the routes these tests call
	_ "github.com/auroradev/aurora/modules/chat"
)

// startWithLimits runs a server of the one role with the HTTP limits as
// tune sets them: each test lowers the one it checks, so that it waits
// seconds rather than minutes.
func startWithLimits(t *testing.T, role string, tune func(h *config.HTTP)) *apptest.Server {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = []string{role}
	tune(&cfg.HTTP)
	return apptest.Start(t, cfg)
}

// rawConn opens a TCP connection to s with a deadline that fails the test
// rather than hanging it.
func rawConn(t *testing.T, s *apptest.Server, bound time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.App.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	return c
}

func readJSONError(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
		t.Fatalf("status %d: body is not {\"error\"}: %v", resp.StatusCode, err)
	}
	return body.Error
}

func TestSlowBodyIsCutOff(t *testing.T) {
	s := startWithLimits(t, "auth", func(h *config.HTTP) {
		// Lowered from 30s so the test waits one second, not thirty.
		h.ReadTimeout = time.Second
	})

	c := rawConn(t, s, 10*time.Second)
	_, err := io.WriteString(c, "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	// Trickle the body a byte at a time in the background; the server must
	// give up on it at the read timeout, long before it is complete.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if _, err := c.Write([]byte("{")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s of a trickled body", time.Since(start).Round(time.Second))
		}
		return // closed by the server: what a 1 byte/s sender gets too
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	readJSONError(t, resp)
}

func TestIdleKeepAliveIsClosed(t *testing.T) {
	s := startWithLimits(t, "auth", func(h *config.HTTP) {
		// Lowered from 2m so the test waits one second.
		h.IdleTimeout = time.Second
	})

	c := rawConn(t, s, 10*time.Second)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// Now idle: the server must close the connection.
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("idle keep-alive connection still open after 10s")
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read on idle connection: %v, want EOF", err)
	}
}

func TestWebSocketOutlivesRequestTimeouts(t *testing.T) {
	s := startWithLimits(t, "chat", func(h *config.HTTP) {
		// Both lowered to one second: a WebSocket must outlive them.
		h.ReadTimeout = time.Second
		h.WriteTimeout = time.Second
	})
	tok, _, err := s.App.Host().Tokens.Issue("0123456789abcdef01234567", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, path := range []string{"/", "/ws"} {
		ws := apptest.DialWS(t, 10*time.Second, apptest.WSURL(s.URL, path, tok), nil)
		time.Sleep(1500 * time.Millisecond)
		if err := ws.WriteFrame(ctx, map[string]string{"type": "ping"}); err != nil {
			t.Fatalf("%s: write after the timeouts: %v", path, err)
		}
		for {
			f, err := ws.ReadFrame(ctx)
			if err != nil {
				t.Fatalf("%s: read after the timeouts: %v", path, err)
			}
			if f["type"] == "pong" {
				break
			}
		}
		ws.Conn.Close(websocket.StatusNormalClosure, "")
	}
}

func TestConnectionsPerIPCapped(t *testing.T) {
	s := startWithLimits(t, "auth", func(h *config.HTTP) {
		// Lowered from 256 so the test opens four connections, not 257.
		h.MaxConnsPerIP = 3
	})
	// apptest.Start's readiness probes may still be closing: let them go.
	time.Sleep(100 * time.Millisecond)

	healthz := func(c net.Conn) (*http.Response, error) {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return nil, err
		}
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
	var held []net.Conn
	for range 3 {
		c := rawConn(t, s, 10*time.Second)
		resp, err := healthz(c)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection under the cap: %v %v", resp, err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	over := rawConn(t, s, 10*time.Second)
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("connection over the cap: %v, want a 429", err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	readJSONError(t, resp)

	// Closing one gives its slot back.
	held[0].Close()
	last := ""
	if !apptest.Poll(5*time.Second, func() bool {
		c := rawConn(t, s, 5*time.Second)
		defer c.Close()
		resp, err := healthz(c)
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("slot not given back after a close: %s", last)
	}
	time.Sleep(100 * time.Millisecond) // that close to reach the server
	if n := apptest.Metric(t, s.URL, "aurora_http_conns_refused_total"); n < 1 {
		t.Fatalf("aurora_http_conns_refused_total = %v, want at least 1", n)
	}
}

func TestUpgradeRatePerIP(t *testing.T) {
	s := startWithLimits(t, "chat", func(h *config.HTTP) {
		// Lowered from 20/s burst 100 so three handshakes exceed it and one
		// second refills it.
		h.UpgradeRatePerIP = 1
		h.UpgradeBurstPerIP = 2
	})

	handshake := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/ws", nil)
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Connection", "Upgrade")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := range 2 {
		resp := handshake()
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("handshake %d within the burst refused", i+1)
		}
	}
	resp := handshake()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("handshake over the burst: status %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	readJSONError(t, resp)
	// Other routes are not limited.
	r2, err := http.Get(s.URL + "/healthz")
	if err != nil || r2.StatusCode != http.StatusOK {
		t.Fatalf("healthz while handshakes are limited: %v %v", r2, err)
	}
	r2.Body.Close()
	// The bucket refills at the rate.
	time.Sleep(1100 * time.Millisecond)
	resp = handshake()
	resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		t.Fatal("handshake refused after the bucket refilled")
	}
	if n := apptest.Metric(t, s.URL, "aurora_http_upgrades_refused_total"); n != 1 {
		t.Fatalf("aurora_http_upgrades_refused_total = %v, want 1", n)
	}
}
