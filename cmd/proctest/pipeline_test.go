package proctest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store/storetest"
)

// The message pipeline end to end, with real processes: WebSocket clients →
// chat role → Redis stream chat:messages → ingest role (group mongo_workers)
// → store. Whatever the chat role acked must end up stored exactly once,
// through an ingest process killed without warning and a MongoDB outage.

// senders runs several apptest.SendMessages concurrently and collects their
// results. No Redis outage is played in these tests, so a refusal is a bug.
type senders struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent []apptest.SentMessage
	errs []error
}

func (s *senders) start(ctx context.Context, o apptest.SendOptions) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sent, err := apptest.SendMessages(ctx, o)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sent = append(s.sent, sent...)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("sender %s in %s: %w", o.Prefix, o.Room, err))
		}
	}()
}

// wait waits for every sender (they are bounded by their context) and fails
// the test on any sender's error.
func (s *senders) wait(t *testing.T) []apptest.SentMessage {
	t.Helper()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(s.errs...); err != nil {
		t.Fatal(err)
	}
	return s.sent
}

// waitDrained waits until the ingest group has delivered and acknowledged
// every entry of the stream.
func waitDrained(t *testing.T, check func() (int64, bool), within time.Duration) {
	t.Helper()
	var pending int64
	var behind bool
	if !apptest.Poll(within, func() bool {
		pending, behind = check()
		return pending == 0 && !behind
	}) {
		t.Fatalf("ingest not drained after %s: %d entries pending, undelivered entries: %v", within, pending, behind)
	}
}

// TestPipelineExactlyOnce is issue 4's main Done-when: one chat process and
// two ingest processes on one Redis and one store; 20,000 messages go
// through WebSocket clients while one ingest process is killed (SIGKILL)
// with entries pending and started again under a new consumer name, so the
// dead one's entries must be taken over by XAUTOCLAIM. Every acked message
// ends up stored exactly once and nothing stays pending. On MongoDB (an
// embedded FerretDB, or AURORA_TEST_MONGO_URL) and on the SQLite file the
// processes share.
func TestPipelineExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	for _, backend := range []string{"mongodb", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			start := time.Now()
			testPipelineExactlyOnce(t, backend)
			t.Logf("%s: %s", backend, time.Since(start).Round(time.Millisecond))
		})
	}
}

func testPipelineExactlyOnce(t *testing.T, backend string) {
	const (
		users   = 8
		rooms   = 4
		perUser = 2500 // 20,000 in all
		// At most 2400 messages/s in all: the traffic lasts 8 s or more,
		// time enough to kill an ingest process mid-way.
		perSecond   = 300
		total       = users * perUser
		maxAttempts = 10
	)
	redisURL, rc := sharedRedis(t)
	dataDir := t.TempDir()
	mongoURL := ""
	if backend == "mongodb" {
		mongoURL = storetest.MongoURL(t)
	}
	cfg := newNodeConfig(dataDir, redisURL)
	if mongoURL != "" {
		cfg.set("mongo.url", mongoURL)
	}
	// The limits are not under test here: 20,000 messages from 8 users.
	cfg.set("chat.room_rate", 1000000)
	cfg.set("chat.user_rate", 1000000)
	cfg.fastIngest()
	// The dead consumer's entries are claimed after 1s idle.
	cfg.set("ingest.claim_idle", "1s")
	cfgFile := cfg.writeMigrated(t)

	chat := startNode(t, "chat", cfgFile, "chat")
	ingA := startNode(t, "ingest-a", cfgFile, "ingest")
	ingB := startNode(t, "ingest-b", cfgFile, "ingest")

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var acked atomic.Int64
	var s senders
	for u := range users {
		room := fmt.Sprintf("pipe%d", u%rooms)
		tok := mintToken(t, newUserID(), fmt.Sprintf("sender%d", u))
		s.start(ctx, apptest.SendOptions{URL: chat.wsURL(tok), Room: room, Prefix: fmt.Sprintf("u%d", u), Limit: perUser,
			PerSecond: perSecond, Acked: &acked})
	}

	// Mid-way, while ingest-a holds entries it has read and not yet
	// acknowledged, kill it. A kill that happens to leave nothing pending
	// proves nothing about claiming, so try again (a fresh process each
	// time) until one does.
	waitUntil(t, "a quarter of the messages to be acked", func() bool { return acked.Load() >= total/4 })
	for attempt := 1; ; attempt++ {
		name := ingA.consumer()
		if !apptest.Poll(procWait, func() bool { return consumerPending(t, rc, name) > 0 }) {
			t.Fatalf("%s never held pending entries (acked so far: %d)", name, acked.Load())
		}
		ingA.kill()
		// An XACK the process wrote just before it died may still reach
		// Redis after the exit: count what is left once it stops changing.
		left := consumerPending(t, rc, name)
		for settled := time.Now().Add(300 * time.Millisecond); time.Now().Before(settled); {
			time.Sleep(50 * time.Millisecond)
			if n := consumerPending(t, rc, name); n != left {
				left, settled = n, time.Now().Add(300*time.Millisecond)
			}
		}
		t.Logf("SIGKILLed ingest consumer %s with %d entries pending, %d of %d messages acked", name, left, acked.Load(), total)
		ingA = startNode(t, fmt.Sprintf("ingest-a%d", attempt+1), cfgFile, "ingest")
		if left > 0 {
			break
		}
		if attempt == maxAttempts {
			t.Fatalf("%d kills left no entry pending: the takeover of a dead consumer's entries was not exercised", maxAttempts)
		}
	}

	sent := s.wait(t)
	if len(sent) != total {
		t.Fatalf("sent %d messages, want %d", len(sent), total)
	}
	t.Logf("all %d messages acked after %s", acked.Load(), time.Since(began).Round(time.Millisecond))
	waitDrained(t, func() (int64, bool) { return ingestState(t, rc) }, 90*time.Second)
	t.Logf("ingest drained after %s", time.Since(began).Round(time.Millisecond))
	if n := deadLetters(t, rc); n != 0 {
		t.Errorf("%d entries dead-lettered, want none", n)
	}
	// The survivors took the dead consumer's entries over.
	if claimed := ingA.metric("aurora_ingest_claimed_total") + ingB.metric("aurora_ingest_claimed_total"); claimed == 0 {
		var stats []string
		for _, n := range []*node{ingA, ingB} {
			for _, m := range []string{"consumed", "inserted", "duplicates", "claimed", "lost"} {
				stats = append(stats, fmt.Sprintf("%s %s=%v", n.name, m, n.metric("aurora_ingest_"+m+"_total")))
			}
		}
		t.Errorf("no entry was claimed by the live ingest processes: %s", strings.Join(stats, ", "))
	}
	for _, n := range []*node{chat, ingA, ingB} {
		n.stop()
	}
	if p, behind := ingestState(t, rc); p != 0 || behind {
		t.Errorf("after the stop: XPENDING %s %s = %d, undelivered entries: %v", bus.Stream, bus.Group, p, behind)
	}
	assertStoredExactlyOnce(t, storedOf(t, mongoURL, dataDir, sent), sent)
}

