// Package proctest_test holds Aurora's process-level tests: each builds
// the aurora binary once (apptest.Binary) and runs it as OS processes,
// configured by files and flags and reached only over HTTP, WebSocket,
// Redis and the store, as in production: the README's quick start, the
// live tests at the default limits, replicas sharing rooms, the message
// pipeline through kills and outages, ingest processes surviving a
// SIGKILL, the operator commands next to a running serve, a data dir
// owned by another user, HTTPS from certificate files; and, with the build
// tag faults, issue #11's fault suite (faults_test.go: its own redis-server
// processes, a fleet of five processes, clients that recover as the web
// client does).
//
// Tests that run Aurora in this process (apptest.Start, cmd.Run) belong
// beside the code they test, not here; the browser test is web/e2e.
// Shared helpers (WebSocket client, polling, metrics, Redis) are in
// app/apptest; this package's own harness is harness_test.go (processes),
// redis_test.go (the ingest group's state) and store_test.go (what the
// processes stored).
package proctest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.yaml.in/yaml/v3"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/token"
)

// The harness: the real `aurora` binary, built once per package run, runs
// as child processes that talk only through Redis and the store, as in
// production.

// procWait bounds every wait of a process test for one thing to happen.
const procWait = 30 * time.Second

// procSecret is the JWT secret of every process a test starts, so tests can
// mint tokens the chat role accepts.
const procSecret = "process-test-secret-0123456789abcdef"

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinary()
	os.Exit(code)
}

// nodeConfig is a config file's content as nested maps; set fills in a
// dotted key.
type nodeConfig map[string]any

// newNodeConfig is the configuration the processes of one test share:
// loopback on a free port, JSON logs (the test reads the bound address from
// them), a fixed JWT secret, fast bcrypt, and the given Redis and data dir.
func newNodeConfig(dataDir, redisURL string) nodeConfig {
	c := nodeConfig{}
	c.set("data_dir", dataDir)
	c.set("http.addr", "127.0.0.1:0")
	c.set("http.drain_timeout", "20s")
	c.set("log.level", "info")
	c.set("log.format", "json")
	c.set("redis.url", redisURL)
	c.set("auth.jwt_secret", procSecret)
	c.set("auth.bcrypt_cost", 4)
	return c
}

func (c nodeConfig) set(key string, v any) {
	m := map[string]any(c)
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

// write writes the configuration into a new file of the test's and returns
// its path.
func (c nodeConfig) write(t *testing.T) string {
	t.Helper()
	b, err := yaml.Marshal(map[string]any(c))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "aurora-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// fastIngest makes ingest write batches of 50 at least every 50 ms: the
// tests push thousands of entries and wait for them to be stored.
func (c nodeConfig) fastIngest() {
	c.set("ingest.batch_size", 50)
	c.set("ingest.flush_interval", "50ms")
}

// writeMigrated is write, then `aurora migrate` on the file, for processes
// started together.
func (c nodeConfig) writeMigrated(t *testing.T) string {
	t.Helper()
	f := c.write(t)
	migrateWith(t, f)
	return f
}

// sharedRedis starts a test of several processes on one Redis: it skips
// the test under -short, which leaves such tests out, and returns the Redis
// (apptest.RedisURL: a fresh embedded one, or the real one flushed) and the
// test's own client of it.
func sharedRedis(t *testing.T) (string, rueidis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs processes")
	}
	url := apptest.RedisURL(t)
	return url, apptest.RedisClient(t, url)
}

// migrateWith runs `aurora migrate` on the configuration, so processes
// started together do not race on creating the schema.
func migrateWith(t *testing.T, cfgFile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	c := exec.CommandContext(ctx, apptest.Binary(t), "migrate", "--config", cfgFile)
	c.Env = apptest.CleanEnv()
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("aurora migrate: %v\n%s", err, out)
	}
}

// node is a running `aurora serve` child process. The embedded proc gives
// its base URL, call (one JSON request) and interrupt (SIGINT, clean exit).
type node struct {
	*proc
	t       *testing.T
	name    string
	logPath string
}

// startNode runs `aurora serve --roles=<roles> --config <cfgFile>`, logging
// to <name>.log in a temp dir of the test, and returns once it has started
// and /readyz answers 200. The process is killed when the test ends, and its
// log is shown if the test failed.
func startNode(t *testing.T, name, cfgFile, roles string) *node {
	t.Helper()
	bin := apptest.Binary(t)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &startWatch{file: logf, out: &apptest.Buffer{}, addr: make(chan string, 1)}
	n := &node{
		proc:    &proc{stderr: w.out, done: make(chan struct{})},
		t:       t,
		name:    name,
		logPath: logPath,
	}
	n.cmd = exec.Command(bin, "serve", "--roles="+roles, "--config", cfgFile)
	n.cmd.Env = apptest.CleanEnv()
	// One writer for both streams: exec then copies them through one pipe.
	n.cmd.Stdout, n.cmd.Stderr = w, w
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s (pid %d) log, last lines:\n%s", name, n.cmd.Process.Pid, n.logTail(60))
		}
	})

	select {
	case addr := <-w.addr:
		n.base = "http://" + addr
	case <-n.done:
		t.Fatalf("%s exited before it started: %v\n%s", name, n.err, n.logTail(60))
	case <-time.After(procWait):
		t.Fatalf("%s did not start in %s\n%s", name, procWait, n.logTail(60))
	}
	waitUntil(t, name+" /readyz to answer 200", func() bool { return n.readyz() == http.StatusOK })
	return n
}

