package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// seedRoom puts n messages of the longest text into room's stream, as the
// chat role writes them, and returns their ids oldest first. "<" is escaped
// to six bytes in a frame: each replayed frame is about 24 KB.
func seedRoom(t *testing.T, s *server, room string, n int) []string {
	t.Helper()
	text := strings.Repeat("<", s.cfg.Chat.MaxTextLength)
	r := s.redis
	cmds := make(rueidis.Commands, n)
	for i := range cmds {
		args := append([]string{"XADD", bus.Stream, "*"},
			bus.Entry{RoomID: room, UserID: "u9", Username: "seed", Text: text, ClientID: fmt.Sprint("seed", i)}.Fields()...)
		cmds[i] = r.B().Arbitrary(args...).Build()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ids := make([]string, n)
	for i, res := range r.DoMulti(ctx, cmds...) {
		id, err := res.ToString()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// heapInUse is the heap in use after a collection: what is retained.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestReplayOfAClientThatNeverReadsIsBounded: a client that never reads
// sends 40 joins with since on a room with 1000 long messages, then leaves
// and rejoins it 10 times. Before, each join queued up to 1000 replayed
// frames outside the queue limit: 40 joins took the server from 46 MB to
// 896 MB (issue #11, item 4). Now the rejoins of a room joined already
// replay nothing, and the connection's replays, queued or being written,
// stay within its replay budget (replayMaxBytes), so the server keeps a few
// MB for the connection whatever it asks for.
func TestReplayOfAClientThatNeverReadsIsBounded(t *testing.T) {
	s := startChat(t, chatConfig(t))
	ids := seedRoom(t, s, "dev", 1000)
	observer := s.dial("u2", "bob")
	attacker := s.dialRaw("/ws?token="+url.QueryEscape(s.token("u1", "mallory")), nil) // never reads, until the end

	before := heapInUse()
	var peak uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()

	// 60 join and leave frames: the join rate's burst, so each is handled.
	const joins, cycles = 40, 10
	join := []byte(`{"type":"join","room":"dev","since":"0-0"}`)
	for i := 0; i < joins; i++ {
		attacker.sendRaw(join)
	}
	for i := 0; i < cycles; i++ {
		attacker.sendRaw([]byte(`{"type":"leave","room":"dev"}`))
		attacker.sendRaw(join)
	}
	// The attacker's frames are handled in order: once the observer sees
	// its typing frame, every join before it has been.
	attacker.sendRaw([]byte(`{"type":"typing","room":"general","isTyping":true}`))
	if f := observer.next("typing"); f["userId"] != "u1" {
		t.Fatalf("observer got %v", f)
	}
	close(stop)
	sampler.Wait()
	// What the connection holds: its queue, and the replayed frames its
	// writer took and is stuck writing (the socket's buffers are full).
	for _, c := range connsOf(gatewayOf(t, s), "u1") {
		entries, replayed, queued := c.q.usage()
		t.Logf("queue: %d entries, %d bytes queued, %d bytes of replays queued or being written", entries, queued, replayed)
		if entries > s.cfg.Chat.SendQueue || replayed > replayMaxBytes || queued > replayed+64<<10 {
			t.Errorf("queue holds %d entries and %d bytes, %d of replays: want at most %d entries and %d bytes of replays",
				entries, queued, replayed, s.cfg.Chat.SendQueue, replayMaxBytes)
		}
	}
	retained := int64(heapInUse()) - int64(before)
	t.Logf("heap in use: %d MB retained, peak %d MB above the start", retained>>20, (int64(peak)-int64(before))>>20)
	if retained > 50<<20 {
		t.Fatalf("the server retained %d MB for one client that never reads, want < 50 MB", retained>>20)
	}

	// What the attacker gets once it reads: every answer, and replays
	// that each fit the queue.
	attacker.sendRaw([]byte(`{"type":"ping"}`))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	type replay struct {
		recovered any
		frames    int
		bytes     int
	}
	var replays []*replay
	left := 0
	for done := false; !done; {
		_, b, err := attacker.ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (close %v)", err, websocket.CloseStatus(err))
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		switch f["type"] {
		case "welcome", "presence":
		case "joined":
			replays = append(replays, &replay{recovered: f["recovered"]})
		case "left":
			left++
		case "message":
			if len(replays) == 0 {
				t.Fatalf("message %v before any joined", f["id"])
			}
			r := replays[len(replays)-1]
			if f["room"] != "dev" || f["id"] != ids[r.frames] {
				t.Fatalf("replay frame %d is %v, want %s", r.frames, f["id"], ids[r.frames])
			}
			r.frames++
			r.bytes += len(b)
		case "pong":
			done = true
		default:
			t.Fatalf("unexpected %s", b)
		}
	}
	if len(replays) != joins+cycles || left != cycles {
		t.Fatalf("%d joined and %d left answers, want %d and %d", len(replays), left, joins+cycles, cycles)
	}
	for i, r := range replays {
		if r.frames > replayMaxFrames || r.bytes > replayMaxBytes {
			t.Errorf("join %d replayed %d frames, %d bytes: over %d frames or %d bytes", i, r.frames, r.bytes, replayMaxFrames, replayMaxBytes)
		}
		// 1000 messages never fit: no replay is complete.
		if r.recovered != false {
			t.Errorf("join %d: recovered %v, want false", i, r.recovered)
		}
		if i > 0 && i < joins && r.frames > 0 {
			t.Errorf("rejoin %d of a room joined already replayed %d frames", i, r.frames)
		}
	}
	if replays[0].frames == 0 {
		t.Error("the first join replayed nothing")
	}
	var got []int
	for _, r := range replays[joins:] {
		got = append(got, r.frames)
	}
	t.Logf("first replay: %d frames, %d KB; after each leave: %v frames", replays[0].frames, replays[0].bytes>>10, got)
}

// connsOf returns the gateway's connections of a user.
func connsOf(g *gateway, userID string) []*member {
	g.hub.mu.RLock()
	defer g.hub.mu.RUnlock()
	var out []*member
	for c := range g.hub.conns {
		if c.userID == userID {
			out = append(out, c)
		}
	}
	return out
}

// usage reads what the queue holds: its entries, the bytes of its
// replayed frames queued or being written (the replay budget's count), and
// the bytes it holds, counted from the items.
func (q *sendQueue) usage() (entries, replayed, queued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range q.items {
		queued += len(it.frame)
		for _, f := range it.frames {
			queued += len(f)
		}
	}
	return len(q.items), q.replayBytes, queued
}

// TestJoinsAreRateLimited: a connection's join and leave frames draw on a
// bucket of chat.max_rooms_per_conn+10 (60), refilled at 2 a second. Over
// it, a frame is answered with a rate_limited error carrying retryAfterMs,
// after which a join is accepted; the refusals count as invalid frames, so
// a client that keeps on is closed with 1008.
func TestJoinsAreRateLimited(t *testing.T) {
	s := startChat(t, chatConfig(t))
	c := s.dial("u1", "alice")
	burst := s.cfg.Chat.MaxRoomsPerConn + joinBurstExtra

	const frames = 70
	start := time.Now()
	for i := 0; i < frames/2; i++ {
		c.send(map[string]any{"type": "join", "room": "dev", "clientId": fmt.Sprint("j", i)})
		c.send(map[string]any{"type": "leave", "room": "dev", "clientId": fmt.Sprint("l", i)})
	}
	var answered, refused int
	var retry float64
	for answered+refused < frames {
		f := c.read()
		switch f["type"] {
		case "joined", "left":
			answered++
		case "error":
			if f["code"] != codeRateLimited {
				t.Fatalf("error %v", f)
			}
			if cid, _ := f["clientId"].(string); cid == "" || f["message"] == "" {
				t.Errorf("rate_limited error %v without clientId or message", f)
			}
			ms, _ := f["retryAfterMs"].(float64)
			if ms < 1 || ms > 1000/joinRate {
				t.Errorf("retryAfterMs %v, want 1..%d", f["retryAfterMs"], 1000/joinRate)
			}
			retry = ms
			refused++
		case "presence":
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	// The bucket refills while the frames are handled.
	refill := int(time.Since(start).Seconds()*joinRate) + 1
	t.Logf("%d answered, %d refused in %s", answered, refused, time.Since(start).Round(time.Millisecond))
	if answered < burst || answered > burst+refill || refused == 0 {
		t.Fatalf("%d of %d join/leave frames answered, want %d..%d", answered, frames, burst, burst+refill)
	}

	// After retryAfterMs the next one is accepted.
	time.Sleep(time.Duration(retry) * time.Millisecond)
	c.send(map[string]any{"type": "join", "room": "dev"})
	c.next("joined")

	// Refusals are invalid frames: a client that keeps on is closed.
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"dev"}`))
		cancel()
		if err != nil {
			break // closed already
		}
	}
	if got := c.closeStatus(); got != websocket.StatusPolicyViolation {
		t.Errorf("closed with %v, want 1008", got)
	}
}
