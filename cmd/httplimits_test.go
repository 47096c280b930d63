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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/auroradev/aurora/app/apptest"
	_ "github.com/auroradev/aurora/modules/auth" // the routes these tests call
	_ "github.com/auroradev/aurora/modules/chat"
)

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
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	// Lowered from 30s so the test waits one second, not thirty.
	cfg.HTTP.ReadTimeout = time.Second
	s := apptest.Start(t, cfg)

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
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	// Lowered from 2m so the test waits one second.
	cfg.HTTP.IdleTimeout = time.Second
	s := apptest.Start(t, cfg)

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
	cfg := apptest.Config(t)
	cfg.Roles = []string{"chat"}
	// Both lowered to one second: a WebSocket must outlive them.
	cfg.HTTP.ReadTimeout = time.Second
	cfg.HTTP.WriteTimeout = time.Second
	s := apptest.Start(t, cfg)
	tok, _, err := s.App.Host().Tokens.Issue("0123456789abcdef01234567", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, path := range []string{"/", "/ws"} {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+path+"?token="+tok, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		time.Sleep(1500 * time.Millisecond)
		if err := wsjson.Write(ctx, ws, map[string]string{"type": "ping"}); err != nil {
			t.Fatalf("%s: write after the timeouts: %v", path, err)
		}
		for {
			var f map[string]any
			if err := wsjson.Read(ctx, ws, &f); err != nil {
				t.Fatalf("%s: read after the timeouts: %v", path, err)
			}
			if f["type"] == "pong" {
				break
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
}

func TestConnectionsPerIPCapped(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	// Lowered from 256 so the test opens four connections, not 257.
	cfg.HTTP.MaxConnsPerIP = 3
	s := apptest.Start(t, cfg)
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := rawConn(t, s, 5*time.Second)
		resp, err := healthz(c)
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			c.Close()
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("slot not given back after a close: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // that close to reach the server
	if n := metricValue(t, s.URL, "aurora_http_conns_refused_total"); n < 1 {
		t.Fatalf("aurora_http_conns_refused_total = %v, want at least 1", n)
	}
}

func TestUpgradeRatePerIP(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Roles = []string{"chat"}
	// Lowered from 20/s burst 100 so three handshakes exceed it and one
	// second refills it.
	cfg.HTTP.UpgradeRatePerIP = 1
	cfg.HTTP.UpgradeBurstPerIP = 2
	s := apptest.Start(t, cfg)

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
	if n := metricValue(t, s.URL, "aurora_http_upgrades_refused_total"); n != 1 {
		t.Fatalf("aurora_http_upgrades_refused_total = %v, want 1", n)
	}
}

// metricValue scrapes base's /metrics for the unlabelled series name.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
