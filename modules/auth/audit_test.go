package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
)

// auditLog is a server's log in JSON (the production format), read line by
// line so each audit line's exact attributes can be checked.
type auditLog struct {
	apptest.Buffer
	seen int // audit lines already checked
}

func (l *auditLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// audits returns every line with msg "audit", decoded.
func (l *auditLog) audits(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if m["msg"] == "audit" {
			m["_raw"] = line
			out = append(out, m)
		}
	}
	return out
}

// next returns the one audit line written since the last call, failing
// when there is none or more than one. Handlers write the line before the
// response, so it is there once the response arrived.
func (l *auditLog) next(t *testing.T) map[string]any {
	t.Helper()
	all := l.audits(t)
	fresh := all[l.seen:]
	l.seen = len(all)
	if len(fresh) != 1 {
		t.Fatalf("%d audit lines since the last check, want exactly 1:\n%s", len(fresh), l.String())
	}
	return fresh[0]
}

// want checks that line has exactly the attributes of want (plus time,
// level and msg), with these values; "*" accepts any non-empty value.
func wantAudit(t *testing.T, line map[string]any, want map[string]string) {
	t.Helper()
	raw := line["_raw"].(string)
	if line["level"] != "INFO" {
		t.Errorf("audit line at level %v, want INFO: %s", line["level"], raw)
	}
	var keys []string
	for k := range line {
		switch k {
		case "time", "level", "msg", "_raw":
			continue
		}
		keys = append(keys, k)
	}
	var wantKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("audit line has attributes %v, want %v: %s", keys, wantKeys, raw)
	}
	for k, v := range want {
		got, _ := line[k].(string)
		if v == "*" && got != "" {
			continue
		}
		if got != v {
			t.Errorf("audit %s = %q, want %q: %s", k, got, v, raw)
		}
	}
}

func auditServer(t *testing.T, change func(*config.Config)) (*apptest.Server, *auditLog) {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	change(cfg)
	logs := &auditLog{}
	return apptest.StartWithLog(t, cfg, logs.logger()), logs
}

func auditPost(t *testing.T, s *apptest.Server, path, user, password, xff string) response {
	t.Helper()
	var hdr map[string]string
	if xff != "" {
		hdr = map[string]string{"X-Forwarded-For": xff}
	}
	return call(t, s.URL, "POST", path, jsonType, creds(user, password), hdr)
}

