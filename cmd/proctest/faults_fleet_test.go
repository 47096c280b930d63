//go:build faults

package proctest_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/store/storetest"
)

// The fault suite's processes: its own redis-server on a free loopback
// port (so it can kill and restart it, which the shared test Redis of the
// other process tests does not allow), and a fleet of Aurora processes on
// it: auth, two chat replicas, two ingest workers.

// redisServer is a redis-server child process the test owns. It can be
// killed and started again on the same port and directory, so what it
// persisted (AOF) is what it comes back with.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	aof  bool
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisServer starts redis-server on a free port with its data in a
// temp dir. With aof, every write is fsynced before Redis answers it
// (`appendonly yes`, `appendfsync always`); without, it keeps nothing
// across a restart. It is killed when the test ends.
func startRedisServer(t *testing.T, aof bool) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("the fault suite runs real redis-server processes: %v (apt-get install redis-server)", err)
	}
	r := &redisServer{t: t, port: freePort(t), dir: t.TempDir(), aof: aof}
	r.log = filepath.Join(r.dir, "redis.log")
	r.start()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			t.Logf("redis-server log:\n%s", tail(string(b), 30))
		}
	})
	return r
}

// URL is the redis:// URL of the server; it stays the same across restarts.
func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

// start runs redis-server on r's port and dir and waits until it answers
// PING (with AOF, that is after it has loaded the file). The port was ours
// a moment ago, or the previous run's, which the kernel may not have let go
// of yet: a server that exits at once is started again, for up to 10 s.
func (r *redisServer) start() {
	r.t.Helper()
	appendonly := "no"
	if r.aof {
		appendonly = "yes"
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		cmd := exec.Command("redis-server",
			"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
			"--save", "", "--appendonly", appendonly, "--appendfsync", "always",
			"--logfile", r.log, "--daemonize", "no")
		if err := cmd.Start(); err != nil {
			r.t.Fatalf("start redis-server: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		r.mu.Lock()
		r.cmd, r.done = cmd, done
		r.mu.Unlock()
		exited := func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		if !apptest.Poll(procWait, func() bool { return exited() || redisPing(r.port) }) {
			r.t.Fatalf("redis-server on port %d does not answer PING after %s", r.port, procWait)
		}
		if !exited() {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.log)
			r.t.Fatalf("redis-server on port %d exited at start:\n%s", r.port, tail(string(b), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL (nothing flushed that was not already)
// and waits for it.
func (r *redisServer) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// redisPing reports whether a Redis on the loopback port answers PING.
func redisPing(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// fleetOptions say how a fault scenario's fleet is set up.
type fleetOptions struct {
	aof   bool // redis-server with appendonly yes, appendfsync always
	proxy bool // the processes reach Redis through an apptest.RedisProxy
	// ferret, when set, is the store (mongo.url); else SQLite in the
	// fleet's data dir.
	ferret *storetest.FerretDB
	// tweak changes the configuration before it is written.
	tweak func(nodeConfig)
}

// fleet is a fault scenario's processes: auth, chat-a, chat-b, ingest-a,
// ingest-b on one redis-server and one store.
type fleet struct {
	t        *testing.T
	redis    *redisServer
	proxy    *apptest.RedisProxy // nil unless fleetOptions.proxy
	rc       rueidis.Client      // the test's own client, straight to Redis
	dataDir  string
	mongoURL string
	cfgFile  string

	mu     sync.Mutex
	nodes  map[string]*node // by role name: auth, chat-a, chat-b, ingest-a, ingest-b
	starts map[string]int   // how many times each was started
}

// fleetNames are the processes of a fleet, in the order they start.
var fleetNames = []string{"auth", "ingest-a", "ingest-b", "chat-a", "chat-b"}

// roleOf is the --roles of a fleet process.
func roleOf(name string) string {
	switch name {
	case "auth":
		return "auth"
	case "ingest-a", "ingest-b":
		return "ingest"
	default:
		return "chat"
	}
}

// startFleet starts a redis-server and the five processes on it, at the
// product's default limits except what o.tweak changes.
func startFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("runs processes")
	}
	f := &fleet{t: t, redis: startRedisServer(t, o.aof), dataDir: t.TempDir(),
		nodes: map[string]*node{}, starts: map[string]int{}}
	url := f.redis.URL()
	f.rc = apptest.RedisClient(t, url)
	if o.proxy {
		f.proxy, url = apptest.NewRedisProxy(t, url)
	}
	cfg := newNodeConfig(f.dataDir, url)
	if o.ferret != nil {
		f.mongoURL = o.ferret.URL() + "aurora_faults"
		cfg.set("mongo.url", f.mongoURL)
	}
	if o.tweak != nil {
		o.tweak(cfg)
	}
	f.cfgFile = cfg.writeMigrated(t)
	for _, name := range fleetNames {
		f.start(name)
	}
	return f
}

// start starts (or starts again) the named process and waits until it is
// ready.
func (f *fleet) start(name string) *node {
	f.t.Helper()
	f.mu.Lock()
	f.starts[name]++
	logName := fmt.Sprintf("%s.%d", name, f.starts[name])
	f.mu.Unlock()
	n := startNode(f.t, logName, f.cfgFile, roleOf(name))
	f.mu.Lock()
	f.nodes[name] = n
	f.mu.Unlock()
	return n
}

// node is the current process of that name.
func (f *fleet) node(name string) *node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[name]
}

// chatBases are the base URLs of the chat replicas that are running: where
// clients (re)connect.
func (f *fleet) chatBases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, name := range []string{"chat-a", "chat-b"} {
		if n := f.nodes[name]; n != nil && n.running() {
			out = append(out, n.base)
		}
	}
	return out
}

// running are the fleet's live processes.
func (f *fleet) running() []*node {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*node
	for _, name := range fleetNames {
		if n := f.nodes[name]; n != nil && n.running() {
			out = append(out, n)
		}
	}
	return out
}

// drained waits until ingest has stored and acknowledged every entry of
// the stream, and returns how long that took.
func (f *fleet) drained(within time.Duration) time.Duration {
	f.t.Helper()
	began := time.Now()
	waitDrained(f.t, func() (int64, bool) { return ingestState(f.t, f.rc) }, within)
	return time.Since(began)
}

// allReady fails the test unless every running process answers /readyz 200.
func (f *fleet) allReady() {
	f.t.Helper()
	for _, n := range f.running() {
		waitUntil(f.t, n.name+" /readyz to answer 200", func() bool { return n.readyz() == http.StatusOK })
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			if lines++; lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
