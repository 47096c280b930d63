package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/modules/chat/history"
)

const (
	room    = "general"
	other   = "random"
	pattern = "GET /api/rooms/{room}/messages"
	// base is the millisecond part of the first test message id.
	base = 1_700_000_000_000
)

// storeKind opens a fresh, migrated store of one backend for a test.
type storeKind struct {
	name string
	open func(t *testing.T) store.Store
}

func storeKinds() []storeKind {
	return []storeKind{
		{"sqlite", openSQLite},
		{"mongodb", openMongo},
	}
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, t.TempDir()+"/aurora.db")
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate sqlite store: %v", err)
	}
	return s
}

func openMongo(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := mongostore.Open(ctx, storetest.MongoURL(t), "aurora_test")
	if err != nil {
		t.Fatalf("open mongodb store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate mongodb store: %v", err)
	}
	return s
}

// env is a history service over a real store and Redis, served over HTTP.
type env struct {
	t   *testing.T
	st  store.Store
	rc  rueidis.Client
	svc *history.Service
	url string
}

// testToken is what the fake verify accepts.
const testToken = "good-token"

// fakeVerify accepts "Bearer good-token" only.
func fakeVerify(r *http.Request) (token.Claims, error) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		return token.Claims{}, token.ErrInvalid
	}
	return token.Claims{UserID: "u1", Username: "alice"}, nil
}

func newEnv(t *testing.T, open func(*testing.T) store.Store) *env {
	t.Helper()
	e := &env{t: t, st: open(t), rc: apptest.RedisClient(t, apptest.RedisURL(t))}
	e.svc = history.New(e.st, e.rc, slog.New(slog.DiscardHandler))
	e.url = serve(t, e.svc.Handler(fakeVerify))
	return e
}

// serve mounts h on its production pattern and returns the server's URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// id is the i-th test message id. Two messages share each millisecond, with
// seqs 9 and 11, so ordering must be numeric ("-11" after "-9"), not textual.
func id(i int) bus.ID {
	return bus.ID{Ms: base + uint64(i/2), Seq: uint64(9 + 2*(i%2))}
}

// num is the inverse of id.
func num(x bus.ID) int { return 2*int(x.Ms-base) + int(x.Seq-9)/2 }

// entry is the i-th message of a room as the chat role writes it.
func entry(r string, i int) bus.Entry {
	return bus.Entry{
		ID: id(i), RoomID: r, UserID: "u" + strconv.Itoa(i%3),
		Username: "user" + strconv.Itoa(i%3), Text: fmt.Sprintf("%s message %d", r, i),
		TS: int64(id(i).Ms), ClientID: "c-" + strconv.Itoa(i),
	}
}

// xadd appends entries to the stream with their own ids.
func (e *env) xadd(entries ...bus.Entry) {
	e.t.Helper()
	for _, en := range entries {
		apptest.XAdd(e.t, e.rc, bus.Stream, en.ID.String(), en.Fields()...)
	}
}

// xaddRaw appends an entry with arbitrary fields.
func (e *env) xaddRaw(id string, fv ...string) {
	e.t.Helper()
	apptest.XAdd(e.t, e.rc, bus.Stream, id, fv...)
}

// store inserts messages straight into the store.
func (e *env) store(entries ...bus.Entry) {
	e.t.Helper()
	if len(entries) == 0 {
		return
	}
	msgs := make([]store.Message, len(entries))
	for i, en := range entries {
		msgs[i] = store.MessageFromEntry(en, time.Now())
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		res, err := e.st.InsertMessages(context.Background(), msgs[:n])
		if err != nil || len(res.Rejected) > 0 {
			e.t.Fatalf("insert messages: %v %v", err, res.Rejected)
		}
		msgs = msgs[n:]
	}
}

