package redistest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// BenchmarkClusterPubSub measures what a message costs Redis, per node, on
// one Redis and on a 3-primary Redis Cluster with classic and with sharded
// Pub/Sub, and with sharded Pub/Sub and 3 stream shards (bus.shards 3):
// each message is what the send script does (one EVAL that XADDs to the
// room's shard stream and publishes a 300-byte frame on its room's
// channel, with bus.PubSub's names and command), 3 subscribers (3 chat
// replicas, each with one connection per shard slot its rooms' channels
// are in, as the chat role's subscriber) are subscribed to every room, and
// 16 goroutines send. It
// reports delivered messages per second and the Redis CPU (INFO cpu,
// user + sys, read before and after) per delivered message, on the
// busiest node and summed over the nodes: the scaling figure on a 2-core
// machine, where the absolute rates cap early.
//
//	AURORA_TEST_CLUSTER=1 go test -run '^$' -bench BenchmarkClusterPubSub -benchtime 20000x ./app/redistest
func BenchmarkClusterPubSub(b *testing.B) {
	RequireCluster(b)
	single := apptest.StartRedisServer(b)
	cl := StartCluster(b, 3, 0)
	for _, tc := range []struct {
		name  string
		url   string
		nodes []*apptest.RedisServer
		ps    bus.PubSub
	}{
		{"redis=1-node/pubsub=classic", single.URL, []*apptest.RedisServer{single}, bus.PubSub{}},
		{"redis=3-primaries/pubsub=classic", cl.URL, cl.Nodes, bus.PubSub{}},
		{"redis=3-primaries/pubsub=sharded", cl.URL, cl.Nodes, bus.ShardedPubSub()},
		{"redis=3-primaries/pubsub=sharded/stream-shards=3", cl.URL, cl.Nodes, bus.ShardedPubSub().WithShards(3)},
	} {
		for _, rooms := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/rooms=%d", tc.name, rooms), func(b *testing.B) {
				benchPubSub(b, tc.url, tc.nodes, tc.ps, rooms)
			})
		}
	}
}

// sendLike is the send script's Redis work, reduced to its cost: XADD and
// publish in one script.
var sendLike = rueidis.NewLuaScript(sendLikeLua)

const sendLikeLua = `local id = redis.call('XADD', KEYS[1], '*', 'roomId', ARGV[3], 'text', ARGV[2])
redis.call(ARGV[4], ARGV[1], ARGV[2] .. id)
return id`

const subscribers = 3

