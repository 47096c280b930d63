package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
)

// frameLog reads a connection's frames in the background until it closes.
type frameLog struct {
	mu     sync.Mutex
	frames []map[string]any
	closed chan websocket.StatusCode // the close code, once
}

func readAll(c *client) *frameLog {
	l := &frameLog{closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			_, b, err := c.ws.Read(context.Background())
			if err != nil {
				l.closed <- websocket.CloseStatus(err)
				return
			}
			var f map[string]any
			if json.Unmarshal(b, &f) == nil {
				l.mu.Lock()
				l.frames = append(l.frames, f)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// count is the number of frames of type typ read so far.
func (l *frameLog) count(typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.frames {
		if f["type"] == typ {
			n++
		}
	}
	return n
}

// of returns the frames of type typ read so far.
func (l *frameLog) of(typ string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, f := range l.frames {
		if f["type"] == typ {
			out = append(out, f)
		}
	}
	return out
}

// TestRateLimitedFloodIsClosed: 5000 messages in 2 s on one connection are
// answered rate_limited without a Redis call each once the connection knows
// its window is closed, and the connection is closed with 1008 after
// limitedLimit of them (issue #11, item 7). Every ack names a stored message.
func TestRateLimitedFloodIsClosed(t *testing.T) {
	s := startChat(t, chatConfig(t))
	g := gatewayOf(t, s)
	c := s.dial("u1", "alice")
	frames := readAll(c)
	calls := g.scriptCalls.Load()

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	sent := 0
flood:
	for tick := 0; tick < 200; tick++ { // 25 every 10 ms
		for j := 0; j < 25; j++ {
			b := fmt.Appendf(nil, `{"type":"message","room":"general","text":"flood","clientId":"f%d"}`, sent)
			if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
				break flood // closed by the server
			}
			sent++
		}
		time.Sleep(time.Until(start.Add(time.Duration(tick+1) * 10 * time.Millisecond)))
	}
	var status websocket.StatusCode
	select {
	case status = <-frames.closed:
	case <-time.After(waitFor):
		t.Fatalf("not closed after %d messages in %s", sent, time.Since(start).Round(time.Millisecond))
	}
	calls = g.scriptCalls.Load() - calls
	t.Logf("%d sent, %d script calls, %d rate_limited, %d acks, closed %v", sent, calls,
		frames.count("rate_limited"), frames.count("ack"), status)
	if status != websocket.StatusPolicyViolation {
		t.Errorf("closed with %v, want 1008", status)
	}
	if calls >= 50 {
		t.Errorf("%d messages reached the send script, want fewer than 50", calls)
	}
	if n := frames.count("rate_limited"); n > limitedLimit+1 {
		t.Errorf("%d rate_limited answers before the close, want at most %d", n, limitedLimit+1)
	}
	// Every ack is a stored message, and nothing else was stored.
	acks := frames.of("ack")
	entries, err := do(t, s.redis, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(acks) {
		t.Errorf("%d entries in the stream, %d acks", len(entries), len(acks))
	}
	stored := map[string]bool{}
	for _, e := range entries {
		stored[e.ID] = true
	}
	for _, a := range acks {
		if !stored[a["id"].(string)] {
			t.Errorf("acked %v is not in the stream", a)
		}
	}
}

// TestRateLimitRetryIsNotPunished: a person sending 2 a second is never
// limited, and a burst answered rate_limited is accepted when resent after
// its retryAfterMs, as the web client resends what it queued while offline
// (each message retried up to 3 times): never closed, and every round lets
// the room's 3 a second through.
func TestRateLimitRetryIsNotPunished(t *testing.T) {
	s := startChat(t, chatConfig(t))
	c := s.dial("u1", "alice")
	for i := 0; i < 10; i++ {
		c.msg("general", "steady", fmt.Sprint("p", i)) // fails the test on rate_limited
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second) // a fresh window for the burst

	// 20 queued messages resent at once, as after a reconnect.
	const queued, retries = 20, 3
	pending := map[string]bool{}
	for i := 0; i < queued; i++ {
		pending[fmt.Sprint("q", i)] = true
	}
	limitedAnswers := 0
	acked := map[string]string{}
	for round := 0; round <= retries && len(pending) > 0; round++ {
		for i := 0; i < queued; i++ {
			if cid := fmt.Sprint("q", i); pending[cid] {
				c.send(map[string]any{"type": "message", "room": "general", "text": "queued " + cid, "clientId": cid})
			}
		}
		var longest float64
		inRound, answered := 0, 0
		for want := len(pending); answered < want; {
			f := c.read()
			switch f["type"] {
			case "ack":
				acked[f["clientId"].(string)] = f["id"].(string)
				delete(pending, f["clientId"].(string))
				inRound++
				answered++
			case "rate_limited":
				limitedAnswers++
				answered++
				ms, _ := f["retryAfterMs"].(float64)
				if ms < 1 || ms > 1000 {
					t.Fatalf("retryAfterMs %v", f["retryAfterMs"])
				}
				longest = max(longest, ms)
			case "message", "presence":
			default:
				t.Fatalf("round %d: got %v", round, f)
			}
		}
		if inRound != s.cfg.Chat.RoomRate {
			t.Errorf("round %d: %d accepted, want the room rate %d", round, inRound, s.cfg.Chat.RoomRate)
		}
		// Each waits its own retryAfterMs, at most the longest of them.
		time.Sleep(time.Duration(longest) * time.Millisecond)
	}
	t.Logf("%d acked, %d rate_limited answers, %d given up", len(acked), limitedAnswers, len(pending))
	c.send(map[string]any{"type": "ping"})
	c.next("pong", "message")
	if n := xlen(t, s.redis, bus.Stream); n != int64(10+len(acked)) {
		t.Errorf("XLEN = %d, want %d", n, 10+len(acked))
	}
}
