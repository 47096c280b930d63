// Package app is Aurora's module runtime: roles and shared infrastructure
// register themselves as modules with their dependencies; App builds the
// closure of the chosen roles, starts it in dependency order behind one HTTP
// listener, runs each module's background loop (Runner) until a failure or a
// signal, then turns /readyz to 503, waits the shutdown delay and stops
// everything in reverse within the drain deadline.
//
// It is only the runtime: it imports no module. The infrastructure modules
// (app/infra) and the roles (modules/...) register from init when the
// composition root (cmd) links them in, and cmd hands it the web UI
// (WithPage). The registry is the one list of roles: config asks it through
// the caller (Roles).
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
)

// The shared infrastructure modules' names. Roles list them in Deps to be
// given the Host field each fills (Redis, Store, Tokens). The modules live in
// app/infra, which the composition root links in; the runtime knows only
// their names and the types of what they provide.
const (
	ModRedis  = "redis"
	ModStore  = "store"
	ModTokens = "tokens"
)

// Host is what modules are given: the configuration, shared clients and the
// HTTP mux. Infrastructure modules fill in their client before the modules
// that depend on them are built.
type Host struct {
	Config  *config.Config
	Log     *slog.Logger
	Mux     *http.ServeMux
	Metrics *prometheus.Registry

	// Redis is set by the redis module; RedisEmbedded tells that it is the
	// in-process Redis, which keeps nothing across restarts.
	Redis         rueidis.Client
	RedisEmbedded bool
	// Store is set by the store module.
	Store store.Store
	// Tokens is set by the tokens module.
	Tokens *token.Issuer
}

// App runs a set of roles in one process.
type App struct {
	host     *Host
	listener net.Listener
	// redirect is the plain HTTP listener of http.redirect_addr, when on.
	redirect net.Listener
	// tls is the certificate source handed in (WithTLS), nil for plain HTTP.
	tls     *TLS
	started []started
	ready   atomic.Bool
	// failed receives the first error a module's Run returned before the
	// shutdown: it stops the process.
	failed chan error
	// page serves what no route claims under "/" (the web UI).
	page http.Handler

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	connsRefused    prometheus.Counter
	upgradesRefused prometheus.Counter
	upgrades        *upgradeLimiter
	trusted         []netip.Prefix
	draining        atomic.Bool
	mu              sync.Mutex
}

type started struct {
	name string
	mod  Module
	// stopRun cancels the module's Run and waits for it to return, after
	// Stop (a no-op for a module that is not a Runner).
	stopRun func(ctx context.Context) error
}

// Option configures an App: what the composition root hands the runtime
// instead of the runtime importing it.
type Option func(*App)

// WithPage serves the GET and HEAD requests under "/" that no module's
// route claims: the web UI, which cmd hands in so that the runtime does not
// import it. Without it those requests answer a JSON 404.
func WithPage(h http.Handler) Option {
	return func(a *App) { a.page = h }
}

// New prepares an App for cfg.Roles; it does not start anything yet.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{
		failed: make(chan error, 1),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aurora_http_requests_total",
			Help: "HTTP requests by route pattern and status code (101 for WebSocket upgrades).",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aurora_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern (upgrades excluded).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	a.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aurora_http_conns_refused_total",
		Help: "Connections answered 429 and closed because their address already held http.max_conns_per_ip.",
	})
	a.upgradesRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aurora_http_upgrades_refused_total",
		Help: "WebSocket handshakes answered 429 because their address exceeded http.upgrade_rate_per_ip.",
	})
	a.trusted = cfg.TrustedProxyPrefixes()
	a.upgrades = newUpgradeLimiter(cfg.HTTP.UpgradeRatePerIP, cfg.HTTP.UpgradeBurstPerIP)
	reg.MustRegister(a.httpRequests, a.httpDuration, a.connsRefused, a.upgradesRefused)
	a.host = &Host{
		Config:  cfg,
		Log:     log,
		Mux:     http.NewServeMux(),
		Metrics: reg,
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Host returns the shared host (for tests and commands that reuse clients).
func (a *App) Host() *Host { return a.host }

// Module returns the started module named name, or nil when none of that
// name has started: for tests that look inside a module.
func (a *App) Module(name string) Module {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.started {
		if s.name == name {
			return s.mod
		}
	}
	return nil
}

// Addr is the address the HTTP listener is bound to, once Run has bound it.
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// RedirectAddr is the address the redirect listener (http.redirect_addr)
// is bound to, once Run has bound it; "" when there is none.
func (a *App) RedirectAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.redirect == nil {
		return ""
	}
	return a.redirect.Addr().String()
}

