package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ContentSecurityPolicy is sent with every response: the UI loads only its
// own scripts and styles (no inline script), and talks only to this origin.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (a *App) routes() {
	h := a.host
	h.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.Mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// A failing check's error names internal hosts and addresses: for
		// the operator on this machine, or everyone when configured.
		details := h.Config.HTTP.ReadyzDetails || FromLoopback(r)
		checks, ok := a.checks(r.Context(), details)
		status, code := "ok", http.StatusOK
		if !ok {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		WriteJSON(w, code, map[string]any{"status": status, "checks": checks})
	})
	h.Mux.Handle("GET /metrics", promhttp.HandlerFor(h.Metrics, promhttp.HandlerOpts{Registry: h.Metrics}))
	// Anything under /api/ that no mounted role serves: JSON, naming the
	// roles this process runs (a chat-only replica asked to log in).
	h.Mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("no API route %s %s in this process (roles: %s)",
			r.Method, r.URL.Path, strings.Join(h.Config.Roles, ",")))
	})
	// Everything else: AuroraChat clients open their WebSocket on "/", so
	// an upgrade there goes to the module serving WebSocketPath (chat) when
	// one runs here; other GET and HEAD requests to the page cmd hands in
	// (the web UI).
	h.Mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			if ws := a.webSocketHandler(r); ws != nil {
				ws.ServeHTTP(w, r)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// JSON like every other error, not the mux's plain text.
			w.Header().Set("Allow", "GET, HEAD")
			WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		if a.page == nil {
			WriteError(w, http.StatusNotFound, "no page "+r.URL.Path+" in this process")
			return
		}
		a.page.ServeHTTP(w, r)
	})
}

// WebSocketPath is where a module serves WebSockets ("GET /ws"); upgrade
// requests on "/" are handed to it too.
const WebSocketPath = "/ws"

// webSocketHandler returns what the mux serves for GET WebSocketPath, or
// nil when no module registered it: the lookup then lands on "/" itself,
// which must not call itself. It asks the mux on each request (which is safe
// while modules register routes) because requests are served while the
// modules are still being built.
func (a *App) webSocketHandler(r *http.Request) http.Handler {
	probe := r.Clone(r.Context())
	probe.Method = http.MethodGet
	probe.URL.Path, probe.URL.RawPath = WebSocketPath, ""
	h, pattern := a.host.Mux.Handler(probe)
	if pattern == "" || pattern == "/" {
		return nil
	}
	return h
}

// middleware adds security headers, CORS and a request id to every request.
func (a *App) middleware(next http.Handler) http.Handler {
	cfg := a.host.Config
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		if r.TLS != nil && cfg.HTTP.RedirectAddr != "" {
			hd.Set("Strict-Transport-Security", HSTS)
		}

		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = NewID()
		}
		hd.Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), logKey{}, a.host.Log.With("req", id)))

		if origin := r.Header.Get("Origin"); origin != "" && strings.HasPrefix(r.URL.Path, "/api/") {
			if OriginAllowed(r, cfg.HTTP.CORSOrigins) {
				hd.Set("Access-Control-Allow-Origin", origin)
				hd.Add("Vary", "Origin")
				if r.Method == http.MethodOptions {
					hd.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
					hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
					hd.Set("Access-Control-Max-Age", "600")
					w.WriteHeader(http.StatusNoContent)
					return
				}
			} else if r.Method == http.MethodOptions {
				WriteError(w, http.StatusForbidden, "origin not allowed")
				return
			}
		}
		if a.isUpgrade(r) {
			// A WebSocket outlives any request deadline: set no write
			// deadline (net/http clears the read deadline ReadTimeout set
			// when the connection is hijacked); the chat role pings instead.
			if a.upgrades != nil {
				if ok, wait := a.upgrades.allow(ClientIP(r, a.trusted)); !ok {
					a.upgradesRefused.Inc()
					hd.Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
					WriteError(w, http.StatusTooManyRequests, "too many WebSocket handshakes from this address; retry later")
					return
				}
			}
		} else {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(cfg.HTTP.WriteTimeout))
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(rec, r)
		// r.Pattern is the mux pattern that matched ("GET /api/rooms/{room}/messages"):
		// bounded, unlike the path. Upgraded connections (WebSocket) are
		// counted but their lifetime is not a request duration.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := rec.code
		if code == 0 {
			code = http.StatusSwitchingProtocols
		}
		a.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		if code != http.StatusSwitchingProtocols {
			a.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

// isUpgrade reports whether r asks for a WebSocket on a route that can
// serve one. Only those routes lose the write deadline: an Upgrade header
// sent to any other route changes nothing. It does not ask whether a module
// serves WebSocketPath yet: requests are served while the modules are still
// being built (that is when /readyz says "starting"), and the chat module
// registers it then.
func (a *App) isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	return r.URL.Path == "/" || r.URL.Path == WebSocketPath
}

// statusRecorder remembers the status code a handler wrote. Unwrap lets
// http.ResponseController and WebSocket upgrades reach the real writer.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// NullOrigin is the Origin a browser sends from a page opened as a file
// (file://), a sandboxed frame or after some redirects. It is allowed only
// when listed on its own in http.cors_origins ("*" does not cover it): any
// page on the machine, or any sandboxed frame on the web, sends it too.
const NullOrigin = "null"

// OriginAllowed reports whether a browser Origin may talk to this server: it
// is the server's own origin (same host as the request), or on allow, or an
// http(s) origin while allow holds "*". Origin "null" is allowed only when
// allow lists "null" itself. A request without Origin (not a browser) is
// allowed.
func OriginAllowed(r *http.Request, allow []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == NullOrigin {
		return slices.Contains(allow, NullOrigin)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	web := u.Scheme == "http" || u.Scheme == "https"
	for _, a := range allow {
		if (a == "*" && web) || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// FromLoopback reports whether r came straight from this machine: over a
// loopback connection (127.0.0.0/8 or ::1, IPv4-mapped included) and not
// relayed by a proxy. Only the connection's address can say loopback; a
// forwarding header (Forwarded, X-Forwarded-For, X-Real-Ip), which anyone
// can send, only ever takes it away, since a reverse proxy on this machine
// relays remote clients over loopback.
func FromLoopback(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if _, relayed := r.Header[h]; relayed {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

type logKey struct{}

// Logger returns the request-scoped logger (with its request id) from ctx,
// or fallback when there is none.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// NewID returns a random 16-hex id for requests and connections.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with status code: the one error shape of
// every HTTP API in Aurora.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
