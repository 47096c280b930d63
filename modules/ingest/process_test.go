package ingest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// TestProcessesSurviveAKill runs the real binary: two `aurora serve
// --roles=ingest` processes share a Redis and a SQLite data dir while 20000
// entries arrive; one is killed with SIGKILL mid-way and started again. Every
// entry must end up stored exactly once, with nothing left pending.
func TestProcessesSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	dir := t.TempDir()
	bin := apptest.Binary(t)

	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	dataDir := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "aurora.yaml")
	cfgYAML := fmt.Sprintf("data_dir: %s\nhttp:\n  addr: 127.0.0.1:0\nlog:\n  level: warn\nredis:\n  url: %q\n"+
		"ingest:\n  batch_size: 50\n  flush_interval: 50ms\n  claim_idle: 2s\n", dataDir, url)
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := apptest.CleanEnv()
	logName := map[*exec.Cmd]string{}
	start := func(name string) *exec.Cmd {
		c := exec.Command(bin, "serve", "--roles=ingest", "--config", cfgFile)
		c.Env = env
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		logName[c] = name + ".log"
		t.Cleanup(func() {
			if c.ProcessState == nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		})
		return c
	}
	// Migrate first, so the two processes do not race on creating tables.
	if out, err := exec.Command(bin, "migrate", "--config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	a := start("a")
	b := start("b")

	const total, rooms = 20000, 10
	ids := make([][]string, rooms)
	ctx := context.Background()
	for off := 0; off < total; off += 500 {
		cmds := make(rueidis.Commands, 0, 500)
		for i := off; i < off+500; i++ {
			e := entry(fmt.Sprintf("room%d", i%rooms), fmt.Sprintf("message %d", i))
			cmd := rc.B().Xadd().Key(bus.Stream).Id("*").FieldValue()
			f := e.Fields()
			for j := 0; j < len(f); j += 2 {
				cmd = cmd.FieldValue(f[j], f[j+1])
			}
			cmds = append(cmds, cmd.Build())
		}
		for k, r := range rc.DoMulti(ctx, cmds...) {
			id, err := r.ToString()
			if err != nil {
				t.Fatal(err)
			}
			ids[(off+k)%rooms] = append(ids[(off+k)%rooms], id)
		}
		if off == 5000 {
			// Mid-way, once the workers are at it: kill one without warning.
			eventually(t, "the workers to make progress", func() bool {
				_, lag := groupState(t, rc)
				return lag < int64(off)-1000
			})
			if err := a.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = a.Wait() // killed: the exit error is expected
			pend, err := bus.Pending(ctx, rc, bus.PendingFilter{Count: 1000})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("killed a with %d entries pending in the group", len(pend))
			a = start("a2")
		}
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		p, lag := groupState(t, rc)
		if p == 0 && lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d pending and %d undelivered after 90s", p, lag)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, logName[c]))
			t.Errorf("graceful stop: %v\n%s", err, logs)
		}
	}

	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for r := 0; r < rooms; r++ {
		assertStoredOnce(t, st, fmt.Sprintf("room%d", r), ids[r])
	}
	if p, lag := groupState(t, rc); p != 0 || lag != 0 {
		t.Errorf("%d pending, %d undelivered at the end", p, lag)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinary()
	os.Exit(code)
}
