package infra_test

import (
	"bytes"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/auroradev/aurora/app/infra"
)

func TestJWTSecretConfigured(t *testing.T) {
	// The configuration lets a secret under 32 bytes through only with
	// auth.insecure_short_secret; JWTSecret then says loudly what it costs.
	cases := []struct {
		secret string
		warn   string // in the WARN line; "" for none
	}{
		{"a-perfectly-good-random-secret-0123456789", ""},
		{strings.Repeat("x", 32), ""},
		{infra.DevSecret, "AuroraChat's public default 'dev-secret'"},
		{"dev-secret-change-in-production", "AuroraChat's public default 'dev-secret'"}, // AuroraChat's .env example
		{"abc", "auth.insecure_short_secret: the JWT secret is only 3 bytes (at least 32 are safe)"},
		{strings.Repeat("x", 31), "only 31 bytes"},
	}
	for _, tc := range cases {
		var logs bytes.Buffer
		dir := t.TempDir()
		got, err := infra.JWTSecret(tc.secret, dir, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("JWTSecret(%q): %v", tc.secret, err)
		}
		if string(got) != tc.secret {
			t.Errorf("JWTSecret(%q) = %q, want the configured secret", tc.secret, got)
		}
		out := logs.String()
		if tc.warn == "" && out != "" {
			t.Errorf("JWTSecret(%q) logged:\n%s", tc.secret, out)
		}
		if tc.warn != "" && (strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, tc.warn) || !strings.Contains(out, "openssl rand -hex 32")) {
			t.Errorf("JWTSecret(%q): want one WARN saying %q and how to make a secret; logs:\n%s", tc.secret, tc.warn, out)
		}
		if strings.Contains(out, tc.secret) && tc.secret != infra.DevSecret {
			t.Errorf("JWTSecret(%q) logged the secret:\n%s", tc.secret, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !os.IsNotExist(err) {
			t.Errorf("a configured secret wrote a secret file (stat: %v)", err)
		}
	}
}

func TestJWTSecretGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := infra.JWTSecret("", dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 64 {
		t.Fatalf("generated secret %q is not 64 characters", first)
	}
	if _, err := hex.DecodeString(string(first)); err != nil {
		t.Fatalf("generated secret %q is not hex: %v", first, err)
	}
	path := filepath.Join(dir, "jwt-secret")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode %v, want 0600", perm)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(onDisk)) != string(first) {
		t.Errorf("file holds %q, returned %q", onDisk, first)
	}

	again, err := infra.JWTSecret("", dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(first) {
		t.Fatalf("second start got a new secret: %q then %q (tokens would not survive a restart)", first, again)
	}

	other, err := infra.JWTSecret("", t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	if string(other) == string(first) {
		t.Fatal("two data dirs generated the same secret")
	}
}

func TestJWTSecretConcurrentFirstStart(t *testing.T) {
	// Several processes sharing a data dir start at once: all must end up
	// with the one secret that was written.
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const n = 8
	var wg sync.WaitGroup
	secrets := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := infra.JWTSecret("", dir, log)
			secrets[i], errs[i] = string(s), err
		}()
	}
	wg.Wait()
	onDisk, err := os.ReadFile(filepath.Join(dir, "jwt-secret"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if secrets[i] != strings.TrimSpace(string(onDisk)) {
			t.Fatalf("caller %d got %q, the file holds %q", i, secrets[i], onDisk)
		}
	}
}

func TestJWTSecretBadFile(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	dir := t.TempDir()
	path := filepath.Join(dir, "jwt-secret")
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := infra.JWTSecret("", dir, log); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short secret file: %v", err)
	}

	// An operator's own secret file (no trailing newline) is used as is.
	own := strings.Repeat("k", 40)
	if err := os.WriteFile(path, []byte(own), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := infra.JWTSecret("", dir, log)
	if err != nil || string(got) != own {
		t.Fatalf("operator's secret file: %q, %v", got, err)
	}

	// The secret path is a directory: a read error naming the path.
	dir2 := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir2, "jwt-secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := infra.JWTSecret("", dir2, log); err == nil || !strings.Contains(err.Error(), "jwt-secret") {
		t.Fatalf("secret path is a directory: %v", err)
	}
}

func TestRedisOptions(t *testing.T) {
	opt, err := infra.RedisOptions("redis://:pw@127.0.0.1:6379/2")
	if err != nil {
		t.Fatal(err)
	}
	if !opt.DisableCache || opt.ForceSingleClient || opt.AlwaysRESP2 {
		t.Errorf("plain URL: DisableCache=%v ForceSingleClient=%v AlwaysRESP2=%v", opt.DisableCache, opt.ForceSingleClient, opt.AlwaysRESP2)
	}
	if opt.Password != "pw" || opt.SelectDB != 2 || len(opt.InitAddress) != 1 || opt.InitAddress[0] != "127.0.0.1:6379" {
		t.Errorf("plain URL parsed to %+v", opt)
	}

	opt, err = infra.RedisOptions("redis://127.0.0.1:6380?protocol=2")
	if err != nil {
		t.Fatal(err)
	}
	if !opt.DisableCache || !opt.ForceSingleClient || !opt.AlwaysRESP2 {
		t.Errorf("?protocol=2: DisableCache=%v ForceSingleClient=%v AlwaysRESP2=%v", opt.DisableCache, opt.ForceSingleClient, opt.AlwaysRESP2)
	}

	if _, err := infra.RedisOptions("http://nope"); err == nil || !strings.Contains(err.Error(), "redis.url") {
		t.Errorf("bad URL: %v, want an error naming redis.url", err)
	}
}