// Every register and login, successful or not, writes exactly one audit
// line with the client's address and the request's id; a failed login's
// says why, never the password. The server runs at the default limits and
// trusts no proxy, so a client's X-Forwarded-For is not believed.
func TestAuditRegisterAndLogin(t *testing.T) {
	s, logs := auditServer(t, func(*config.Config) {})
	const forged = "203.0.113.66" // what the client claims; not trusted

	r := auditPost(t, s, "/api/auth/register", "alice", "alice-password", forged)
	r.want(t, http.StatusCreated)
	aliceID := r.user(t, "user").ID
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.register", "user": "alice", "user_id": aliceID, "ip": "127.0.0.1",
		"req": r.header.Get("X-Request-Id"),
	})

	r = auditPost(t, s, "/api/auth/login", "alice", "alice-password", forged)
	r.want(t, http.StatusOK)
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login", "user": "alice", "user_id": aliceID, "ip": "127.0.0.1",
		"req": r.header.Get("X-Request-Id"),
	})

	const guess = "Tr0ub4dor&3-guess"
	r = auditPost(t, s, "/api/auth/login", "ALICE", guess, "")
	r.wantError(t, http.StatusUnauthorized, "invalid credentials")
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login_failed", "user": "ALICE", "user_id": aliceID, "ip": "127.0.0.1",
		"reason": "wrong_password", "req": r.header.Get("X-Request-Id"),
	})

	r = auditPost(t, s, "/api/auth/login", "nobody", guess, "")
	r.wantError(t, http.StatusUnauthorized, "invalid credentials")
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login_failed", "user": "nobody", "ip": "127.0.0.1",
		"reason": "unknown_user", "req": "*",
	})

	// A disabled user with the right password.
	r = auditPost(t, s, "/api/auth/register", "mallory", "mallory-password", "")
	r.want(t, http.StatusCreated)
	malloryID := r.user(t, "user").ID
	logs.next(t)
	u, err := s.App.Host().Store.UserByName(context.Background(), "mallory")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := s.App.Host().Store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	r = auditPost(t, s, "/api/auth/login", "mallory", "mallory-password", "")
	r.wantError(t, http.StatusUnauthorized, "invalid credentials")
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login_failed", "user": "mallory", "user_id": malloryID, "ip": "127.0.0.1",
		"reason": "disabled", "req": "*",
	})

	// A 16 KB username (the body limit is 16 KiB), failed until throttled
	// at the default auth.login_max_failures (5): each attempt one line,
	// the username bounded to 64 bytes and its length.
	huge := strings.Repeat("u", 16000)
	bounded := strings.Repeat("u", 64) + "…(16000 bytes)"
	for range 5 {
		auditPost(t, s, "/api/auth/login", huge, guess, "").wantError(t, http.StatusUnauthorized, "invalid credentials")
		wantAudit(t, logs.next(t), map[string]string{
			"event": "user.login_failed", "user": bounded, "ip": "127.0.0.1", "reason": "unknown_user", "req": "*",
		})
	}
	auditPost(t, s, "/api/auth/login", huge, guess, "").wantError(t, http.StatusTooManyRequests, "too many failed logins")
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login_failed", "user": bounded, "ip": "127.0.0.1", "reason": "throttled", "req": "*",
	})

	// Refused requests that are not logins or registrations are not
	// audited: a registration that conflicts, bad input.
	auditPost(t, s, "/api/auth/register", "alice", "alice-password", "").want(t, http.StatusConflict)
	auditPost(t, s, "/api/auth/login", "", "", "").want(t, http.StatusBadRequest)
	if n := len(logs.audits(t)); n != logs.seen {
		t.Fatalf("%d audit lines for a conflict and a bad request, want none:\n%s", n-logs.seen, logs.String())
	}

	out := logs.String()
	for _, secret := range []string{"alice-password", "mallory-password", guess} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the password %q", secret)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 1024 {
			t.Errorf("a log line is %d bytes: %.300s…", len(line), line)
		}
	}
}

// Behind a trusted proxy the audit line names the client X-Forwarded-For
// gives (its right-most hop that is not a trusted proxy), and a login
// refused by the per-address limit is audited with that address.
func TestAuditBehindTrustedProxy(t *testing.T) {
	s, logs := auditServer(t, func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} })

	r := auditPost(t, s, "/api/auth/register", "erin", "erin-password", "198.51.100.7")
	r.want(t, http.StatusCreated)
	erinID := r.user(t, "user").ID
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.register", "user": "erin", "user_id": erinID, "ip": "198.51.100.7", "req": "*",
	})

	// A forged left part does not count: the right-most hop is the client.
	auditPost(t, s, "/api/auth/login", "erin", "erin-password", "192.0.2.1, 198.51.100.8").want(t, http.StatusOK)
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login", "user": "erin", "user_id": erinID, "ip": "198.51.100.8", "req": "*",
	})

	// The default auth.login_per_ip (30 a minute) from one client, then
	// the 31st is refused before any credentials are checked.
	const client = "198.51.100.9"
	for i := range 30 {
		auditPost(t, s, "/api/auth/login", fmt.Sprintf("guess%02d", i), "whatever-pw", client).
			wantError(t, http.StatusUnauthorized, "invalid credentials")
		wantAudit(t, logs.next(t), map[string]string{
			"event": "user.login_failed", "user": fmt.Sprintf("guess%02d", i), "ip": client, "reason": "unknown_user", "req": "*",
		})
	}
	r = auditPost(t, s, "/api/auth/login", "erin", "erin-password", client)
	r.wantError(t, http.StatusTooManyRequests, "too many attempts from this address")
	wantAudit(t, logs.next(t), map[string]string{
		"event": "user.login_failed", "user": "erin", "ip": client, "reason": "ip_limited",
		"req": r.header.Get("X-Request-Id"),
	})
	if strings.Contains(logs.String(), "erin-password") {
		t.Error("the log contains erin's password")
	}
}
