package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

func TestRateLimits(t *testing.T) {
	s := startChat(t, configWith(t, func(c *config.Chat) { c.UserRate = 5 }))
	alice := s.dial("u1", "alice")
	alice.join("dev")

	// Room limit: 3 per second per user per room; the 4th is refused.
	ids := sendNumbered(alice, "general", "g", "g", 3)
	alice.send(map[string]any{"type": "message", "room": "general", "text": "g3", "clientId": "g3"})
	rl := alice.next("rate_limited", "message")
	if rl["room"] != "general" || rl["clientId"] != "g3" {
		t.Errorf("rate_limited = %v", rl)
	}
	if ms, _ := rl["retryAfterMs"].(float64); ms <= 0 || ms > 1000 {
		t.Errorf("retryAfterMs = %v, want 1..1000", rl["retryAfterMs"])
	}
	// Neither stored nor published: the stream holds exactly the 3
	// messages (and the room events of joining dev).
	var got []string
	for _, e := range messageEntries(t, s.redis) {
		got = append(got, e.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("stream ids %v, want %v", got, ids)
	}

	// User limit across rooms (5/s here): 2 more in dev pass, then refused.
	alice.msg("dev", "d0", "d0")
	alice.msg("dev", "d1", "d1")
	alice.send(map[string]any{"type": "message", "room": "dev", "text": "d2", "clientId": "d2"})
	if rl := alice.next("rate_limited", "message"); rl["room"] != "dev" {
		t.Errorf("rate_limited = %v", rl)
	}
	if n := len(messageEntries(t, s.redis)); n != 5 {
		t.Errorf("the stream holds %d messages, want 5", n)
	}
	// Every key the limits created expires.
	for _, k := range []string{roomRateKey(streamSlotTag, "u1", "general"), roomRateKey(streamSlotTag, "u1", "dev"), userRateKey(streamSlotTag, "u1")} {
		if ttl, err := do(t, s.redis, "PTTL", k).AsInt64(); err != nil || ttl <= 0 {
			t.Errorf("PTTL %s = %d, %v", k, ttl, err)
		}
	}
	if n := s.metric("aurora_chat_rate_limited_total"); n != 2 {
		t.Errorf("rate limited metric = %v", n)
	}
}

func TestResendIsDeduplicated(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.RoomRate = 100
	s := startChat(t, cfg)
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")
	carol := s.dial("u3", "carol")

	first := alice.msg("general", "once", "same")
	again := alice.resend("general", "once", "same")
	if first["id"] != again["id"] || first["ts"] != again["ts"] {
		t.Errorf("resend acked %v, first %v", again, first)
	}
	// Another user may use the same clientId.
	other := bob.msg("general", "mine", "same")
	if other["id"] == first["id"] {
		t.Errorf("bob's message deduplicated against alice's")
	}
	marker := alice.msg("general", "marker", "marker")

	// carol got alice's message once, then bob's, then the marker.
	var seen []string
	for {
		f := carol.next("message")
		seen = append(seen, f["id"].(string))
		if f["id"] == marker["id"] {
			break
		}
	}
	want := []string{first["id"].(string), other["id"].(string), marker["id"].(string)}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("carol saw %v, want %v", seen, want)
	}
	if n := xlen(t, s.redis, bus.Stream); n != 3 {
		t.Errorf("XLEN = %d, want 3", n)
	}
	ttl, err := do(t, s.redis, "PTTL", dedupeKey(streamSlotTag, "u1", "general", "same")).AsInt64()
	if err != nil || ttl <= 0 || ttl > cfg.Chat.DedupeWindow.Milliseconds() {
		t.Errorf("dedupe key PTTL = %d, %v", ttl, err)
	}
}

