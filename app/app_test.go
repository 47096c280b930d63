package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/web"
)

// The registry is process-wide and refuses duplicate names, so every test
// registers its fake modules under fresh names (also under -count=N).
var seq atomic.Int64

func uniq(name string) string { return fmt.Sprintf("test-%s-%d", name, seq.Add(1)) }

// recorder collects what fake modules did, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// fake is a module whose behavior a test sets.
type fake struct {
	name     string
	rec      *recorder
	startErr error
	stop     func(ctx context.Context) error
}

func (f *fake) Start(context.Context) error {
	if f.startErr != nil {
		f.rec.add("start-failed " + f.name)
		return f.startErr
	}
	f.rec.add("start " + f.name)
	return nil
}

func (f *fake) Stop(ctx context.Context) error {
	f.rec.add("stop " + f.name)
	if f.stop != nil {
		return f.stop(ctx)
	}
	return nil
}

// checkedFake is a fake with a readiness check.
type checkedFake struct {
	fake
	err atomic.Pointer[error]
}

func (c *checkedFake) Check(context.Context) error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// registerFake registers a module that records into rec and returns f.
func registerFake(name string, role bool, deps []string, f *fake) {
	app.Register(app.Registration{
		Name: name, Role: role, Deps: deps,
		New: func(context.Context, *app.Host) (app.Module, error) {
			f.rec.add("new " + name)
			return f, nil
		},
	})
}

// withWeb hands the runtime the web UI, as cmd serve does.
var withWeb = app.WithPage(http.FileServerFS(web.Files))

// server is an App running in this process, as apptest.Start runs one,
// except that these tests read Run's error when it ends before the server
// is ready, and the runtime's debug log.
type server struct {
	app  *app.App
	url  string
	logs *apptest.Buffer
	stop context.CancelFunc
	done chan error
	once sync.Once
	err  error
}

// startApp runs cfg and waits until /readyz answers 200. It fails the test
// if Run ends first.
func startApp(t *testing.T, cfg *config.Config) *server {
	t.Helper()
	s, err := launch(t, cfg)
	if err != nil {
		t.Fatalf("server did not start: %v", err)
	}
	return s
}

// launch runs cfg; it returns Run's error if Run ends before the server is
// ready.
func launch(t *testing.T, cfg *config.Config) (*server, error) {
	t.Helper()
	logs := &apptest.Buffer{}
	a := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), withWeb)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{app: a, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil && !t.Failed() {
			t.Logf("server stop: %v", err)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.once.Do(func() { s.err = err })
			if err == nil {
				err = errors.New("Run returned nil before the server was ready")
			}
			return nil, err
		default:
		}
		if addr := a.Addr(); addr != "" && s.url == "" {
			s.url = "http://" + addr
		}
		if s.url != "" {
			if resp, err := http.Get(s.url + "/readyz"); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s, nil
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shutdown cancels Run and returns its error; later calls return the same.
func (s *server) shutdown() error {
	s.once.Do(func() {
		s.stop()
		select {
		case s.err = <-s.done:
		case <-time.After(60 * time.Second):
			s.err = errors.New("Run did not return in 60s")
		}
	})
	return s.err
}

// runToEnd runs cfg until Run returns by itself (a start failure).
func runToEnd(t *testing.T, cfg *config.Config) error {
	t.Helper()
	a := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), withWeb)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return in 60s")
		return nil
	}
}

func testConfig(t *testing.T, roles ...string) *config.Config {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = roles
	return cfg
}

var client = &http.Client{Timeout: 10 * time.Second}

// reply is a response whose body has been read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

// do does a request and returns the response with its body read.
func do(t *testing.T, method, url string, hdr map[string]string) (reply, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{resp.StatusCode, resp.Header}, body
}

