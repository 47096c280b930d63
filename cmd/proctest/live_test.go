package proctest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/embeddedredis"
)

// Tests that live the way a user does: `aurora serve` as the README starts it
// (nothing configured but where to listen and keep data, so every limit is
// the product's default), a person's pace, and real time passing. They run
// on the embedded Redis, and on the real Redis of AURORA_TEST_REDIS_URL
// when that is set (CI's second pass).

// liveNode starts `aurora serve` with every role at the defaults; extra
// holds the few settings a test must change, each with its reason there.
func liveNode(t *testing.T, extra map[string]any) (*node, string) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	c := nodeConfig{}
	c.set("data_dir", dataDir)
	c.set("http.addr", "127.0.0.1:0") // a free port
	c.set("log.format", "json")       // the test reads the bound address from the log
	if u := os.Getenv(apptest.RedisEnv); u != "" {
		apptest.RedisURL(t) // flushes it
		c.set("redis.url", u)
	}
	for k, v := range extra {
		c.set(k, v)
	}
	return startNode(t, "aurora", c.write(t), "auth,chat,ingest"), dataDir
}

// liveRedis is a client of the Redis the node uses: the real one, or the
// embedded one found through the file serve writes in its data dir.
func liveRedis(t *testing.T, dataDir string) rueidis.Client {
	t.Helper()
	if u := os.Getenv(apptest.RedisEnv); u != "" {
		return apptest.RedisClient(t, u)
	}
	rt, err := embeddedredis.ReadRuntime(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return apptest.RedisClient(t, rt.URL)
}

// signUp registers and logs in a user over the auth API, as the page does.
func signUp(t *testing.T, n *node, name string) string {
	t.Helper()
	creds := map[string]string{"username": name, "password": "password of " + name}
	if code, v := n.call(t, http.MethodPost, "/api/auth/register", "", creds); code != http.StatusCreated {
		t.Fatalf("register %s = %d %v", name, code, v)
	}
	code, v := n.call(t, http.MethodPost, "/api/auth/login", "", creds)
	tok, _ := v["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("login %s = %d %v", name, code, v)
	}
	return tok
}

// liveClient reads its connection on a goroutine of its own and counts the
// message frames it is delivered, by id; its reads return the other frames
// but presence, typing and room events (joins append those).
type liveClient struct {
	*apptest.WS
	t     *testing.T
	mu    sync.Mutex
	got   map[string]int // message id -> deliveries
	rooms map[string]int // room -> messages delivered
}

func dialLive(t *testing.T, n *node, tok string) *liveClient {
	t.Helper()
	c := &liveClient{WS: dialWS(t, n.wsURL(tok)), t: t, got: map[string]int{}, rooms: map[string]int{}}
	c.ReadInBackground(func(f map[string]any) bool {
		switch f["type"] {
		case "message":
			id, _ := f["id"].(string)
			room, _ := f["room"].(string)
			c.mu.Lock()
			c.got[id]++
			c.rooms[room]++
			c.mu.Unlock()
			return false
		case "presence", "typing", "room_event":
			return false
		}
		return true
	})
	return c
}

func (c *liveClient) joinRoom(room string) {
	c.t.Helper()
	c.Send(map[string]any{"type": "join", "room": room})
	if f := c.Read(); f["type"] != "joined" || f["room"] != room {
		c.t.Fatalf("join %s: %v", room, f)
	}
}

// say sends a message and returns the answer to it: ack or rate_limited
// (anything else fails the test).
func (c *liveClient) say(room, text, clientID string) map[string]any {
	c.t.Helper()
	c.Send(map[string]any{"type": "message", "room": room, "text": text, "clientId": clientID})
	f := c.Read()
	if (f["type"] != "ack" && f["type"] != "rate_limited") || f["clientId"] != clientID {
		c.t.Fatalf("answer to %s in %s: %v", clientID, room, f)
	}
	return f
}

func (c *liveClient) deliveries(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id]
}

func (c *liveClient) roomCount(room string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room]
}

