package proctest_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/web"
)

// TestQuickStartProcess is the README's quick start, as a user runs it:
// build the binary, run `aurora serve` with nothing configured (embedded
// Redis and SQLite), use the page and the auth API, stop it with Ctrl-C.
func TestQuickStartProcess(t *testing.T) {
	tmp := t.TempDir()
	bin := apptest.Binary(t)

	t.Run("unknown role exits non-zero", func(t *testing.T) {
		c := execAurora(bin, "serve", "--roles=nope", "--data-dir", filepath.Join(tmp, "unused"))
		out, err := c.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("serve --roles=nope: %v, want a non-zero exit\n%s", err, out)
		}
		if !strings.Contains(string(out), "nope") || !strings.Contains(string(out), "auth, chat, ingest") {
			t.Fatalf("output does not name the bad and the valid roles:\n%s", out)
		}
	})

	dataDir := filepath.Join(tmp, "data")
	var token, userID string

	t.Run("serve, page and auth API", func(t *testing.T) {
		p := startServe(t, bin, dataDir)

		resp, err := http.Get(p.base + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.ReadFile(web.Files, "index.html")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(page, want) {
			t.Fatalf("GET / = %d with %d bytes, want the embedded page (%d bytes)", resp.StatusCode, len(page), len(want))
		}

		creds := map[string]string{"username": "alice", "password": "correct horse battery"}
		code, reg := p.call(t, http.MethodPost, "/api/auth/register", "", creds)
		if code/100 != 2 || reg["ok"] != true {
			t.Fatalf("register = %d %v", code, reg)
		}
		if code, dup := p.call(t, http.MethodPost, "/api/auth/register", "", creds); code != http.StatusConflict {
			t.Fatalf("second register of alice = %d %v, want 409", code, dup)
		}
		code, login := p.call(t, http.MethodPost, "/api/auth/login", "", creds)
		token, _ = login["token"].(string)
		if code != http.StatusOK || token == "" {
			t.Fatalf("login = %d %v", code, login)
		}
		code, me := p.call(t, http.MethodGet, "/api/auth/me", token, nil)
		if code != http.StatusOK || me["username"] != "alice" || me["id"] == "" {
			t.Fatalf("me = %d %v", code, me)
		}
		userID, _ = me["id"].(string)
		if code, e := p.call(t, http.MethodGet, "/api/auth/me", "", nil); code != http.StatusUnauthorized || e["error"] == nil {
			t.Fatalf("me without a token = %d %v, want 401 {\"error\"}", code, e)
		}

		p.interrupt(t)
	})
	if t.Failed() {
		return
	}

	t.Run("restart keeps users and tokens", func(t *testing.T) {
		// The embedded store and the generated secret live in the data
		// dir, so a restart keeps both; only Aurora's user may read them.
		for _, f := range []string{"aurora.db", "jwt-secret"} {
			fi, err := os.Stat(filepath.Join(dataDir, f))
			if err != nil {
				t.Fatalf("data dir lacks %s: %v", f, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s is mode %#o, want 0600", f, fi.Mode().Perm())
			}
		}
		if fi, err := os.Stat(dataDir); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir is mode %#o, want 0700", fi.Mode().Perm())
		}
		p := startServe(t, bin, dataDir)
		code, me := p.call(t, http.MethodGet, "/api/auth/me", token, nil)
		if code != http.StatusOK || me["id"] != userID {
			t.Fatalf("me with the token from before the restart = %d %v", code, me)
		}
		code, login := p.call(t, http.MethodPost, "/api/auth/login", "",
			map[string]string{"username": "alice", "password": "correct horse battery"})
		if code != http.StatusOK || login["token"] == "" {
			t.Fatalf("login after restart = %d %v", code, login)
		}
		p.interrupt(t)
	})
}