func TestStartOrderAndReverseStop(t *testing.T) {
	rec := &recorder{}
	a, b, c, d := uniq("a"), uniq("b"), uniq("c"), uniq("d")
	// d is a role depending on c and b; c depends on a and b; b on a.
	registerFake(a, false, nil, &fake{name: a, rec: rec})
	registerFake(b, false, []string{a}, &fake{name: b, rec: rec})
	registerFake(c, false, []string{b, a}, &fake{name: c, rec: rec})
	registerFake(d, true, []string{c, b}, &fake{name: d, rec: rec})
	unused := uniq("unused")
	registerFake(unused, true, nil, &fake{name: unused, rec: rec})

	s := startApp(t, testConfig(t, d))
	if err := s.shutdown(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	want := []string{
		"new " + a, "start " + a,
		"new " + b, "start " + b,
		"new " + c, "start " + c,
		"new " + d, "start " + d,
		"stop " + d, "stop " + c, "stop " + b, "stop " + a,
	}
	if got := rec.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}

func TestSharedDependencyStartsOnce(t *testing.T) {
	rec := &recorder{}
	base, r1, r2 := uniq("base"), uniq("r1"), uniq("r2")
	registerFake(base, false, nil, &fake{name: base, rec: rec})
	registerFake(r1, true, []string{base}, &fake{name: r1, rec: rec})
	registerFake(r2, true, []string{base}, &fake{name: r2, rec: rec})

	s := startApp(t, testConfig(t, r2, r1))
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"new " + base, "start " + base,
		"new " + r2, "start " + r2,
		"new " + r1, "start " + r1,
		"stop " + r1, "stop " + r2, "stop " + base,
	}
	if got := rec.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}

func TestStartFailureStopsWhatStarted(t *testing.T) {
	boom := errors.New("boom: cannot bind the frobnicator")
	cases := []struct {
		name   string
		broken func(name string, rec *recorder) app.Registration
		want   string
	}{
		{"Start fails", func(name string, rec *recorder) app.Registration {
			f := &fake{name: name, rec: rec, startErr: boom}
			return app.Registration{New: func(context.Context, *app.Host) (app.Module, error) { return f, nil }}
		}, "start: " + boom.Error()},
		{"New fails", func(string, *recorder) app.Registration {
			return app.Registration{New: func(context.Context, *app.Host) (app.Module, error) { return nil, boom }}
		}, boom.Error()},
		{"New returns nothing", func(string, *recorder) app.Registration {
			return app.Registration{New: func(context.Context, *app.Host) (app.Module, error) { return nil, nil }}
		}, "constructor returned no module"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			first, broken, role := uniq("first"), uniq("broken"), uniq("role")
			registerFake(first, false, nil, &fake{name: first, rec: rec})
			reg := tc.broken(broken, rec)
			reg.Name, reg.Deps = broken, []string{first}
			app.Register(reg)
			registerFake(role, true, []string{broken}, &fake{name: role, rec: rec})

			err := runToEnd(t, testConfig(t, role))
			if err == nil {
				t.Fatal("Run succeeded although a module failed")
			}
			if msg := err.Error(); !strings.Contains(msg, "module "+broken) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not name module %s and cause %q", msg, broken, tc.want)
			}
			ev := rec.list()
			if !slices.Contains(ev, "stop "+first) {
				t.Errorf("the module started before the failure was not stopped: %q", ev)
			}
			if slices.Contains(ev, "stop "+broken) || slices.Contains(ev, "new "+role) {
				t.Errorf("modules after the failure were built or stopped: %q", ev)
			}
		})
	}
}

// runner is a fake module with a background loop: Run waits for fail (and
// returns its error) or for its context to end.
type runner struct {
	fake
	fail chan error
}

func (r *runner) Run(ctx context.Context) error {
	select {
	case err := <-r.fail:
		return err
	case <-ctx.Done():
		r.rec.add("run-done " + r.name)
		return nil
	}
}

// startRunner starts a role whose module is a runner, depending on a
// helper module, both recording into rec.
func startRunner(t *testing.T, rec *recorder) (*server, *runner, string, string) {
	t.Helper()
	helper, role := uniq("helper"), uniq("looping")
	registerFake(helper, false, nil, &fake{name: helper, rec: rec})
	r := &runner{fake: fake{name: role, rec: rec}, fail: make(chan error)}
	app.Register(app.Registration{
		Name: role, Role: true, Deps: []string{helper},
		New: func(context.Context, *app.Host) (app.Module, error) { return r, nil },
	})
	return startApp(t, testConfig(t, role)), r, role, helper
}

