package infra_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/config"
)

func tlsConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	return &cfg
}

func TestServerTLSOffByDefault(t *testing.T) {
	src, err := infra.ServerTLS(tlsConfig(t), slog.New(slog.DiscardHandler))
	if err != nil || src != nil {
		t.Fatalf("ServerTLS with no http.tls = %v, %v; want nil, nil", src, err)
	}
}

// TestServerTLSBadFiles: a certificate source that cannot be loaded stops
// the start with an error naming the files, never a plain-HTTP fallback.
func TestServerTLSBadFiles(t *testing.T) {
	ca := apptest.NewTestCA(t, time.Hour, "localhost")
	other := apptest.NewTestCA(t, time.Hour, "localhost")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, cert, key string }{
		{"missing cert", filepath.Join(t.TempDir(), "nope.pem"), ca.KeyFile},
		{"missing key", ca.CertFile, filepath.Join(t.TempDir(), "nope.pem")},
		{"key of another certificate", ca.CertFile, other.KeyFile},
		{"not PEM", garbage, ca.KeyFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tlsConfig(t)
			cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = tc.cert, tc.key
			src, err := infra.ServerTLS(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatalf("ServerTLS = %v, want an error", src)
			}
			if !strings.Contains(err.Error(), tc.cert) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %q does not name both files", err)
			}
		})
	}
}

// TestServerTLSWarnings: an expired or soon expiring certificate, and a
// key file others can read, start with a WARN each.
func TestServerTLSWarnings(t *testing.T) {
	cases := []struct {
		name     string
		validFor time.Duration
		keyMode  os.FileMode
		want     string
	}{
		{"expired", -time.Second, 0o600, "has expired"},
		{"expiring", 24 * time.Hour, 0o600, "expires within a week"},
		{"readable key", 90 * 24 * time.Hour, 0o644, "readable by other local users"},
		{"fine", 90 * 24 * time.Hour, 0o600, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca := apptest.NewTestCA(t, tc.validFor, "localhost")
			if err := os.Chmod(ca.KeyFile, tc.keyMode); err != nil {
				t.Fatal(err)
			}
			cfg := tlsConfig(t)
			cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.CertFile, ca.KeyFile
			var logs apptest.Buffer
			src, err := infra.ServerTLS(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil || src == nil || len(src.Config.Certificates) != 1 {
				t.Fatalf("ServerTLS = %v, %v", src, err)
			}
			out := logs.String()
			if tc.want == "" && strings.Contains(out, "level=WARN") {
				t.Fatalf("warned about a good certificate:\n%s", out)
			}
			if tc.want != "" && (!strings.Contains(out, "level=WARN") || !strings.Contains(out, tc.want)) {
				t.Fatalf("no WARN %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestServerTLSACME: the ACME source makes its cache dir private, offers
// TLS-ALPN-01, and answers HTTP-01 only with the redirect listener on.
func TestServerTLSACME(t *testing.T) {
	for _, redirect := range []string{"", ":80"} {
		cfg := tlsConfig(t)
		cfg.HTTP.TLS.ACME.Domains = []string{"chat.example.com"}
		cfg.HTTP.RedirectAddr = redirect
		src, err := infra.ServerTLS(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if src.Config.GetCertificate == nil || !strings.Contains(strings.Join(src.Config.NextProtos, ","), "acme-tls/1") {
			t.Errorf("ACME source: GetCertificate set %v, ALPN %v", src.Config.GetCertificate != nil, src.Config.NextProtos)
		}
		if (src.Challenge != nil) != (redirect != "") {
			t.Errorf("redirect_addr %q: HTTP-01 handler %v", redirect, src.Challenge != nil)
		}
		fi, err := os.Stat(filepath.Join(cfg.DataDir, "acme"))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("ACME cache dir: %v %v, want 0700", fi, err)
		}
	}

	cfg := tlsConfig(t)
	cfg.HTTP.TLS.ACME.Domains = []string{"chat.example.com"}
	cfg.HTTP.TLS.ACME.DirectoryCAFile = filepath.Join(t.TempDir(), "nope.pem")
	if _, err := infra.ServerTLS(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "directory_ca_file") {
		t.Fatalf("missing directory_ca_file: %v", err)
	}
}
