package cmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.yaml.in/yaml/v3"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/token"
)

// Helpers for the process-level tests: the real `aurora` binary, built once
// per package run, runs as child processes that talk only through Redis and
// the store, as in production.

// procWait bounds every wait of a process test for one thing to happen.
const procWait = 30 * time.Second

// procSecret is the JWT secret of every process a test starts, so tests can
// mint tokens the chat role accepts.
const procSecret = "process-test-secret-0123456789abcdef"

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinary()
	os.Exit(code)
}

// nodeConfig is a config file's content as nested maps; set fills in a
// dotted key.
type nodeConfig map[string]any

// newNodeConfig is the configuration the processes of one test share:
// loopback on a free port, JSON logs (the test reads the bound address from
// them), a fixed JWT secret, fast bcrypt, and the given Redis and data dir.
func newNodeConfig(dataDir, redisURL string) nodeConfig {
	c := nodeConfig{}
	c.set("data_dir", dataDir)
	c.set("http.addr", "127.0.0.1:0")
	c.set("http.drain_timeout", "20s")
	c.set("log.level", "info")
	c.set("log.format", "json")
	c.set("redis.url", redisURL)
	c.set("auth.jwt_secret", procSecret)
	c.set("auth.bcrypt_cost", 4)
	return c
}

func (c nodeConfig) set(key string, v any) {
	m := map[string]any(c)
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

// write writes the configuration into a new file of the test's and returns
// its path.
func (c nodeConfig) write(t *testing.T) string {
	t.Helper()
	b, err := yaml.Marshal(map[string]any(c))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "aurora-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// migrateWith runs `aurora migrate` on the configuration, so processes
// started together do not race on creating the schema.
func migrateWith(t *testing.T, cfgFile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	c := exec.CommandContext(ctx, apptest.Binary(t), "migrate", "--config", cfgFile)
	c.Env = apptest.CleanEnv()
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("aurora migrate: %v\n%s", err, out)
	}
}

// node is a running `aurora serve` child process. The embedded proc gives
// its base URL, call (one JSON request) and interrupt (SIGINT, clean exit).
type node struct {
	*proc
	t       *testing.T
	name    string
	logPath string
}

// startNode runs `aurora serve --roles=<roles> --config <cfgFile>`, logging
// to <name>.log in a temp dir of the test, and returns once it has started
// and /readyz answers 200. The process is killed when the test ends, and its
// log is shown if the test failed.
func startNode(t *testing.T, name, cfgFile, roles string) *node {
	t.Helper()
	bin := apptest.Binary(t)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &startWatch{file: logf, out: &procOutput{}, addr: make(chan string, 1)}
	n := &node{
		proc:    &proc{stderr: w.out, done: make(chan struct{})},
		t:       t,
		name:    name,
		logPath: logPath,
	}
	n.cmd = exec.Command(bin, "serve", "--roles="+roles, "--config", cfgFile)
	n.cmd.Env = apptest.CleanEnv()
	// One writer for both streams: exec then copies them through one pipe.
	n.cmd.Stdout, n.cmd.Stderr = w, w
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s (pid %d) log, last lines:\n%s", name, n.cmd.Process.Pid, n.logTail(60))
		}
	})

	select {
	case addr := <-w.addr:
		n.base = "http://" + addr
	case <-n.done:
		t.Fatalf("%s exited before it started: %v\n%s", name, n.err, n.logTail(60))
	case <-time.After(procWait):
		t.Fatalf("%s did not start in %s\n%s", name, procWait, n.logTail(60))
	}
	waitUntil(t, name+" /readyz to answer 200", func() bool { return n.readyz() == http.StatusOK })
	return n
}

// pid is the process id: the ingest role's consumer name is <host>-<pid>.
func (n *node) pid() int { return n.cmd.Process.Pid }

// consumer is the ingest consumer name of the process.
func (n *node) consumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "aurora"
	}
	return fmt.Sprintf("%s-%d", host, n.pid())
}

