// Package embeddedredis is the Redis that Aurora runs inside its own process
// when no redis.url is configured (`aurora serve` on one host) and that
// `aurora dev redis` runs on its own: miniredis, with two things added that
// a real deployment takes for granted.
//
//   - Keys age on the wall clock. miniredis moves TTLs only when told to
//     (FastForward), so without this every rate-limit window, login lockout,
//     dedupe key and presence entry would live forever. See clock.go.
//   - It is private: it listens on loopback only and requires a password
//     that the process generates, so another local user cannot read or
//     write the chat's keys.
//
// Clients connect with ClientOptions (in process) or URL (other processes);
// both speak RESP2, which is all miniredis speaks.
package embeddedredis

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
)

// Options configure Start. The zero value is what `aurora serve` uses.
type Options struct {
	// Password clients must give; generated (128 random bits) when empty.
	Password string
	// FrozenClock turns the wall clock off: keys then age only by
	// FastForward, as in plain miniredis. It exists so the Redis contract
	// suite can show that it catches exactly that bug; nothing else sets it.
	FrozenClock bool
}

// Server is a running embedded Redis.
type Server struct {
	m        *miniredis.Miniredis
	clock    *clock
	password string
}

// ErrNotLoopback is returned by Start for an address other processes on the
// network could reach.
var ErrNotLoopback = errors.New("the embedded Redis listens on loopback only")

// Start listens on addr ("127.0.0.1:0" for a free port), which must be a
// loopback address.
func Start(addr string, opt Options) (*Server, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	pw := opt.Password
	if pw == "" {
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, fmt.Errorf("generate embedded redis password: %w", err)
		}
		pw = hex.EncodeToString(raw[:])
	}
	m := miniredis.NewMiniRedis()
	m.RequireAuth(pw)
	s := &Server{m: m, password: pw}
	if !opt.FrozenClock {
		s.clock = newClock(m)
	}
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start embedded redis on %s: %w", addr, err)
	}
	if s.clock != nil {
		s.clock.install()
	}
	return s, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedded redis address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q is not a loopback address (use 127.0.0.1:PORT)", ErrNotLoopback, addr)
	}
	return nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.m.Addr() }

// Password is the password clients must give.
func (s *Server) Password() string { return s.password }

// URL is the redis:// URL for another Aurora process, password included;
// ?protocol=2 tells Aurora the server speaks RESP2 only and is one node.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", User: url.UserPassword("", s.password), Host: s.m.Addr(), RawQuery: "protocol=2"}
	return u.String()
}

// ClientOptions are rueidis options for a client in this process: RESP2,
// one node, no client-side caching.
func (s *Server) ClientOptions() rueidis.ClientOption {
	return ClientOptions(s.m.Addr(), s.password)
}

// ClientOptions are rueidis options for the embedded Redis at addr.
func ClientOptions(addr, password string) rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress:       []string{addr},
		Password:          password,
		DisableCache:      true,
		ForceSingleClient: true,
		AlwaysRESP2:       true,
	}
}

// Restart listens again on the same address after Close, with the same
// data (what a Redis restart with persistence looks like), for tests of
// clients that must reconnect.
func (s *Server) Restart() error {
	if err := s.m.Restart(); err != nil {
		return fmt.Errorf("restart embedded redis on %s: %w", s.m.Addr(), err)
	}
	if s.clock != nil {
		s.clock.install()
	}
	return nil
}

// Close stops the server and its clock.
func (s *Server) Close() {
	if s.clock != nil {
		s.clock.stop()
	}
	s.m.Close()
}