// TestPipelineMongoOutage stops MongoDB (an embedded FerretDB) for a while
// under traffic: chat keeps accepting, ingest keeps the entries pending
// (nothing is dead-lettered or lost), /readyz turns 503; once MongoDB is
// back on the same port with the same data, the backlog drains and every
// acked message is stored exactly once.
func TestPipelineMongoOutage(t *testing.T) {
	start := time.Now()
	redisURL, rc := sharedRedis(t)
	ferret := storetest.StartFerretDB(t)
	mongoURL := ferret.URL() + "aurora_outage"
	cfg := newNodeConfig(t.TempDir(), redisURL)
	cfg.set("mongo.url", mongoURL)
	cfg.set("chat.room_rate", 1000000)
	cfg.set("chat.user_rate", 1000000)
	cfg.fastIngest()
	cfgFile := cfg.write(t)
	srv := startNode(t, "aurora", cfgFile, "auth,chat,ingest")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	stopOnce := sync.OnceFunc(func() { close(stop) })
	defer stopOnce()
	var acked atomic.Int64
	var s senders
	for u := range 2 {
		tok := mintToken(t, newUserID(), fmt.Sprintf("talker%d", u))
		s.start(ctx, apptest.SendOptions{URL: srv.wsURL(tok), Room: fmt.Sprintf("ops%d", u), Prefix: fmt.Sprintf("t%d", u),
			Limit: 1 << 30, PerSecond: 500, Stop: stop, Acked: &acked})
	}
	waitUntil(t, "traffic to be stored", func() bool {
		return acked.Load() >= 500 && srv.metric("aurora_ingest_inserted_total") > 0
	})

	ferret.Stop() // returns once FerretDB has closed every connection
	down := time.Now()
	waitUntil(t, "/readyz to answer 503 with MongoDB down", func() bool { return srv.readyz() == http.StatusServiceUnavailable })
	// The outage lasts until ingest has failed to write and another 2000
	// messages were accepted: the chat role does not need MongoDB, and what
	// it accepts must wait in Redis.
	atStop := acked.Load()
	waitUntil(t, "ingest to fail writing to MongoDB", func() bool { return srv.metric("aurora_ingest_store_errors_total") > 0 })
	waitUntil(t, "messages to be accepted during the outage", func() bool { return acked.Load() >= atStop+2000 })
	pending, behind := ingestState(t, rc)
	if pending == 0 && !behind {
		t.Fatalf("MongoDB is down yet the ingest group has nothing pending or undelivered")
	}
	if n := deadLetters(t, rc); n != 0 {
		t.Fatalf("%d entries dead-lettered during the outage; they must stay pending", n)
	}
	if code := srv.readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d during the outage, want 503", code)
	}
	t.Logf("outage of %s: %d entries pending, %d messages acked", time.Since(down).Round(time.Millisecond), pending, acked.Load())

	ferret.Start()
	waitUntil(t, "/readyz to answer 200 again", func() bool { return srv.readyz() == http.StatusOK })
	// More traffic after the recovery, then stop.
	atUp := acked.Load()
	waitUntil(t, "messages after the recovery", func() bool { return acked.Load() >= atUp+200 })
	stopOnce()
	sent := s.wait(t)
	waitDrained(t, func() (int64, bool) { return ingestState(t, rc) }, 90*time.Second)
	if n := deadLetters(t, rc); n != 0 {
		t.Errorf("%d entries dead-lettered, want none", n)
	}
	srv.stop()
	assertStoredExactlyOnce(t, storedOf(t, mongoURL, "", sent), sent)
	t.Logf("%d messages in %s", len(sent), time.Since(start).Round(time.Millisecond))
}
