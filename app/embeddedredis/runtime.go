package embeddedredis

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// RuntimeFile is the name, in the data dir, of the file through which
// operator commands (`aurora streams`, `aurora check`, ...) run next to an
// embedded `aurora serve` find its Redis without flags. serve writes it
// (mode 0600: it holds the password) when the embedded Redis starts and
// removes it on stop.
const RuntimeFile = "embedded-redis.json"

// Runtime is what RuntimeFile holds.
type Runtime struct {
	Addr     string `json:"addr"`
	Password string `json:"password"`
	URL      string `json:"url"`
	PID      int    `json:"pid"`
}

// ErrNotRunning is wrapped by ReadRuntime when no serve with an embedded
// Redis is running on the data dir.
var ErrNotRunning = errors.New("no `aurora serve` with an embedded Redis is running")

// WriteRuntime writes s's address and password into dir/RuntimeFile and
// returns the function that removes it (only while it is still this
// process' file, so a second serve on the same dir keeps its own).
func (s *Server) WriteRuntime(dir string) (remove func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	rt := Runtime{Addr: s.Addr(), Password: s.password, URL: s.URL(), PID: os.Getpid()}
	b, err := json.MarshalIndent(rt, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", RuntimeFile, err)
	}
	path := filepath.Join(dir, RuntimeFile)
	// Write a private temp file and rename it into place: readers never see
	// half a file, and the password is never in a file others can read.
	tmp, err := os.CreateTemp(dir, "."+RuntimeFile+"-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return func() {
		if cur, err := readRuntime(path); err == nil && cur.PID == rt.PID && cur.Addr == rt.Addr {
			os.Remove(path)
		}
	}, nil
}

// ReadRuntime returns the embedded Redis of the serve running on dir. Its
// error wraps ErrNotRunning, saying why, when there is none: no file, or a
// file left by a serve that is gone (killed before it could remove it).
func ReadRuntime(dir string) (Runtime, error) {
	path := filepath.Join(dir, RuntimeFile)
	rt, err := readRuntime(path)
	if errors.Is(err, os.ErrNotExist) {
		return Runtime{}, fmt.Errorf("%w on data dir %s (no %s)", ErrNotRunning, dir, RuntimeFile)
	}
	if err != nil {
		return Runtime{}, err
	}
	if !alive(rt.PID) {
		return Runtime{}, fmt.Errorf("%w on data dir %s: %s was left by process %d, which has stopped", ErrNotRunning, dir, path, rt.PID)
	}
	return rt, nil
}

func readRuntime(path string) (Runtime, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Runtime{}, err
	}
	var rt Runtime
	if err := json.Unmarshal(b, &rt); err != nil || rt.Addr == "" {
		return Runtime{}, fmt.Errorf("read %s: not an embedded Redis runtime file", path)
	}
	return rt, nil
}

// alive reports whether a process with pid exists (signal 0 checks only).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
