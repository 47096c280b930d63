package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/audit"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/throttle"
	"github.com/auroradev/aurora/app/tokenauth"
)

// Response messages fixed by the wire contract.
const (
	msgUserExists  = "User exists" // AuroraChat's exact text
	msgInvalid     = "invalid credentials"
	msgThrottled   = "too many failed logins; try again later"
	msgIPLimited   = "too many attempts from this address; try again later"
	msgBusy        = "server busy; try again shortly"
	msgUnavailable = "service unavailable"
)

// userJSON is the public view of a user: never the hash.
type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type registerResponse struct {
	OK   bool     `json:"ok"`
	User userJSON `json:"user"`
}

type loginResponse struct {
	Token     string   `json:"token"`
	ExpiresAt string   `json:"expiresAt"`
	User      userJSON `json:"user"`
}

// register creates a user. Uniqueness is the store's job (a unique index on
// the folded username), so concurrent identical registrations end with
// exactly one user and ErrUserExists for the rest, without a racy pre-check.
func (m *module) register(w http.ResponseWriter, r *http.Request) {
	log := app.Logger(r.Context(), m.log)
	c, rerr := readCredentials(w, r)
	if rerr != nil {
		app.WriteError(w, rerr.status, rerr.msg)
		return
	}
	if ok, _ := m.allowIP(w, r, m.registerIP, "register", true); !ok {
		return
	}
	if err := m.slots.acquire(r.Context()); err != nil {
		m.busy(w, r, err)
		return
	}
	nu, err := NewUser(c.Username, c.Password, m.cost)
	m.slots.release()
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		app.WriteError(w, http.StatusBadRequest, invalid.Error())
		return
	}
	if err != nil {
		log.Error("hash password for registration", "username", app.UserInput(c.Username), "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	u, err := m.store.CreateUser(ctx, nu)
	if errors.Is(err, store.ErrUserExists) {
		app.WriteError(w, http.StatusConflict, msgUserExists)
		return
	}
	if err != nil {
		log.Error("create user", "username", app.UserInput(c.Username), "store", m.store.Kind(), "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	m.registrations.Inc()
	audit.Log(r.Context(), log, audit.Entry{Event: audit.UserRegister, User: u.Username, UserID: u.ID, IP: m.clientIP(r)})
	app.WriteJSON(w, http.StatusCreated, registerResponse{OK: true, User: userJSON{u.ID, u.Username}})
}

// login checks credentials and issues a token. An unknown user, a wrong
// password and a disabled user get the same answer after the same bcrypt
// work, so neither the body nor the timing tells them apart. The username
// is not checked against the registration rules: users created by
// AuroraChat may not follow them.
func (m *module) login(w http.ResponseWriter, r *http.Request) {
	log := app.Logger(r.Context(), m.log)
	c, rerr := readCredentials(w, r)
	if rerr != nil {
		app.WriteError(w, rerr.status, rerr.msg)
		return
	}
	if ok, limited := m.allowIP(w, r, m.loginIP, "login", false); !ok {
		if limited {
			m.auditFailure(r, log, c.Username, nil, audit.IPLimited)
		}
		return
	}
	key := FailKey(c.Username)
	ok, wait, err := m.throttle.Reserve(r.Context(), key)
	if err != nil {
		log.Error("login throttle unavailable", "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	if !ok {
		m.logins.WithLabelValues(resultThrottled).Inc()
		log.Warn("login throttled", "username_key", app.UserInput(store.UsernameKey(c.Username)), "retry_after", wait)
		m.auditFailure(r, log, c.Username, nil, audit.Throttled)
		w.Header().Set("Retry-After", strconv.FormatInt(throttle.RetryAfterSeconds(wait), 10))
		app.WriteError(w, http.StatusTooManyRequests, msgThrottled)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	u, err := m.store.UserByName(ctx, c.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("look up user for login", "store", m.store.Kind(), "err", err)
		m.takeBack(r, log, key)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	if serr := m.slots.acquire(r.Context()); serr != nil {
		// Our capacity, not the user's guess: do not count it as a failure.
		m.takeBack(r, log, key)
		m.busy(w, r, serr)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(m.dummyHash, []byte(c.Password))
		m.slots.release()
		m.fail(w, r, log, c.Username, nil, audit.UnknownUser)
		return
	}
	err = bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(c.Password))
	m.slots.release()
	if err != nil {
		if !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			log.Error("stored password hash unusable", "user_id", u.ID, "err", err)
		}
		m.fail(w, r, log, c.Username, &u, audit.WrongPassword)
		return
	}
	if u.Disabled {
		m.fail(w, r, log, c.Username, &u, audit.Disabled)
		return
	}

	tok, exp, err := m.tokens.Issue(u.ID, u.Username)
	if err != nil {
		log.Error("issue token", "user_id", u.ID, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	if err := m.throttle.Reset(r.Context(), key); err != nil {
		// The credentials were right; the stale count expires with its window.
		log.Warn("could not reset failed logins", "user_id", u.ID, "err", err)
	}
	m.logins.WithLabelValues(resultOK).Inc()
	audit.Log(r.Context(), log, audit.Entry{Event: audit.UserLogin, User: u.Username, UserID: u.ID, IP: m.clientIP(r)})
	app.WriteJSON(w, http.StatusOK, loginResponse{
		Token:     tok,
		ExpiresAt: exp.UTC().Format(time.RFC3339),
		User:      userJSON{u.ID, u.Username},
	})
}

// takeBack returns a login attempt reserve counted, when it failed for a
// reason of ours.
func (m *module) takeBack(r *http.Request, log *slog.Logger, key string) {
	if err := m.throttle.Release(r.Context(), key); err != nil {
		log.Warn("could not take back a login attempt", "err", err)
	}
}

// fail answers a failed login. The attempt was already counted by reserve.
// The client gets the same 401 whatever the reason; the audit line says it.
func (m *module) fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, username string, u *store.User, why audit.Reason) {
	m.logins.WithLabelValues(resultInvalid).Inc()
	m.auditFailure(r, log, username, u, why)
	app.WriteError(w, http.StatusUnauthorized, msgInvalid)
}

// auditFailure writes the audit line of a refused login: the username as
// the client sent it (bounded by audit.Log) and, when the user exists, its
// id.
func (m *module) auditFailure(r *http.Request, log *slog.Logger, username string, u *store.User, why audit.Reason) {
	e := audit.Entry{Event: audit.UserLoginFailed, User: username, IP: m.clientIP(r), Reason: why}
	if u != nil {
		e.UserID = u.ID
	}
	audit.Log(r.Context(), log, e)
}

// clientIP is the address a request came from, through the trusted proxies.
func (m *module) clientIP(r *http.Request) netip.Addr { return app.ClientIP(r, m.trusted) }

// me returns the user a bearer token speaks for. Like the chat role, it
// trusts a valid token without a store lookup: verification is stateless,
// so a disabled user keeps access until the token expires but cannot log in
// again.
func (m *module) me(w http.ResponseWriter, r *http.Request) {
	c, err := tokenauth.Verify(r, m.tokens, tokenauth.Bearer)
	if err != nil {
		tokenauth.Unauthorized(w, err)
		return
	}
	app.WriteJSON(w, http.StatusOK, userJSON{c.UserID, c.Username})
}
