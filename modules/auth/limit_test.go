package auth_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
)

func authServer(t *testing.T, change func(*config.Config)) *apptest.Server {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	change(cfg)
	return apptest.Start(t, cfg)
}

func register(t *testing.T, s *apptest.Server, name, xff string) response {
	t.Helper()
	var hdr map[string]string
	if xff != "" {
		hdr = map[string]string{"X-Forwarded-For": xff}
	}
	return call(t, s.URL, "POST", "/api/auth/register", jsonType, creds(name, "password-"+name), hdr)
}

func wantRetryAfter(t *testing.T, r response, atMost time.Duration) {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || n < 1 || time.Duration(n)*time.Second > atMost+time.Second {
		t.Fatalf("Retry-After %q, want 1..%v seconds", r.header.Get("Retry-After"), atMost)
	}
}

// The 11th registration from one address within auth.ip_window is 429,
// and the window reopens by itself.
func TestRegisterPerIP(t *testing.T) {
	const window = 2 * time.Second
	s := authServer(t, func(c *config.Config) {
		// Lowered from 1m so the test can wait for the window to reopen.
		c.Auth.IPWindow = window
	})
	for i := range 10 {
		register(t, s, fmt.Sprintf("reg%02d", i), "").want(t, http.StatusCreated)
	}
	r := register(t, s, "reg10", "")
	r.wantError(t, http.StatusTooManyRequests, "too many attempts from this address")
	wantRetryAfter(t, r, window)
	if n := metric(t, s.App.Host().Metrics, "aurora_auth_ip_limited_total", "action", "register"); n != 1 {
		t.Fatalf("aurora_auth_ip_limited_total{action=register} = %v, want 1", n)
	}
	// Logins are counted apart: still allowed.
	call(t, s.URL, "POST", "/api/auth/login", jsonType, creds("reg00", "password-reg00"), nil).want(t, http.StatusOK)

	time.Sleep(window + 100*time.Millisecond)
	register(t, s, "reg10", "").want(t, http.StatusCreated)
}

// The 31st login attempt from one address within the window is 429, over
// any usernames (so unknown users cannot be tried at bcrypt cost without
// end).
func TestLoginPerIP(t *testing.T) {
	s := authServer(t, func(*config.Config) {})
	for i := range 30 {
		call(t, s.URL, "POST", "/api/auth/login", jsonType, creds(fmt.Sprintf("nobody%02d", i), "whatever-pw"), nil).
			wantError(t, http.StatusUnauthorized, "invalid credentials")
	}
	r := call(t, s.URL, "POST", "/api/auth/login", jsonType, creds("nobody30", "whatever-pw"), nil)
	r.wantError(t, http.StatusTooManyRequests, "too many attempts from this address")
	wantRetryAfter(t, r, time.Minute)
}

// X-Forwarded-For names the client only when the connection comes from a
// trusted proxy.
func TestForwardedForTrust(t *testing.T) {
	t.Run("untrusted peer: ignored", func(t *testing.T) {
		s := authServer(t, func(*config.Config) {})
		// Ten addresses claimed, one real one: all counted against 127.0.0.1.
		for i := range 10 {
			register(t, s, fmt.Sprintf("u%02d", i), fmt.Sprintf("203.0.113.%d", i+1)).want(t, http.StatusCreated)
		}
		register(t, s, "u10", "203.0.113.99").wantError(t, http.StatusTooManyRequests, "too many attempts")
	})
	t.Run("trusted peer: honoured", func(t *testing.T) {
		s := authServer(t, func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} })
		for i := range 10 {
			register(t, s, fmt.Sprintf("t%02d", i), "203.0.113.1").want(t, http.StatusCreated)
		}
		register(t, s, "t10", "203.0.113.1").wantError(t, http.StatusTooManyRequests, "too many attempts")
		// A forged left part does not help: the right-most hop is the client.
		register(t, s, "t11", "198.51.100.7, 203.0.113.1").wantError(t, http.StatusTooManyRequests, "too many attempts")
		// Another client behind the same proxy has its own count.
		register(t, s, "t12", "203.0.113.2").want(t, http.StatusCreated)
	})
}

