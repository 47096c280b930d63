package app_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app"
)

func TestUserInput(t *testing.T) {
	long := strings.Repeat("a", 16<<10)
	for _, tc := range []struct{ name, in, want string }{
		{"short", "alice", "alice"},
		{"empty", "", ""},
		{"exactly the limit", strings.Repeat("b", app.MaxLoggedInput), strings.Repeat("b", app.MaxLoggedInput)},
		{"one byte over", strings.Repeat("b", app.MaxLoggedInput+1), strings.Repeat("b", app.MaxLoggedInput) + "…(65 bytes)"},
		{"16 KB", long, strings.Repeat("a", app.MaxLoggedInput) + "…(16384 bytes)"},
		// A character is never cut in two: é is 2 bytes, only 1 fits.
		{"cut on a character", strings.Repeat("c", app.MaxLoggedInput-1) + "é", strings.Repeat("c", app.MaxLoggedInput-1) + "…(65 bytes)"},
		{"unicode kept", "Zoë 李雷 🙂", "Zoë 李雷 🙂"},
		{"newline cannot forge a line", "bob\nlevel=INFO msg=\"user logged in\"", "bob\uFFFDlevel=INFO msg=\"user logged in\""},
		{"control characters", "a\x00b\rc\td\x1b[31me\x7ff\u0085g", "a\uFFFDb\uFFFDc\uFFFDd\uFFFD[31me\uFFFDf\uFFFDg"},
		{"bidirectional overrides", "admin\u202Egnp.exe\u2066x\u200F", "admin\uFFFDgnp.exe\uFFFDx\uFFFD"},
		{"invalid UTF-8", "ok\xff\xfe!", "ok\uFFFD\uFFFD!"},
	} {
		if got := app.UserInput(tc.in).String(); got != tc.want {
			t.Errorf("%s: UserInput(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}

	// As a log attribute: the line carries the bounded value, not the input.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login throttled", "username", app.UserInput(long))
	if buf.Len() > 256 || !strings.Contains(buf.String(), `"username":"`+strings.Repeat("a", 64)+`…(16384 bytes)"`) {
		t.Errorf("log line (%d bytes): %s", buf.Len(), buf.String())
	}
}
