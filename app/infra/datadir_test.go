package infra_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// openStore opens the SQLite store of a config with dataDir the way the
// store module does, logging into logs.
func openStore(t *testing.T, dataDir string, logs io.Writer) store.Store {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	s, err := infra.OpenStore(context.Background(), &app.Host{Config: &cfg, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("OpenStore %s: %v", dataDir, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// writeUser migrates s and stores a user, so aurora.db-wal and -shm exist.
func writeUser(t *testing.T, s store.Store, name string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "$2a$04$hash"}); err != nil {
		t.Fatal(err)
	}
}

// checkModes fails unless dir is 0700 and each of files in it is 0600.
func checkModes(t *testing.T, dir string, files ...string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != infra.DataDirMode {
		t.Errorf("data dir %s is mode %#o, want %#o", dir, m, infra.DataDirMode)
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("stat %s: %v", f, err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s is mode %#o, want 0600", f, m)
		}
	}
}

var storeFiles = []string{"aurora.db", "aurora.db-wal", "aurora.db-shm"}

func TestOpenStoreNewDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	var logs apptest.Buffer
	writeUser(t, openStore(t, dir, &logs), "alice")
	checkModes(t, dir, storeFiles...)
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a new data dir was warned about:\n%s", logs.String())
	}
}

// TestOpenStoreTightensExisting is a data dir and a store an older Aurora
// (or the Dockerfile) left at 0755 and 0644: the next start makes them
// 0700 and 0600 and says so, once.
func TestOpenStoreTightensExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeUser(t, openStore(t, dir, io.Discard), "alice")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "aurora.db")
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}

	var logs apptest.Buffer
	s := openStore(t, dir, &logs)
	writeUser(t, s, "bob")
	checkModes(t, dir, storeFiles...)
	out := logs.String()
	for _, want := range []string{
		"level=WARN msg=\"data dir " + dir + " was mode 0755, open to other local users; tightened it to 0700\"",
		"level=WARN msg=\"" + db + " was mode 0644, open to other local users; tightened it to 0600\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if _, err := s.UserByName(context.Background(), "alice"); err != nil {
		t.Errorf("the tightened store lost its user: %v", err)
	}

	// Private now: the next start says nothing.
	var again apptest.Buffer
	openStore(t, dir, &again)
	if again.String() != "" {
		t.Errorf("second start logged:\n%s", again.String())
	}
}

func TestJWTSecretTightensDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var logs apptest.Buffer
	if _, err := infra.JWTSecret("", dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	checkModes(t, dir, "jwt-secret")
	if !strings.Contains(logs.String(), "was mode 0777, open to other local users; tightened it to 0700") {
		t.Errorf("no warning for the 0777 data dir:\n%s", logs.String())
	}
	// A configured secret does not touch the data dir at all.
	other := filepath.Join(t.TempDir(), "unused")
	if _, err := infra.JWTSecret(strings.Repeat("k", 40), other, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a configured secret created the data dir (stat: %v)", err)
	}
}

func TestPrivateDataDirErrors(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "below")} {
		if err := infra.PrivateDataDir(dir, log); err == nil || !strings.Contains(err.Error(), "create data dir "+dir) {
			t.Errorf("PrivateDataDir(%s) = %v, want an error naming the dir", dir, err)
		}
	}
}

// umaskChildEnv, when set, makes TestUmaskZero the child process: it runs
// with umask 0 in the data dir the variable names.
const umaskChildEnv = "AURORA_TEST_UMASK_ZERO_DIR"

// TestUmaskZero: with a process umask of 0 (so nothing masks the modes the
// code asks for), the data dir is still 0700 and the store's files 0600.
// The umask is process-wide, so a child process (this test binary) sets it.
func TestUmaskZero(t *testing.T) {
	if dir := os.Getenv(umaskChildEnv); dir != "" {
		syscall.Umask(0)
		var logs apptest.Buffer
		s := openStore(t, dir, &logs)
		writeUser(t, s, "alice")
		if _, err := infra.JWTSecret("", dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatal(err)
		}
		// Before Close: a clean close removes the -wal and -shm.
		checkModes(t, dir, append(storeFiles, "jwt-secret")...)
		if strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("warned:\n%s", logs.String())
		}
		os.Stdout.WriteString("umask-zero child checked the modes\n")
		return
	}
	dir := filepath.Join(t.TempDir(), "data")
	c := exec.Command(os.Args[0], "-test.run=^TestUmaskZero$", "-test.count=1", "-test.v")
	c.Env = append(os.Environ(), umaskChildEnv+"="+dir)
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "umask-zero child checked the modes") {
		t.Fatalf("child with umask 0: %v\n%s", err, out)
	}
}