// With many registrations at once, at most auth.bcrypt_concurrency hash.
func TestBcryptConcurrencyBound(t *testing.T) {
	const slots, n = 2, 16
	s := authServer(t, func(c *config.Config) {
		// Set rather than GOMAXPROCS, which differs between machines.
		c.Auth.BcryptConcurrency = slots
		// Raised from apptest's 4 so hashes last long enough to overlap.
		c.Auth.BcryptCost = 10
		// This test counts the peak, not the wait: 16 hashes through 2
		// slots outlast the 2 s default wait under -race, so the wait is
		// raised (the wait itself is tested below).
		c.Auth.BcryptWait = 30 * time.Second
		// Each request comes "from" its own client so the per-address
		// limit stays out of the way.
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
	})
	statuses := concurrentRegistrations(t, s, n)
	for i, st := range statuses {
		if st != http.StatusCreated {
			t.Fatalf("registration %d: status %d", i, st)
		}
	}
	reg := s.App.Host().Metrics
	if peak := metric(t, reg, "aurora_auth_bcrypt_in_flight_peak", "", ""); peak != slots {
		t.Fatalf("at most %v bcrypt ran at once, want exactly %d (bounded, and the requests did overlap)", peak, slots)
	}
	if busy := metric(t, reg, "aurora_auth_bcrypt_in_flight", "", ""); busy != 0 {
		t.Fatalf("%v bcrypt slots still held after every request ended", busy)
	}
}

// A request that gets no bcrypt slot within auth.bcrypt_wait is 503 with
// Retry-After.
func TestBcryptBusy(t *testing.T) {
	s := authServer(t, func(c *config.Config) {
		c.Auth.BcryptConcurrency = 1
		// Lowered from 2s and the cost raised from 4 so that a waiting
		// request cannot get the one slot in time.
		c.Auth.BcryptWait = 5 * time.Millisecond
		c.Auth.BcryptCost = 12
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
	})
	statuses := concurrentRegistrations(t, s, 4)
	created, busy := 0, 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusServiceUnavailable:
			busy++
		default:
			t.Fatalf("status %d", st)
		}
	}
	if created < 1 || busy < 1 {
		t.Fatalf("%d created, %d busy; want some of each", created, busy)
	}
	if n := counter(t, s.App.Host().Metrics, "aurora_auth_bcrypt_busy_total", ""); n != float64(busy) {
		t.Fatalf("aurora_auth_bcrypt_busy_total = %v, want %d", n, busy)
	}
	// The answer itself: one more while a hash runs.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = post(s, "holder", "192.0.2.200") }()
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, s.App.Host().Metrics, "aurora_auth_bcrypt_in_flight", "", "") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the holder's hash never started")
		}
		time.Sleep(time.Millisecond)
	}
	r := register(t, s, "waiter", "192.0.2.201")
	r.wantError(t, http.StatusServiceUnavailable, "server busy")
	wantRetryAfter(t, r, time.Second)
	wg.Wait()
}

// concurrentRegistrations sends n registrations at once, each from its own
// client address behind the (trusted) loopback proxy, and returns their
// statuses.
func concurrentRegistrations(t *testing.T, s *apptest.Server, n int) []int {
	t.Helper()
	return atOnce(t, n, func(i int) (int, error) {
		return post(s, fmt.Sprintf("flood%02d", i), fmt.Sprintf("192.0.2.%d", i+1))
	})
}

// post registers name from xff, for goroutines (which must not t.Fatal).
func post(s *apptest.Server, name, xff string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/auth/register", strings.NewReader(creds(name, "flood-password")))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Forwarded-For", xff)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
