package cmd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store/storetest"
)

// The message pipeline end to end, with real processes: WebSocket clients →
// chat role → Redis stream chat:messages → ingest role (group mongo_workers)
// → store. Whatever the chat role acked must end up stored exactly once,
// through an ingest process killed without warning and a MongoDB outage.

// sendWindow is how many messages a sender has in flight before it waits
// for answers: enough to keep the pipeline busy, well under chat.send_queue.
const sendWindow = 32

// sendOpts describe one sending client.
type sendOpts struct {
	wsURL  string
	room   string
	prefix string // clientIds and texts are <prefix>-<n>
	limit  int    // send at most this many
	// perSecond paces the sending (0: as fast as the window allows), so
	// that how long traffic flows does not depend on the machine's speed.
	perSecond int
	// stop ends the sending early (nil: send limit messages).
	stop <-chan struct{}
	// acked counts acks across senders, for the test to watch progress.
	acked *atomic.Int64
}

// runSender connects, joins the room and sends messages with a window of
// sendWindow unanswered ones, until limit or stop; then it waits for every
// answer. Each message gets an ack, or the run fails: no Redis outage is
// played here, so a refusal is a bug. It returns what it sent with the ids
// the acks gave.
func runSender(ctx context.Context, o sendOpts) ([]sentMessage, error) {
	ws, resp, err := websocket.Dial(ctx, o.wsURL, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	if f, err := readJSON(ctx, ws); err != nil || f["type"] != "welcome" {
		return nil, fmt.Errorf("first frame %v, %v; want welcome", f, err)
	}
	if err := writeJSON(ctx, ws, map[string]any{"type": "join", "room": o.room}); err != nil {
		return nil, err
	}
	for {
		f, err := readJSON(ctx, ws)
		if err != nil {
			return nil, fmt.Errorf("wait for joined: %w", err)
		}
		if f["type"] == "joined" && f["room"] == o.room {
			break
		}
	}

	var (
		mu      sync.Mutex
		sent    []sentMessage
		index   = map[string]int{}
		slots   = make(chan struct{}, sendWindow)
		readErr = make(chan error, 1)
	)
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			f, err := readJSON(rctx, ws)
			if err != nil {
				if rctx.Err() == nil {
					readErr <- err
				}
				return
			}
			cid, _ := f["clientId"].(string)
			switch f["type"] {
			case "ack":
				id, _ := f["id"].(string)
				if _, err := bus.ParseID(id); err != nil || f["room"] != o.room {
					readErr <- fmt.Errorf("bad ack %v", f)
					return
				}
				mu.Lock()
				i, ok := index[cid]
				if ok && sent[i].id != "" {
					mu.Unlock()
					readErr <- fmt.Errorf("second ack for %s: %v", cid, f)
					return
				}
				if ok {
					sent[i].id = id
				}
				mu.Unlock()
				if !ok {
					readErr <- fmt.Errorf("ack for a message never sent: %v", f)
					return
				}
				if o.acked != nil {
					o.acked.Add(1)
				}
				<-slots
			case "error", "rate_limited":
				readErr <- fmt.Errorf("message refused: %v", f)
				return
			}
			// message frames (own echoes, the room's others) and
			// presence are not what this sender checks.
		}
	}()

	fail := func(err error) ([]sentMessage, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sent), err
	}
	began := time.Now()