func TestSlowConsumerDoesNotDelayOthers(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.SendQueue = 16
	cfg.Chat.SlowTimeout = 200 * time.Millisecond
	s := startChat(t, cfg)
	stalled := s.dial("u1", "stalled") // never reads until the end
	reader := s.dial("u2", "reader")

	// Big payloads fill the stalled client's socket buffers (a few MB on
	// loopback) quickly; they go out in groups the reader takes at once, so
	// the reader's queue never fills.
	const group, size = 8, 100 << 10
	text := strings.Repeat("x", size)
	for i := 0; s.metric("aurora_chat_slow_consumers_dropped_total") == 0; i++ {
		if i >= 2000 {
			t.Fatal("the stalled client was never dropped")
		}
		for j := 0; j < group; j++ {
			id := fmt.Sprintf("1-%d", i*group+j)
			p, _ := json.Marshal(bus.MessageFrame{Type: "message", ID: id, Room: "general",
				User: "x", UserID: "x", Text: text, TS: time.Now().UnixMilli()})
			do(t, s.redis, "PUBLISH", bus.Channel("general"), string(p))
		}
		for j := 0; j < group; j++ {
			if f := reader.next("message"); f["id"] != fmt.Sprintf("1-%d", i*group+j) {
				t.Fatalf("reader got %v, want 1-%d", f["id"], i*group+j)
			}
		}
	}
	if got := stalled.closeStatus(); got != closeSlowConsumer {
		t.Errorf("stalled client closed with %v, want 4008", got)
	}
	// The reader is still served.
	reader.send(map[string]any{"type": "ping"})
	reader.next("pong")
}