// deliver does what an ingest worker does with the next n entries of the
// stream: reads them with the consumer group, and, when ack, stores them
// and acknowledges them. Without ack they stay pending, not stored.
func (e *env) deliver(n int, ack bool) {
	e.t.Helper()
	if err := bus.EnsureGroup(context.Background(), e.rc, bus.Stream); err != nil {
		e.t.Fatal(err)
	}
	for n > 0 {
		xs := apptest.ReadGroup(e.t, e.rc, bus.Group, "test", int64(min(n, 500)))
		if len(xs) == 0 {
			e.t.Fatalf("deliver: stream has %d entries fewer than asked", n)
		}
		n -= len(xs)
		if !ack {
			continue
		}
		var entries []bus.Entry
		ids := make([]string, 0, len(xs))
		for _, x := range xs {
			ids = append(ids, x.ID)
			if en, err := bus.DecodeForStore(x); err == nil {
				entries = append(entries, en)
			}
		}
		e.store(entries...)
		apptest.Ack(e.t, e.rc, bus.Group, ids...)
	}
}

// noise appends n entries of another room, all in millisecond ms.
func (e *env) noise(ms uint64, n int) {
	e.t.Helper()
	for i := 0; i < n; i += 500 {
		cmds := make(rueidis.Commands, 0, 500)
		for j := i; j < i+500 && j < n; j++ {
			cmds = append(cmds, e.rc.B().Xadd().Key(bus.Stream).Id(bus.ID{Ms: ms, Seq: uint64(j)}.String()).
				FieldValue().FieldValue(bus.FieldRoomID, other).FieldValue(bus.FieldUserID, "x").
				FieldValue(bus.FieldText, "noise").FieldValue(bus.FieldUsername, "x").Build())
		}
		for _, r := range e.rc.DoMulti(context.Background(), cmds...) {
			if err := r.Error(); err != nil {
				e.t.Fatalf("xadd noise: %v", err)
			}
		}
	}
}

// trimBefore drops the stream entries before id, as the ingest role's trim
// does with acknowledged ones.
func (e *env) trimBefore(id bus.ID) {
	e.t.Helper()
	if err := e.rc.Do(context.Background(), e.rc.B().Xtrim().Key(bus.Stream).Minid().Threshold(id.String()).Build()).Error(); err != nil {
		e.t.Fatalf("xtrim: %v", err)
	}
}

// pageBody is the history API's answer.
type pageBody struct {
	Messages []json.RawMessage `json:"messages"`
	HasMore  bool              `json:"hasMore"`
}

// get requests path (relative to the server) with the test token.
func (e *env) get(path string) (int, []byte) {
	e.t.Helper()
	return getWith(e.t, e.url+path, "Bearer "+testToken)
}

func getWith(t *testing.T, url, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	return resp.StatusCode, body
}