func TestRunErrorStopsProcess(t *testing.T) {
	rec := &recorder{}
	s, r, role, helper := startRunner(t, rec)
	// A background loop that cannot go on returns its error.
	r.fail <- errors.New("consumer loop: redis gone")
	select {
	case err := <-s.done:
		s.once.Do(func() { s.err = err })
		if err == nil || !strings.Contains(err.Error(), "consumer loop: redis gone") || !strings.Contains(err.Error(), "module "+role) {
			t.Fatalf("Run = %v, want the failure naming the module", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the failed Run did not stop the process")
	}
	want := []string{"stop " + role, "stop " + helper}
	if got := rec.list(); !reflect.DeepEqual(got[len(got)-2:], want) {
		t.Fatalf("events %q, want to end with %q", got, want)
	}
}

func TestRunEndsAfterStop(t *testing.T) {
	rec := &recorder{}
	s, r, role, helper := startRunner(t, rec)
	if got := s.app.Module(role); got != r {
		t.Fatalf("Module(%q) = %v, want the started module", role, got)
	}
	if got := s.app.Module("no-such-module"); got != nil {
		t.Fatalf("Module of a name not started = %v", got)
	}
	if err := s.shutdown(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	// A shutdown stops the module while its loop runs (to drain through
	// it), then cancels the loop's context and waits for it to return,
	// before the module started before it.
	want := []string{"stop " + role, "run-done " + role, "stop " + helper}
	if got := rec.list(); !reflect.DeepEqual(got[len(got)-3:], want) {
		t.Fatalf("events %q, want to end with %q", got, want)
	}
}

func TestPlanErrors(t *testing.T) {
	rec := &recorder{}
	cycA, cycB := uniq("cyc-a"), uniq("cyc-b")
	registerFake(cycA, true, []string{cycB}, &fake{name: cycA, rec: rec})
	registerFake(cycB, false, []string{cycA}, &fake{name: cycB, rec: rec})
	orphan := uniq("orphan")
	registerFake(orphan, true, []string{"no-such-module"}, &fake{name: orphan, rec: rec})

	cases := []struct {
		name  string
		roles []string
		want  []string
	}{
		{"unknown role", []string{"nope"}, []string{`unknown role "nope"`, "valid roles:", cycA, orphan}},
		{"infrastructure is not a role", []string{app.ModRedis}, []string{`unknown role "redis"`}},
		{"cycle", []string{cycA}, []string{"cycle", cycA, cycB}},
		{"unknown dependency", []string{orphan}, []string{`unknown module "no-such-module"`, orphan}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := runToEnd(t, testConfig(t, tc.roles...))
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("modules were built for a rejected plan: %q", ev)
	}
	// Roles lists the user-selectable modules, sorted, and no infrastructure.
	roles := app.Roles()
	if !slices.IsSorted(roles) || !slices.Contains(roles, cycA) || slices.Contains(roles, cycB) || slices.Contains(roles, app.ModRedis) {
		t.Errorf("Roles() = %q", roles)
	}
}

func TestRegisterRejectsBadRegistrations(t *testing.T) {
	name := uniq("dup")
	registerFake(name, false, nil, &fake{name: name, rec: &recorder{}})
	newFn := func(context.Context, *app.Host) (app.Module, error) { return nil, nil }
	for _, tc := range []struct {
		what string
		reg  app.Registration
	}{
		{"duplicate", app.Registration{Name: name, New: newFn}},
		{"no name", app.Registration{New: newFn}},
		{"no constructor", app.Registration{Name: uniq("nonew")}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register with %s did not panic", tc.what)
				}
			}()
			app.Register(tc.reg)
		}()
	}
}

func TestListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	role := uniq("listen")
	rec := &recorder{}
	registerFake(role, true, nil, &fake{name: role, rec: rec})
	cfg := testConfig(t, role)
	cfg.HTTP.Addr = ln.Addr().String()
	err = runToEnd(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "listen on "+cfg.HTTP.Addr) {
		t.Fatalf("Run on a busy port = %v", err)
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("modules were built although the port was busy: %q", ev)
	}
}

// readyz fetches /readyz and decodes it.
func readyz(t *testing.T, base string) (int, string, map[string]string) {
	t.Helper()
	resp, body := do(t, http.MethodGet, base+"/readyz", nil)
	var v struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("/readyz Content-Type %q", ct)
	}
	return resp.StatusCode, v.Status, v.Checks
}

