package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
)

// TestTLSNeedsCertificateSource: a configuration that asks for TLS but
// whose composition root handed in no certificate source (or one without a
// certificate) does not start, rather than serve plain HTTP where HTTPS was
// meant; nothing is built, nothing is bound.
func TestTLSNeedsCertificateSource(t *testing.T) {
	ca := apptest.NewTestCA(t, time.Hour, "localhost")
	for _, tc := range []struct {
		name string
		opts []app.Option
		want string
	}{
		{"none handed in", nil, "no TLS configuration handed in"},
		{"no certificate", []app.Option{app.WithTLS(&app.TLS{Config: &tls.Config{}})}, "has no certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role := uniq("tls")
			rec := &recorder{}
			registerFake(role, true, nil, &fake{name: role, rec: rec})
			cfg := testConfig(t, role)
			cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
			a := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), append(tc.opts, withWeb)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := a.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), "http.tls") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an http.tls error: %s", err, tc.want)
			}
			if a.Addr() != "" || len(rec.list()) != 0 {
				t.Fatalf("bound %q, built %q", a.Addr(), rec.list())
			}
		})
	}
}

// TestRedirectListenerBusy: a redirect_addr that cannot be bound stops the
// start with an error naming the key.
func TestRedirectListenerBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ca := apptest.NewTestCA(t, time.Hour, "localhost")
	pair, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	role := uniq("redirect")
	registerFake(role, true, nil, &fake{name: role, rec: &recorder{}})
	cfg := testConfig(t, role)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
	cfg.HTTP.RedirectAddr = busy.Addr().String()
	a := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		app.WithTLS(&app.TLS{Config: &tls.Config{Certificates: []tls.Certificate{pair}}}), withWeb)
	err = a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "http.redirect_addr "+cfg.HTTP.RedirectAddr) {
		t.Fatalf("Run with a busy redirect_addr = %v", err)
	}
}