// Run binds the listener, starts the modules and serves until ctx is done or
// a module fails, then drains. It returns the first error that stopped it.
func (a *App) Run(ctx context.Context) error {
	h := a.host
	cfg := h.Config
	regs, err := plan(cfg.Roles)
	if err != nil {
		return err
	}

	var tlsCfg *tls.Config
	if cfg.HTTP.TLS.Enabled() || a.tls != nil {
		if tlsCfg, err = serverTLS(a.tls); err != nil {
			return fmt.Errorf("http.tls: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	var redirectLn net.Listener
	var redirectSrv *http.Server
	if cfg.HTTP.RedirectAddr != "" && tlsCfg != nil {
		if redirectLn, redirectSrv, err = a.listenRedirect(cfg); err != nil {
			_ = ln.Close()
			return err
		}
	}
	a.mu.Lock()
	a.listener = ln
	a.redirect = redirectLn
	a.mu.Unlock()

	a.routes()
	// ReadTimeout bounds a request's headers and body; the middleware lifts
	// it for WebSocket upgrades and sets each response's write deadline
	// (not WriteTimeout, which would outlive a hijack and cut WebSockets).
	srv := &http.Server{
		Handler:           a.middleware(h.Mux),
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTP.ReadTimeout),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(h.Log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 2)
	limited := newConnLimitListener(ln, cfg.HTTP.MaxConnsPerIP, a.trusted, a.connsRefused, tlsCfg != nil)
	scheme := "http"
	if tlsCfg != nil {
		// HTTP/1.1 only: a non-nil empty TLSNextProto keeps net/http
		// from offering HTTP/2.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		limited = tls.NewListener(limited, tlsCfg)
		scheme = "https"
	}
	go func() { serveErr <- srv.Serve(limited) }()
	if redirectSrv != nil {
		rl := newConnLimitListener(redirectLn, cfg.HTTP.MaxConnsPerIP, a.trusted, a.connsRefused, false)
		go func() {
			if err := redirectSrv.Serve(rl); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("redirect listener: %w", err)
			}
		}()
	}

	startErr := a.start(ctx, regs)
	if startErr == nil {
		a.ready.Store(true)
		a.warnEmbedded()
		a.warnNullOrigin()
		started := []any{"roles", cfg.Roles, "addr", ln.Addr().String(), "scheme", scheme}
		if redirectLn != nil {
			started = append(started, "redirect_addr", redirectLn.Addr().String())
		}
		h.Log.Info("aurora started", started...)
		select {
		case <-ctx.Done():
			h.Log.Info("shutdown requested", "drain_timeout", cfg.HTTP.DrainTimeout.String())
		case err := <-a.failed:
			startErr = err
			h.Log.Error("module failed, stopping", "err", err)
		case err := <-serveErr:
			startErr = fmt.Errorf("http server: %w", err)
		}
	}

	// Drain: readiness off first so load balancers stop routing here.
	a.draining.Store(true)
	a.ready.Store(false)
	if d := cfg.HTTP.ShutdownDelay; d > 0 && startErr == nil {
		time.Sleep(d)
	}
	dctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.DrainTimeout)
	defer cancel()
	var errs []error
	if startErr != nil {
		errs = append(errs, startErr)
	}
	if err := srv.Shutdown(dctx); err != nil {
		errs = append(errs, fmt.Errorf("stop http server: %w", err))
	}
	if redirectSrv != nil {
		if err := redirectSrv.Shutdown(dctx); err != nil {
			errs = append(errs, fmt.Errorf("stop redirect listener: %w", err))
		}
	}
	errs = append(errs, a.stopAll(dctx)...)
	select {
	case err := <-a.failed:
		// A loop failed while the start failed or the shutdown began.
		errs = append(errs, err)
	default:
	}
	if len(errs) == 0 {
		h.Log.Info("aurora stopped")
	}
	return errors.Join(errs...)
}

func (a *App) start(ctx context.Context, regs []Registration) error {
	for _, r := range regs {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // interrupted while starting is a normal stop: drain what started
		}
		m, err := r.New(ctx, a.host)
		if err != nil {
			return fmt.Errorf("module %s: %w", r.Name, err)
		}
		if m == nil {
			// A constructor that returns neither a module nor an error
			// would otherwise crash the process on Start.
			return fmt.Errorf("module %s: constructor returned no module", r.Name)
		}
		if err := m.Start(ctx); err != nil {
			return fmt.Errorf("module %s: start: %w", r.Name, err)
		}
		stopRun := a.run(ctx, r.Name, m)
		a.mu.Lock()
		a.started = append(a.started, started{r.Name, m, stopRun})
		a.mu.Unlock()
		a.host.Log.Debug("module started", "module", r.Name)
	}
	return nil
}

