// Package apptest starts real Aurora servers and the stores they need for
// tests: an in-process Redis by default, or the real Redis named by
// AURORA_TEST_REDIS_URL (then a test that needs Redis fails, never skips,
// when it is unreachable). It links in the infrastructure modules
// (app/infra) and the web UI, as cmd does, so a role's tests get redis,
// store and tokens by importing it.
package apptest

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/web"
)

// RedisEnv names the real Redis the tests use when set. Tests that use it
// flush it first, so it must be a Redis for tests only; the packages that use
// it must not run their Redis tests in parallel (.ci/run uses -p 1).
const RedisEnv = "AURORA_TEST_REDIS_URL"

// RealRedis reports whether tests run against a real Redis.
func RealRedis() bool { return os.Getenv(RedisEnv) != "" }

// RedisURL returns the URL of a Redis for this test: the real one from
// AURORA_TEST_REDIS_URL (flushed), or a fresh embedded one on loopback, the
// Redis `aurora serve` runs without a redis.url (its URL carries the
// password and ?protocol=2, which Aurora reads as "RESP2 only, single node").
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(RedisEnv); u != "" {
		c := RedisClient(t, u)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Do(ctx, c.B().Flushall().Build()).Error(); err != nil {
			t.Fatalf("%s=%s: flush real redis: %v", RedisEnv, u, err)
		}
		return u
	}
	return EmbeddedRedis(t, embeddedredis.Options{}).URL()
}

// EmbeddedRedis starts an embedded Redis with opts on a free loopback port;
// it stops when the test ends.
func EmbeddedRedis(t testing.TB, opts embeddedredis.Options) *embeddedredis.Server {
	t.Helper()
	m, err := embeddedredis.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("start an embedded redis: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// RedisClient connects to url for the test's own checks; it fails the test
// when Redis does not answer.
func RedisClient(t testing.TB, url string) rueidis.Client {
	t.Helper()
	opt, err := infra.RedisOptions(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("connect to redis %s: %v", url, err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("redis %s does not answer: %v", url, err)
	}
	return c
}

// Config returns a configuration for a test server: every role registered
// in this test binary, a free loopback port, a temp data dir, the test
// Redis, fast bcrypt, quiet logs.
func Config(t testing.TB) *config.Config {
	t.Helper()
	c := config.Default(app.Roles()...)
	c.DataDir = t.TempDir()
	c.HTTP.Addr = "127.0.0.1:0"
	c.HTTP.DrainTimeout = 10 * time.Second
	c.Redis.URL = RedisURL(t)
	c.Auth.BcryptCost = 4
	c.Auth.JWTSecret = "test-secret-0123456789abcdef0123456789"
	return &c
}

// Server is a running Aurora in this process.
type Server struct {
	App *app.App
	URL string // http://127.0.0.1:port, or https://host:port (StartTLS)
	// Client reaches URL: for a TLS server it trusts the test's roots
	// (for wss too: websocket.DialOptions{HTTPClient: s.Client}).
	Client *http.Client
	stop   context.CancelFunc
	done   chan error
}

// Start runs cfg in-process and waits until /readyz answers 200. The server
// stops when the test ends (or with Stop).
func Start(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return StartWithLog(t, cfg, log)
}

// StartWithLog is Start with the server logging to log, for tests that
// check what the server logs (an error line, no secrets).
func StartWithLog(t testing.TB, cfg *config.Config, log *slog.Logger) *Server {
	t.Helper()
	return start(t, cfg, log, nil, "")
}

// start runs cfg as cmd serve does; a TLS server (http.tls) is reached
// through a client trusting roots, at host in URLs.
func start(t testing.TB, cfg *config.Config, log *slog.Logger, roots *x509.CertPool, host string) *Server {
	t.Helper()
	if err := cfg.Validate(app.Roles()); err != nil {
		t.Fatal(err)
	}
	// What cmd serve hands the runtime: the web UI on "/", and the
	// certificate source when http.tls asks for one.
	opts := []app.Option{app.WithPage(http.FileServerFS(web.Files))}
	tlsSrc, err := infra.ServerTLS(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if tlsSrc != nil {
		opts = append(opts, app.WithTLS(tlsSrc))
	}
	a := app.New(cfg, log, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{App: a, stop: cancel, done: make(chan error, 1), Client: &http.Client{Timeout: 5 * time.Second}}
	go func() { s.done <- a.Run(ctx) }()
	const within = 30 * time.Second
	began := time.Now()
	if !Poll(within, func() bool { s.failIfStopped(t, "server did not start"); return a.Addr() != "" }) {
		t.Fatalf("server did not bind in %s", within)
	}
	s.URL = "http://" + a.Addr()
	if tlsSrc != nil {
		_, port, _ := net.SplitHostPort(a.Addr())
		s.URL = "https://" + net.JoinHostPort(host, port)
		s.Client = TLSClient(roots, a.Addr())
	}
	if !Poll(within-time.Since(began), func() bool {
		s.failIfStopped(t, "server stopped while starting")
		return readyStatus(s.Client, s.URL) == http.StatusOK
	}) {
		t.Fatalf("server not ready in %s", within)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil && !errors.Is(err, errStopped) {
			t.Errorf("server stop: %v", err)
		}
	})
	return s
}

// failIfStopped fails the test, saying what and Run's error, once Run has
// returned.
func (s *Server) failIfStopped(t testing.TB, what string) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("%s: %v", what, err)
	default:
	}
}

// ReadyStatus is the status of GET base/readyz, 0 when nothing answers
// within 5 s.
func ReadyStatus(base string) int {
	return readyStatus(&http.Client{Timeout: 5 * time.Second}, base)
}

func readyStatus(c *http.Client, base string) int {
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

var errStopped = errors.New("already stopped")

// Stop drains the server and returns Run's error; later calls return errStopped.
func (s *Server) Stop() error {
	s.stop()
	select {
	case err, ok := <-s.done:
		if !ok {
			return errStopped
		}
		close(s.done)
		return err
	case <-time.After(60 * time.Second):
		return errors.New("server did not stop in 60s")
	}
}