// TestLiveChatAtDefaultLimits: one person chatting at 2 messages a second
// across two rooms for 15 s is never limited; a burst over the limit is,
// and the limited message goes through once the answered time has passed.
func TestLiveChatAtDefaultLimits(t *testing.T) {
	n, _ := liveNode(t, nil)
	alice := dialLive(t, n, signUp(t, n, "alice"))
	alice.joinRoom("random")

	var acked []string
	rooms := []string{"general", "random"}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 30; i++ {
		<-tick.C
		cid := "pace-" + strconv.Itoa(i)
		f := alice.say(rooms[i%2], fmt.Sprintf("message %d", i), cid)
		if f["type"] != "ack" {
			t.Fatalf("message %d of 30 at 2/s: %v, want ack", i+1, f)
		}
		acked = append(acked, f["id"].(string))
	}

	// A burst: 4 in one room at once. The room allows 3 a second.
	time.Sleep(1100 * time.Millisecond) // a fresh window
	var limited map[string]any
	for i := 0; i < 4; i++ {
		f := alice.say("random", "burst", "burst-"+strconv.Itoa(i))
		switch {
		case i < 3 && f["type"] == "ack":
			acked = append(acked, f["id"].(string))
		case i == 3 && f["type"] == "rate_limited":
			limited = f
		default:
			t.Fatalf("burst message %d: %v", i+1, f)
		}
	}
	wait, _ := limited["retryAfterMs"].(float64)
	if wait <= 0 || wait > 1000 {
		t.Fatalf("retryAfterMs = %v, want (0, 1000]", limited["retryAfterMs"])
	}
	// Retry exactly when told to, as the page does.
	time.Sleep(time.Duration(wait) * time.Millisecond)
	f := alice.say("random", "burst", "burst-3")
	if f["type"] != "ack" {
		t.Fatalf("retry after %v ms: %v, want ack", wait, f)
	}
	acked = append(acked, f["id"].(string))

	// Every acked message is delivered to its sender exactly once.
	waitUntil(t, "every acked message delivered", func() bool {
		for _, id := range acked {
			if alice.deliveries(id) != 1 {
				return false
			}
		}
		return true
	})
	if total := alice.roomCount("general") + alice.roomCount("random"); total != len(acked) {
		t.Fatalf("delivered %d messages, acked %d", total, len(acked))
	}
}

// TestLiveLoginLockout: five wrong passwords lock the account for the
// throttle window, and the right password works once it has passed.
func TestLiveLoginLockout(t *testing.T) {
	// The one setting changed: a 5 s window instead of 15 minutes, so real
	// time can pass within the test. Not shorter: the window opens at the
	// first failure, and five bcrypt checks on a loaded 2-core machine have
	// taken more than 2 s, letting the first failure expire before the
	// fifth.
	const window = 5 * time.Second
	n, _ := liveNode(t, map[string]any{"auth.login_window": window.String()})
	signUp(t, n, "bob")
	wrong := map[string]string{"username": "bob", "password": "not bob's"}
	right := map[string]string{"username": "bob", "password": "password of bob"}
	for i := 0; i < 5; i++ {
		if code, v := n.call(t, http.MethodPost, "/api/auth/login", "", wrong); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %v", i+1, code, v)
		}
	}
	code, v := n.call(t, http.MethodPost, "/api/auth/login", "", right)
	if code != http.StatusTooManyRequests || v["error"] == nil {
		t.Fatalf("login after 5 failures = %d %v, want 429", code, v)
	}
	time.Sleep(window + 100*time.Millisecond)
	if code, v := n.call(t, http.MethodPost, "/api/auth/login", "", right); code != http.StatusOK || v["token"] == nil {
		t.Fatalf("login after the window = %d %v, want 200", code, v)
	}
}