func TestHealthAndReadiness(t *testing.T) {
	rec := &recorder{}
	role := uniq("ready")
	chk := &checkedFake{fake: fake{name: role, rec: rec}}
	app.Register(app.Registration{
		Name: role, Role: true, Deps: []string{app.ModRedis},
		New: func(context.Context, *app.Host) (app.Module, error) { return chk, nil },
	})
	s := startApp(t, testConfig(t, role))

	resp, body := do(t, http.MethodGet, s.url+"/healthz", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}

	code, status, checks := readyz(t, s.url)
	if code != http.StatusOK || status != "ok" {
		t.Fatalf("/readyz = %d %q %v", code, status, checks)
	}
	want := map[string]string{app.ModRedis: "ok", role: "ok"}
	if !reflect.DeepEqual(checks, want) {
		t.Fatalf("/readyz checks = %v, want %v", checks, want)
	}

	broken := errors.New("upstream unreachable")
	chk.err.Store(&broken)
	code, status, checks = readyz(t, s.url)
	if code != http.StatusServiceUnavailable || status != "unavailable" || checks[role] != broken.Error() || checks[app.ModRedis] != "ok" {
		t.Fatalf("/readyz with a failing check = %d %q %v", code, status, checks)
	}
	// Liveness does not depend on readiness.
	if resp, _ := do(t, http.MethodGet, s.url+"/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while not ready = %d", resp.StatusCode)
	}

	chk.err.Store(nil)
	if code, _, _ := readyz(t, s.url); code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", code)
	}
}