// running reports whether the process has not exited.
func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL (no drain, no goodbye) and waits for it.
func (n *node) kill() {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(procWait):
		n.t.Errorf("%s (pid %d) still running %s after SIGKILL", n.name, n.pid(), procWait)
	}
}

// stop interrupts the process and fails the test unless it drains and
// exits 0.
func (n *node) stop() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("%s already exited: %v\n%s", n.name, n.err, n.logTail(60))
	}
	n.interrupt(n.t)
}

// readyz is the status of GET /readyz (0 when it does not answer).
func (n *node) readyz() int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(n.base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric is the value of an unlabelled metric on /metrics (0 when absent).
func (n *node) metric(name string) float64 {
	n.t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(n.base + "/metrics")
	if err != nil {
		n.t.Fatalf("%s /metrics: %v", n.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				n.t.Fatalf("%s metric line %q: %v", n.name, sc.Text(), err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		n.t.Fatalf("%s /metrics: %v", n.name, err)
	}
	return 0
}

// wsURL is the WebSocket endpoint of the process for the user's token.
func (n *node) wsURL(tok string) string {
	return "ws" + strings.TrimPrefix(n.base, "http") + "/ws?token=" + url.QueryEscape(tok)
}

// logTail is the end of the process's log.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// startWatch copies a child's output to its log file and reports the
// address from the "aurora started" line: the process binds 127.0.0.1:0,
// so only it knows its port.
type startWatch struct {
	file *os.File
	out  *procOutput // what proc.interrupt shows on failure
	addr chan string
	line []byte
	seen bool
}

func (w *startWatch) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p)
	_, _ = w.out.Write(p)
	if w.seen {
		return len(p), nil
	}
	// exec's copier calls Write from one goroutine at a time.
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(w.line[:i], &rec) == nil && rec.Msg == "aurora started" && rec.Addr != "" {
			w.seen = true
			w.line = nil
			w.addr <- rec.Addr
			break
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

// waitUntil polls cond until it holds or procWait passes. It is used only
// where the processes offer no signal to wait on (readiness, Redis and
// store state, metrics).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !pollUntil(procWait, cond) {
		t.Fatalf("timed out after %s waiting for %s", procWait, what)
	}
}

// pollUntil polls cond every 20ms for at most d and reports whether it held.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// mintToken issues a token for a user with the processes' secret.
func mintToken(t *testing.T, userID, username string) string {
	t.Helper()
	tok, _, err := token.NewIssuer([]byte(procSecret), time.Hour).Issue(userID, username)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newUserID is a fresh user id in the ObjectId form the stores use.
func newUserID() string { return bson.NewObjectID().Hex() }

// wsClient is a WebSocket client of a chat process, used from the test's
// goroutine.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// dialWS connects with the token and reads the welcome frame.
func dialWS(t *testing.T, wsURL string) *wsClient {
	t.Helper()
	ws := dialRawWS(t, wsURL)
	c := &wsClient{t: t, ws: ws}
	if f := c.read(); f["type"] != "welcome" {
		t.Fatalf("first frame = %v, want welcome", f)
	}
	return c
}

// dialRawWS connects and fails the test when refused; the connection is
// closed when the test ends.
func dialRawWS(t *testing.T, wsURL string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, wsURL, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", strings.Split(wsURL, "?")[0], err, status)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := writeJSON(context.Background(), c.ws, v); err != nil {
		c.t.Fatal(err)
	}
}

// writeJSON writes v as one text frame within procWait.
func writeJSON(ctx context.Context, ws *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, procWait)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// readJSON reads one frame as a JSON object.
func readJSON(ctx context.Context, ws *websocket.Conn) (map[string]any, error) {
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	if typ != websocket.MessageText {
		return nil, errors.New("got a binary frame")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("frame %q is not a JSON object: %w", b, err)
	}
	return m, nil
}

// read returns the next frame, waiting at most procWait.
func (c *wsClient) read() map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	f, err := readJSON(ctx, c.ws)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// next reads until a frame of type typ, skipping presence and typing
// frames; any other frame fails the test.
func (c *wsClient) next(typ string) map[string]any {
	c.t.Helper()
	for {
		f := c.read()
		if f["type"] == typ {
			return f
		}
		if f["type"] == "presence" || f["type"] == "typing" {
			continue
		}
		c.t.Fatalf("got %v while waiting for a %s frame", f, typ)
	}
}

// join joins room (with since when not empty) and returns the joined frame.
func (c *wsClient) join(room, since string) map[string]any {
	c.t.Helper()
	f := map[string]any{"type": "join", "room": room}
	if since != "" {
		f["since"] = since
	}
	c.send(f)
	j := c.next("joined")
	if j["room"] != room {
		c.t.Fatalf("joined %v, want room %s", j, room)
	}
	return j
}

// redisDo runs a command of the test's own Redis client within procWait.
func redisDo(t *testing.T, rc rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	return rc.Do(ctx, rc.B().Arbitrary(args...).Build())
}

// ingestState is what the ingest group has left to do: entries delivered
// and not acknowledged (XPENDING), and whether entries are still
// undelivered (the group's last delivered id is behind the stream's last).
func ingestState(t *testing.T, rc rueidis.Client) (pending int64, behind bool) {
	t.Helper()
	sum, err := redisDo(t, rc, "XPENDING", bus.Stream, bus.Group).ToArray()
	if err != nil || len(sum) == 0 {
		t.Fatalf("XPENDING %s %s: %v", bus.Stream, bus.Group, err)
	}
	pending, err = sum[0].AsInt64()
	if err != nil {
		t.Fatalf("XPENDING count: %v", err)
	}
	groups, err := redisDo(t, rc, "XINFO", "GROUPS", bus.Stream).ToArray()
	if err != nil {
		t.Fatalf("XINFO GROUPS: %v", err)
	}
	delivered := ""
	for _, g := range groups {
		// A flat array of pairs in RESP2, a map in RESP3: AsMap reads both.
		m, err := g.AsMap()
		if err != nil {
			t.Fatalf("XINFO GROUPS entry: %v", err)
		}
		name, ld := m["name"], m["last-delivered-id"]
		if n, _ := name.ToString(); n == bus.Group {
			delivered, _ = ld.ToString()
		}
	}
	last, err := redisDo(t, rc, "XREVRANGE", bus.Stream, "+", "-", "COUNT", "1").AsXRange()
	if err != nil {
		t.Fatalf("XREVRANGE: %v", err)
	}
	if len(last) == 0 {
		return pending, false
	}
	return pending, delivered != last[0].ID
}

// consumerPending is how many entries the consumer holds unacknowledged.
func consumerPending(t *testing.T, rc rueidis.Client, consumer string) int64 {
	t.Helper()
	res, err := redisDo(t, rc, "XINFO", "CONSUMERS", bus.Stream, bus.Group).ToArray()
	if err != nil {
		t.Fatalf("XINFO CONSUMERS: %v", err)
	}
	for _, c := range res {
		m, err := c.AsMap() // RESP2 pairs or RESP3 map
		if err != nil {
			t.Fatalf("XINFO CONSUMERS entry: %v", err)
		}
		name, pending := m["name"], m["pending"]
		if n, _ := name.ToString(); n == consumer {
			n, err := pending.AsInt64()
			if err != nil {
				t.Fatalf("XINFO CONSUMERS pending of %s: %v", consumer, err)
			}
			return n
		}
	}
	return 0
}

// deadLetters is the length of the dead-letter stream.
func deadLetters(t *testing.T, rc rueidis.Client) int64 {
	t.Helper()
	n, err := redisDo(t, rc, "XLEN", bus.DeadStream).AsInt64()
	if err != nil {
		t.Fatalf("XLEN %s: %v", bus.DeadStream, err)
	}
	return n
}

// sentMessage is what a sender knows of one message.
type sentMessage struct {
	room, clientID, text string
	id                   string // from the ack; "" when not acked
}

// storedMsg is a stored message as the test reads it back.
type storedMsg struct {
	room, id, clientID, text string
}

// assertStoredExactlyOnce fails unless the store holds every acked message
// exactly once, under the acked id, with its text, and nothing that was not
// sent. A sent but unacked message may be stored (its ack may have been
// lost), at most once.
func assertStoredExactlyOnce(t *testing.T, stored []storedMsg, sent []sentMessage) {
	t.Helper()
	byClient := map[string]*sentMessage{}
	for i := range sent {
		byClient[sent[i].clientID] = &sent[i]
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	storedTimes := map[string]int{}
	seenID := map[string]bool{}
	for _, m := range stored {
		if seenID[m.room+"/"+m.id] {
			report("room %s: id %s stored twice", m.room, m.id)
		}
		seenID[m.room+"/"+m.id] = true
		s := byClient[m.clientID]
		switch {
		case s == nil:
			report("room %s: stored message %s (clientId %q) was never sent", m.room, m.id, m.clientID)
			continue
		case s.room != m.room || s.text != m.text:
			report("message %s stored as %s/%q, sent as %s/%q", m.id, m.room, m.text, s.room, s.text)
		case s.id != "" && s.id != m.id:
			report("message clientId %s stored under id %s, acked as %s", m.clientID, m.id, s.id)
		}
		storedTimes[m.clientID]++
	}
	acked := 0
	for _, s := range sent {
		n := storedTimes[s.clientID]
		if s.id != "" {
			acked++
			if n != 1 {
				report("acked message %s (clientId %s, room %s) stored %d times, want once", s.id, s.clientID, s.room, n)
			}
		} else if n > 1 {
			report("unacked message clientId %s stored %d times", s.clientID, n)
		}
	}
	if bad > 10 {
		t.Errorf("... and %d more", bad-10)
	}
	t.Logf("store holds %d messages; %d sent, %d acked", len(stored), len(sent), acked)
}

// sqliteMessages reads every message of the rooms from the SQLite store in
// dataDir, through the store's own paging.
func sqliteMessages(t *testing.T, dataDir string, rooms []string) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*procWait)
	defer cancel()
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "aurora.db"))
	if err != nil {
		t.Fatalf("open the sqlite store: %v", err)
	}
	defer st.Close(ctx)
	var out []storedMsg
	for _, room := range rooms {
		after := bus.ID{}
		for more := true; more; {
			var page []store.Message
			page, more, err = st.Messages(ctx, room, store.Page{After: &after, Limit: 1000})
			if err != nil {
				t.Fatalf("messages of %s after %s: %v", room, after, err)
			}
			for _, m := range page {
				out = append(out, storedMsg{room: m.RoomID, id: m.ID.String(), clientID: m.ClientID, text: m.Text})
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return out
}

// mongoMessages reads every message Aurora wrote to the MongoDB database of
// mongoURL with the driver, document by document: a duplicate document
// shows as such, whatever the store's reads would make of it.
func mongoMessages(t *testing.T, mongoURL string) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*procWait)
	defer cancel()
	u, err := url.Parse(mongoURL)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURL))
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Redacted(), err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database(strings.Trim(u.Path, "/")).Collection(mongostore.Messages)
	cur, err := coll.Find(ctx, bson.D{{Key: "msgId", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "roomId", Value: 1}, {Key: "msgId", Value: 1}, {Key: "clientId", Value: 1}, {Key: "text", Value: 1}}))
	if err != nil {
		t.Fatalf("find messages: %v", err)
	}
	var docs []struct {
		RoomID   string `bson:"roomId"`
		MsgID    string `bson:"msgId"`
		ClientID string `bson:"clientId"`
		Text     string `bson:"text"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatalf("read messages: %v", err)
	}
	out := make([]storedMsg, len(docs))
	for i, d := range docs {
		out[i] = storedMsg{room: d.RoomID, id: d.MsgID, clientID: d.ClientID, text: d.Text}
	}
	return out
}
