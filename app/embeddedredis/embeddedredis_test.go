package embeddedredis

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func start(t *testing.T) (*Server, rueidis.Client) {
	t.Helper()
	s, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c, err := rueidis.NewClient(s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return s, c
}

func do(t *testing.T, c rueidis.Client, cmd ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(cmd[0]).Args(cmd[1:]...).Build())
}

func TestClientOptions(t *testing.T) {
	o := ClientOptions("127.0.0.1:1", "pw")
	if !o.DisableCache || !o.ForceSingleClient || !o.AlwaysRESP2 || o.InitAddress[0] != "127.0.0.1:1" || o.Password != "pw" {
		t.Errorf("embedded options %+v", o)
	}
}

func TestBusyAddress(t *testing.T) {
	s, _ := start(t)
	if _, err := Start(s.Addr(), Options{}); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("second embedded redis on a busy address: %v", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0"} {
		if _, err := Start(addr, Options{}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Start(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	if _, err := Start("nonsense", Options{}); err == nil {
		t.Error("Start(nonsense): no error")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		s, err := Start(addr, Options{})
		if err != nil {
			if strings.Contains(addr, "::1") && strings.Contains(err.Error(), "assign") {
				continue // no IPv6 loopback on this host
			}
			t.Fatalf("Start(%q): %v", addr, err)
		}
		s.Close()
	}
}

func TestPasswordRequired(t *testing.T) {
	s, c := start(t)
	if len(s.Password()) < 32 {
		t.Fatalf("generated password %q is short", s.Password())
	}
	if err := do(t, c, "PING").Error(); err != nil {
		t.Fatalf("PING with the password: %v", err)
	}
	for _, pw := range []string{"", "wrong"} {
		o := s.ClientOptions()
		o.Password = pw
		bad, err := rueidis.NewClient(o)
		if err == nil {
			err = do(t, bad, "PING").Error()
			bad.Close()
		}
		if err == nil {
			t.Errorf("password %q: PING answered", pw)
		}
	}
	if !strings.Contains(s.URL(), ":"+s.Password()+"@") || !strings.HasSuffix(s.URL(), "?protocol=2") {
		t.Errorf("URL %q lacks the password or protocol=2", s.URL())
	}
	s2, err := Start("127.0.0.1:0", Options{Password: "given"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Password() != "given" {
		t.Errorf("password = %q, want the given one", s2.Password())
	}
}

// TestSweepRemovesUntouchedKeys: a key no command names again is gone from
// memory soon after its time, not only when something lists keys.
func TestSweepRemovesUntouchedKeys(t *testing.T) {
	s, c := start(t)
	for i := 0; i < 50; i++ {
		do(t, c, "SET", "k"+strconv.Itoa(i), "v", "PX", "100")
	}
	do(t, c, "SET", "keep", "v")
	deadline := time.Now().Add(100*time.Millisecond + 3*sweepInterval)
	for {
		// Look at the data directly: a command would expire the keys itself.
		if n := len(s.m.DB(0).Keys()); n == 1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d keys in memory %v after their TTL", n, 3*sweepInterval)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.clock.mu.Lock()
	n := len(s.clock.tracked)
	s.clock.mu.Unlock()
	if n != 0 {
		t.Errorf("%d keys still tracked after they expired", n)
	}
}

// TestScriptKeysAndTransactions: TTLs set inside a script (on a key the
// script did not declare, too) and inside MULTI/EXEC age like any other.
func TestScriptKeysAndTransactions(t *testing.T) {
	_, c := start(t)
	do(t, c, "EVAL", "redis.call('SET', 'undeclared', 'v', 'PX', ARGV[1]); return redis.call('SET', KEYS[1], 'v', 'PX', ARGV[1])", "1", "declared", "150")
	ctx := context.Background()
	dc, release := c.Dedicate()
	defer release()
	res := dc.DoMulti(ctx,
		dc.B().Multi().Build(),
		dc.B().Set().Key("tx").Value("v").Px(150*time.Millisecond).Build(),
		dc.B().Exec().Build())
	for _, r := range res {
		if err := r.Error(); err != nil {
			t.Fatalf("MULTI/EXEC: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, k := range []string{"declared", "undeclared", "tx"} {
		if n, _ := do(t, c, "EXISTS", k).AsInt64(); n != 0 {
			t.Errorf("%s still there after its PX 150", k)
		}
	}
}

func TestSelectAndRestart(t *testing.T) {
	s, _ := start(t)
	o := s.ClientOptions()
	o.SelectDB = 3
	c, err := rueidis.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	do(t, c, "SET", "k", "v", "PX", "150")
	time.Sleep(200 * time.Millisecond)
	if n, _ := do(t, c, "EXISTS", "k").AsInt64(); n != 0 {
		t.Fatal("key in db 3 still there after its PX 150")
	}
	s.m.Close()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for do(t, c, "PING").Error() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no PING after restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	do(t, c, "SET", "k", "v", "PX", "150")
	time.Sleep(200 * time.Millisecond)
	if n, _ := do(t, c, "EXISTS", "k").AsInt64(); n != 0 {
		t.Fatal("after Restart the clock is off")
	}
}

func TestRuntimeFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := ReadRuntime(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no file: %v, want ErrNotRunning", err)
	}
	s, _ := start(t)
	remove, err := s.WriteRuntime(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, RuntimeFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
	}
	rt, err := ReadRuntime(dir)
	if err != nil || rt.Addr != s.Addr() || rt.Password != s.Password() || rt.URL != s.URL() || rt.PID != os.Getpid() {
		t.Fatalf("ReadRuntime = %+v %v", rt, err)
	}
	remove()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file still there after remove: %v", err)
	}

	// A file left by a process that is gone (SIGKILL) is reported as such.
	stale := `{"addr":"127.0.0.1:1","password":"x","url":"redis://:x@127.0.0.1:1?protocol=2","pid":2147483646}`
	if err := os.WriteFile(path, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRuntime(dir); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("stale file: %v", err)
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRuntime(dir); err == nil || errors.Is(err, ErrNotRunning) {
		t.Fatalf("junk file: %v", err)
	}
}

// TestCloseUnderLoad: closing the server while clients are mid-command
// ends their commands with errors, never a crash (miniredis forgets its
// server on Close while connections finish their last command).
func TestCloseUnderLoad(t *testing.T) {
	for round := 0; round < 20; round++ {
		s, err := Start("127.0.0.1:0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := rueidis.NewClient(s.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for i := 0; ctx.Err() == nil; i++ {
				if c.Do(ctx, c.B().Set().Key("k"+strconv.Itoa(i)).Value("v").Px(time.Second).Build()).Error() != nil && i > 0 {
					return
				}
			}
		}()
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		s.Close()
		<-done
		c.Close()
	}
}
