package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/auroradev/aurora/config"
)

// TLS is what the composition root hands the runtime to serve HTTPS and WSS
// on the listener: the certificate source, as a tls.Config whose
// Certificates or GetCertificate the caller filled (from files, or from
// ACME: the runtime imports neither), and, with ACME, the handler of its
// HTTP-01 challenges for the redirect listener.
type TLS struct {
	Config *tls.Config
	// Challenge, when set, wraps the redirect listener's handler: it answers
	// the ACME HTTP-01 challenge requests (/.well-known/acme-challenge/) and
	// hands every other request to the handler it wraps.
	Challenge func(next http.Handler) http.Handler
}

// WithTLS serves the listener over TLS with t. Run refuses to start when
// the configuration asks for TLS (http.tls) and none was handed in, rather
// than serving plain HTTP where HTTPS was meant.
func WithTLS(t *TLS) Option {
	return func(a *App) { a.tls = t }
}

// HSTS is the Strict-Transport-Security header HTTPS responses carry when
// the redirect listener is on: the operator has said this host serves no
// plain HTTP, so browsers may go straight to HTTPS for a year. Not
// includeSubDomains nor preload: other hosts under the domain are not
// Aurora's to decide.
const HSTS = "max-age=31536000"

// ACMEALPN is the ALPN protocol of ACME's TLS-ALPN-01 challenge, kept when
// the certificate source offers it.
const ACMEALPN = "acme-tls/1"

// serverTLS is the listener's tls.Config: the certificate source's, at
// TLS 1.2 or newer and HTTP/1.1 only (the WebSocket upgrade and the
// connection limits are HTTP/1.1's; a proxy in front may speak HTTP/2).
func serverTLS(t *TLS) (*tls.Config, error) {
	if t == nil || t.Config == nil {
		return nil, errors.New("no TLS configuration handed in")
	}
	c := t.Config.Clone()
	if c.GetCertificate == nil && c.GetConfigForClient == nil && len(c.Certificates) == 0 {
		return nil, errors.New("the TLS configuration has no certificate")
	}
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	protos := []string{"http/1.1"}
	if slices.Contains(c.NextProtos, ACMEALPN) {
		protos = append(protos, ACMEALPN)
	}
	c.NextProtos = protos
	return c, nil
}

// listenRedirect binds http.redirect_addr and returns its server: every
// request is redirected to HTTPS, except the ACME challenges when the
// certificate source answers them.
func (a *App) listenRedirect(cfg *config.Config) (net.Listener, *http.Server, error) {
	ln, err := net.Listen("tcp", cfg.HTTP.RedirectAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on http.redirect_addr %s: %w", cfg.HTTP.RedirectAddr, err)
	}
	var h http.Handler = http.HandlerFunc(a.redirectToHTTPS)
	if a.tls.Challenge != nil {
		h = a.tls.Challenge(h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTP.ReadTimeout),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.host.Log.With("listener", "redirect").Handler(), slog.LevelDebug),
	}
	return ln, srv, nil
}

// redirectToHTTPS answers 308 (the method and body are kept) to the same
// host, path and query over HTTPS. A request that named no port (it came to
// the standard port 80) goes to the standard 443; one that named a port
// goes to the HTTPS listener's own port, as in development and tests.
func (a *App) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsAny(host, "/\\@?# ") {
		WriteError(w, http.StatusBadRequest, "a Host header is needed to redirect to HTTPS")
		return
	}
	target := host
	if strings.Contains(host, ":") {
		target = "[" + host + "]"
	}
	if port != "" {
		if _, tlsPort, err := net.SplitHostPort(a.Addr()); err == nil && tlsPort != "443" {
			target = net.JoinHostPort(host, tlsPort)
		}
	}
	w.Header().Set("Location", "https://"+target+r.URL.RequestURI())
	w.WriteHeader(http.StatusPermanentRedirect)
}
