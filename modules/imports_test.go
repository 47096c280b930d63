// Package modules_test guards Aurora's layering: a role (modules/auth,
// modules/chat, modules/ingest and their subpackages) never imports another
// role, so each can run as its own replica set and talk to the others only
// through Redis (app/bus) and the store; and the shared runtime (app/...,
// config) never imports a role. The check runs `go list` over the real tree,
// tests included, so a forbidden import added anywhere fails here.
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

// violations lists every forbidden dependency among pkgs.
func violations(module string, pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		self, isRole := roleOf(module, p.ImportPath)
		shared := strings.HasPrefix(plain(p.ImportPath), module+"/app") || plain(p.ImportPath) == module+"/config"
		for _, d := range p.Deps {
			other, depIsRole := roleOf(module, d)
			if !depIsRole {
				continue
			}
			switch {
			case isRole && other != self:
				out = append(out, p.ImportPath+" (role "+self+") depends on "+plain(d)+" (role "+other+")")
			case shared:
				out = append(out, p.ImportPath+" (shared runtime) depends on role package "+plain(d))
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

func TestRolesNeverImportEachOther(t *testing.T) {
	root, module := repo(t)
	pkgs := list(t, root, "", "./modules/...", "./app/...", "./config/...")

	// Every role directory must have been listed, or the check would pass
	// by looking at nothing.
	seen := map[string]bool{}
	for _, p := range pkgs {
		if r, ok := roleOf(module, p.ImportPath); ok {
			seen[r] = true
		}
	}
	dirs := roleDirs(t, root)
	if len(dirs) == 0 {
		t.Fatal("no role directories under modules/")
	}
	for _, d := range dirs {
		if !seen[d] {
			t.Errorf("modules/%s has no Go packages in the listing", d)
		}
	}

	if v := violations(module, pkgs); len(v) > 0 {
		t.Fatalf("roles must not import each other, and app/config must not import roles "+
			"(share Redis names through app/bus, data through app/store):\n  %s", strings.Join(v, "\n  "))
	}
}

func TestForbiddenImportIsCaught(t *testing.T) {
	// Add, through a go list overlay (nothing on disk changes), a file to
	// one role that imports another: the check must report it.
	root, module := repo(t)
	dirs := roleDirs(t, root)
	if len(dirs) < 2 {
		t.Fatalf("need two roles under modules/ to check cross imports, have %q", dirs)
	}
	from, to := dirs[0], dirs[1]
	fromName := strings.TrimSpace(goCmd(t, root, "list", "-f", "{{.Name}}", "./modules/"+from))

	tmp := t.TempDir()
	src := filepath.Join(tmp, "forbidden.go")
	code := "package " + fromName + "\n\nimport _ \"" + module + "/modules/" + to + "\"\n"
	if err := os.WriteFile(src, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, "modules", from, "zz_forbidden_import.go"): src,
	}})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlay, b, 0o600); err != nil {
		t.Fatal(err)
	}

	v := violations(module, list(t, root, overlay, "./modules/"+from+"/..."))
	want := "(role " + from + ") depends on " + module + "/modules/" + to
	if !strings.Contains(strings.Join(v, "\n"), want) {
		t.Fatalf("role %s importing role %s was not reported; got:\n%s", from, to, strings.Join(v, "\n"))
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
		{ImportPath: m + "/modules/ingest", Deps: []string{m + "/app/store"}},
		{ImportPath: m + "/app/apptest", Deps: []string{m + "/app", m + "/modules/ingest"}},
		{ImportPath: m + "/config", Deps: []string{"strings"}},
		{ImportPath: m + "/cmd", Deps: []string{m + "/modules/auth", m + "/modules/chat"}},
	}
	got := violations(m, pkgs)
	want := []string{
		m + "/app/apptest (shared runtime) depends on role package " + m + "/modules/ingest",
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