func TestReadyzUnavailableDuringShutdownDelay(t *testing.T) {
	role := uniq("delay")
	stopped := make(chan struct{})
	registerFake(role, true, nil, &fake{name: role, rec: &recorder{}, stop: func(context.Context) error {
		close(stopped)
		return nil
	}})
	cfg := testConfig(t, role)
	// Long enough to observe reliably; the test does not wait it out
	// unless something is wrong (Run returns after it).
	cfg.HTTP.ShutdownDelay = 2 * time.Second
	s := startApp(t, cfg)
	s.stop()

	deadline := time.Now().Add(cfg.HTTP.ShutdownDelay)
	for {
		code, status, checks := readyz(t, s.url)
		if code == http.StatusServiceUnavailable {
			if status != "unavailable" || checks["shutdown"] != "draining" {
				t.Fatalf("/readyz while draining = %d %q %v", code, status, checks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz stayed 200 after the shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("modules were stopped before the shutdown delay passed")
	default:
	}
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	<-stopped
}

func TestMetrics(t *testing.T) {
	role := uniq("metrics")
	registerFake(role, true, nil, &fake{name: role, rec: &recorder{}})
	s := startApp(t, testConfig(t, role))
	resp, body := do(t, http.MethodGet, s.url+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	for _, m := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), "\n"+m+" ") && !strings.Contains(string(body), "\n"+m+"{") {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// routedRole registers a role with two routes under /api/<role>/: echo,
// which logs through the request-scoped logger, and fail.
func routedRole(t *testing.T) string {
	t.Helper()
	role := uniq("routes")
	app.Register(app.Registration{
		Name: role, Role: true,
		New: func(_ context.Context, h *app.Host) (app.Module, error) {
			h.Mux.HandleFunc("GET /api/"+role+"/echo", func(w http.ResponseWriter, r *http.Request) {
				app.Logger(r.Context(), h.Log).Info("echo handler", "marker", "from-"+role)
				app.WriteJSON(w, http.StatusOK, map[string]string{"echo": "ok"})
			})
			h.Mux.HandleFunc("POST /api/"+role+"/fail", func(w http.ResponseWriter, r *http.Request) {
				app.WriteError(w, http.StatusBadRequest, "bad thing")
			})
			return &fake{name: role, rec: &recorder{}}, nil
		},
	})
	return role
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	role := routedRole(t)
	cfg := testConfig(t, role)
	cfg.HTTP.CORSOrigins = []string{"https://app.example"}
	s := startApp(t, cfg)

	reqs := []struct {
		method, path string
		hdr          map[string]string
		code         int
	}{
		{http.MethodGet, "/healthz", nil, http.StatusOK},
		{http.MethodGet, "/readyz", nil, http.StatusOK},
		{http.MethodGet, "/metrics", nil, http.StatusOK},
		{http.MethodGet, "/", nil, http.StatusOK},
		{http.MethodGet, "/no/such/page", nil, http.StatusNotFound},
		{http.MethodGet, "/api/" + role + "/echo", nil, http.StatusOK},
		{http.MethodPost, "/api/" + role + "/fail", nil, http.StatusBadRequest},
		{http.MethodDelete, "/healthz", nil, http.StatusMethodNotAllowed},
		{http.MethodOptions, "/api/" + role + "/echo", map[string]string{"Origin": "https://app.example"}, http.StatusNoContent},
		{http.MethodOptions, "/api/" + role + "/echo", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
	}
	for _, r := range reqs {
		resp, body := do(t, r.method, s.url+r.path, r.hdr)
		if resp.StatusCode != r.code {
			t.Errorf("%s %s = %d, want %d (%s)", r.method, r.path, resp.StatusCode, r.code, body)
		}
		for h, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": app.ContentSecurityPolicy,
			"X-Frame-Options":         "DENY",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", r.method, r.path, h, got, want)
			}
		}
	}
	if !strings.Contains(app.ContentSecurityPolicy, "script-src 'self'") || strings.Contains(app.ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP allows more than the UI's own scripts: %q", app.ContentSecurityPolicy)
	}
}

func TestCORS(t *testing.T) {
	role := routedRole(t)
	cfg := testConfig(t, role)
	cfg.HTTP.CORSOrigins = []string{"https://app.example/"}
	s := startApp(t, cfg)
	api := s.url + "/api/" + role + "/echo"
	self := s.url // the server's own origin

	cases := []struct {
		name, method, url, origin string
		code                      int
		allowed                   bool
	}{
		{"same origin", http.MethodGet, api, self, http.StatusOK, true},
		{"allow-listed (trailing slash in config)", http.MethodGet, api, "https://app.example", http.StatusOK, true},
		{"other origin gets no grant", http.MethodGet, api, "https://evil.example", http.StatusOK, false},
		{"scheme matters for allow-list", http.MethodGet, api, "http://app.example", http.StatusOK, false},
		{"not an API path", http.MethodGet, s.url + "/healthz", "https://app.example", http.StatusOK, false},
		{"preflight allowed", http.MethodOptions, api, "https://app.example", http.StatusNoContent, true},
		{"preflight same origin", http.MethodOptions, api, self, http.StatusNoContent, true},
		{"preflight refused", http.MethodOptions, api, "https://evil.example", http.StatusForbidden, false},
		{"malformed origin", http.MethodOptions, api, "::not a url", http.StatusForbidden, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, tc.url, map[string]string{
				"Origin":                        tc.origin,
				"Access-Control-Request-Method": "POST",
			})
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.code, body)
			}
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tc.allowed && acao != tc.origin {
				t.Fatalf("Access-Control-Allow-Origin = %q, want %q", acao, tc.origin)
			}
			if !tc.allowed && acao != "" {
				t.Fatalf("Access-Control-Allow-Origin = %q for a refused origin", acao)
			}
			if tc.allowed && !slices.Contains(resp.Header.Values("Vary"), "Origin") {
				t.Errorf("Vary lacks Origin: %q", resp.Header.Values("Vary"))
			}
			if tc.method == http.MethodOptions && tc.allowed {
				if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
					t.Errorf("Access-Control-Allow-Methods = %q", m)
				}
				if h := resp.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(h, "Authorization") {
					t.Errorf("Access-Control-Allow-Headers = %q", h)
				}
			}
			if tc.code == http.StatusForbidden {
				var e map[string]string
				if err := json.Unmarshal(body, &e); err != nil || e["error"] == "" || len(e) != 1 {
					t.Errorf("refusal body %q is not {\"error\": ...}", body)
				}
			}
		})
	}

	// "*" allows any origin.
	role2 := routedRole(t)
	cfg2 := testConfig(t, role2)
	cfg2.HTTP.CORSOrigins = []string{"*"}
	s2 := startApp(t, cfg2)
	resp, _ := do(t, http.MethodOptions, s2.url+"/api/"+role2+"/echo", map[string]string{"Origin": "https://anyone.example"})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://anyone.example" {
		t.Fatalf("with *: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSNullOrigin(t *testing.T) {
	// A page opened as a file sends Origin: null: refused by default and
	// with "*" (http(s) origins only), allowed when "null" is listed on its
	// own, with a start-up warning that it is for development.
	cases := []struct {
		name    string
		origins []string
		allowed bool
	}{
		{"default", nil, false},
		{"star", []string{"*"}, false},
		{"other origin", []string{"http://localhost:8000"}, false},
		{"null listed", []string{"null"}, true},
		{"star and null", []string{"*", "null"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role := routedRole(t)
			cfg := testConfig(t, role)
			cfg.HTTP.CORSOrigins = tc.origins
			s := startApp(t, cfg)
			api := s.url + "/api/" + role + "/echo"
			hdr := map[string]string{"Origin": "null", "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": "content-type"}

			pre, body := do(t, http.MethodOptions, api, hdr)
			get, _ := do(t, http.MethodGet, api, map[string]string{"Origin": "null"})
			if tc.allowed {
				if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "null" ||
					!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
					t.Fatalf("preflight: %d %v", pre.StatusCode, pre.Header)
				}
				if get.StatusCode != http.StatusOK || get.Header.Get("Access-Control-Allow-Origin") != "null" ||
					!slices.Contains(get.Header.Values("Vary"), "Origin") {
					t.Fatalf("GET: %d %v", get.StatusCode, get.Header)
				}
			} else {
				var e map[string]string
				if pre.StatusCode != http.StatusForbidden || json.Unmarshal(body, &e) != nil || len(e) != 1 || e["error"] != "origin not allowed" {
					t.Fatalf("preflight: %d %q, want 403 {\"error\":\"origin not allowed\"}", pre.StatusCode, body)
				}
				if acao := pre.Header.Get("Access-Control-Allow-Origin"); acao != "" {
					t.Fatalf("refused preflight granted %q", acao)
				}
				if get.StatusCode != http.StatusOK || get.Header.Get("Access-Control-Allow-Origin") != "" {
					t.Fatalf("GET: %d, Access-Control-Allow-Origin %q, want no grant", get.StatusCode, get.Header.Get("Access-Control-Allow-Origin"))
				}
			}
			if err := s.shutdown(); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(s.logs.String(), `level=WARN msg="http.cors_origins allows Origin \"null\"`)
			if warned != tc.allowed {
				t.Errorf("start-up warning about null logged = %v, want %v:\n%s", warned, tc.allowed, s.logs.String())
			}
		})
	}
}

