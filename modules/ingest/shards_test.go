package ingest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// TestShardsIngestEveryStreamExactlyOnce: with bus.shards 3, two ingest
// processes (two Shards, two consumer names) share the three streams'
// groups while messages of 12 rooms are appended to their rooms' streams;
// a third consumer read part of shard 1 and died after storing some of it
// without acknowledging. Every message is stored exactly once, every
// stream's group ends with nothing pending or undelivered, and the
// processes' gauges sum the streams.
func TestShardsIngestEveryStreamExactlyOnce(t *testing.T) {
	rc := testRedis(t)
	st := testStore(t)
	ctx := context.Background()
	shards := bus.Shards(3)
	for _, s := range shards.Streams() {
		if err := bus.EnsureGroup(ctx, rc, s); err != nil {
			t.Fatal(err)
		}
	}

	rooms := make([]string, 12)
	onShard := map[int]int{}
	for i := range rooms {
		rooms[i] = "room-" + strconv.Itoa(i)
		onShard[shards.Of(rooms[i])]++
	}
	for k := range 3 {
		if onShard[k] == 0 {
			t.Fatalf("no room of the 12 on shard %d: %v", k, onShard)
		}
	}
	ids := map[string][]string{}
	add := func(room string, n int) {
		for range n {
			e := entry(room, "")
			e.ClientID = ""
			ids[room] = append(ids[room], apptest.XAdd(t, rc, shards.StreamOf(room), "*", e.Fields()...))
		}
	}

	// The dead consumer's part of shard 1: read, half stored, none acked.
	var shard1 string
	for _, r := range rooms {
		if shards.Of(r) == 1 {
			shard1 = r
			break
		}
	}
	add(shard1, 20)
	got, err := bus.ReadGroup(ctx, rc, bus.ShardStream(1), "dead-host", ">", 100, 0)
	if err != nil || len(got) != 20 {
		t.Fatalf("dead consumer's read: %d entries, %v", len(got), err)
	}
	var half []store.Message
	for _, x := range got[:10] {
		e, err := bus.DecodeForStore(x)
		if err != nil {
			t.Fatal(err)
		}
		half = append(half, store.MessageFromEntry(e, time.Now()))
	}
	if _, err := st.InsertMessages(ctx, half); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	// Lowered from the default 30s so that the dead consumer's entries are
	// claimed within the test rather than after half a minute.
	cfg.ClaimIdle = 300 * time.Millisecond
	var sets []*Shards
	for i := range 2 {
		reg := prometheus.NewRegistry()
		s, err := NewShards(Options{Redis: rc, Store: st, Log: testLog(t), Config: cfg,
			Consumer: "proc-" + strconv.Itoa(i), Metrics: reg, MaintainEvery: 50 * time.Millisecond}, shards)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Workers()) != 3 {
			t.Fatalf("%d workers for 3 shards", len(s.Workers()))
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.Stop(sctx)
		})
		sets = append(sets, s)
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				e := entry(r, "")
				e.ClientID = ""
				cmd := rc.B().Xadd().Key(shards.StreamOf(r)).Id("*").FieldValue()
				f := e.Fields()
				for i := 0; i+1 < len(f); i += 2 {
					cmd = cmd.FieldValue(f[i], f[i+1])
				}
				// Not apptest.XAdd: it would call t.Fatal off the test's goroutine.
				id, err := rc.Do(ctx, cmd.Build()).ToString()
				if err != nil {
					t.Errorf("xadd to room %s: %v", r, err)
					return
				}
				mu.Lock()
				ids[r] = append(ids[r], id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, r := range rooms {
		total += len(ids[r])
	}
	eventually(t, "every message stored", func() bool {
		n := 0
		for _, r := range rooms {
			n += countStored(t, st, r)
		}
		return n >= total
	})
	eventually(t, "every stream's group acknowledged all", func() bool {
		for _, s := range shards.Streams() {
			gs, _, err := bus.Groups(ctx, rc, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != 1 || gs[0].Pending != 0 || gs[0].Lag != 0 {
				return false
			}
		}
		return true
	})
	for _, r := range rooms {
		assertStoredOnce(t, st, r, ids[r])
	}
	// Both processes read: the groups spread the streams' entries.
	for i, s := range sets {
		if n := value(s.Workers()[0].m.consumed); n == 0 {
			t.Errorf("process %d consumed nothing", i)
		}
		if err := s.Check(ctx); err != nil {
			t.Errorf("process %d Check: %v", i, err)
		}
	}
	// The gauges are the process's over its three streams: the streams'
	// lengths (nothing is trimmed: keep_recent is 10000).
	var want int64
	for _, s := range shards.Streams() {
		want += streamLen(t, rc, s)
	}
	eventually(t, "stream_length gauge over every shard", func() bool {
		return int64(value(sets[0].Workers()[0].m.length)) == want
	})
}

// TestShardsOneIsTheSingleStream: bus.shards 1 runs one worker on
// chat:messages, as before shards existed.
func TestShardsOneIsTheSingleStream(t *testing.T) {
	s, err := NewShards(Options{Redis: testRedis(t), Store: testStore(t), Config: testConfig()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Workers()) != 1 || s.Workers()[0].o.Stream != bus.Stream {
		t.Fatalf("workers: %d, stream %q", len(s.Workers()), s.Workers()[0].o.Stream)
	}
}
