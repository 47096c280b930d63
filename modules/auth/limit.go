package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/throttle"
)

// ipKeyPrefix starts the Redis keys counting one client address's
// registrations and logins (auth:ip:register:<ip>, auth:ip:login:<ip>).
const ipKeyPrefix = "auth:ip:"

// IPKey is the Redis key counting action ("register" or "login") for ip.
// Deleting it lifts that address's limit early.
func IPKey(action string, ip netip.Addr) string {
	return ipKeyPrefix + action + ":" + ip.String()
}

// allowIP counts one attempt of action from r's client address against t.
// It answers the request (429 with Retry-After) and returns allowed false
// when the request must stop here, with limited true when that is because
// the address is over its limit (the caller may audit it). When Redis does
// not answer, failOpen lets the request on (registration: the bcrypt bound
// still holds) with a WARN, otherwise it is answered 503 (login, whose
// throttle needs Redis anyway).
func (m *module) allowIP(w http.ResponseWriter, r *http.Request, t *throttle.Throttle, action string, failOpen bool) (allowed, limited bool) {
	ip := app.ClientIP(r, m.trusted)
	if !ip.IsValid() {
		return true, false // not a TCP peer (never for the HTTP listener)
	}
	ok, wait, err := t.Reserve(r.Context(), IPKey(action, ip))
	if err != nil && failOpen {
		app.Logger(r.Context(), m.log).Warn("per-address limit unavailable; letting the request through", "action", action, "err", err)
		return true, false
	}
	if err != nil {
		app.Logger(r.Context(), m.log).Error("per-address limit unavailable", "action", action, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, msgUnavailable)
		return false, false
	}
	if !ok {
		m.ipLimited.WithLabelValues(action).Inc()
		app.Logger(r.Context(), m.log).Warn("too many attempts from one address", "action", action, "ip", ip.String(), "retry_after", wait)
		w.Header().Set("Retry-After", strconv.FormatInt(throttle.RetryAfterSeconds(wait), 10))
		app.WriteError(w, http.StatusTooManyRequests, msgIPLimited)
		return false, true
	}
	return true, false
}

// errBusy is returned by hashSlots.acquire when no slot freed up in time.
var errBusy = errors.New("bcrypt slots busy")

// hashSlots bounds the bcrypt work running at once, so a flood of
// registrations or logins cannot take every CPU from health checks and
// chat. It also keeps the highest number in use, for the metrics.
type hashSlots struct {
	sem  chan struct{}
	wait time.Duration

	mu   sync.Mutex
	busy int
	peak int
}

func newHashSlots(n int, wait time.Duration) *hashSlots {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &hashSlots{sem: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting at most the configured bound (or until
// ctx ends); release gives it back.
func (s *hashSlots) acquire(ctx context.Context) error {
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.busy++
	s.peak = max(s.peak, s.busy)
	s.mu.Unlock()
	return nil
}

func (s *hashSlots) release() {
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
	<-s.sem
}

func (s *hashSlots) stats() (busy, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy, s.peak
}

// busy answers a request that got no bcrypt slot in time: 503, retry soon.
func (m *module) busy(w http.ResponseWriter, r *http.Request, err error) {
	app.Logger(r.Context(), m.log).Warn("no bcrypt slot in time", "wait", m.slots.wait, "err", err)
	m.bcryptBusy.Inc()
	w.Header().Set("Retry-After", strconv.FormatInt(throttle.RetryAfterSeconds(m.slots.wait), 10))
	app.WriteError(w, http.StatusServiceUnavailable, msgBusy)
}