func TestRootServesPageAndHandsOffWebSockets(t *testing.T) {
	role := uniq("ws")
	app.Register(app.Registration{
		Name: role, Role: true,
		New: func(_ context.Context, h *app.Host) (app.Module, error) {
			// Where the chat role serves its WebSocket.
			h.Mux.HandleFunc("GET "+app.WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Handled-By", "websocket")
				w.WriteHeader(http.StatusTeapot)
			})
			return &fake{name: role, rec: &recorder{}}, nil
		},
	})
	s := startApp(t, testConfig(t, role))

	resp, body := do(t, http.MethodGet, s.url+"/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type %q", ct)
	}
	page, err := fs.ReadFile(web.Files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, page) {
		t.Errorf("GET / did not serve the embedded index.html (%d bytes, want %d)", len(body), len(page))
	}

	resp, _ = do(t, http.MethodGet, s.url+"/", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"})
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Handled-By") != "websocket" {
		t.Fatalf("upgrade request on / = %d, not handed to the module serving %s", resp.StatusCode, app.WebSocketPath)
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("upgrade response lacks the security headers")
	}

	// Without a module serving WebSockets, an upgrade on "/" is a page
	// request like any other (and does not hand itself to itself).
	plain := uniq("no-ws")
	registerFake(plain, true, nil, &fake{name: plain, rec: &recorder{}})
	s = startApp(t, testConfig(t, plain))
	resp, body = do(t, http.MethodGet, s.url+"/", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, page) {
		t.Fatalf("upgrade request on / without a WebSocket module = %d (%d bytes), want the page", resp.StatusCode, len(body))
	}
}

