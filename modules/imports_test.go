// Package modules_test guards Aurora's layering:
//   - a role (modules/auth, modules/chat, modules/ingest and their
//     subpackages) never imports another role, so each can run as its own
//     replica set and talk to the others only through Redis (app/bus) and
//     the store, nor the command line (cmd/...);
//   - the shared packages (app/..., config) never import a role or cmd/...:
//     the composition root (cmd) links the roles in, not the other way;
//   - the runtime itself (package app) imports no infrastructure driver
//     (app/infra, embeddedredis, mongostore, sqlitestore) and not the web
//     UI: cmd links the drivers in and hands it the UI;
//   - the load generator (cmd/loadgen), a client, imports no role.
//
// The check runs `go list` over the real tree, tests included (all but the
// runtime rule, which is about what the server binary's runtime links), so
// a forbidden import added anywhere fails here.
package modules_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkg is what `go list` says about one package (or test variant).
type pkg struct {
	ImportPath string
	Deps       []string
	Name       string
	Dir        string
}

// repo is the module's root directory and path.
func repo(t *testing.T) (root, module string) {
	t.Helper()
	out := goCmd(t, "", "list", "-m", "-f", "{{.Dir}}\n{{.Path}}")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("go list -m printed %q", out)
	}
	return lines[0], lines[1]
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	c := exec.Command(goBin, args...)
	c.Dir = dir
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// list runs `go list -deps`-style listing of patterns with their tests,
// optionally through an overlay file.
func list(t *testing.T, root, overlay string, patterns ...string) []pkg {
	t.Helper()
	args := []string{"list", "-test", "-json=ImportPath,Deps,Name,Dir"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	args = append(args, patterns...)
	dec := json.NewDecoder(strings.NewReader(goCmd(t, root, args...)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// plain strips the test-variant annotation: "x [x.test]" -> "x".
func plain(path string) string {
	p, _, _ := strings.Cut(path, " ")
	return p
}

// roleOf returns the role a package belongs to: the first path element under
// <module>/modules/, without a _test or .test suffix.
func roleOf(module, path string) (string, bool) {
	rest, ok := strings.CutPrefix(plain(path), module+"/modules/")
	if !ok {
		return "", false
	}
	role, _, _ := strings.Cut(rest, "/")
	role = strings.TrimSuffix(role, ".test")
	role = strings.TrimSuffix(role, "_test")
	return role, true
}

// under reports whether path is dir or a package below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// runtimeForbidden lists what package app may not depend on: the
// infrastructure drivers and the web UI, which cmd links in or hands over.
func runtimeForbidden(module string) []string {
	return []string{
		module + "/app/infra",
		module + "/app/embeddedredis",
		module + "/app/store/mongostore",
		module + "/app/store/sqlitestore",
		module + "/web",
	}
}

// violations lists every forbidden dependency among pkgs.
func violations(module string, pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		path := plain(p.ImportPath)
		self, isRole := roleOf(module, p.ImportPath)
		shared := under(path, module+"/app") || path == module+"/config"
		// The runtime as the server links it: not its test variants.
		runtime := p.ImportPath == module+"/app"
		loadgen := under(path, module+"/cmd/loadgen")
		for _, d := range p.Deps {
			dep := plain(d)
			other, depIsRole := roleOf(module, d)
			depIsCmd := under(dep, module+"/cmd")
			switch {
			case isRole && depIsRole && other != self:
				out = append(out, p.ImportPath+" (role "+self+") depends on "+dep+" (role "+other+")")
			case isRole && depIsCmd:
				out = append(out, p.ImportPath+" (role "+self+") depends on command package "+dep)
			case shared && depIsRole:
				out = append(out, p.ImportPath+" (shared runtime) depends on role package "+dep)
			case shared && depIsCmd:
				out = append(out, p.ImportPath+" (shared runtime) depends on command package "+dep)
			case loadgen && depIsRole:
				out = append(out, p.ImportPath+" (load generator) depends on role package "+dep)
			case runtime && slices.ContainsFunc(runtimeForbidden(module), func(f string) bool { return under(dep, f) }):
				out = append(out, p.ImportPath+" (the runtime) depends on "+dep)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// roleDirs lists the directories under modules/ (the roles).
func roleDirs(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "modules"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(e.Name(), "_") && e.Name() != "testdata" {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

func TestImportBoundaries(t *testing.T) {
	root, module := repo(t)
	pkgs := list(t, root, "", "./modules/...", "./app/...", "./config/...", "./cmd/...")

	// Every role directory, the runtime and the load generator must have
	// been listed, or the check would pass by looking at nothing.
	seen := map[string]bool{}
	for _, p := range pkgs {
		if r, ok := roleOf(module, p.ImportPath); ok {
			seen["modules/"+r] = true
		}
		seen[strings.TrimPrefix(p.ImportPath, module+"/")] = true
	}
	dirs := roleDirs(t, root)
	if len(dirs) == 0 {
		t.Fatal("no role directories under modules/")
	}
	for _, d := range dirs {
		if !seen["modules/"+d] {
			t.Errorf("modules/%s has no Go packages in the listing", d)
		}
	}
	for _, p := range []string{"app", "cmd/loadgen", "config", "cmd"} {
		if !seen[p] {
			t.Errorf("package %s is not in the listing", p)
		}
	}

	if v := violations(module, pkgs); len(v) > 0 {
		t.Fatalf("roles must not import each other or cmd; app/... and config must not import roles or cmd; "+
			"package app must not import app/infra, the store drivers, embeddedredis or web; cmd/loadgen must not import roles "+
			"(share Redis names through app/bus, data through app/store; cmd links modules in):\n  %s", strings.Join(v, "\n  "))
	}
}

// overlay writes a go list overlay that adds to the package in dir (relative
// to root) a file importing imp, and returns the overlay file's path.
// Nothing on disk in the tree changes.
func overlay(t *testing.T, root, dir, imp string) string {
	t.Helper()
	name := strings.TrimSpace(goCmd(t, root, "list", "-f", "{{.Name}}", "./"+dir))
	tmp := t.TempDir()
	src := filepath.Join(tmp, "forbidden.go")
	code := "package " + name + "\n\nimport _ \"" + imp + "\"\n"
	if err := os.WriteFile(src, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, filepath.FromSlash(dir), "zz_forbidden_import.go"): src,
	}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestForbiddenImportIsCaught(t *testing.T) {
	// Add, through a go list overlay, a forbidden import for each rule: the
	// check must report it. (A role importing a shared package that imports
	// it back is an import cycle the compiler rejects anyway; the imports
	// below make no cycle, so only this check stands in their way.)
	root, module := repo(t)
	dirs := roleDirs(t, root)
	if len(dirs) < 2 {
		t.Fatalf("need two roles under modules/ to check cross imports, have %q", dirs)
	}
	from, to := dirs[0], dirs[1]
	cases := []struct {
		name, dir, imp, want string
	}{
		{"role imports role", "modules/" + from, module + "/modules/" + to,
			"(role " + from + ") depends on " + module + "/modules/" + to},
		{"role imports cmd", "modules/" + from, module + "/cmd/loadgen",
			"(role " + from + ") depends on command package " + module + "/cmd/loadgen"},
		{"shared imports role", "app/apptest", module + "/modules/" + to,
			"(shared runtime) depends on role package " + module + "/modules/" + to},
		{"shared imports cmd", "app/apptest", module + "/cmd/loadgen",
			"(shared runtime) depends on command package " + module + "/cmd/loadgen"},
		{"runtime imports web", "app", module + "/web",
			module + "/app (the runtime) depends on " + module + "/web"},
		{"runtime imports embedded redis", "app", module + "/app/embeddedredis",
			module + "/app (the runtime) depends on " + module + "/app/embeddedredis"},
		{"runtime imports a store driver", "app", module + "/app/store/sqlitestore",
			module + "/app (the runtime) depends on " + module + "/app/store/sqlitestore"},
		{"load generator imports role", "cmd/loadgen", module + "/modules/" + to,
			"(load generator) depends on role package " + module + "/modules/" + to},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := violations(module, list(t, root, overlay(t, root, tc.dir, tc.imp), "./"+tc.dir))
			if !strings.Contains(strings.Join(v, "\n"), tc.want) {
				t.Fatalf("%s importing %s was not reported (want %q); got:\n%s", tc.dir, tc.imp, tc.want, strings.Join(v, "\n"))
			}
		})
	}
}

func TestViolations(t *testing.T) {
	// The shared runtime importing a role is usually an import cycle the
	// compiler rejects too, but not always (a package no role imports), so
	// it is checked on its own.
	const m = "example.com/x"
	pkgs := []pkg{
		{ImportPath: m + "/modules/chat", Deps: []string{m + "/app", m + "/app/bus", m + "/modules/chat/presence"}},
		{ImportPath: m + "/modules/chat/history_test [" + m + "/modules/chat/history.test]", Deps: []string{m + "/modules/chat", m + "/modules/auth"}},
		{ImportPath: m + "/modules/ingest", Deps: []string{m + "/app/store", m + "/cmdline"}}, // not under cmd/
		{ImportPath: m + "/app/apptest", Deps: []string{m + "/app", m + "/modules/ingest"}},
		{ImportPath: m + "/config", Deps: []string{"strings"}},
		{ImportPath: m + "/cmd", Deps: []string{m + "/modules/auth", m + "/modules/chat", m + "/app/infra", m + "/web"}},
		// app/infra imports app, so the runtime importing it is a cycle no
		// overlay can show: checked here.
		{ImportPath: m + "/app", Deps: []string{m + "/config", m + "/app/store", m + "/app/infra"}},
		{ImportPath: m + "/app [" + m + "/app.test]", Deps: []string{m + "/web"}},
		{ImportPath: m + "/app/infra", Deps: []string{m + "/app", m + "/app/store/sqlitestore"}},
		{ImportPath: m + "/app/bus", Deps: []string{m + "/cmd"}},
		{ImportPath: m + "/cmd/loadgen", Deps: []string{m + "/app/token", m + "/modules/chat/presence"}},
		{ImportPath: m + "/modules/auth", Deps: []string{m + "/cmd/loadgen"}},
	}
	got := violations(m, pkgs)
	want := []string{
		m + "/app (the runtime) depends on " + m + "/app/infra",
		m + "/app/apptest (shared runtime) depends on role package " + m + "/modules/ingest",
		m + "/app/bus (shared runtime) depends on command package " + m + "/cmd",
		m + "/cmd/loadgen (load generator) depends on role package " + m + "/modules/chat/presence",
		m + "/modules/auth (role auth) depends on command package " + m + "/cmd/loadgen",
		m + "/modules/chat/history_test [" + m + "/modules/chat/history.test] (role chat) depends on " + m + "/modules/auth (role auth)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n got %q\nwant %q", got, want)
	}
}

func TestRoleOf(t *testing.T) {
	const m = "example.com/x"
	cases := map[string]string{
		m + "/modules/chat":          "chat",
		m + "/modules/chat/presence": "chat",
		m + "/modules/chat/presence [" + m + "/modules/chat/presence.test]": "chat",
		m + "/modules/auth_test [" + m + "/modules/auth.test]":              "auth",
		m + "/modules/ingest.test":                                          "ingest",
	}
	for path, want := range cases {
		if got, ok := roleOf(m, path); !ok || got != want {
			t.Errorf("roleOf(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	for _, path := range []string{m + "/app/bus", m + "/modulesx/a", "other.org/modules/chat", m + "/modules"} {
		if r, ok := roleOf(m, path); ok {
			t.Errorf("roleOf(%q) = %q, want not a role", path, r)
		}
	}
}
