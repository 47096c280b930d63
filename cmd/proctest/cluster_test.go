//go:build faults

package proctest_test

// Issue #15's Redis Cluster suite: a real loopback cluster (3 primaries, 3
// replicas: redistest.StartCluster) and a fleet on it (auth, 3 chat
// replicas, 2 ingest workers), the fault suite's traffic and invariant
// (faults_traffic_test.go: every acked message stored once and delivered
// to every member, in order, no protocol violation), under the faults of a
// cluster: a primary SIGKILLed, a seed node dying, slots resharded.
//
// It shares the fault suite's build tag (its clients and invariant) and is
// gated on AURORA_TEST_CLUSTER=1 besides (redistest.RequireCluster): then
// it fails, not skips, without redis-server or redis-cli. .ci/run runs it
// (`AURORA_TEST_CLUSTER=1 go test -tags faults -run '^TestCluster'
// ./cmd/proctest`) beside the race pass; its rows go to
// AURORA_FAULTS_REPORT like the fault suite's.

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/redistest"
)

// clusterFleetNames are the cluster fleet's processes: 3 chat replicas.
var clusterFleetNames = []string{"auth", "ingest-a", "ingest-b", "chat-a", "chat-b", "chat-c"}

// startClusterFleet starts a 3+3 cluster and the fleet on it.
func startClusterFleet(t *testing.T) (*fleet, *redistest.Cluster) {
	t.Helper()
	redistest.RequireCluster(t)
	if testing.Short() {
		t.Skip("runs processes")
	}
	cl := redistest.StartCluster(t, 3, 1)
	f := startFleet(t, fleetOptions{redisURL: cl.URL, names: clusterFleetNames})
	return f, cl
}

// readyWatch polls the /readyz of some processes every 50 ms until
// stopped and counts the answers that were not 200.
type readyWatch struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	polls atomic.Int64
	mu    sync.Mutex
	bad   map[string]int
}

func watchReady(nodes ...*node) *readyWatch {
	w := &readyWatch{stop: make(chan struct{}), bad: map[string]int{}}
	for _, n := range nodes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-w.stop:
					return
				case <-tick.C:
				}
				w.polls.Add(1)
				if code := n.readyz(); code != http.StatusOK {
					w.mu.Lock()
					w.bad[n.name+" "+strconv.Itoa(code)]++
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

// end stops the polling and returns the non-200 answers by process.
func (w *readyWatch) end() (map[string]int, int64) {
	close(w.stop)
	w.wg.Wait()
	return w.bad, w.polls.Load()
}

// TestClusterTraffic: the traffic of the fault suite across 3 chat
// replicas on a cluster, nothing failing: every acked message stored once
// and delivered everywhere. The rooms' messages travel by sharded Pub/Sub:
// the chat replicas hold SSUBSCRIBE subscriptions to the sharded channels
// on the stream's primary and no classic subscription anywhere.
func TestClusterTraffic(t *testing.T) {
	f, cl := startClusterFleet(t)
	tr := startTraffic(t, f, defaultTraffic)
	tr.waitAcked(90)
	ps := bus.ShardedPubSub()
	count := func(s *apptest.RedisServer, sub, channel string) int64 {
		m, err := redistest.NodeDo(s, "PUBSUB", sub, channel)
		arr, _ := m.ToArray()
		if err != nil || len(arr) != 2 {
			t.Fatalf("node %d: PUBSUB %s %s: %v %v", s.Port, sub, channel, arr, err)
		}
		n, _ := arr[1].AsInt64()
		return n
	}
	for _, s := range cl.Nodes {
		if n := count(s, "NUMSUB", bus.Channel("f0")); n != 0 {
			t.Errorf("node %d: PUBSUB NUMSUB %s = %d, want 0 (classic Pub/Sub on a cluster)", s.Port, bus.Channel("f0"), n)
		}
	}
	prim := cl.PrimaryOf(bus.Stream)
	if n := count(prim, "SHARDNUMSUB", ps.Channel("f0")); n != 3 {
		t.Errorf("PUBSUB SHARDNUMSUB %s on the stream's primary = %d, want 3 (each chat replica has members in f0)", ps.Channel("f0"), n)
	}
	tr.finish("cluster: traffic across 3 chat replicas", 0)
}

// TestClusterPrimaryKilled: SIGKILL the primary of the slot Aurora's
// stream, keys and channels share, under load. Its replica is promoted
// after cluster-node-timeout; meanwhile sends are answered unavailable
// and resent. Nothing acked is lost; the auth process, which needs no
// such slot, stays ready throughout; the recovery time (until every
// sender is acked again) is reported.
func TestClusterPrimaryKilled(t *testing.T) {
	f, cl := startClusterFleet(t)
	tr := startTraffic(t, f, defaultTraffic)
	tr.waitAcked(60)
	prim := cl.PrimaryOf(bus.Stream)
	w := watchReady(f.node("auth"))
	prim.Kill()
	killed := time.Now()
	rec := tr.waitRecovered(killed)
	cl.WaitHealthy()
	f.allReady()
	tr.waitAcked(60)
	bad, polls := w.end()
	if len(bad) > 0 {
		t.Errorf("processes needing no slot of the killed primary answered /readyz other than 200 (of %d polls): %v", polls, bad)
	}
	t.Logf("primary %d killed; a replica took over; every sender acked again %s later", prim.Port, rec.Round(10*time.Millisecond))
	tr.finish("cluster: SIGKILL the primary of the stream's slot", rec)
}

// TestClusterSeedKilled: the first node of redis.url (a seed, and a
// primary of slots Aurora's stream does not use) dies while the cluster
// stays healthy: every process answers /readyz 200 throughout (before the
// fix a keyless PING went to it and readiness flipped for as long as it
// was gone), and the traffic is unharmed.
func TestClusterSeedKilled(t *testing.T) {
	f, cl := startClusterFleet(t)
	seed := cl.Nodes[0]
	if cl.PrimaryOf(bus.Stream) == seed {
		t.Fatalf("the seed node %d serves the stream's slot: the test needs one that does not", seed.Port)
	}
	tr := startTraffic(t, f, defaultTraffic)
	tr.waitAcked(60)
	w := watchReady(f.running()...)
	seed.Kill()
	killed := time.Now()
	rec := tr.waitRecovered(killed)
	// Through the failover of its slots and well after.
	time.Sleep(2*redistest.ClusterNodeTimeout + 3*time.Second)
	cl.WaitHealthy()
	time.Sleep(3 * time.Second)
	bad, polls := w.end()
	if len(bad) > 0 {
		t.Errorf("after the seed node died, /readyz answered other than 200 (of %d polls): %v", polls, bad)
	}
	tr.waitAcked(60)
	// The dead stream's slot was the seed's (chat:messages:dead has a slot
	// of its own): the test's own client reaches it again once it read the
	// new slot map.
	waitUntil(t, "the test's client to reach the dead stream's slot on its new primary", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return f.rc.Do(ctx, f.rc.B().Xlen().Key(bus.DeadStream).Build()).Error() == nil
	})
	tr.finish("cluster: a seed node (a primary of other slots) dies", rec)
}

