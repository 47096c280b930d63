package cmd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/web"
)

// The README's quick start, as a user runs it: build the binary, run
// `aurora serve` with nothing configured (embedded Redis and SQLite), use the
// page and the auth API, stop it with Ctrl-C.

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// procOutput collects a child's output while the test reads it.
type procOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *procOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *procOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running aurora process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *procOutput
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done is closed
}

// startServe starts `aurora serve` on a free port with dataDir and waits until
// /readyz answers 200.
func startServe(t *testing.T, bin, dataDir string) *proc {
	t.Helper()
	port := freePort(t)
	p := &proc{
		base:   "http://127.0.0.1:" + strconv.Itoa(port),
		stderr: &procOutput{},
		done:   make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "serve", "--http-addr", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", dataDir)
	p.cmd.Dir = filepath.Dir(dataDir)
	p.cmd.Env = apptest.CleanEnv()
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("aurora output:\n%s", p.stderr.String())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("aurora serve exited before it was ready: %v\n%s", p.err, p.stderr.String())
		default:
		}
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("aurora serve not ready in 60s\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// interrupt sends SIGINT (Ctrl-C) and waits for a clean exit within the
// default drain deadline.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("aurora serve did not exit 0 after SIGINT: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(25*time.Second + 10*time.Second): // http.drain_timeout plus slack
		t.Fatalf("aurora serve still running after SIGINT past the drain deadline\n%s", p.stderr.String())
	}
}

// call does one JSON request against the process.
func (p *proc) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, body %q is not a JSON object", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

func TestQuickStartProcess(t *testing.T) {
	tmp := t.TempDir()
	bin := apptest.Binary(t)

	t.Run("unknown role exits non-zero", func(t *testing.T) {
		c := exec.Command(bin, "serve", "--roles=nope", "--data-dir", filepath.Join(tmp, "unused"))
		c.Env = apptest.CleanEnv()
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
