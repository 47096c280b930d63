//go:build faults

package proctest_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"sync"
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

// startRedisServer starts the fleet's redis-server (apptest.RedisServer) on
// a free port with its data in a temp dir. With aof, every write is fsynced
// before Redis answers it (appendonly yes, appendfsync always), and Kill plus
// Restart bring it back on the same port and dir with what it persisted;
// without, it keeps nothing across a restart. The suite needs the binary:
// it fails, not skips, without it.
func startRedisServer(t *testing.T, aof bool) *apptest.RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("the fault suite runs real redis-server processes: %v (apt-get install redis-server)", err)
	}
	if aof {
		return apptest.StartRedisServer(t, "--appendonly", "yes", "--appendfsync", "always")
	}
	return apptest.StartRedisServer(t)
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
	// redisURL, when set, is the Redis of the fleet (a Redis Cluster's,
	// cluster_test.go) instead of a redis-server of its own; names, when
	// set, are its processes instead of fleetNames.
	redisURL string
	names    []string
}

// fleet is a fault scenario's processes: auth, chat-a, chat-b, ingest-a,
// ingest-b on one redis-server and one store.
type fleet struct {
	t        *testing.T
	redis    *apptest.RedisServer
	proxy    *apptest.RedisProxy // nil unless fleetOptions.proxy
	rc       rueidis.Client      // the test's own client, straight to Redis
	dataDir  string
	mongoURL string
	cfgFile  string

	mu     sync.Mutex
	nodes  map[string]*node // by role name: auth, chat-a, chat-b, ingest-a, ingest-b
	starts map[string]int   // how many times each was started
	names  []string         // the processes, in the order they start
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
	f := &fleet{t: t, dataDir: t.TempDir(), nodes: map[string]*node{}, starts: map[string]int{}, names: fleetNames}
	if o.names != nil {
		f.names = o.names
	}
	url := o.redisURL
	if url == "" {
		f.redis = startRedisServer(t, o.aof)
		url = f.redis.URL
	}
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
	for _, name := range f.names {
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
	for _, name := range f.names {
		if n := f.nodes[name]; roleOf(name) == "chat" && n != nil && n.running() {
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
	for _, name := range f.names {
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