// TestClusterReshard: every slot of the stream's primary, the stream's
// among them, moves to another primary (`redis-cli --cluster reshard`,
// keys and all) while the traffic flows. Nothing acked is lost or
// duplicated, and no client sees an error beyond an unavailable it
// resends (traffic.finish counts every other as a violation).
func TestClusterReshard(t *testing.T) {
	f, cl := startClusterFleet(t)
	tr := startTraffic(t, f, defaultTraffic)
	tr.waitAcked(60)
	from := cl.PrimaryOf(bus.Stream)
	var to *apptest.RedisServer
	for _, p := range cl.Primaries() {
		if p != from {
			to = p
			break
		}
	}
	began := time.Now()
	cl.Reshard(from, to)
	took := time.Since(began)
	if got := cl.PrimaryOf(bus.Stream); got != to {
		t.Fatalf("after the reshard the stream's slot is on %d, want %d", got.Port, to.Port)
	}
	t.Logf("resharded %d → %d in %s", from.Port, to.Port, took.Round(100*time.Millisecond))
	rec := tr.waitRecovered(time.Now())
	tr.waitAcked(60)
	tr.finish("cluster: reshard the stream's slot during traffic", rec)
}

// TestClusterPrimaryKilledAckReplicas: the failover of
// TestClusterPrimaryKilled with chat.ack_replicas 1, where an ack means
// the primary's replica had the message: the replica promoted in the
// primary's place holds every acked message. Until the killed node is back
// (started again on its port and dir, it rejoins as the new primary's
// replica) the promoted primary has no replica to confirm, so sends are
// answered unavailable and resent; afterwards every one is acked, and
// nothing acked is lost or stored twice.
func TestClusterPrimaryKilledAckReplicas(t *testing.T) {
	redistest.RequireCluster(t)
	if testing.Short() {
		t.Skip("runs processes")
	}
	cl := redistest.StartCluster(t, 3, 1)
	f := startFleet(t, fleetOptions{redisURL: cl.URL, names: clusterFleetNames, tweak: func(c nodeConfig) {
		c.set("chat.ack_replicas", 1) // the setting under test
	}})
	tr := startTraffic(t, f, defaultTraffic)
	tr.waitAcked(60)
	prim := cl.PrimaryOf(bus.Stream)
	prim.Kill()
	killed := time.Now()
	waitUntil(t, "a replica to be promoted in the killed primary's place", func() bool {
		return cl.PrimaryOf(bus.Stream) != prim
	})
	prim.Restart()
	cl.WaitHealthy()
	rec := tr.waitRecovered(killed)
	f.allReady()
	tr.waitAcked(60)
	t.Logf("primary %d killed and started again; every sender acked again %s after the kill", prim.Port, rec.Round(10*time.Millisecond))
	tr.finish("cluster: SIGKILL the stream's primary, chat.ack_replicas 1", rec)
}

