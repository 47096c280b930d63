package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app"
)

// readyzFailing starts an app whose role's check fails with an error naming
// an internal address, and returns it with that error text.
func readyzFailing(t *testing.T, details bool, addr string) (*server, string, string) {
	t.Helper()
	role := uniq("details")
	chk := &checkedFake{fake: fake{name: role, rec: &recorder{}}}
	app.Register(app.Registration{
		Name: role, Role: true, Deps: []string{app.ModRedis},
		New: func(context.Context, *app.Host) (app.Module, error) { return chk, nil },
	})
	cfg := testConfig(t, role)
	cfg.HTTP.ReadyzDetails = details
	if addr != "" {
		cfg.HTTP.Addr = addr
	}
	s := startApp(t, cfg)
	broken := errors.New("dial tcp 10.1.2.3:27017 mongo-0.mongo.data.svc.cluster.local: connection refused")
	chk.err.Store(&broken)
	return s, role, broken.Error()
}

// readyzFrom calls the server's /readyz handler with the request coming from
// remote (an ip:port) and the given headers, and decodes the answer.
func readyzFrom(t *testing.T, s *server, remote string, hdr map[string]string) (int, string, map[string]string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.app.Host().Mux.ServeHTTP(rec, req)
	var v struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("/readyz from %s: body %q: %v", remote, rec.Body.String(), err)
	}
	return rec.Code, v.Status, v.Checks, rec.Body.String()
}

func TestReadyzDetailsOnlyForLoopback(t *testing.T) {
	s, role, detail := readyzFailing(t, false, "")

	// Over real HTTP from loopback (where the tests run): the error.
	code, status, checks := readyz(t, s.url)
	if code != http.StatusServiceUnavailable || status != "unavailable" || checks[role] != detail || checks[app.ModRedis] != "ok" {
		t.Fatalf("/readyz from loopback = %d %q %v, want 503 with the error", code, status, checks)
	}
	// Over real HTTP from loopback, but relayed by a proxy: a forwarding
	// header only ever takes details away, whatever address it claims.
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"} {
		_, body := do(t, http.MethodGet, s.url+"/readyz", map[string]string{h: "127.0.0.1"})
		if strings.Contains(string(body), "10.1.2.3") || !strings.Contains(string(body), `"`+role+`":"unavailable"`) {
			t.Errorf("/readyz with %s: 127.0.0.1 shows details: %s", h, body)
		}
	}

	// Loopback addresses, IPv4 and IPv6, see the error.
	for _, remote := range []string{"127.0.0.1:4000", "127.9.8.7:1", "[::1]:4000", "[::ffff:127.0.0.1]:4000"} {
		code, _, checks, _ := readyzFrom(t, s, remote, nil)
		if code != http.StatusServiceUnavailable || checks[role] != detail {
			t.Errorf("/readyz from %s = %d %v, want the error", remote, code, checks)
		}
	}
	// Anything else keeps the status and the check names, not the error.
	for _, remote := range []string{"203.0.113.9:4000", "10.1.2.3:5000", "[2001:db8::1]:4000", "[::ffff:10.0.0.1]:4000", "[::]:1", "0.0.0.0:1", "not-an-address", ""} {
		code, status, checks, body := readyzFrom(t, s, remote, map[string]string{"X-Forwarded-For": "127.0.0.1"})
		if code != http.StatusServiceUnavailable || status != "unavailable" {
			t.Errorf("/readyz from %q = %d %q, want 503 unavailable", remote, code, status)
		}
		if checks[role] != app.CheckUnavailable || checks[app.ModRedis] != "ok" || len(checks) != 2 {
			t.Errorf("/readyz from %q: checks %v, want %s unavailable and %s ok", remote, checks, role, app.ModRedis)
		}
		if strings.Contains(body, "10.1.2.3:27017") || strings.Contains(body, "mongo-0") || strings.Contains(body, "refused") {
			t.Errorf("/readyz from %q shows the error: %s", remote, body)
		}
	}
}

func TestReadyzDetailsSetting(t *testing.T) {
	s, role, detail := readyzFailing(t, true, "")
	for _, remote := range []string{"203.0.113.9:4000", "[2001:db8::1]:4000"} {
		code, _, checks, _ := readyzFrom(t, s, remote, map[string]string{"X-Forwarded-For": "198.51.100.1"})
		if code != http.StatusServiceUnavailable || checks[role] != detail {
			t.Errorf("http.readyz_details: /readyz from %s = %d %v, want the error", remote, code, checks)
		}
	}
}

// TestReadyzFromAnotherAddress is a real connection from an address of this
// machine that is not loopback (where it has one): status, no details.
func TestReadyzFromAnotherAddress(t *testing.T) {
	ip := nonLoopbackIP(t)
	s, role, _ := readyzFailing(t, false, net.JoinHostPort(ip, "0"))
	code, status, checks := readyz(t, s.url)
	if code != http.StatusServiceUnavailable || status != "unavailable" || checks[role] != app.CheckUnavailable || checks[app.ModRedis] != "ok" {
		t.Fatalf("/readyz over %s = %d %q %v, want 503 with %s unavailable", ip, code, status, checks, role)
	}
}

// nonLoopbackIP is an IPv4 address of this machine that is not loopback, or
// skips the test.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ln, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
			if err != nil {
				continue
			}
			ln.Close()
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to connect from")
	return ""
}

func TestFromLoopback(t *testing.T) {
	for remote, want := range map[string]bool{
		"127.0.0.1:1": true, "127.255.255.254:1": true, "[::1]:1": true, "[::ffff:127.0.0.1]:1": true,
		"128.0.0.1:1": false, "192.168.1.1:1": false, "[::2]:1": false, "[fe80::1%lo]:1": false,
		"127.0.0.1": false, "localhost:1": false, "": false, "@": false,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		if got := app.FromLoopback(req); got != want {
			t.Errorf("FromLoopback(%q) = %v, want %v", remote, got, want)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	if app.FromLoopback(req) {
		t.Error("a request relayed by a proxy (X-Forwarded-For) counts as loopback")
	}
}