send:
	for n := 0; n < o.limit; n++ {
		if o.perSecond > 0 {
			due := began.Add(time.Duration(n) * time.Second / time.Duration(o.perSecond))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-o.stop:
					break send
				case <-ctx.Done():
					return fail(fmt.Errorf("sending message %d: %w", n, ctx.Err()))
				}
			}
		}
		select {
		case slots <- struct{}{}:
		case <-o.stop:
			break send
		case err := <-readErr:
			return fail(err)
		case <-ctx.Done():
			return fail(fmt.Errorf("sending message %d: %w", n, ctx.Err()))
		}
		m := sentMessage{room: o.room, clientID: fmt.Sprintf("%s-%d", o.prefix, n), text: fmt.Sprintf("%s message %d", o.prefix, n)}
		mu.Lock()
		index[m.clientID] = len(sent)
		sent = append(sent, m)
		mu.Unlock()
		if err := writeJSON(ctx, ws, map[string]any{"type": "message", "room": o.room, "text": m.text, "clientId": m.clientID}); err != nil {
			return fail(err)
		}
	}
	// Every slot back means every message sent was answered.
	for range sendWindow {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return fail(err)
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the last acks: %w", ctx.Err()))
		}
	}
	stopReading()
	<-readDone
	ws.Close(websocket.StatusNormalClosure, "")
	return fail(nil)
}

// senders runs several runSender concurrently and collects their results.
type senders struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent []sentMessage
	errs []error
}

func (s *senders) start(ctx context.Context, o sendOpts) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sent, err := runSender(ctx, o)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sent = append(s.sent, sent...)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("sender %s in %s: %w", o.prefix, o.room, err))
		}
	}()
}

// wait waits for every sender (they are bounded by their context) and fails
// the test on any sender's error.
func (s *senders) wait(t *testing.T) []sentMessage {
	t.Helper()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(s.errs...); err != nil {
		t.Fatal(err)
	}
	return s.sent
}

// storedOf reads back what the processes stored: from MongoDB when
// mongoURL is set, else from the SQLite store in dataDir.
func storedOf(t *testing.T, mongoURL, dataDir string, sent []sentMessage) []storedMsg {
	t.Helper()
	if mongoURL != "" {
		return mongoMessages(t, mongoURL)
	}
	var rooms []string
	for _, m := range sent {
		if !slices.Contains(rooms, m.room) {
			rooms = append(rooms, m.room)
		}
	}
	return sqliteMessages(t, dataDir, rooms)
}