// run starts m's Run when m is a Runner, and returns what ends it: cancel
// its context, then wait for it to return within ctx. An error Run returns
// before the shutdown began stops the process; one it returns later is a
// stop error.
func (a *App) run(ctx context.Context, name string, m Module) func(ctx context.Context) error {
	r, ok := m.(Runner)
	if !ok {
		return func(context.Context) error { return nil }
	}
	// Not cancelled with ctx: once started, the loop runs until its module
	// has stopped, through the shutdown delay and the drain.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		err := r.Run(rctx)
		if err != nil && rctx.Err() == nil && !a.draining.Load() {
			select {
			case a.failed <- fmt.Errorf("module %s: run: %w", name, err):
			default: // another module failed first: that one is reported
			}
			err = nil // reported: not again as a stop error
		}
		done <- err
	}()
	return func(ctx context.Context) error {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("module %s: run: %w", name, err)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("module %s: run did not return: %w", name, ctx.Err())
		}
	}
}

// stopAll stops the started modules in reverse order of start: each one's
// Stop (which drains while its loop still runs), then its Run.
func (a *App) stopAll(ctx context.Context) []error {
	a.mu.Lock()
	mods := a.started
	a.started = nil
	a.mu.Unlock()
	var errs []error
	for i := len(mods) - 1; i >= 0; i-- {
		if err := mods[i].mod.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("module %s: stop: %w", mods[i].name, err))
		}
		if err := mods[i].stopRun(ctx); err != nil {
			errs = append(errs, err)
		}
		a.host.Log.Debug("module stopped", "module", mods[i].name)
	}
	return errs
}

// warnEmbedded says, in one WARN line, which stores are the embedded ones.
func (a *App) warnEmbedded() {
	h := a.host
	var embedded []string
	if h.RedisEmbedded {
		embedded = append(embedded, "redis (in-process: keeps nothing across restarts; set redis.url)")
	}
	if h.Store != nil && h.Config.Mongo.URL == "" {
		embedded = append(embedded, "sqlite ("+h.Config.SQLitePath()+"; set mongo.url for MongoDB)")
	}
	if len(embedded) > 0 {
		h.Log.Warn("using embedded stores: " + strings.Join(embedded, ", "))
	}
}

// warnNullOrigin says, in one WARN line, that Origin "null" is allowed:
// fine for opening a page as a file in development, unsafe anywhere else.
func (a *App) warnNullOrigin() {
	h := a.host
	if slices.Contains(h.Config.HTTP.CORSOrigins, NullOrigin) {
		h.Log.Warn(`http.cors_origins allows Origin "null": pages opened as files and sandboxed pages of any site may call this server's API and WebSocket from a browser; list "null" in development only`)
	}
}

// CheckUnavailable is what /readyz says of a failing check to a client that
// may not see its error.
const CheckUnavailable = "unavailable"

// checks runs every started module's readiness check: "ok", or the error
// when details is set, else CheckUnavailable.
func (a *App) checks(ctx context.Context, details bool) (map[string]string, bool) {
	a.mu.Lock()
	mods := append([]started(nil), a.started...)
	a.mu.Unlock()
	out := map[string]string{}
	ok := a.ready.Load()
	for _, s := range mods {
		c, isChecker := s.mod.(Checker)
		if !isChecker {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Check(cctx)
		cancel()
		switch {
		case err != nil && details:
			out[s.name] = err.Error()
			ok = false
		case err != nil:
			out[s.name] = CheckUnavailable
			ok = false
		default:
			out[s.name] = "ok"
		}
	}
	if a.draining.Load() {
		out["shutdown"] = "draining"
	} else if !a.ready.Load() {
		out["startup"] = "starting"
	}
	return out, ok
}
