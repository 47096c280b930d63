package apptest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// RedisServer is a redis-server process a test started on a free loopback
// port, for what the embedded Redis and the shared AURORA_TEST_REDIS_URL
// cannot be: replicas, a process to pause or kill. It keeps nothing on disk
// (no RDB, no AOF) unless args say otherwise, and is killed when the test
// ends.
type RedisServer struct {
	Port int
	URL  string // redis://127.0.0.1:<port>

	t    testing.TB
	args []string
	dir  string
	cmd  *exec.Cmd
	log  string
	// primary is the server this one replicates (StartReplica).
	primary *RedisServer
}

// StartRedisServer starts redis-server with args added to its command line
// (say "--replicaof", "127.0.0.1", "6379"). Without the binary the test is
// skipped, unless AURORA_TEST_REDIS_URL is set (CI's real-Redis pass,
// which has it): then it fails.
func StartRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if RealRedis() {
			t.Fatalf("%s is set but redis-server is not installed: %v", RedisEnv, err)
		}
		t.Skipf("redis-server is not installed (this test runs with it in CI's real-Redis pass): %v", err)
	}
	s := &RedisServer{t: t, args: args, dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		// Another process may take the port between the probe and the bind:
		// then try another.
		if s.Port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.URL = "redis://127.0.0.1:" + strconv.Itoa(s.Port)
	t.Cleanup(s.kill)
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the server on s.Port and waits until it answers PING.
func (s *RedisServer) start() error {
	s.log = filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.Port))
	argv := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", s.dir, "--logfile", s.log,
		// A replica's first sync starts at once, not after Redis' default 5 s
		// wait for more replicas to share it.
		"--repl-diskless-sync-delay", "0"}, s.args...)
	s.cmd = exec.Command("redis-server", argv...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("run redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited: %s", s.Port, s.logTail())
		default:
		}
		if ping(s.Port) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer in 10s: %s", s.Port, s.logTail())
}

// ping reports whether a Redis on port answers PING.
func ping(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 7)
	n, _ := c.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("+PONG"))
}

func (s *RedisServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// kill ends the process (SIGKILL: nothing to save) if it still runs.
func (s *RedisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused one, too
		_ = s.cmd.Process.Kill()
	}
}

// Kill ends the server at once, as a crash would.
func (s *RedisServer) Kill() {
	s.t.Helper()
	s.kill()
	if !Poll(10*time.Second, func() bool { return !ping(s.Port) }) {
		s.t.Fatalf("redis-server on port %d still answers after SIGKILL", s.Port)
	}
}

// Restart starts the server again on the same port, dir and arguments,
// after Kill: with AOF on, it comes back with what it persisted. The kernel
// may not have let go of the port yet, so a server that exits at once is
// started again, for up to 10 s.
func (s *RedisServer) Restart() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pause stops the process (SIGSTOP): its connections stay open and it
// answers nothing, as a Redis stuck on a slow disk or a long command.
func (s *RedisServer) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pause redis-server: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *RedisServer) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("resume redis-server: %v", err)
	}
}

// StartReplica starts another redis-server replicating s and waits until
// its link to s is up and synced and s counts it online (only then does
// WAIT on s count it).
func (s *RedisServer) StartReplica(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	r := StartRedisServer(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Port)}, args...)...)
	r.primary = s
	r.WaitLinked(t)
	return r
}

// WaitLinked waits until this replica's link to its primary is up and
// synced, and the primary lists it online.
func (s *RedisServer) WaitLinked(t testing.TB) {
	t.Helper()
	replication := func(c rueidis.Client) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, _ := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
		return info
	}
	c := RedisClient(t, s.URL)
	Eventually(t, 15*time.Second, fmt.Sprintf("replica on port %d linked to its primary", s.Port), func() bool {
		info := replication(c)
		return strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1")
	})
	if s.primary == nil {
		return
	}
	p := RedisClient(t, s.primary.URL)
	online := fmt.Sprintf("port=%d,state=online", s.Port)
	Eventually(t, 15*time.Second, fmt.Sprintf("primary on port %d to list replica %d online", s.primary.Port, s.Port), func() bool {
		return strings.Contains(replication(p), online)
	})
	// Listed online is not yet confirming: right after a sync the first
	// write's WAIT timed out and the next took ~320 ms (until the replica's
	// once-a-second acknowledgement), measured on Redis 7.0. A write that
	// WAIT sees replicated says the replica is in the stream.
	Eventually(t, 15*time.Second, fmt.Sprintf("replica %d to confirm a write on its primary", s.Port), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rs := p.DoMulti(ctx, p.B().Set().Key("apptest:replica-probe").Value(strconv.Itoa(s.Port)).Build(),
			p.B().Wait().Numreplicas(1).Timeout(200).Build())
		n, err := rs[1].AsInt64()
		return err == nil && n >= 1
	})
}

// Client is a client of this server for the test's own checks; closed
// when the test ends.
func (s *RedisServer) Client(t testing.TB) rueidis.Client {
	t.Helper()
	return RedisClient(t, s.URL)
}