// page requests a page and decodes it, failing on anything but 200.
func (e *env) page(query string) ([]bus.MessageFrame, bool) {
	e.t.Helper()
	code, body := e.get("/api/rooms/" + room + "/messages" + query)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", query, code, body)
	}
	var p pageBody
	if err := json.Unmarshal(body, &p); err != nil {
		e.t.Fatalf("GET %s: decode %s: %v", query, body, err)
	}
	if p.Messages == nil {
		e.t.Fatalf("GET %s: messages is not an array: %s", query, body)
	}
	frames := make([]bus.MessageFrame, len(p.Messages))
	for i, raw := range p.Messages {
		if err := json.Unmarshal(raw, &frames[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	return frames, p.HasMore
}

// ids lists the message numbers (as given to id) of frames.
func ids(t *testing.T, frames []bus.MessageFrame) []int {
	t.Helper()
	out := make([]int, len(frames))
	for i, f := range frames {
		pid, err := bus.ParseID(f.ID)
		if err != nil {
			t.Fatalf("frame id %q: %v", f.ID, err)
		}
		out[i] = num(pid)
	}
	return out
}

// seq returns from..to (descending when from > to).
func seq(from, to int) []int {
	var out []int
	step := 1
	if from > to {
		step = -1
	}
	for i := from; ; i += step {
		out = append(out, i)
		if i == to {
			return out
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkIDs(t *testing.T, what string, frames []bus.MessageFrame, want []int) {
	t.Helper()
	if got := ids(t, frames); !equal(got, want) {
		t.Fatalf("%s: got ids %v, want %v", what, got, want)
	}
}

// history builds a room of n messages: the first stored ones are in the store
// and acknowledged (the oldest of them trimmed from the stream, the rest
// still there too), the others only in the stream; another room's messages
// are interleaved throughout.
func (e *env) history(n, stored, trimmed int) {
	e.t.Helper()
	for i := 1; i <= n; i++ {
		e.xadd(entry(room, i), bus.Entry{
			ID: bus.ID{Ms: id(i).Ms, Seq: id(i).Seq + 1}, RoomID: other, UserID: "x", Username: "x", Text: "noise",
		})
	}
	e.deliver(2*stored, true)
	if trimmed > 0 {
		e.trimBefore(id(trimmed + 1))
	}
}

func TestPaging(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.open)
			// 1..150 ingested (1..100 gone from the stream), 151..250 only in
			// the stream.
			e.history(250, 150, 100)

			frames, more := e.page("")
			checkIDs(t, "newest page", frames, seq(250, 201))
			if !more {
				t.Error("newest page: hasMore false, want true")
			}
			frames, more = e.page("?before=" + id(171).String() + "&limit=50")
			checkIDs(t, "page across store and stream", frames, seq(170, 121))
			if !more {
				t.Error("hasMore false, want true")
			}
			frames, more = e.page("?before=" + id(21).String())
			checkIDs(t, "last page", frames, seq(20, 1))
			if more {
				t.Error("last page: hasMore true")
			}
			frames, more = e.page("?after=" + id(120).String() + "&limit=60")
			checkIDs(t, "after across store and stream", frames, seq(121, 180))
			if !more {
				t.Error("after: hasMore false, want true")
			}
			frames, more = e.page("?after=" + id(200).String() + "&limit=50")
			checkIDs(t, "after to the end", frames, seq(201, 250))
			if more {
				t.Error("after to the end: hasMore true")
			}
			frames, more = e.page("?after=" + id(250).String())
			checkIDs(t, "after the newest", frames, nil)
			if more {
				t.Error("after the newest: hasMore true")
			}
			frames, more = e.page("?before=" + id(1).String())
			checkIDs(t, "before the oldest", frames, nil)
			if more {
				t.Error("before the oldest: hasMore true")
			}
			frames, _ = e.page("?before=0-0")
			checkIDs(t, "before 0-0", frames, nil)

			// Clamps and empty parameters.
			for q, want := range map[string]int{
				"?limit=0": 1, "?limit=-7": 1, "?limit=1": 1, "?limit=1000": 200,
				"?limit=99999999999999999999999": 200, "?limit=-99999999999999999999999": 1,
				"?limit=": 50, "?before=&after=": 50,
			} {
				frames, more := e.page(q)
				if len(frames) != want || !more {
					t.Errorf("%s: %d messages hasMore %v, want %d and true", q, len(frames), more, want)
				}
			}
		})
	}
}

// TestWalk pages through a whole room both ways with a small limit, so every
// page boundary meets the store/stream boundary somewhere.
func TestWalk(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.history(60, 33, 20)
	e.deliver(6, false) // 34..36 delivered, pending, not stored

	for _, limit := range []int{1, 7, 33, 60} {
		var got []int
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 70 {
				t.Fatalf("limit %d: no end after %d pages", limit, pages)
			}
			q := "?limit=" + strconv.Itoa(limit) + cursor
			frames, more := e.page(q)
			if len(frames) > limit {
				t.Fatalf("%s: %d messages", q, len(frames))
			}
			got = append(got, ids(t, frames)...)
			if !more {
				break
			}
			cursor = "&before=" + frames[len(frames)-1].ID
		}
		if !equal(got, seq(60, 1)) {
			t.Fatalf("limit %d backwards: got %v", limit, got)
		}

		got, cursor = nil, "&after=0-0"
		for pages := 0; ; pages++ {
			if pages > 70 {
				t.Fatalf("limit %d: no end after %d pages", limit, pages)
			}
			frames, more := e.page("?limit=" + strconv.Itoa(limit) + cursor)
			got = append(got, ids(t, frames)...)
			if !more {
				break
			}
			cursor = "&after=" + frames[len(frames)-1].ID
		}
		if !equal(got, seq(1, 60)) {
			t.Fatalf("limit %d forwards: got %v", limit, got)
		}
	}
}

