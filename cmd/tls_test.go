package cmd_test

// HTTPS and WSS served by aurora itself (http.tls), with the real roles:
// here, not in app, because a WebSocket needs the chat role.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
)

// tlsChat checks what a browser does over TLS: an HTTPS request, then a
// wss connection on which a message is acked and delivered back.
func tlsChat(t *testing.T, s *apptest.Server) {
	t.Helper()
	resp, err := s.Client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET %s/healthz: %v", s.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /healthz over TLS: status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp.TLS.Version < tls.VersionTLS12 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("negotiated TLS %#x %s, want >= TLS 1.2 and HTTP/1.1", resp.TLS.Version, resp.Proto)
	}

	tok, _, err := s.App.Host().Tokens.Issue("0123456789abcdef01234567", "alice")
	if err != nil {
		t.Fatal(err)
	}
	url := apptest.WSURL(s.URL, "/ws", tok)
	if !strings.HasPrefix(url, "wss://") {
		t.Fatalf("WebSocket URL %s is not wss", url)
	}
	ws := apptest.DialChat(t, 10*time.Second, url, &websocket.DialOptions{HTTPClient: s.Client})
	ws.Send(map[string]any{"type": "message", "room": "general", "text": "over tls", "clientId": "tls-1"})
	// The ack and the fan-out of the message may come in either order.
	acked, delivered := false, false
	ws.Expect("the ack and the message back", func(f map[string]any) bool {
		acked = acked || (f["type"] == "ack" && f["clientId"] == "tls-1")
		delivered = delivered || (f["type"] == "message" && f["text"] == "over tls")
		return acked && delivered
	})
	ws.Conn.Close(websocket.StatusNormalClosure, "")
}

func TestTLSFromCertFiles(t *testing.T) {
	ca := apptest.NewTestCA(t, 24*time.Hour, "localhost", "127.0.0.1")
	cfg := apptest.Config(t)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
	s := apptest.StartTLS(t, cfg, ca.Roots, "localhost")
	tlsChat(t, s)

	resp, err := s.Client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS %q sent without the redirect listener: HTTP may still be served on this host", h)
	}

	// By IP too: the certificate names 127.0.0.1.
	byIP := apptest.TLSClient(ca.Roots, s.App.Addr())
	resp, err = byIP.Get("https://" + s.App.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("GET by IP: %v", err)
	}
	resp.Body.Close()

	// Below TLS 1.2: no handshake.
	old, err := tls.Dial("tcp", s.App.Addr(), &tls.Config{RootCAs: ca.Roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	// A client that does not trust the CA refuses the certificate.
	resp, err = apptest.TLSClient(x509.NewCertPool(), s.App.Addr()).Get(s.URL + "/healthz")
	if err == nil {
		resp.Body.Close()
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("client without the CA: %v, want an unknown-authority error", err)
	}
	// Plain HTTP on the TLS port gets net/http's 400, no page.
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.App.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("plain HTTP on the TLS port: %v, want a 400", err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP on the TLS port: %d, want 400", plain.StatusCode)
	}
}

func TestTLSRedirectListener(t *testing.T) {
	ca := apptest.NewTestCA(t, 24*time.Hour, "localhost")
	cfg := apptest.Config(t)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
	cfg.HTTP.RedirectAddr = "127.0.0.1:0"
	s := apptest.StartTLS(t, cfg, ca.Roots, "localhost")
	_, tlsPort, _ := net.SplitHostPort(s.App.Addr())
	redirect := s.App.RedirectAddr()
	if redirect == "" {
		t.Fatal("no redirect listener bound")
	}
	plain := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cases := []struct {
		method, host, target, want string
	}{
		// A request that named a port goes to the HTTPS listener's port.
		{"GET", "localhost:" + portOf(redirect), "/api/rooms/general/messages?limit=5&before=1-0",
			"https://localhost:" + tlsPort + "/api/rooms/general/messages?limit=5&before=1-0"},
		{"POST", "localhost:" + portOf(redirect), "/api/auth/login", "https://localhost:" + tlsPort + "/api/auth/login"},
		// One that came to the standard port (no port in Host) goes to 443.
		{"GET", "chat.example.com", "/a%20b/?q=%2F", "https://chat.example.com/a%20b/?q=%2F"},
		{"HEAD", "[::1]:80", "/", "https://[::1]:" + tlsPort + "/"},
		// Certificates from files: the ACME challenge path is redirected too.
		{"GET", "chat.example.com", "/.well-known/acme-challenge/token", "https://chat.example.com/.well-known/acme-challenge/token"},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, "http://"+redirect+tc.target, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != tc.want {
			t.Errorf("%s Host %s %s: %d Location %q, want 308 to %q", tc.method, tc.host, tc.target,
				resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}

	// The redirect leads to the same resource over HTTPS, which now tells
	// browsers to stay on HTTPS.
	req, err := http.NewRequest(http.MethodGet, "http://"+redirect+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost:" + portOf(redirect)
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	resp, err = s.Client.Get(loc)
	if err != nil {
		t.Fatalf("follow %s: %v", loc, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ok") {
		t.Fatalf("GET %s: %d %s", loc, resp.StatusCode, body)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h != app.HSTS {
		t.Errorf("HSTS %q with the redirect listener on, want %q", h, app.HSTS)
	}
	tlsChat(t, s)
}

// TestTLSConnectionCapClosesSilently: over TLS a connection over
// http.max_conns_per_ip is closed without a plaintext 429 (which a TLS
// client would read as garbage), and counted.
func TestTLSConnectionCapClosesSilently(t *testing.T) {
	ca := apptest.NewTestCA(t, 24*time.Hour, "localhost")
	cfg := apptest.Config(t)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
	cfg.Roles = []string{"auth"}
	// Lowered from 256 so the test opens three connections, not 257.
	cfg.HTTP.MaxConnsPerIP = 2
	s := apptest.StartTLS(t, cfg, ca.Roots, "localhost")
	time.Sleep(100 * time.Millisecond) // StartTLS's readiness probes to close
	s.Client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)

	dial := func() (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, "tcp", s.App.Addr(), &tls.Config{RootCAs: ca.Roots, ServerName: "localhost"})
	}
	var held []*tls.Conn
	for range 2 {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection under the cap: %v", err)
		}
		held = append(held, c)
	}
	c, err := dial()
	if err == nil {
		c.Close()
		t.Fatal("a third connection completed its TLS handshake over a cap of 2")
	}
	// Closed before the handshake: EOF, not "first record does not look
	// like a TLS handshake" (a plaintext 429).
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("over the cap: %v; want the connection closed without an answer", err)
	}
	for _, c := range held {
		c.Close()
	}
	var n float64
	if !apptest.Poll(5*time.Second, func() bool {
		c, err := dial() // the slots given back
		if err != nil {
			return false
		}
		c.Close()
		return true
	}) {
		t.Fatal("slots not given back after the connections closed")
	}
	time.Sleep(100 * time.Millisecond) // that close to reach the server
	if n = s.Metric(t, "aurora_http_conns_refused_total"); n < 1 {
		t.Fatalf("aurora_http_conns_refused_total = %v, want at least 1", n)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
