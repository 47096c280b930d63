package apptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Tests that run aurora as a real process share one binary per test
// process: built on first use (without -race: the processes are the product
// under test) into a temp dir that RemoveBinary deletes.
var (
	binOnce sync.Once
	binPath string
	binDir  string
	binErr  error
)

// Binary returns the path of an aurora binary built from this module,
// building it the first time. Call RemoveBinary from TestMain after m.Run.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = build() })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// RemoveBinary deletes the binary Binary built, if any.
func RemoveBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

func build() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build aurora: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: %q, %v", out, err)
	}
	binDir, err = os.MkdirTemp("", "aurora-test-bin-")
	if err != nil {
		return "", fmt.Errorf("temp dir for the aurora binary: %w", err)
	}
	bin := filepath.Join(binDir, "aurora")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build aurora: %v\n%s", err, out)
	}
	return bin, nil
}

// CleanEnv is the environment without anything Aurora's configuration
// reads (AURORA_* and AuroraChat's variables), so a process started with it
// sees what a fresh machine would.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AURORA_"),
			k == "PORT", k == "JWT_SECRET", k == "REDIS_HOST", k == "REDIS_PORT", k == "MONGO_URL":
			continue
		}
		env = append(env, kv)
	}
	return env
}
