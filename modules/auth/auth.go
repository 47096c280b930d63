// Package auth is the auth role: register, login and me over HTTP, with
// bcrypt passwords and HS256 JWTs, wire-compatible with AuroraChat's user
// service (POST /api/auth/register, POST /api/auth/login) plus GET
// /api/auth/me. Failed logins are counted in Redis, not in memory, so the
// limit holds however many replicas run the role.
package auth

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/throttle"
	"github.com/auroradev/aurora/app/token"
)

func init() {
	app.Register(app.Registration{
		Name: "auth",
		Role: true,
		Deps: []string{app.ModRedis, app.ModStore, app.ModTokens},
		New:  newModule,
	})
}

// Bounds on the work one request may wait for: a store or Redis that hangs
// turns into a 503 instead of a request that never ends.
const (
	storeTimeout = 5 * time.Second
	redisTimeout = 2 * time.Second
)

// module is the running auth role. It has no readiness check of its own:
// the redis and store modules it depends on already report theirs.
type module struct {
	log      *slog.Logger
	store    store.Users
	tokens   *token.Issuer
	throttle *throttle.Throttle
	// registerIP and loginIP count attempts per client address; trusted
	// are the proxies whose X-Forwarded-For names that address.
	registerIP *throttle.Throttle
	loginIP    *throttle.Throttle
	trusted    []netip.Prefix
	// slots bounds the bcrypt work running at once.
	slots *hashSlots
	cost  int
	// dummyHash is compared against when the user does not exist, so an
	// unknown username costs the same bcrypt work as a wrong password and
	// the response time does not tell which usernames exist.
	dummyHash []byte

	registrations prometheus.Counter
	logins        *prometheus.CounterVec
	ipLimited     *prometheus.CounterVec
	bcryptBusy    prometheus.Counter
}

func newModule(_ context.Context, h *app.Host) (app.Module, error) {
	cfg := h.Config.Auth
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("generate dummy password: %w", err)
	}
	// A random password nobody knows, so no login can match the dummy hash.
	dummy, err := bcrypt.GenerateFromPassword(secret[:], cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("compute dummy bcrypt hash at cost %d: %w", cfg.BcryptCost, err)
	}
	m := &module{
		log:        h.Log.With("module", "auth"),
		store:      h.Store,
		tokens:     h.Tokens,
		throttle:   throttle.New(h.Redis, cfg.LoginMaxFailures, cfg.LoginWindow),
		registerIP: throttle.New(h.Redis, cfg.RegisterPerIP, cfg.IPWindow),
		loginIP:    throttle.New(h.Redis, cfg.LoginPerIP, cfg.IPWindow),
		trusted:    h.Config.TrustedProxyPrefixes(),
		slots:      newHashSlots(cfg.BcryptConcurrency, cfg.BcryptWait),
		cost:       cfg.BcryptCost,
		dummyHash:  dummy,
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aurora_auth_registrations_total",
			Help: "Users registered through POST /api/auth/register.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aurora_auth_logins_total",
			Help: "Login attempts by result: ok, invalid (bad credentials) or throttled (too many failures).",
		}, []string{"result"}),
		ipLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aurora_auth_ip_limited_total",
			Help: "Registrations and logins refused with 429 because their client address exceeded auth.register_per_ip or auth.login_per_ip.",
		}, []string{"action"}),
		bcryptBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aurora_auth_bcrypt_busy_total",
			Help: "Registrations and logins answered 503 because no bcrypt slot freed up within auth.bcrypt_wait.",
		}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aurora_auth_bcrypt_in_flight",
		Help: "bcrypt hashes and comparisons running now (at most auth.bcrypt_concurrency).",
	}, func() float64 { b, _ := m.slots.stats(); return float64(b) })
	peak := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aurora_auth_bcrypt_in_flight_peak",
		Help: "The most bcrypt hashes and comparisons that ran at once since the process started.",
	}, func() float64 { _, p := m.slots.stats(); return float64(p) })
	for _, a := range []string{"register", "login"} {
		m.ipLimited.WithLabelValues(a)
	}
	// Create the series up front so dashboards see zeros, not gaps.
	for _, r := range []string{resultOK, resultInvalid, resultThrottled} {
		m.logins.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.registrations, m.logins, m.ipLimited, m.bcryptBusy, inFlight, peak} {
		if err := h.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("register auth metrics: %w", err)
		}
	}
	m.routes(h.Mux)
	return m, nil
}

// Login results, the values of the result label.
const (
	resultOK        = "ok"
	resultInvalid   = "invalid"
	resultThrottled = "throttled"
)

const (
	pathRegister = "/api/auth/register"
	pathLogin    = "/api/auth/login"
	pathMe       = "/api/auth/me"
)

func (m *module) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+pathRegister, m.register)
	mux.HandleFunc("POST "+pathLogin, m.login)
	mux.HandleFunc("GET "+pathMe, m.me)
	// Other methods get a JSON 405 like every other error here, rather than
	// the mux's plain-text one (or, for GET, the static file server's 404).
	allowed := map[string]string{pathRegister: "POST", pathLogin: "POST", pathMe: "GET"}
	for path, allow := range allowed {
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if method == allow {
				continue
			}
			mux.HandleFunc(method+" "+path, methodNotAllowed(allow))
		}
	}
}

func methodNotAllowed(allow string) http.HandlerFunc {
	if allow == "GET" {
		allow = "GET, HEAD"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		app.WriteError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
	}
}

// Start does nothing: the routes are registered when the module is built
// and there is no background work.
func (m *module) Start(context.Context) error { return nil }

// Stop does nothing: in-flight requests are drained by the HTTP server.
func (m *module) Stop(context.Context) error { return nil }