func benchPubSub(b *testing.B, url string, nodes []*apptest.RedisServer, ps bus.PubSub, rooms int) {
	pub := apptest.RedisClient(b, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var delivered atomic.Int64
	var confirmed atomic.Int64
	var wg sync.WaitGroup
	shards := ps.Shards()
	if !ps.Sharded() {
		shards = 1 // classic channels have no slot: one connection takes all
	}
	chs := make([][]string, shards.N())
	for r := range rooms {
		room := "r" + strconv.Itoa(r)
		k := shards.Of(room)
		chs[k] = append(chs[k], ps.Channel(room))
	}
	for range subscribers {
		sc := apptest.RedisClient(b, url)
		hook := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" || s.Kind == "ssubscribe" {
				confirmed.Add(1)
			}
		})
		for _, group := range chs {
			if len(group) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = sc.Receive(hook, ps.Subscribe(sc.B(), group...), func(rueidis.PubSubMessage) { delivered.Add(1) })
			}()
		}
	}
	defer wg.Wait()
	defer cancel()
	if !apptest.Poll(10*time.Second, func() bool { return confirmed.Load() == int64(subscribers*rooms) }) {
		b.Fatalf("subscriptions confirmed %d of %d", confirmed.Load(), subscribers*rooms)
	}
	payload := strings.Repeat("x", 300)
	before := cpu(b, nodes)
	b.ResetTimer()
	began := time.Now()
	var next atomic.Int64
	var sendWG sync.WaitGroup
	for range 16 {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				room := "r" + strconv.FormatInt(i%int64(rooms), 10)
				if err := sendLike.Exec(ctx, pub, []string{ps.Shards().StreamOf(room)},
					[]string{ps.Channel(room), payload, room, ps.ScriptPublish()}).Error(); err != nil {
					b.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	sendWG.Wait()
	want := int64(b.N * subscribers)
	if !apptest.Poll(30*time.Second, func() bool { return delivered.Load() >= want }) {
		b.Fatalf("delivered %d of %d", delivered.Load(), want)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	after := cpu(b, nodes)
	busiest, total := 0.0, 0.0
	for i := range nodes {
		d := after[i] - before[i]
		total += d
		busiest = max(busiest, d)
	}
	n := float64(want)
	b.ReportMetric(n/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(busiest*1e6/n, "busiest-node-cpu-µs/delivered")
	b.ReportMetric(total*1e6/n, "all-nodes-cpu-µs/delivered")
	// The stream grows by b.N entries per run: empty it for the next.
	for _, st := range ps.Shards().Streams() {
		_ = pub.Do(context.Background(), pub.B().Del().Key(st).Build()).Error()
	}
}

// cpu is each node's used_cpu_user + used_cpu_sys, in seconds.
func cpu(b *testing.B, nodes []*apptest.RedisServer) []float64 {
	b.Helper()
	out := make([]float64, len(nodes))
	for i, s := range nodes {
		m, err := NodeDo(s, "INFO", "cpu")
		if err != nil {
			b.Fatalf("INFO cpu of %d: %v", s.Port, err)
		}
		info, err := m.ToString()
		if err != nil {
			b.Fatalf("INFO cpu of %d: %v", s.Port, err)
		}
		for _, line := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "txt:")), ":")
			if k == "used_cpu_user" || k == "used_cpu_sys" {
				f, _ := strconv.ParseFloat(v, 64)
				out[i] += f
			}
		}
	}
	return out
}

// BenchmarkClusterWait measures what chat.ack_replicas costs on a Redis
// Cluster (3 primaries with a replica each): a send as the chat role makes
// it (the send-like script, then WAIT 1 500 pipelined on the same
// connection with DoMulti, which a cluster client sends with the script
// to the primary of the stream's slot, so WAIT counts that shard's
// replica) against the script alone. One sender, each send after the
// last answered; it reports p50 and p99 of the send's time and fails if
// a WAIT counted no replica.
//
//	AURORA_TEST_CLUSTER=1 go test -run '^$' -bench BenchmarkClusterWait -benchtime 5000x ./app/redistest
func BenchmarkClusterWait(b *testing.B) {
	RequireCluster(b)
	cl := StartCluster(b, 3, 1)
	c := cl.Client(b)
	ps := bus.ShardedPubSub()
	for _, wait := range []bool{false, true} {
		b.Run(fmt.Sprintf("wait=%v", wait), func(b *testing.B) {
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			args := []string{ps.Channel("r"), strings.Repeat("x", 300), "r", ps.ScriptPublish()}
			b.ResetTimer()
			for range b.N {
				began := time.Now()
				if !wait {
					if err := sendLike.Exec(ctx, c, []string{bus.Stream}, args).Error(); err != nil {
						b.Fatal(err)
					}
				} else {
					rs := c.DoMulti(ctx,
						c.B().Eval().Script(sendLikeLua).Numkeys(1).Key(bus.Stream).Arg(args...).Build(),
						c.B().Wait().Numreplicas(1).Timeout(500).Build())
					if err := rs[0].Error(); err != nil {
						b.Fatal(err)
					}
					if n, err := rs[1].AsInt64(); err != nil || n < 1 {
						b.Fatalf("WAIT counted %d replicas: %v", n, err)
					}
				}
				lat = append(lat, time.Since(began))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			_ = c.Do(ctx, c.B().Del().Key(bus.Stream).Build()).Error()
		})
	}
}