// pid is the process id: the ingest role's consumer name is <host>-<pid>.
func (n *node) pid() int { return n.cmd.Process.Pid }

// consumer is the ingest consumer name of the process.
func (n *node) consumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "aurora"
	}
	return fmt.Sprintf("%s-%d", host, n.pid())
}

// running reports whether the process has not exited.
func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL (no drain, no goodbye) and waits for it.
func (n *node) kill() {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(procWait):
		n.t.Errorf("%s (pid %d) still running %s after SIGKILL", n.name, n.pid(), procWait)
	}
}

// stop interrupts the process and fails the test unless it drains and
// exits 0.
func (n *node) stop() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("%s already exited: %v\n%s", n.name, n.err, n.logTail(60))
	}
	n.interrupt(n.t)
}

// metric is the value of an unlabelled metric on /metrics (0 when absent).
func (n *node) metric(name string) float64 {
	n.t.Helper()
	return apptest.Metric(n.t, n.base, name)
}

// wsURL is the WebSocket endpoint of the process for the user's token.
func (n *node) wsURL(tok string) string { return apptest.WSURL(n.base, "/ws", tok) }

// dialWS connects to a chat process with a WebSocket URL carrying the token
// and reads the welcome frame.
func dialWS(t *testing.T, wsURL string) *apptest.WS {
	t.Helper()
	return apptest.DialChat(t, procWait, wsURL, nil)
}

// logTail is the end of the process's log.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// startWatch copies a child's output to its log file and reports the
// address from the "aurora started" line: the process binds 127.0.0.1:0,
// so only it knows its port.
type startWatch struct {
	file *os.File
	out  *apptest.Buffer // what proc.interrupt shows on failure
	addr chan string
	line []byte
	seen bool
}

func (w *startWatch) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p)
	_, _ = w.out.Write(p)
	if w.seen {
		return len(p), nil
	}
	// exec's copier calls Write from one goroutine at a time.
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(w.line[:i], &rec) == nil && rec.Msg == "aurora started" && rec.Addr != "" {
			w.seen = true
			w.line = nil
			w.addr <- rec.Addr
			break
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

// waitUntil polls cond until it holds or procWait passes. It is used only
// where the processes offer no signal to wait on (readiness, Redis and
// store state, metrics).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	apptest.Eventually(t, procWait, what, cond)
}

// mintToken issues a token for a user with the processes' secret.
func mintToken(t *testing.T, userID, username string) string {
	t.Helper()
	tok, _, err := token.NewIssuer([]byte(procSecret), time.Hour).Issue(userID, username)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newUserID is a fresh user id in the ObjectId form the stores use.
func newUserID() string { return bson.NewObjectID().Hex() }

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

// proc is a running aurora process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *apptest.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done is closed
}

// runProc starts cmd with its output in the proc's buffer, and kills it
// (printing that output if the test failed) when the test ends.
func runProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stderr: &apptest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("aurora output:\n%s", p.stderr.String())
		}
	})
	return p
}

// startServe starts `aurora serve` on a free port with dataDir and waits until
// /readyz answers 200.
func startServe(t *testing.T, bin, dataDir string) *proc {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "serve", "--http-addr", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", dataDir)
	cmd.Dir = filepath.Dir(dataDir)
	cmd.Env = apptest.CleanEnv()
	p := runProc(t, cmd)
	p.base = "http://127.0.0.1:" + strconv.Itoa(port)

	ready := apptest.Poll(60*time.Second, func() bool {
		select {
		case <-p.done:
			t.Fatalf("aurora serve exited before it was ready: %v\n%s", p.err, p.stderr.String())
		default:
		}
		return p.readyz() == http.StatusOK
	})
	if !ready {
		t.Fatalf("aurora serve not ready in 60s\n%s", p.stderr.String())
	}
	return p
}

// interrupt sends SIGINT (Ctrl-C) and fails the test unless the process
// exits 0 within the default drain deadline.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.stopWith(os.Interrupt); err != nil {
		t.Fatal(err)
	}
}

// stopWith sends sig and waits for the process to exit; it returns why not
// when the exit is not 0 within the default drain deadline.
func (p *proc) stopWith(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("aurora serve did not exit 0 after %v: %w\n%s", sig, p.err, p.stderr.String())
		}
		return nil
	case <-time.After(25*time.Second + 10*time.Second): // http.drain_timeout plus slack
		return fmt.Errorf("aurora serve still running after %v past the drain deadline\n%s", sig, p.stderr.String())
	}
}

// readyz is the status of GET /readyz (0 when it does not answer).
func (p *proc) readyz() int { return apptest.ReadyStatus(p.base) }

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

// execAurora is the built binary with args, in a clean environment.
func execAurora(bin string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = apptest.CleanEnv()
	return c
}
