package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
)

// ClusterEnv, set to 1, says the Redis Cluster tests must run: a test
// gated on it (RequireCluster) fails, not skips, when something they need
// is missing. .ci/run sets it.
const ClusterEnv = "AURORA_TEST_CLUSTER"

// RequireCluster skips the test unless ClusterEnv is 1, and then fails it
// if redis-server or redis-cli is missing.
func RequireCluster(t testing.TB) {
	t.Helper()
	if os.Getenv(ClusterEnv) != "1" {
		t.Skipf("a Redis Cluster test: runs with %s=1 (as .ci/run sets it)", ClusterEnv)
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s=1 but %s is not installed: %v (apt-get install redis-server)", ClusterEnv, bin, err)
		}
	}
}

// Cluster is a loopback Redis Cluster a test started: redis-server
// processes with cluster-enabled on free ports, joined by
// `redis-cli --cluster create`. Every node is an apptest.RedisServer (to
// Kill, Pause, Restart); all are killed when the test ends.
type Cluster struct {
	Nodes []*apptest.RedisServer
	// URL names every node (redis://first?addr=second&addr=...), as an
	// operator would configure redis.url for a cluster.
	URL string

	t testing.TB
}

// ClusterNodeTimeout is the nodes' cluster-node-timeout: a primary not
// answering this long is failed over to its replica. Redis's default is
// 15 s; 2 s keeps a test's failover short while a loaded 2-core machine
// does not fail nodes over by mistake.
const ClusterNodeTimeout = 2 * time.Second

// StartCluster starts masters primaries with replicas replicas each and
// waits until every node says cluster_state:ok. The nodes run with
// cluster-require-full-coverage no (as docs/deploy.md advises), so the
// slots still served keep answering while another primary fails over.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	n := masters * (1 + replicas)
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", "no"}
	create := []string{"--cluster", "create"}
	for range n {
		s := apptest.StartRedisServer(t, args...)
		c.Nodes = append(c.Nodes, s)
		create = append(create, "127.0.0.1:"+strconv.Itoa(s.Port))
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	var addrs []string
	for _, s := range c.Nodes[1:] {
		addrs = append(addrs, "addr=127.0.0.1:"+strconv.Itoa(s.Port))
	}
	c.URL = c.Nodes[0].URL + "?" + strings.Join(addrs, "&")
	c.WaitHealthy()
	// A replica is listed once it has joined its primary: wait for every
	// slot range to have its replicas, so a test starts on the full cluster.
	apptest.Eventually(t, 60*time.Second, "every primary's replicas to be listed in CLUSTER SLOTS", func() bool {
		for _, s := range c.Nodes {
			m, err := NodeDo(s, "CLUSTER", "SLOTS")
			if err != nil {
				return false
			}
			ranges, _ := m.ToArray()
			if len(ranges) == 0 {
				return false
			}
			for _, r := range ranges {
				if v, _ := r.ToArray(); len(v) < 3+replicas {
					return false
				}
			}
		}
		return true
	})
	return c
}

// Client is a cluster client of the test's own; closed when the test ends.
func (c *Cluster) Client(t testing.TB) rueidis.Client {
	t.Helper()
	return apptest.RedisClient(t, c.URL)
}

// NodeDo runs one command on one node (a client of its own, no cluster
// routing: a cluster client sends a keyless command to whichever node it
// lists first); a dead node is an error.
func NodeDo(s *apptest.RedisServer, args ...string) (rueidis.RedisMessage, error) {
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:" + strconv.Itoa(s.Port)},
		ForceSingleClient: true, DisableCache: true, DisableRetry: true})
	if err != nil {
		return rueidis.RedisMessage{}, fmt.Errorf("connect to node %d: %w", s.Port, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return cl.Do(ctx, cl.B().Arbitrary(args...).Build()).ToMessage()
}

// alive are the nodes that answer.
func (c *Cluster) alive() []*apptest.RedisServer {
	var out []*apptest.RedisServer
	for _, s := range c.Nodes {
		if _, err := NodeDo(s, "PING"); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// WaitHealthy waits until every node that answers says cluster_state:ok
// and agrees on every slot's owner.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	apptest.Eventually(c.t, 60*time.Second, "every live cluster node to say cluster_state:ok", func() bool {
		var first string
		for i, s := range c.alive() {
			m, err := NodeDo(s, "CLUSTER", "INFO")
			if err != nil {
				return false
			}
			info, _ := m.ToString()
			if !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			owners := c.slotOwners(s)
			if i == 0 {
				first = owners
			} else if owners != first {
				return false
			}
		}
		return true
	})
}

