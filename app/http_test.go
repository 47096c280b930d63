package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/config"
)

func TestOriginAllowed(t *testing.T) {
	cases := []struct {
		host, origin string
		allow        []string
		want         bool
	}{
		{"chat.example:8080", "", nil, true}, // not a browser
		{"chat.example:8080", "http://chat.example:8080", nil, true},
		{"chat.example:8080", "https://CHAT.example:8080", nil, true}, // host compare ignores case
		{"chat.example:8080", "http://chat.example:9090", nil, false}, // other port, other origin
		{"chat.example:8080", "https://evil.example", nil, false},
		{"chat.example:8080", "https://app.example", []string{"https://app.example"}, true},
		{"chat.example:8080", "https://app.example", []string{"https://app.example/"}, true},
		{"chat.example:8080", "https://app.example.evil", []string{"https://app.example"}, false},
		{"chat.example:8080", "http://app.example", []string{"https://app.example"}, false},
		{"chat.example:8080", "https://anyone.example", []string{"*"}, true},
		{"chat.example:8080", "null", []string{"https://app.example"}, false},
		{"chat.example:8080", "null", nil, false},
		{"chat.example:8080", "null", []string{"*"}, false}, // "*" is http(s) origins only
		{"chat.example:8080", "null", []string{"null"}, true},
		{"chat.example:8080", "null", []string{"*", "null"}, true},
		{"chat.example:8080", "https://anyone.example", []string{"null"}, false},
		{"chat.example:8080", "http://localhost:8000", []string{"*"}, true},
		{"chat.example:8080", "chrome-extension://abcdef", []string{"*"}, false},
		{"chat.example:8080", "chrome-extension://abcdef", []string{"chrome-extension://abcdef"}, true},
		{"chat.example:8080", "%zz", []string{"*"}, false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "http://"+tc.host+"/api/x", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := app.OriginAllowed(r, tc.allow); got != tc.want {
			t.Errorf("OriginAllowed(host %s, origin %q, allow %q) = %v, want %v", tc.host, tc.origin, tc.allow, got, tc.want)
		}
	}
}

func TestWriteJSONAndError(t *testing.T) {
	w := httptest.NewRecorder()
	app.WriteJSON(w, http.StatusCreated, map[string]any{"id": "x", "n": 2})
	if w.Code != http.StatusCreated || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("WriteJSON: %d %v", w.Code, w.Header())
	}
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v["id"] != "x" {
		t.Fatalf("WriteJSON body %q: %v", w.Body.String(), err)
	}

	w = httptest.NewRecorder()
	app.WriteError(w, http.StatusConflict, `user "bob" exists`)
	var e map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusConflict || len(e) != 1 || e["error"] != `user "bob" exists` {
		t.Fatalf("WriteError = %d %q", w.Code, w.Body.String())
	}
}

func TestLoggerFallbackAndNewID(t *testing.T) {
	fallback := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if app.Logger(context.Background(), fallback) != fallback {
		t.Error("Logger without a request logger did not return the fallback")
	}
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		id := app.NewID()
		if !hex16.MatchString(id) {
			t.Fatalf("NewID() = %q, want 16 hex", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log := app.NewLogger(config.Log{Level: "warn", Format: "json"}, &buf)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("json format wrote %q: %v", buf.String(), err)
	}
	if line["msg"] != "shown" || line["k"] != "v" || strings.Contains(buf.String(), "hidden") {
		t.Fatalf("json logger wrote %q", buf.String())
	}

	buf.Reset()
	log = app.NewLogger(config.Log{Level: "debug", Format: "text"}, &buf)
	log.Debug("dbg", "k", "v")
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "k=v") {
		t.Fatalf("text logger wrote %q", buf.String())
	}

	// "auto" writes JSON when the output is not a terminal (a file, a pipe
	// in a container).
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	app.NewLogger(config.Log{Level: "info", Format: "auto"}, f).Info("to file")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(bytes.TrimSpace(b)) {
		t.Fatalf("auto format to a file wrote %q, want JSON", b)
	}
}