// shardedTraffic is the traffic of the bus.shards 3 scenarios: rooms f0 to
// f4, whose shards (FNV-1a of the name mod 3) are 0, 1, 1, 2, 2, so every
// shard stream carries messages.
var shardedTraffic = trafficSpec{rooms: 5, senders: 6, receivers: 2, perSecond: 2}

// startShardedClusterFleet is startClusterFleet with bus.shards 3 in
// every process.
func startShardedClusterFleet(t *testing.T) (*fleet, *redistest.Cluster) {
	t.Helper()
	redistest.RequireCluster(t)
	if testing.Short() {
		t.Skip("runs processes")
	}
	cl := redistest.StartCluster(t, 3, 1)
	f := startFleet(t, fleetOptions{redisURL: cl.URL, names: clusterFleetNames, tweak: func(c nodeConfig) {
		c.set("bus.shards", 3) // the setting under test
	}})
	return f, cl
}

// TestClusterShardsTraffic: TestClusterTraffic with bus.shards 3: every
// acked message stored once and delivered everywhere, each room's messages
// in its shard's stream (every one of the 3 streams holds some, and no
// entry is in another room's shard stream), its sharded channel
// subscribed on the primary of that stream's slot.
func TestClusterShardsTraffic(t *testing.T) {
	f, cl := startShardedClusterFleet(t)
	tr := startTraffic(t, f, shardedTraffic)
	tr.waitAcked(120)
	shards := bus.Shards(3)
	c := cl.Client(t)
	ctx := context.Background()
	for k, stream := range shards.Streams() {
		es, err := c.Do(ctx, c.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		if len(es) == 0 {
			t.Errorf("stream %s (shard %d) holds nothing", stream, k)
		}
		for _, e := range es {
			if room := e.FieldValues[bus.FieldRoomID]; shards.Of(room) != k {
				t.Errorf("entry %s of room %s (shard %d) is in %s", e.ID, room, shards.Of(room), stream)
			}
		}
	}
	ps := bus.ShardedPubSub().WithShards(shards)
	for _, room := range []string{"f0", "f1", "f3"} {
		prim := cl.PrimaryOf(shards.StreamOf(room))
		m, err := redistest.NodeDo(prim, "PUBSUB", "SHARDNUMSUB", ps.Channel(room))
		arr, _ := m.ToArray()
		if err != nil || len(arr) != 2 {
			t.Fatalf("node %d: PUBSUB SHARDNUMSUB %s: %v %v", prim.Port, ps.Channel(room), arr, err)
		}
		if n, _ := arr[1].AsInt64(); n < 1 {
			t.Errorf("PUBSUB SHARDNUMSUB %s on its stream's primary %d = %d, want the chat replicas with members there", ps.Channel(room), prim.Port, n)
		}
	}
	tr.finish("cluster, bus.shards 3: traffic across 3 chat replicas", 0)
}

// TestClusterShardsPrimaryKilled: TestClusterPrimaryKilled with bus.shards
// 3, killing the primary of shard 2's stream: nothing acked is lost or
// stored twice, and the senders of the rooms elsewhere are acked
// throughout (the recovery time is every sender's).
func TestClusterShardsPrimaryKilled(t *testing.T) {
	f, cl := startShardedClusterFleet(t)
	tr := startTraffic(t, f, shardedTraffic)
	tr.waitAcked(60)
	prim := cl.PrimaryOf(bus.ShardStream(2))
	prim.Kill()
	killed := time.Now()
	rec := tr.waitRecovered(killed)
	cl.WaitHealthy()
	f.allReady()
	tr.waitAcked(60)
	t.Logf("primary %d (of %s) killed; a replica took over; every sender acked again %s later", prim.Port, bus.ShardStream(2), rec.Round(10*time.Millisecond))
	tr.finish("cluster, bus.shards 3: SIGKILL the primary of shard 2's stream", rec)
}

// TestClusterShardsReshard: TestClusterReshard with bus.shards 3, moving
// every slot of the primary of shard 2's stream to another primary during
// traffic: nothing acked lost or duplicated; the chat replicas subscribe
// the moved shard's channels again on the new owner.
func TestClusterShardsReshard(t *testing.T) {
	f, cl := startShardedClusterFleet(t)
	tr := startTraffic(t, f, shardedTraffic)
	tr.waitAcked(60)
	stream := bus.ShardStream(2)
	from := cl.PrimaryOf(stream)
	var to *apptest.RedisServer
	for _, p := range cl.Primaries() {
		if p != from {
			to = p
			break
		}
	}
	began := time.Now()
	cl.Reshard(from, to)
	took := time.Since(began)
	if got := cl.PrimaryOf(stream); got != to {
		t.Fatalf("after the reshard %s's slot is on %d, want %d", stream, got.Port, to.Port)
	}
	t.Logf("resharded %d → %d in %s", from.Port, to.Port, took.Round(100*time.Millisecond))
	rec := tr.waitRecovered(time.Now())
	tr.waitAcked(60)
	tr.finish("cluster, bus.shards 3: reshard shard 2's slot during traffic", rec)
}

// TestClusterShardsSeedKilled: TestClusterSeedKilled with bus.shards 3: a
// node named in redis.url (a seed) that serves none of the three shard
// streams' slots dies while the cluster stays healthy; every process
// answers /readyz 200 throughout and the traffic is unharmed.
func TestClusterShardsSeedKilled(t *testing.T) {
	f, cl := startShardedClusterFleet(t)
	shards := bus.Shards(3)
	serving := map[*apptest.RedisServer]bool{}
	for _, s := range shards.Streams() {
		serving[cl.PrimaryOf(s)] = true
	}
	var seed *apptest.RedisServer
	for _, p := range cl.Primaries() {
		if !serving[p] {
			seed = p
			break
		}
	}
	if seed == nil {
		t.Fatalf("every primary serves a shard stream's slot: the test needs one that does not")
	}
	tr := startTraffic(t, f, shardedTraffic)
	tr.waitAcked(60)
	w := watchReady(f.running()...)
	seed.Kill()
	killed := time.Now()
	rec := tr.waitRecovered(killed)
	// Through the failover of its slots and well after.
	time.Sleep(2*redistest.ClusterNodeTimeout + 3*time.Second)
	cl.WaitHealthy()
	time.Sleep(3 * time.Second)
	bad, polls := w.end()
	if len(bad) > 0 {
		t.Errorf("after seed node %d died, /readyz answered other than 200 (of %d polls): %v", seed.Port, polls, bad)
	}
	tr.waitAcked(60)
	waitUntil(t, "the test's client to reach the dead stream's slot again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return f.rc.Do(ctx, f.rc.B().Xlen().Key(bus.DeadStream).Build()).Error() == nil
	})
	tr.finish("cluster, bus.shards 3: a seed node serving no shard stream dies", rec)
}