// TestLiveSoak: 20 people chat for two minutes. Nothing is limited or lost,
// Redis holds only keys that expire (besides the stream), the short-lived
// ones are gone once the room is quiet, and goroutines stay flat.
func TestLiveSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs two minutes; -short leaves it out")
	}
	const users, soak, every = 20, 2 * time.Minute, 2 * time.Second
	// auth.register_per_ip raised from 10: all 20 users sign up from
	// 127.0.0.1 within a minute, where the default expects one client.
	n, dataDir := liveNode(t, map[string]any{"auth.register_per_ip": users})
	rc := liveRedis(t, dataDir)
	side := []string{"dev", "ops", "design", "random"}
	clients := make([]*liveClient, users)
	for i := range clients {
		clients[i] = dialLive(t, n, signUp(t, n, fmt.Sprintf("user%02d", i)))
		clients[i].joinRoom(side[i%len(side)])
	}
	time.Sleep(time.Second) // presence of the joins settles
	startGoroutines := n.metric("go_goroutines")

	var mu sync.Mutex
	var acked []string
	generalSent := 0
	errs := make(chan error, users)
	var wg sync.WaitGroup
	stop := time.Now().Add(soak)
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *liveClient) {
			defer wg.Done()
			// Spread the senders over the interval, like people.
			time.Sleep(time.Duration(i) * every / users)
			for k := 0; time.Now().Before(stop); k++ {
				room := "general"
				if k%2 == 1 {
					room = side[i%len(side)]
				}
				cid := fmt.Sprintf("soak-%d-%d", i, k)
				if err := c.WriteFrame(context.Background(), map[string]any{"type": "message", "room": room, "text": "hello " + cid, "clientId": cid}); err != nil {
					errs <- fmt.Errorf("user %d message %d: %w", i, k, err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), procWait)
				f, _ := c.ReadFrame(ctx) // nil when none came: reported below
				cancel()
				if f["type"] != "ack" || f["clientId"] != cid {
					errs <- fmt.Errorf("user %d message %d: %v", i, k, f)
					return
				}
				mu.Lock()
				acked = append(acked, f["id"].(string))
				if room == "general" {
					generalSent++
				}
				mu.Unlock()
				time.Sleep(every)
			}
		}(i, c)
	}

	// Watch Redis while they chat: the rate-limit counters live one second,
	// so however long the soak runs there are never more than a few.
	maxRate := 0
	sample := time.NewTicker(5 * time.Second)
	for time.Now().Before(stop) {
		<-sample.C
		if k := countKeys(t, rc, "chat:rl*"); k > maxRate {
			maxRate = k
		}
	}
	sample.Stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxRate > 2*users {
		t.Errorf("up to %d rate-limit keys live during the soak, want at most %d (one per user and room written in the last second)", maxRate, 2*users)
	}

	mu.Lock()
	total, general := len(acked), generalSent
	mu.Unlock()
	t.Logf("%d users acked %d messages in %v (%d in general); up to %d rate keys at once", users, total, soak, general, maxRate)
	// Everyone in general received every message sent there.
	waitUntil(t, "every general message delivered to every user", func() bool {
		for _, c := range clients {
			if c.roomCount("general") != general {
				return false
			}
		}
		return true
	})
	for _, id := range acked {
		for i, c := range clients {
			if c.deliveries(id) > 1 {
				t.Fatalf("user %d got %s %d times", i, id, c.deliveries(id))
			}
		}
	}

	// Quiet now: the short-lived keys go; what stays is the stream and the
	// dedupe keys of the messages just sent, each with its 15-minute TTL.
	waitUntil(t, "rate-limit keys expired after the soak", func() bool { return countKeys(t, rc, "chat:rl*") == 0 })
	if d := countKeys(t, rc, "chat:dedupe:*"); d != total {
		t.Errorf("%d dedupe keys after %d acked messages", d, total)
	}
	for _, k := range scanKeys(t, rc, "*") {
		ttl, err := rc.Do(context.Background(), rc.B().Pttl().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -1 && !strings.HasPrefix(k, "chat:messages") {
			t.Errorf("key %s has no expiry: it would outlive every session", k)
		}
	}
	end := n.metric("go_goroutines")
	if end > startGoroutines*1.1+10 {
		t.Errorf("goroutines grew from %.0f to %.0f over the soak", startGoroutines, end)
	}
}

func scanKeys(t *testing.T, rc rueidis.Client, match string) []string {
	t.Helper()
	var keys []string
	var cursor uint64
	for {
		e, err := rc.Do(context.Background(), rc.B().Scan().Cursor(cursor).Match(match).Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatalf("SCAN %s: %v", match, err)
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			return keys
		}
	}
}

func countKeys(t *testing.T, rc rueidis.Client, match string) int {
	t.Helper()
	return len(scanKeys(t, rc, match))
}

// TestOperatorCommandsFindEmbeddedServe: next to a running embedded serve,
// the operator commands find its Redis without flags; with none running
// (stopped, or killed) they say so.
func TestOperatorCommandsFindEmbeddedServe(t *testing.T) {
	bin := apptest.Binary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	run := func(args ...string) (int, string) {
		c := execAurora(bin, append(args, "--data-dir", dataDir)...)
		out, err := c.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if c.ProcessState != nil {
				code = c.ProcessState.ExitCode()
			}
		}
		return code, string(out)
	}

	p := startServe(t, bin, dataDir)
	fi, err := os.Stat(filepath.Join(dataDir, embeddedredis.RuntimeFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("runtime file: %v (mode %v), want mode 0600", err, fi.Mode().Perm())
	}
	code, out := run("streams", "info")
	if code != 0 || !strings.Contains(out, "chat:messages") {
		t.Fatalf("streams info next to a running serve: exit %d\n%s", code, out)
	}
	code, out = run("check", "--json")
	if code != 0 || !strings.Contains(out, "embedded, in the aurora serve running on this data dir") {
		t.Fatalf("check next to a running serve: exit %d\n%s", code, out)
	}
	p.interrupt(t)
	if _, err := os.Stat(filepath.Join(dataDir, embeddedredis.RuntimeFile)); !os.IsNotExist(err) {
		t.Fatalf("runtime file left after a clean stop: %v", err)
	}
	code, out = run("streams", "info")
	if code == 0 || !strings.Contains(out, "no `aurora serve` with an embedded Redis is running") || !strings.Contains(out, "--redis-url") {
		t.Fatalf("streams info with no serve: exit %d\n%s", code, out)
	}

	// Killed: the file stays, and is recognised as stale.
	p = startServe(t, bin, dataDir)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	code, out = run("streams", "info")
	if code == 0 || !strings.Contains(out, "which has stopped") {
		t.Fatalf("streams info after serve was killed: exit %d\n%s", code, out)
	}
}