func TestRequestIDAndScopedLogger(t *testing.T) {
	role := routedRole(t)
	s := startApp(t, testConfig(t, role))
	url := s.url + "/api/" + role + "/echo"

	resp, _ := do(t, http.MethodGet, url, map[string]string{"X-Request-Id": "trace-abc-123"})
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Fatalf("X-Request-Id = %q, want the caller's", got)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "req=trace-abc-123") || !strings.Contains(logs, "marker=from-"+role) {
		t.Fatalf("the handler's log line lacks the request id:\n%s", logs)
	}

	resp, _ = do(t, http.MethodGet, url, nil)
	gen := resp.Header.Get("X-Request-Id")
	if len(gen) != 16 {
		t.Fatalf("generated X-Request-Id %q is not 16 hex", gen)
	}
	long := strings.Repeat("x", 65)
	resp, _ = do(t, http.MethodGet, url, map[string]string{"X-Request-Id": long})
	if got := resp.Header.Get("X-Request-Id"); got == long || len(got) != 16 {
		t.Fatalf("an over-long X-Request-Id was kept: %q", got)
	}
}

func TestDrainFinishesInFlightRequests(t *testing.T) {
	role := uniq("slow")
	entered := make(chan struct{})
	release := make(chan struct{})
	app.Register(app.Registration{
		Name: role, Role: true,
		New: func(_ context.Context, h *app.Host) (app.Module, error) {
			h.Mux.HandleFunc("GET /api/slow", func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				app.WriteJSON(w, http.StatusOK, map[string]string{"done": "yes"})
			})
			return &fake{name: role, rec: &recorder{}}, nil
		},
	})
	s := startApp(t, testConfig(t, role))

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get(s.url + "/api/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	stopErr := make(chan error, 1)
	go func() { stopErr <- s.shutdown() }()

	// The shutdown must wait for the request, not cut it off.
	select {
	case err := <-stopErr:
		t.Fatalf("Run returned (%v) while a request was in flight", err)
	case r := <-got:
		t.Fatalf("request ended before it was released: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-got
	if r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, `"done":"yes"`) {
		t.Fatalf("in-flight request during drain = %+v", r)
	}
	if err := <-stopErr; err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestStopHonoursDrainDeadline(t *testing.T) {
	role := uniq("stuck")
	registerFake(role, true, nil, &fake{name: role, rec: &recorder{}, stop: func(ctx context.Context) error {
		// A module that cannot finish draining gives up at the deadline.
		<-ctx.Done()
		return ctx.Err()
	}})
	cfg := testConfig(t, role)
	cfg.HTTP.DrainTimeout = 300 * time.Millisecond
	s := startApp(t, cfg)
	err := s.shutdown()
	if err == nil || !strings.Contains(err.Error(), "module "+role+": stop") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop past the drain deadline = %v", err)
	}
}