func TestHeartbeatClosesSilentClient(t *testing.T) {
	cfg := chatConfig(t)
	cfg.Chat.PingInterval = 100 * time.Millisecond
	s := startChat(t, cfg)
	silent := s.dial("u1", "silent") // does not read, so never answers a ping
	alive := s.dial("u2", "alive")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pongs := make(chan struct{}, 1)
	go func() {
		for {
			_, b, err := alive.ws.Read(ctx)
			if err != nil {
				return
			}
			if strings.Contains(string(b), `"pong"`) {
				pongs <- struct{}{}
			}
		}
	}()
	eventually(t, "the heartbeat close", func() bool {
		return s.metric("aurora_chat_heartbeat_closes_total") == 1
	})
	rctx, rcancel := context.WithTimeout(context.Background(), waitFor)
	defer rcancel()
	for {
		if _, _, err := silent.ws.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("silent client not disconnected")
			}
			break
		}
	}
	// The client that reads (and so answers pings) outlived several of them.
	alive.send(map[string]any{"type": "ping"})
	select {
	case <-pongs:
	case <-time.After(waitFor):
		t.Fatal("the live client got no pong")
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startChat(t, configWith(t, func(c *config.Chat) { c.RoomRate, c.UserRate = 1000, 1000 }))
	c := s.dial("u1", "alice")
	const sent = 20
	frames := make(chan map[string]any, 1000)
	status := make(chan websocket.StatusCode, 1)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.ws.Read(context.Background())
			if err != nil {
				status <- websocket.CloseStatus(err)
				return
			}
			var f map[string]any
			_ = json.Unmarshal(b, &f)
			frames <- f
		}
	}()
	for i := 0; i < sent; i++ {
		c.send(map[string]any{"type": "message", "room": "general", "text": "bye", "clientId": fmt.Sprint("s", i)})
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := <-status; got != websocket.StatusGoingAway {
		t.Errorf("close = %v, want 1001", got)
	}
	// Each ack names a message that is in the stream; errors are
	// "unavailable" at worst, never silence about an accepted message.
	acked := map[string]bool{}
	for f := range frames {
		switch f["type"] {
		case "ack":
			acked[f["id"].(string)] = true
		case "error":
			t.Errorf("error during shutdown: %v", f)
		}
	}
	entries, err := do(t, s.redis, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d messages acked before the close", len(acked), sent)
	if len(entries) != len(acked) {
		// The messages the server read before the shutdown are in the
		// stream; every one of them was acked.
		t.Errorf("%d entries in the stream, %d acks", len(entries), len(acked))
	}
	for _, e := range entries {
		if !acked[e.ID] {
			t.Errorf("stored message %s was not acked", e.ID)
		}
	}
}

func TestRedisOutage(t *testing.T) {
	cfg := chatConfig(t)
	proxy, viaProxy := apptest.NewRedisProxy(t, cfg.Redis.URL)
	direct := cfg.Redis.URL
	cfg.Redis.URL = viaProxy
	s := startChat(t, cfg)
	alice := s.dial("u1", "alice")
	alice.msg("general", "before", "b0")

	proxy.Down()
	alice.send(map[string]any{"type": "message", "room": "general", "text": "during", "clientId": "d0"})
	f := alice.next("error", "message")
	if f["code"] != codeUnavailable || f["clientId"] != "d0" {
		t.Errorf("error = %v", f)
	}
	eventually(t, "/readyz 503", func() bool { return s.readyStatus() == 503 })
	alice.send(map[string]any{"type": "join", "room": "dev", "clientId": "j0"})
	if f := alice.next("error", "message"); f["code"] != codeUnavailable || f["clientId"] != "j0" {
		t.Errorf("join during the outage: %v", f)
	}
	status, _ := s.dialStatus("/ws?token="+s.token("u2", "bob"), nil)
	if status != 503 {
		t.Errorf("connect during the outage: status %d, want 503", status)
	}

	proxy.Up()
	eventually(t, "/readyz 200", func() bool { return s.readyStatus() == 200 })
	// The resend of the refused message goes through, and it is delivered:
	// the room was subscribed again.
	alice.send(map[string]any{"type": "message", "room": "general", "text": "during", "clientId": "d0"})
	var acked, delivered bool
	for !acked || !delivered {
		f := alice.read()
		switch {
		case f["type"] == "ack" && f["clientId"] == "d0":
			acked = true
		case f["type"] == "message" && f["clientId"] == "d0":
			delivered = true
		case f["type"] == "presence" || f["type"] == "message":
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if n := xlen(t, apptest.RedisClient(t, direct), bus.Stream); n != 2 {
		t.Errorf("XLEN = %d, want 2", n)
	}
}

func TestTwoReplicas(t *testing.T) {
	cfgA := chatConfig(t)
	cfgB := chatConfig(t)
	cfgB.Redis.URL = cfgA.Redis.URL
	a := startChat(t, cfgA)
	b := startChat(t, cfgB)
	alice := a.dial("u1", "alice")
	bob := b.dial("u2", "bob")

	numsub := func(room string) int64 {
		res, err := do(t, a.redis, "PUBSUB", "NUMSUB", bus.Channel(room)).ToArray()
		if err != nil || len(res) != 2 {
			t.Fatalf("PUBSUB NUMSUB: %v %v", res, err)
		}
		n, _ := res[1].AsInt64()
		return n
	}
	if n := numsub("general"); n != 2 {
		t.Errorf("NUMSUB chat.general = %d, want 2", n)
	}

	// Both ways.
	ack := alice.msg("general", "from A", "a1")
	if f := bob.next("message"); f["id"] != ack["id"] || f["user"] != "alice" {
		t.Errorf("bob got %v", f)
	}
	ack = bob.msg("general", "from B", "b1")
	if f := alice.next("message"); f["id"] != ack["id"] || f["user"] != "bob" {
		t.Errorf("alice got %v", f)
	}

	// Only replicas with members in a room subscribe to it.
	if n := numsub("x"); n != 0 {
		t.Errorf("NUMSUB chat.x = %d before any join", n)
	}
	alice.join("x")
	if n := numsub("x"); n != 1 {
		t.Errorf("NUMSUB chat.x = %d with a member on one replica", n)
	}
	bob.join("x")
	if n := numsub("x"); n != 2 {
		t.Errorf("NUMSUB chat.x = %d with members on both", n)
	}
	ack = bob.msg("x", "in x", "x1")
	if f := alice.next("message"); f["id"] != ack["id"] || f["room"] != "x" {
		t.Errorf("alice got %v", f)
	}
	alice.send(map[string]any{"type": "leave", "room": "x"})
	alice.next("left", "message")
	if n := numsub("x"); n != 1 {
		t.Errorf("NUMSUB chat.x = %d after one left", n)
	}
	bob.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, "the room unsubscribed after its last member closed", func() bool { return numsub("x") == 0 })
}

func TestMetrics(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")
	alice.msg("general", "count me", "m1")
	bob.next("message")
	if n := s.metric("aurora_chat_connections"); n != 2 {
		t.Errorf("connections = %v", n)
	}
	if n := s.metric("aurora_chat_messages_received_total"); n != 1 {
		t.Errorf("received = %v", n)
	}
	// welcome x2, ack, message x2 at least; counted just after each write
	// returns, so possibly after the client read the frame.
	eventually(t, "5 frames counted as delivered", func() bool {
		return s.metric("aurora_chat_messages_delivered_total") >= 5
	})
	eventually(t, "2 fan-out latency samples", func() bool {
		n := s.metric("aurora_chat_fanout_latency_seconds_count")
		return n == 2
	})
}