// slotOwners is a node's view of which port serves which slots, as text
// to compare.
func (c *Cluster) slotOwners(s *apptest.RedisServer) string {
	m, err := NodeDo(s, "CLUSTER", "SLOTS")
	if err != nil {
		return "?"
	}
	ranges, _ := m.ToArray()
	var b strings.Builder
	for _, r := range ranges {
		v, _ := r.ToArray()
		if len(v) < 3 {
			continue
		}
		lo, _ := v[0].AsInt64()
		hi, _ := v[1].AsInt64()
		node, _ := v[2].ToArray()
		port := int64(0)
		if len(node) >= 2 {
			port, _ = node[1].AsInt64()
		}
		fmt.Fprintf(&b, "%d-%d:%d,", lo, hi, port)
	}
	return b.String()
}

// Slot is key's hash slot (CLUSTER KEYSLOT on a live node).
func (c *Cluster) Slot(key string) int64 {
	c.t.Helper()
	for _, s := range c.alive() {
		if m, err := NodeDo(s, "CLUSTER", "KEYSLOT", key); err == nil {
			if n, err := m.AsInt64(); err == nil {
				return n
			}
		}
	}
	c.t.Fatalf("no live node answers CLUSTER KEYSLOT %s", key)
	return 0
}

// PrimaryOf is the node that serves key's slot now, as a live node sees it.
func (c *Cluster) PrimaryOf(key string) *apptest.RedisServer {
	c.t.Helper()
	slot := c.Slot(key)
	for _, s := range c.alive() {
		m, err := NodeDo(s, "CLUSTER", "SLOTS")
		if err != nil {
			continue
		}
		ranges, _ := m.ToArray()
		for _, r := range ranges {
			v, _ := r.ToArray()
			if len(v) < 3 {
				continue
			}
			lo, _ := v[0].AsInt64()
			hi, _ := v[1].AsInt64()
			if slot < lo || slot > hi {
				continue
			}
			node, _ := v[2].ToArray()
			if len(node) < 2 {
				continue
			}
			port, _ := node[1].AsInt64()
			for _, n := range c.Nodes {
				if int64(n.Port) == port {
					return n
				}
			}
		}
	}
	c.t.Fatalf("no live node serves the slot of %s (%d)", key, slot)
	return nil
}

// Primaries are the live nodes that serve slots.
func (c *Cluster) Primaries() []*apptest.RedisServer {
	var out []*apptest.RedisServer
	for _, s := range c.alive() {
		m, err := NodeDo(s, "ROLE")
		if err != nil {
			continue
		}
		v, _ := m.ToArray()
		if len(v) > 0 {
			if role, _ := v[0].ToString(); role == "master" {
				out = append(out, s)
			}
		}
	}
	return out
}

// ID is a node's cluster node id.
func (c *Cluster) ID(s *apptest.RedisServer) string {
	c.t.Helper()
	m, err := NodeDo(s, "CLUSTER", "MYID")
	if err != nil {
		c.t.Fatalf("CLUSTER MYID of %d: %v", s.Port, err)
	}
	id, _ := m.ToString()
	return id
}

// Reshard moves every slot of from to to with `redis-cli --cluster
// reshard` (keys and all, slot by slot, as an operator would), and waits
// until the cluster agrees.
func (c *Cluster) Reshard(from, to *apptest.RedisServer) {
	c.t.Helper()
	m, err := NodeDo(from, "CLUSTER", "COUNTKEYSINSLOT", "0") // proves from answers
	if err != nil {
		c.t.Fatalf("node %d: %v (%v)", from.Port, err, m)
	}
	n := c.slotCount(from)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", "--cluster", "reshard", "127.0.0.1:"+strconv.Itoa(to.Port),
		"--cluster-from", c.ID(from), "--cluster-to", c.ID(to), "--cluster-slots", strconv.Itoa(n), "--cluster-yes")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, lastLines(string(out), 20))
	}
	c.WaitHealthy()
}

// slotCount is how many slots node s serves.
func (c *Cluster) slotCount(s *apptest.RedisServer) int {
	c.t.Helper()
	m, err := NodeDo(s, "CLUSTER", "SLOTS")
	if err != nil {
		c.t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	ranges, _ := m.ToArray()
	total := 0
	for _, r := range ranges {
		v, _ := r.ToArray()
		if len(v) < 3 {
			continue
		}
		node, _ := v[2].ToArray()
		if len(node) < 2 {
			continue
		}
		if port, _ := node[1].AsInt64(); port == int64(s.Port) {
			lo, _ := v[0].AsInt64()
			hi, _ := v[1].AsInt64()
			total += int(hi - lo + 1)
		}
	}
	return total
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
