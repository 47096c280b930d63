package proctest_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
)

// nobody is the user the not-owned data dir test runs aurora as.
const nobody = 65534

// TestDataDirNotOwned runs `aurora migrate` as another user than the data
// dir's owner, on a dir open to everyone (as a volume root often is): the
// chmod to 0700 fails, so it warns, clearly, and goes on with its files at
// 0600.
func TestDataDirNotOwned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run aurora as a user that does not own the data dir")
	}
	// nobody must reach the binary and the dir: a tree of our own, 0755.
	base, err := os.MkdirTemp("", "aurora-not-owned-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	bin := filepath.Join(base, "aurora")
	data := filepath.Join(base, "data")
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, apptest.Binary(t), bin, 0o755)
	if err := os.Mkdir(data, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}

	c := exec.Command(bin, "migrate", "--data-dir", data, "--log-level", "warn")
	c.Env = append(apptest.CleanEnv(), "HOME="+base)
	c.Dir = base
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("aurora migrate as uid %d: %v\n%s", nobody, err, out)
	}
	for _, want := range []string{
		`"level":"WARN"`,
		"data dir " + data + " is mode 0777, open to other local users, and could not be tightened to 0700",
		"operation not permitted",
		"make the dir owned by the user Aurora runs as",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), "could not be tightened"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, out)
	}
	fi, err := os.Stat(data)
	if err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("data dir: %v %v, want it left at 0777", fi.Mode(), err)
	}
	db, err := os.Stat(filepath.Join(data, "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	if db.Mode().Perm() != 0o600 || db.Sys().(*syscall.Stat_t).Uid != nobody {
		t.Errorf("aurora.db is mode %#o owned by %d, want 0600 owned by %d", db.Mode().Perm(), db.Sys().(*syscall.Stat_t).Uid, nobody)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
