package proctest_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// TestLifeIngestKilledMidBatch: an ingest process is SIGKILLed holding a
// batch (life events and a message) it read but could not store yet (the
// test holds the SQLite write lock), and the next ingest process stores
// newer events, an edit and a reaction of that very message, before it
// may claim the dead one's batch (ingest.claim_idle). Every acked event
// ends stored once and applied: the edit and reaction that reached the
// store before their message are not lost, and the killed batch's delete,
// edit and reaction are applied on redelivery; the deleted message's
// uploaded file is then gone from the data dir and from its route.
func TestLifeIngestKilledMidBatch(t *testing.T) {
	url, rc := sharedRedis(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := newNodeConfig(dataDir, url)
	cfg.fastIngest()
	// Long enough that the last ingest process reads batch B (new
	// entries) well before batch A may be claimed from the dead one.
	cfg.set("ingest.claim_idle", "10s")
	cfgFile := cfg.writeMigrated(t)
	a := startNode(t, "chat", cfgFile, "chat")
	ing := startNode(t, "ingest-1", cfgFile, "ingest")
	f := &membershipFleet{t: t, cfgFile: cfgFile, a: a, b: a}
	alice := f.register("alice")
	const room = "order"
	if code, body := a.call(t, http.MethodPost, "/api/rooms", alice.token, map[string]any{"name": room}); code != http.StatusCreated {
		t.Fatalf("create %s: %d %v", room, code, body)
	}
	c := &lifeClient{stampedClient: dialStamped(t, a, alice, room, ""), name: "alice"}
	var acked []string
	act := func(frame map[string]any) string {
		t.Helper()
		id := c.act(frame)
		acked = append(acked, id)
		return id
	}
	drained := func(what string) {
		t.Helper()
		var p, lag int64
		if !apptest.Poll(90*time.Second, func() bool { p, lag = groupState(t, rc); return p == 0 && lag == 0 }) {
			t.Fatalf("%s: still %d pending and %d undelivered after 90s", what, p, lag)
		}
	}
	m1 := act(map[string]any{"type": "message", "room": room, "text": "one", "clientId": "m1"})
	// m2 carries a file (the default storage: <data_dir>/attachments); its
	// delete is in the killed batch, and the file must go on redelivery.
	att := upload(t, a, alice, room, "two.png", tinyPNG)
	m2 := act(map[string]any{"type": "message", "room": room, "text": "two", "attachments": []any{map[string]any{"url": att}}, "clientId": "m2"})
	if code := download(t, a, alice, att); code != http.StatusOK {
		t.Fatalf("download %s before the delete: %d", att, code)
	}
	drained("m1 and m2 stored")
	if err := ing.stopWith(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop of ingest-1: %v", err)
	}

	// Batch A waits in the stream with no ingest running: events of the
	// stored messages and a new message.
	e1 := act(map[string]any{"type": "edit", "room": room, "id": m1, "text": "one edited", "clientId": "e1"})
	r1 := act(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍", "on": true, "clientId": "r1"})
	d2 := act(map[string]any{"type": "delete", "room": room, "id": m2, "clientId": "d2"})
	m3 := act(map[string]any{"type": "message", "room": room, "text": "three", "clientId": "m3"})
	batchA := []string{e1, r1, d2, m3}

	// The store's write lock held, ingest-2 starts, reads batch A in one
	// read and blocks storing it: batch A is pending on it when it dies.
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "aurora.db")+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatalf("hold the write lock: %v", err)
	}
	defer func() { _ = lock.Rollback() }()
	ing = startNode(t, "ingest-2", cfgFile, "ingest")
	apptest.Eventually(t, procWait, "ingest-2 to read batch A", func() bool {
		p, lag := groupState(t, rc)
		return p == int64(len(batchA)) && lag == 0
	})
	ing.kill()

	// Batch B: events of m3, which is in the dead batch. ingest-3 reads
	// and stores them at once, seconds before it may claim batch A.
	e3 := act(map[string]any{"type": "edit", "room": room, "id": m3, "text": "three edited", "clientId": "e3"})
	r3 := act(map[string]any{"type": "react", "room": room, "id": m3, "emoji": "🎉", "on": true, "clientId": "r3"})
	// A since recovery now, with no ingest alive and the store holding
	// only m1 and m2: the stream's tail carries the rest, in order.
	replay := func(what string) {
		t.Helper()
		ws := dialWS(t, a.wsURL(alice.token))
		if j := ws.Join(room, m1); j["recovered"] != true {
			t.Fatalf("%s: since %s joined %v, want recovered", what, m1, j)
		}
		want := acked[slices.Index(acked, m1)+1:]
		var got []string
		for len(got) < len(want) {
			fr := ws.Read()
			if id, ok := fr["id"].(string); ok && fr["room"] == room && fr["type"] != "room_event" {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("since replay %s:\n got %v\nwant %v", what, got, want)
		}
	}
	replay("while batches A and B are not stored")
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	ing = startNode(t, "ingest-3", cfgFile, "ingest")
	apptest.Eventually(t, procWait, "ingest-3 to store batch B", func() bool {
		p, lag := groupState(t, rc)
		return p == int64(len(batchA)) && lag == 0
	})
	drained("batch A claimed and stored")
	replay("once everything is stored")
	if err := ing.stopWith(syscall.SIGTERM); err != nil {
		t.Errorf("graceful stop of ingest-3: %v", err)
	}
	t.Logf("batch A %v killed mid-batch, batch B %v stored before it", batchA, []string{e3, r3})

	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	rows, _, err := st.Messages(ctx, room, store.Page{Limit: 100, Life: true, Viewer: alice.id})
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]int{}
	state := map[string]store.Message{}
	for _, m := range rows {
		times[m.ID.String()]++
		state[m.ID.String()] = m
	}
	for _, id := range acked {
		if times[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, times[id])
		}
	}
	want := map[string]struct {
		text      string
		edited    bool
		deleted   bool
		reactions []bus.Reaction
	}{
		m1: {"one edited", true, false, []bus.Reaction{{Emoji: "👍", Count: 1, Me: true}}},
		m2: {"", false, true, nil},
		m3: {"three edited", true, false, []bus.Reaction{{Emoji: "🎉", Count: 1, Me: true}}},
	}
	for id, w := range want {
		m := state[id]
		if m.Text != w.text || !m.Edited.IsZero() != w.edited || m.Deleted != w.deleted || !slices.Equal(m.Reactions, w.reactions) {
			t.Errorf("%s stored as text %q edited %v deleted %v reactions %+v; want %+v", id, m.Text, m.Edited, m.Deleted, m.Reactions, w)
		}
	}
	// The deleted message's file is gone from storage and from the route.
	if code := download(t, a, alice, att); code != http.StatusNotFound {
		t.Errorf("download %s after its message was deleted: %d, want 404", att, code)
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, "attachments", "*")); len(files) != 0 {
		t.Errorf("files left in the attachments directory: %v", files)
	}
	// Search agrees: the deleted text is gone from the index, the edits
	// are in it.
	for q, wantIDs := range map[string][]string{"two": nil, "edited": {m3, m1}} {
		found, _, err := st.Search(ctx, store.SearchQuery{Terms: []string{q}, Rooms: []string{room}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range found {
			ids = append(ids, m.ID.String())
		}
		if !slices.Equal(ids, wantIDs) {
			t.Errorf("search %q = %v, want %v", q, ids, wantIDs)
		}
	}
}

// tinyPNG is a valid 1x1 PNG.
var tinyPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// upload posts content to room's attachments as m and returns its url.
func upload(t *testing.T, n *node, m member, room, filename string, content []byte) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.base+"/api/rooms/"+room+"/attachments?filename="+filename, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Attachment bus.Attachment `json:"attachment"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Attachment.URL == "" {
		t.Fatalf("upload %s: %d %+v %v", filename, resp.StatusCode, out, err)
	}
	return out.Attachment.URL
}

// download fetches an attachment url as m and returns the status.
func download(t *testing.T, n *node, m member, url string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.base+url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}