// TestClusterShardsPrimaryKilledAckReplicas: TestClusterPrimaryKilledAckReplicas
// with bus.shards 3, killing the primary of shard 2's stream: its sends
// are answered unavailable until the promoted primary has a replica
// again, then acked; nothing acked is lost or stored twice.
func TestClusterShardsPrimaryKilledAckReplicas(t *testing.T) {
	redistest.RequireCluster(t)
	if testing.Short() {
		t.Skip("runs processes")
	}
	cl := redistest.StartCluster(t, 3, 1)
	f := startFleet(t, fleetOptions{redisURL: cl.URL, names: clusterFleetNames, tweak: func(c nodeConfig) {
		c.set("bus.shards", 3)        // the settings under test
		c.set("chat.ack_replicas", 1) //
	}})
	tr := startTraffic(t, f, shardedTraffic)
	tr.waitAcked(60)
	stream := bus.ShardStream(2)
	prim := cl.PrimaryOf(stream)
	prim.Kill()
	killed := time.Now()
	waitUntil(t, "a replica to be promoted in the killed primary's place", func() bool {
		return cl.PrimaryOf(stream) != prim
	})
	prim.Restart()
	cl.WaitHealthy()
	rec := tr.waitRecovered(killed)
	f.allReady()
	tr.waitAcked(60)
	t.Logf("primary %d (of %s) killed and started again; every sender acked again %s after the kill", prim.Port, stream, rec.Round(10*time.Millisecond))
	tr.finish("cluster, bus.shards 3: SIGKILL the primary of shard 2's stream, chat.ack_replicas 1", rec)
}
