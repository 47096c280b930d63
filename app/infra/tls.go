package infra

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/config"
)

// ServerTLS builds the listener's certificate source from http.tls for the
// runtime (app.WithTLS): nil when TLS is off; the key pair of
// cert_file/key_file; or an ACME manager (autocert) for acme.domains that
// obtains and renews the certificate on demand, keeping its account key and
// certificates in the ACME cache dir (0700). With http.redirect_addr, the
// manager also answers HTTP-01 challenges there; without it, TLS-ALPN-01 on
// the listener is the only challenge it takes.
func ServerTLS(cfg *config.Config, log *slog.Logger) (*app.TLS, error) {
	t := cfg.HTTP.TLS
	switch {
	case t.ACME.Enabled():
		return acmeTLS(cfg, log)
	case t.CertFile != "" || t.KeyFile != "":
		return fileTLS(t, log)
	default:
		return nil, nil
	}
}

// fileTLS loads the key pair once: a renewed certificate is read at the
// next start.
func fileTLS(t config.TLS, log *slog.Logger) (*app.TLS, error) {
	pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls: load cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("http.tls: parse cert_file %s: %w", t.CertFile, err)
	}
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		log.Warn("http.tls.cert_file has expired: clients will refuse it; renew it and restart",
			"cert_file", t.CertFile, "not_after", leaf.NotAfter)
	case left < 7*24*time.Hour:
		log.Warn("http.tls.cert_file expires within a week; renew it and restart",
			"cert_file", t.CertFile, "not_after", leaf.NotAfter)
	}
	if fi, err := os.Stat(t.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn(fmt.Sprintf("http.tls.key_file %s is mode %#o, readable by other local users: make it 0600", t.KeyFile, fi.Mode().Perm()),
			"key_file", t.KeyFile)
	}
	return &app.TLS{Config: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}, nil
}

// acmeChallengePath is where ACME's HTTP-01 challenges are fetched.
const acmeChallengePath = "/.well-known/acme-challenge/"

func acmeTLS(cfg *config.Config, log *slog.Logger) (*app.TLS, error) {
	a := cfg.HTTP.TLS.ACME
	dir := cfg.ACMECacheDir()
	// The account key signs every order: as private as the data dir.
	if err := PrivateDataDir(dir, log); err != nil {
		return nil, fmt.Errorf("http.tls.acme.cache_dir: %w", err)
	}
	client := &acme.Client{DirectoryURL: a.DirectoryURL, UserAgent: "aurora"}
	if a.DirectoryCAFile != "" {
		pem, err := os.ReadFile(a.DirectoryCAFile)
		if err != nil {
			return nil, fmt.Errorf("http.tls.acme.directory_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http.tls.acme.directory_ca_file %s: no PEM certificate in it", a.DirectoryCAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Email:      a.Email,
		Client:     client,
	}
	t := &app.TLS{Config: m.TLSConfig()}
	if cfg.HTTP.RedirectAddr != "" {
		t.Challenge = func(next http.Handler) http.Handler {
			// Calling HTTPHandler is what lets the manager try HTTP-01.
			h := m.HTTPHandler(next)
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// autocert checks the Host header against the domains
				// as it is, port included: on a redirect_addr other
				// than :80 every challenge would be refused.
				if strings.HasPrefix(r.URL.Path, acmeChallengePath) {
					if host, _, err := net.SplitHostPort(r.Host); err == nil {
						r = r.Clone(r.Context())
						r.Host = host
					}
				}
				h.ServeHTTP(w, r)
			})
		}
	}
	log.Info("TLS certificates from ACME", "domains", a.Domains, "directory_url", a.DirectoryURL, "cache_dir", dir,
		"http01", cfg.HTTP.RedirectAddr != "")
	return t, nil
}