func TestFrames(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.open)
			e.history(2, 1, 0)
			// An AuroraChat entry: no ts, no clientId.
			e.xaddRaw(id(3).String(), bus.FieldRoomID, room, bus.FieldUserID, "u9",
				bus.FieldText, "from aurorachat", bus.FieldUsername, "legacy")
			// Entries of this room that do not decode are skipped.
			e.xaddRaw(id(4).String(), bus.FieldRoomID, room, bus.FieldText, "no user")
			e.xaddRaw(id(5).String(), bus.FieldRoomID, room, bus.FieldUserID, "u1",
				bus.FieldText, "bad ts", bus.FieldUsername, "x", bus.FieldTS, "soon")

			code, body := e.get("/api/rooms/" + room + "/messages?after=0-0")
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var p struct {
				Messages []map[string]any `json:"messages"`
				HasMore  bool             `json:"hasMore"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Messages) != 3 {
				t.Fatalf("got %d messages, want 3: %s", len(p.Messages), body)
			}
			// Stored and stream-only messages read exactly as live frames.
			for i, n := range []int{1, 2} {
				want, _ := json.Marshal(entry(room, n).Frame())
				got, _ := json.Marshal(p.Messages[i])
				var w map[string]any
				_ = json.Unmarshal(want, &w)
				wantNorm, _ := json.Marshal(w)
				if string(got) != string(wantNorm) {
					t.Errorf("message %d:\n got %s\nwant %s", n, got, wantNorm)
				}
			}
			legacy := p.Messages[2]
			if _, ok := legacy["clientId"]; ok {
				t.Errorf("aurorachat entry has clientId: %v", legacy)
			}
			want := map[string]any{
				"type": "message", "id": id(3).String(), "room": room, "user": "legacy",
				"userId": "u9", "text": "from aurorachat", "ts": float64(id(3).Ms),
			}
			for k, v := range want {
				if legacy[k] != v {
					t.Errorf("aurorachat entry %s = %v, want %v", k, legacy[k], v)
				}
			}
			if len(legacy) != len(want) {
				t.Errorf("aurorachat entry has fields %v", legacy)
			}
		})
	}
}

// TestReadYourWrites: nothing is ingested (no ingest ever ran, so there is
// no consumer group), yet every acknowledged message is served.
func TestReadYourWrites(t *testing.T) {
	e := newEnv(t, openSQLite)
	frames, more := e.page("")
	checkIDs(t, "empty room", frames, nil)
	if more {
		t.Error("empty room: hasMore true")
	}
	e.history(30, 0, 0)
	frames, more = e.page("?limit=10")
	checkIDs(t, "newest", frames, seq(30, 21))
	if !more {
		t.Error("hasMore false")
	}
	frames, more = e.page("?after=" + id(25).String())
	checkIDs(t, "after", frames, seq(26, 30))
	if more {
		t.Error("hasMore true")
	}
	// The ingest group exists but is stopped behind: delivered and pending
	// entries are as unstored as undelivered ones.
	e.deliver(10, false)
	frames, _ = e.page("?after=0-0&limit=200")
	checkIDs(t, "with a stalled group", frames, seq(1, 30))
}

// TestOverlap: ids present in both the store and the stream are served once,
// in numeric id order, whatever the state of the ingest group.
func TestOverlap(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.open)
			e.history(40, 0, 0)
			// No group at all, but some stored already (the whole stream is
			// scanned then): 11..25 in both.
			var both []bus.Entry
			for i := 11; i <= 25; i++ {
				both = append(both, entry(room, i))
			}
			e.store(both...)
			frames, more := e.page("?limit=200")
			checkIDs(t, "no group", frames, seq(40, 1))
			if more {
				t.Error("no group: hasMore true")
			}
			frames, more = e.page("?limit=40")
			checkIDs(t, "exactly limit", frames, seq(40, 1))
			if more {
				t.Error("exactly limit: hasMore true")
			}
			frames, more = e.page("?limit=39")
			checkIDs(t, "one short", frames, seq(40, 2))
			if !more {
				t.Error("one short: hasMore false")
			}

			// Now a group that acknowledged 1..10 (both rooms' entries) and
			// holds 11..15 pending: stored messages at and after the
			// group's position are in both sources.
			e.deliver(20, true)
			e.deliver(10, false)
			frames, _ = e.page("?after=0-0&limit=200")
			checkIDs(t, "with a group", frames, seq(1, 40))
			frames, _ = e.page("?before=" + id(31).String() + "&limit=12")
			checkIDs(t, "before", frames, seq(30, 19))
		})
	}
}

// TestTruncatedScan: when ingest is so far behind that the stream read hits
// its cap, the page stops where the read stopped instead of skipping the
// unread part.
func TestTruncatedScan(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.xadd(entry(room, 1))
	e.deliver(1, true)
	e.xadd(entry(room, 2)) // not ingested, deep in the backlog
	// A backlog of other rooms' messages beyond the read cap of a limit-5
	// page (10*6+1000 entries).
	e.noise(base+500, 1100)
	e.xadd(entry(room, 1010))

	frames, more := e.page("?limit=5")
	checkIDs(t, "newest", frames, []int{1010})
	if !more {
		t.Error("hasMore false after a truncated read")
	}
	frames, more = e.page("?after=0-0&limit=5")
	checkIDs(t, "oldest", frames, []int{1, 2})
	if !more {
		t.Error("hasMore false after a truncated read")
	}
	// Once ingest catches up, everything is there.
	e.deliver(1102, true)
	frames, more = e.page("?limit=5")
	checkIDs(t, "after ingest", frames, []int{1010, 2, 1})
	if more {
		t.Error("hasMore true")
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, openSQLite)
	long := strings.Repeat("a", 65)
	for _, c := range []struct{ path, want string }{
		{"/api/rooms/General/messages", "room"},
		{"/api/rooms/" + long + "/messages", "room"},
		{"/api/rooms/a.b/messages", "room"},
		{"/api/rooms/a%20b/messages", "room"},
		{"/api/rooms/r/messages?limit=ten", "limit"},
		{"/api/rooms/r/messages?limit=1.5", "limit"},
		// Digits past int64 and then junk: was clamped to 200, as a
		// plain overflow is (found by FuzzParseQuery,
		// testdata/fuzz/FuzzParseQuery/limit-overflow-then-junk).
		{"/api/rooms/r/messages?limit=18700000000000000000A", "limit"},
		{"/api/rooms/r/messages?before=abc", "before"},
		{"/api/rooms/r/messages?before=1700000000000", "before"},
		{"/api/rooms/r/messages?before=-1-0", "before"},
		{"/api/rooms/r/messages?after=1-x", "after"},
		{"/api/rooms/r/messages?after=1-0-0", "after"},
		{"/api/rooms/r/messages?before=1-0&after=0-0", "before and after"},
		{"/api/rooms/r/messages?limit=%zz", "query"},
	} {
		code, body := e.get(c.path)
		var eb struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &eb); err != nil || code != http.StatusBadRequest ||
			!strings.Contains(eb.Error, c.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.path, code, body, c.want)
		}
	}
	// Just inside the limits.
	for _, p := range []string{"/api/rooms/" + long[1:] + "/messages", "/api/rooms/a-b_9/messages"} {
		if code, body := e.get(p); code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, openSQLite)
	for _, auth := range []string{"", "Bearer nope", "Basic " + testToken, testToken} {
		code, body := getWith(t, e.url+"/api/rooms/"+room+"/messages", auth)
		if code != http.StatusUnauthorized || !strings.Contains(string(body), `"error"`) {
			t.Errorf("auth %q: %d %s, want 401 with an error", auth, code, body)
		}
	}
}

// TestRealTokens runs the handler behind a verify built on a real issuer,
// the way the chat role wires it.
func TestRealTokens(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.history(3, 1, 0)
	iss := token.NewIssuer([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	verify := func(r *http.Request) (token.Claims, error) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return token.Claims{}, token.ErrInvalid
		}
		return iss.Verify(raw)
	}
	url := serve(t, e.svc.Handler(verify)) + "/api/rooms/" + room + "/messages"

	good, _, err := iss.Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := getWith(t, url, "Bearer "+good); code != http.StatusOK || !strings.Contains(string(body), id(3).String()) {
		t.Errorf("valid token: %d %s", code, body)
	}
	forged, _, err := token.NewIssuer([]byte("another secret, another secret!!"), time.Hour).Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := token.NewIssuer([]byte("0123456789abcdef0123456789abcdef"), -time.Minute).Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"forged": forged, "expired": expired} {
		if code, body := getWith(t, url, "Bearer "+tok); code != http.StatusUnauthorized {
			t.Errorf("%s token: %d %s", name, code, body)
		}
	}
	if _, body := getWith(t, url, "Bearer "+expired); !strings.Contains(string(body), "expired") {
		t.Errorf("expired token: %s does not say so", body)
	}
}

// TestUnavailable: a failing store or Redis is 503, never 500.
func TestUnavailable(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		e := newEnv(t, openSQLite)
		e.history(3, 1, 0)
		if err := e.st.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkUnavailable(t, e.url)
		if _, _, err := e.svc.Since(context.Background(), room, bus.ID{}, "u1", false, history.MaxSince, 1<<30); err == nil {
			t.Error("Since with a closed store: no error")
		}
	})
	t.Run("redis", func(t *testing.T) {
		m, err := embeddedredis.Start("127.0.0.1:0", embeddedredis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rc := apptest.RedisClient(t, m.URL())
		svc := history.New(openSQLite(t), rc, nil)
		svc.Timeout = 500 * time.Millisecond
		url := serve(t, svc.Handler(fakeVerify))
		m.Close()
		checkUnavailable(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, _, err := svc.Since(ctx, room, bus.ID{}, "u1", false, history.MaxSince, 1<<30); err == nil {
			t.Error("Since without Redis: no error")
		}
	})
}

func checkUnavailable(t *testing.T, url string) {
	t.Helper()
	code, body := getWith(t, url+"/api/rooms/"+room+"/messages", "Bearer "+testToken)
	if code != http.StatusServiceUnavailable || strings.TrimSpace(string(body)) != `{"error":"service unavailable"}` {
		t.Errorf("got %d %s, want 503 service unavailable", code, body)
	}
}

// since calls Since with the largest limit and no byte bound to speak of,
// and decodes the frames.
func (e *env) since(from bus.ID) ([]bus.MessageFrame, bool) {
	e.t.Helper()
	return e.sinceN(from, history.MaxSince, 1<<30)
}

// sinceN calls Since with limit and maxBytes and decodes the frames,
// checking each frame's id is the one Since gives with it.
func (e *env) sinceN(from bus.ID, limit, maxBytes int) ([]bus.MessageFrame, bool) {
	e.t.Helper()
	raw, complete, err := e.svc.Since(context.Background(), room, from, "u1", false, limit, maxBytes)
	if err != nil {
		e.t.Fatalf("Since(%s, %d, %d): %v", from, limit, maxBytes, err)
	}
	frames := make([]bus.MessageFrame, len(raw))
	for i, f := range raw {
		if err := json.Unmarshal(f.JSON, &frames[i]); err != nil {
			e.t.Fatalf("frame %s: %v", f.JSON, err)
		}
		if frames[i].Type != "message" || frames[i].Room != room {
			e.t.Fatalf("frame %s is not a message of %s", f.JSON, room)
		}
		if frames[i].ID != f.ID.String() {
			e.t.Fatalf("frame %s given with id %s", f.JSON, f.ID)
		}
	}
	return frames, complete
}

func TestSince(t *testing.T) {
	e := newEnv(t, openSQLite)
	// 500 messages: 1..300 ingested (1..250 trimmed from the stream),
	// 301..500 only in the stream.
	e.history(500, 300, 250)

	frames, complete := e.since(bus.ID{})
	checkIDs(t, "since 0-0", frames, seq(1, 500))
	if !complete {
		t.Error("since 0-0: not complete")
	}
	frames, complete = e.since(id(123))
	checkIDs(t, "since a stored id", frames, seq(124, 500))
	if !complete {
		t.Error("since a stored id: not complete")
	}
	frames, complete = e.since(id(420))
	checkIDs(t, "since a stream id", frames, seq(421, 500))
	if !complete {
		t.Error("since a stream id: not complete")
	}
	frames, complete = e.since(id(500))
	checkIDs(t, "since the newest", frames, nil)
	if !complete {
		t.Error("since the newest: not complete")
	}
	// Byte-exact live frames.
	raw, _, err := e.svc.Since(context.Background(), room, id(499), "u1", false, history.MaxSince, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(entry(room, 500).Frame())
	if len(raw) != 1 || string(raw[0].JSON) != string(want) {
		t.Errorf("frames %v, want %s", raw, want)
	}
}

// TestSinceLimit: a limit below MaxSince replays the oldest limit messages,
// and maxBytes the oldest whose frames fit in it, complete only when no
// more lie beyond them, from the store and the stream alike; a limit or
// maxBytes below 1 reads nothing and vouches for nothing.
func TestSinceLimit(t *testing.T) {
	e := newEnv(t, openSQLite)
	// 1..300 ingested (1..250 trimmed from the stream), 301..500 only in
	// the stream.
	e.history(500, 300, 250)
	cases := []struct {
		from, limit int
		want        []int
		complete    bool
	}{
		{0, 10, seq(1, 10), false},       // from the store
		{295, 10, seq(296, 305), false},  // across store and stream
		{400, 10, seq(401, 410), false},  // from the stream
		{490, 10, seq(491, 500), true},   // exactly what is left
		{489, 10, seq(490, 499), false},  // one more than the limit
		{0, 500, seq(1, 500), true},      // the whole room
		{0, 5000, seq(1, 500), true},     // above MaxSince: MaxSince
		{123, 300, seq(124, 423), false}, // more than a store page
		{200, 300, seq(201, 500), true},  // exactly, over a store page
		{500, 1, nil, true},              // nothing missed
		{100, 0, nil, false},             // no room: nothing, not vouched
		{100, -1, nil, false},
	}
	for _, tc := range cases {
		from := bus.ID{}
		if tc.from > 0 {
			from = id(tc.from)
		}
		frames, complete := e.sinceN(from, tc.limit, 1<<30)
		what := fmt.Sprintf("since %d limit %d", tc.from, tc.limit)
		checkIDs(t, what, frames, tc.want)
		if complete != tc.complete {
			t.Errorf("%s: complete %v, want %v", what, complete, tc.complete)
		}
	}

	// maxBytes bounds the encoded frames: the oldest that fit, not complete.
	size := func(from, to int) int {
		n := 0
		for i := from; i <= to; i++ {
			b, _ := json.Marshal(entry(room, i).Frame())
			n += len(b)
		}
		return n
	}
	bytesCases := []struct {
		from, maxBytes int
		want           []int
		complete       bool
	}{
		{490, size(491, 500), seq(491, 500), true},      // exactly what is left
		{490, size(491, 500) - 1, seq(491, 499), false}, // one byte short
		{400, size(401, 403), seq(401, 403), false},
		{400, size(401, 401) - 1, nil, false}, // not even one
		{400, 0, nil, false},
		{400, -1, nil, false},
	}
	for _, tc := range bytesCases {
		frames, complete := e.sinceN(id(tc.from), history.MaxSince, tc.maxBytes)
		what := fmt.Sprintf("since %d maxBytes %d", tc.from, tc.maxBytes)
		checkIDs(t, what, frames, tc.want)
		if complete != tc.complete {
			t.Errorf("%s: complete %v, want %v", what, complete, tc.complete)
		}
	}
}

// TestSinceCap: more than MaxSince messages after since replays the oldest
// MaxSince and says it is not complete.
func TestSinceCap(t *testing.T) {
	e := newEnv(t, openSQLite)
	n := history.MaxSince + 100
	e.history(n, 600, 0)

	frames, complete := e.since(bus.ID{})
	checkIDs(t, "over the cap", frames, seq(1, history.MaxSince))
	if complete {
		t.Error("over the cap: complete")
	}
	frames, complete = e.since(id(100))
	checkIDs(t, "exactly the cap", frames, seq(101, n))
	if !complete {
		t.Error("exactly the cap: not complete")
	}
	frames, complete = e.since(id(99))
	checkIDs(t, "one over the cap", frames, seq(100, n-1))
	if complete {
		t.Error("one over the cap: complete")
	}
}

// TestSinceCoverage: the replay is not vouched for when neither the stream
// nor the store reaches back to since.
func TestSinceCoverage(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.history(10, 0, 0)
	// The stream still holds everything: since at or after its oldest entry.
	frames, complete := e.since(id(3))
	checkIDs(t, "stream covers", frames, seq(4, 10))
	if !complete {
		t.Error("stream covers: not complete")
	}
	// Entries 1..5 lost without ever being stored (a Redis without
	// persistence, a hand trim): from 2 the replay has a hole it cannot see.
	e.trimBefore(id(6))
	frames, complete = e.since(id(2))
	checkIDs(t, "lost entries", frames, seq(6, 10))
	if complete {
		t.Error("lost entries: complete")
	}
	// Since before the oldest entry but the store reaches back to it.
	e.store(entry(room, 1))
	_, complete = e.since(id(2))
	if !complete {
		t.Error("store reaches since: not complete")
	}
	// A client that saw nothing gets the whole room, vouched.
	_, complete = e.since(bus.ID{})
	if !complete {
		t.Error("since 0-0: not complete")
	}
}

// TestSinceTruncated: a backlog beyond the read cap ends the replay where the
// read stopped, without a hole, not complete.
func TestSinceTruncated(t *testing.T) {
	e := newEnv(t, openSQLite)
	e.xadd(entry(room, 1))
	// Beyond the read cap of Since (10*1001+1000 entries).
	e.noise(base+500, 11100)
	e.xadd(entry(room, 1010))
	// Stored already but beyond the read: must not be replayed before 1010.
	e.store(entry(room, 1011))
	e.xadd(entry(room, 1011))

	frames, complete := e.since(bus.ID{})
	checkIDs(t, "truncated", frames, []int{1})
	if complete {
		t.Error("truncated read: complete")
	}
}