// waitDrained waits until the ingest group has delivered and acknowledged
// every entry of the stream.
func waitDrained(t *testing.T, check func() (int64, bool), within time.Duration) {
	t.Helper()
	var pending int64
	var behind bool
	if !pollUntil(within, func() bool {
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
	redisURL := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, redisURL)
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
	cfg.set("ingest.batch_size", 50)
	cfg.set("ingest.flush_interval", "50ms")
	// The dead consumer's entries are claimed after 1s idle.
	cfg.set("ingest.claim_idle", "1s")
	cfgFile := cfg.write(t)
	migrateWith(t, cfgFile)

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
		s.start(ctx, sendOpts{wsURL: chat.wsURL(tok), room: room, prefix: fmt.Sprintf("u%d", u), limit: perUser,
			perSecond: perSecond, acked: &acked})
	}

	// Mid-way, while ingest-a holds entries it has read and not yet
	// acknowledged, kill it. A kill that happens to leave nothing pending
	// proves nothing about claiming, so try again (a fresh process each
	// time) until one does.
	waitUntil(t, "a quarter of the messages to be acked", func() bool { return acked.Load() >= total/4 })
	for attempt := 1; ; attempt++ {
		name := ingA.consumer()
		if !pollUntil(procWait, func() bool { return consumerPending(t, rc, name) > 0 }) {
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
	if testing.Short() {
		t.Skip("runs processes")
	}
	start := time.Now()
	redisURL := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, redisURL)
	ferret := storetest.StartFerretDB(t)
	mongoURL := ferret.URL() + "aurora_outage"
	cfg := newNodeConfig(t.TempDir(), redisURL)
	cfg.set("mongo.url", mongoURL)
	cfg.set("chat.room_rate", 1000000)
	cfg.set("chat.user_rate", 1000000)
	cfg.set("ingest.batch_size", 50)
	cfg.set("ingest.flush_interval", "50ms")
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
		s.start(ctx, sendOpts{wsURL: srv.wsURL(tok), room: fmt.Sprintf("ops%d", u), prefix: fmt.Sprintf("t%d", u),
			limit: 1 << 30, perSecond: 500, stop: stop, acked: &acked})
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

// TestRecoverAfterReconnect: a client reads a few messages of room dev,
// disconnects, 500 messages are sent meanwhile; it reconnects and joins with
// since = the last id it saw: joined says recovered, then exactly those 500
// in order, then the live messages, with no gap and no duplicate. In
// process: the recovery is the chat role's alone.
func TestRecoverAfterReconnect(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Chat.RoomRate = 100000
	cfg.Chat.UserRate = 100000
	cfg.Chat.PresenceInterval = 20 * time.Millisecond
	srv := apptest.Start(t, cfg)
	wsURL := func(userID, name string) string {
		tok, _, err := srv.App.Host().Tokens.Issue(userID, name)
		if err != nil {
			t.Fatal(err)
		}
		return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?token=" + url.QueryEscape(tok)
	}
	readerID, senderID := newUserID(), newUserID()

	reader := dialWS(t, wsURL(readerID, "reader"))
	reader.join("dev", "")
	talker := dialWS(t, wsURL(senderID, "talker"))
	talker.join("dev", "")
	var lastSeen string
	for i := range 3 {
		cid := fmt.Sprintf("before-%d", i)
		talker.send(map[string]any{"type": "message", "room": "dev", "text": cid, "clientId": cid})
		ack := nextWhere(talker, "ack", cid)
		m := nextWhere(reader, "message", cid)
		if m["id"] != ack["id"] {
			t.Fatalf("reader got %v for ack %v", m, ack)
		}
		lastSeen = m["id"].(string)
	}
	reader.ws.Close(websocket.StatusNormalClosure, "going away for a while")
	// The talker's socket would fill with the 500 echoes nobody reads.
	talker.ws.Close(websocket.StatusNormalClosure, "")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	missed, err := runSender(ctx, sendOpts{wsURL: wsURL(senderID, "talker"), room: "dev", prefix: "missed", limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	// One connection's messages are accepted in the order sent, and ids
	// increase in acceptance order.
	for i := 1; i < len(missed); i++ {
		if cmpID(t, missed[i-1].id, missed[i].id) >= 0 {
			t.Fatalf("acks out of order: %s then %s", missed[i-1].id, missed[i].id)
		}
	}

	reader = dialWS(t, wsURL(readerID, "reader"))
	j := reader.join("dev", lastSeen)
	if j["recovered"] != true {
		t.Fatalf("joined after a reconnect = %v, want recovered true", j)
	}
	for i, want := range missed {
		m := reader.next("message")
		if m["id"] != want.id || m["text"] != want.text || m["clientId"] != want.clientID {
			t.Fatalf("replayed message %d = %v, want id %s text %q", i, m, want.id, want.text)
		}
	}
	talker = dialWS(t, wsURL(senderID, "talker"))
	talker.join("dev", "")
	talker.send(map[string]any{"type": "message", "room": "dev", "text": "live", "clientId": "live"})
	ack := nextWhere(talker, "ack", "live")
	if m := reader.next("message"); m["id"] != ack["id"] || m["text"] != "live" {
		t.Fatalf("after the replay got %v, want the live message %v", m, ack["id"])
	}
}

// nextWhere reads until a frame of type typ for clientId, skipping frames
// of other messages, presence and typing.
func nextWhere(c *wsClient, typ, clientID string) map[string]any {
	c.t.Helper()
	for range 100000 {
		f := c.read()
		if f["type"] == typ && f["clientId"] == clientID {
			return f
		}
		switch f["type"] {
		case "error", "rate_limited":
			c.t.Fatalf("got %v while waiting for %s of %s", f, typ, clientID)
		}
	}
	c.t.Fatalf("no %s for %s in 100000 frames", typ, clientID)
	return nil
}

func cmpID(t *testing.T, a, b string) int {
	t.Helper()
	x, err1 := bus.ParseID(a)
	y, err2 := bus.ParseID(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("ids %q, %q: %v %v", a, b, err1, err2)
	}
	return x.Compare(y)
}
