package chat

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

// testAckTimeout is chat.ack_timeout in these tests: the default. (Shorter
// would make the shortfall cases quicker, and a healthy replica's
// confirmation miss it on a loaded machine.)
var testAckTimeout = config.Default().Chat.AckTimeout

// replicated is a chat server on a real redis-server primary with one
// replica, and chat.ack_replicas = 1. (The ingest role is not linked into
// this package's tests; history reads what it would store: the stream,
// merged with the store.)
type replicated struct {
	*server
	primary, replica *apptest.RedisServer
	onReplica        rueidis.Client
}

func startReplicated(t *testing.T) *replicated {
	t.Helper()
	primary := apptest.StartRedisServer(t)
	replica := primary.StartReplica(t)
	cfg := chatConfig(t)
	cfg.Redis.URL = primary.URL
	cfg.Chat.AckReplicas = 1
	cfg.Chat.AckTimeout = testAckTimeout
	return &replicated{server: startChat(t, cfg), primary: primary, replica: replica, onReplica: replica.Client(t)}
}

// entriesWith returns the ids of the stream entries on r with clientId.
func entriesWith(t *testing.T, r rueidis.Client, clientID string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	entries, err := r.Do(ctx, r.B().Xrange().Key(bus.Stream).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	var ids []string
	for _, e := range entries {
		if e.FieldValues[bus.FieldClientID] == clientID {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// storedWith returns the ids of the messages of room with clientId that
// history (store and stream tail) answers.
func (s *replicated) storedWith(t *testing.T, room, clientID string) []string {
	t.Helper()
	// alice's: history needs read access, and she is in every room these
	// tests send to.
	status, body := s.getJSON("/api/rooms/"+room+"/messages?limit=100", s.token("u1", "alice"))
	if status != 200 {
		t.Fatalf("history: %d %v", status, body)
	}
	var ids []string
	msgs, _ := body["messages"].([]any)
	for _, m := range msgs {
		if m, _ := m.(map[string]any); m["clientId"] == clientID {
			ids = append(ids, m["id"].(string))
		}
	}
	return ids
}

// sendExpectingShortfall sends a message and reads until its answer, which
// must be the unavailable error; it returns the error frame, the id of the
// message frame that reached the sender meanwhile ("" when none) and how
// long the answer took.
func sendExpectingShortfall(t *testing.T, c *client, room, text, clientID string) (errFrame map[string]any, echoID string, took time.Duration) {
	t.Helper()
	began := time.Now()
	c.send(map[string]any{"type": "message", "room": room, "text": text, "clientId": clientID})
	for {
		f := c.read()
		switch {
		case f["type"] == "message" && f["clientId"] == clientID:
			echoID, _ = f["id"].(string)
		case f["type"] == "error" && f["clientId"] == clientID:
			return f, echoID, time.Since(began)
		case f["type"] == "ack" && f["clientId"] == clientID:
			t.Fatalf("message %s acked %v although its replica does not answer", clientID, f)
		}
	}
}

// TestAckWaitsForReplica: with chat.ack_replicas = 1 the ack means the
// replica has the message: read from the replica right after the ack, the
// entry is there.
func TestAckWaitsForReplica(t *testing.T) {
	s := startReplicated(t)
	alice, bob := s.aliceAndBobIn("dev")
	for i, cid := range []string{"r1", "r2", "r3"} {
		ack := alice.msg("dev", "replicated "+cid, cid)
		// No wait, no poll: the ack promised the replica has it.
		if got := entriesWith(t, s.onReplica, cid); len(got) != 1 || got[0] != ack["id"] {
			t.Fatalf("message %d: replica has %v right after the ack of %v", i, got, ack["id"])
		}
		if f := bob.next("message"); f["id"] != ack["id"] {
			t.Fatalf("bob got %v, want %v", f, ack["id"])
		}
	}
	if n := s.metric("aurora_chat_unreplicated_total"); n != 0 {
		t.Errorf("aurora_chat_unreplicated_total = %v with the replica up", n)
	}

	// A resend rewrites its dedupe key (so that WAIT covers it) keeping the
	// key's expiry: dedupe keys still go after chat.dedupe_window.
	before, err := do(t, s.redis, "PTTL", dedupeKey(streamSlotTag, "u1", "dev", "r1")).AsInt64()
	if err != nil || before <= 0 {
		t.Fatalf("dedupe key PTTL %d, %v", before, err)
	}
	first := entriesWith(t, s.redis, "r1")[0]
	if ack := alice.resend("dev", "replicated r1", "r1"); ack["id"] != first {
		t.Fatalf("resend acked %v, want %s", ack["id"], first)
	}
	for where, r := range map[string]rueidis.Client{"primary": s.redis, "replica": s.onReplica} {
		ttl, err := do(t, r, "PTTL", dedupeKey(streamSlotTag, "u1", "dev", "r1")).AsInt64()
		if err != nil || ttl <= 0 || ttl > before {
			t.Errorf("dedupe key on the %s after the resend: PTTL %d (was %d), %v; want its expiry kept", where, ttl, before, err)
		}
	}
	// The same for a key of the replicas before per-room keys.
	old, err := do(t, s.redis, append([]string{"XADD", bus.Stream, "*"},
		bus.Entry{RoomID: "dev", UserID: "u1", Username: "alice", Text: "old", ClientID: "r-old"}.Fields()...)...).ToString()
	if err != nil {
		t.Fatal(err)
	}
	do(t, s.redis, "SET", legacyDedupeKey(streamSlotTag, "u1", "r-old"), old, "PX", "60000")
	if ack := alice.resend("dev", "old", "r-old"); ack["id"] != old {
		t.Errorf("resend of a legacy-keyed message acked %v, want %s", ack["id"], old)
	}
	if ttl, err := do(t, s.redis, "PTTL", legacyDedupeKey(streamSlotTag, "u1", "r-old")).AsInt64(); err != nil || ttl <= 0 || ttl > 60000 {
		t.Errorf("legacy dedupe key after the resend: PTTL %d, %v; want its expiry kept", ttl, err)
	}
}

// TestAckReplicaPaused: a replica that stops answering (SIGSTOP: its
// connection stays open, it acknowledges nothing) makes the send answer
// unavailable after chat.ack_timeout, not ack. The message is in the
// stream all the same: delivered, stored once. The client's resend with
// the same clientId is answered unavailable again while the replica is
// away, and acked with the same id once it is back; nothing is stored or
// delivered twice.
func TestAckReplicaPaused(t *testing.T) {
	s := startReplicated(t)
	alice, bob := s.aliceAndBobIn("dev")
	alice.msg("dev", "before", "p0")
	bob.next("message")

	s.replica.Pause()
	resumed := false
	defer func() {
		if !resumed {
			s.replica.Resume()
		}
	}()
	f, echo, took := sendExpectingShortfall(t, alice, "dev", "while paused", "p1")
	if f["code"] != codeUnavailable {
		t.Fatalf("answer %v, want code %s", f, codeUnavailable)
	}
	if took < testAckTimeout {
		t.Errorf("answered after %s, before chat.ack_timeout %s", took, testAckTimeout)
	}
	if took > testAckTimeout+2*time.Second {
		t.Errorf("answered after %s, long after chat.ack_timeout %s", took, testAckTimeout)
	}
	// What the sender is told: the message is queued, under which id, and
	// to resend it with its clientId.
	queued := entriesWith(t, s.redis, "p1")
	if len(queued) != 1 {
		t.Fatalf("stream on the primary holds %v for p1, want one entry", queued)
	}
	id := queued[0]
	msg, _ := f["message"].(string)
	for _, want := range []string{id, "queued", "0 of 1", "same clientId"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message %q does not say %q", msg, want)
		}
	}
	if echo != "" && echo != id {
		t.Errorf("the sender's own copy has id %s, the stream %s", echo, id)
	}
	// Published with the script: members have it although it was not acked.
	if g := bob.next("message"); g["id"] != id {
		t.Fatalf("bob got %v, want %s", g, id)
	}

	// A resend while the replica is still away: the same answer, nothing new.
	f2, echo2, _ := sendExpectingShortfall(t, alice, "dev", "while paused", "p1")
	if msg2, _ := f2["message"].(string); f2["code"] != codeUnavailable || !strings.Contains(msg2, id) {
		t.Errorf("resend while paused answered %v, want unavailable naming %s", f2, id)
	}
	if echo2 != "" {
		t.Errorf("the resend was delivered again as %s", echo2)
	}
	// Without a clientId a resend could not be recognised: the error says
	// so, rather than asking for one.
	alice.send(map[string]any{"type": "message", "room": "dev", "text": "no client id"})
	noID := alice.Expect("the unavailable error of the message without clientId", func(f map[string]any) bool {
		return f["type"] == "error" && f["clientId"] == nil
	})
	if m, _ := noID["message"].(string); noID["code"] != codeUnavailable || !strings.Contains(m, "no clientId") {
		t.Errorf("message without clientId answered %v", noID)
	}
	if g := bob.next("message"); g["text"] != "no client id" {
		t.Errorf("bob got %v, want the message without clientId", g)
	}

	s.replica.Resume()
	resumed = true
	apptest.Eventually(t, waitFor, "the replica to catch up", func() bool { return len(entriesWith(t, s.onReplica, "p1")) == 1 })
	ack := alice.resend("dev", "while paused", "p1")
	if ack["id"] != id {
		t.Fatalf("resend after the replica returned acked %v, want the queued id %s", ack["id"], id)
	}
	// One more message shows bob got nothing in between (no second copy of
	// p1). In general: dev's window (chat.room_rate, 3/s) took three already.
	after := alice.msg("general", "after", "p2")
	if g := bob.next("message"); g["id"] != after["id"] {
		t.Fatalf("bob got %v, want only the next message %v", g, after["id"])
	}
	if got := entriesWith(t, s.redis, "p1"); len(got) != 1 {
		t.Errorf("stream holds p1 %d times: %v", len(got), got)
	}
	apptest.Eventually(t, waitFor, "p1 stored", func() bool { return len(s.storedWith(t, "dev", "p1")) >= 1 })
	if got := s.storedWith(t, "dev", "p1"); len(got) != 1 || got[0] != id {
		t.Errorf("history has p1 as %v, want once as %s", got, id)
	}
	if n := s.metric("aurora_chat_unreplicated_total"); n != 3 {
		t.Errorf("aurora_chat_unreplicated_total = %v, want 3 (p1, its resend, the one without clientId)", n)
	}
}

// TestAckReplicaGone: with the replica's process gone (killed) the primary
// has no replica at all; sends are answered unavailable after
// chat.ack_timeout and stored once; when a replica is back (restarted, it
// syncs again), the resend is acked with the same id.
func TestAckReplicaGone(t *testing.T) {
	s := startReplicated(t)
	alice := s.dial("u1", "alice")
	s.replica.Kill()

	f, _, took := sendExpectingShortfall(t, alice, "general", "replica gone", "g1")
	if f["code"] != codeUnavailable || took < testAckTimeout {
		t.Fatalf("answer %v after %s, want unavailable after at least %s", f, took, testAckTimeout)
	}
	ids := entriesWith(t, s.redis, "g1")
	if len(ids) != 1 {
		t.Fatalf("stream holds g1 as %v, want once", ids)
	}

	s.replica.Restart()
	s.replica.WaitLinked(t)
	if ack := alice.resend("general", "replica gone", "g1"); ack["id"] != ids[0] {
		t.Fatalf("resend acked %v, want %s", ack["id"], ids[0])
	}
	apptest.Eventually(t, waitFor, "g1 stored", func() bool { return len(s.storedWith(t, "general", "g1")) >= 1 })
	if got := s.storedWith(t, "general", "g1"); len(got) != 1 {
		t.Errorf("history has g1 %d times: %v", len(got), got)
	}
}

// TestAckReplicasOffIsOneScript: with chat.ack_replicas at its default (0)
// nothing waits: a message is acked while the replica is paused, and it
// costs one script call.
func TestAckReplicasOffIsOneScript(t *testing.T) {
	primary := apptest.StartRedisServer(t)
	replica := primary.StartReplica(t)
	cfg := chatConfig(t)
	cfg.Redis.URL = primary.URL
	if cfg.Chat.AckReplicas != config.Default().Chat.AckReplicas || cfg.Chat.AckReplicas != 0 {
		t.Fatalf("chat.ack_replicas defaults to %d, want 0", cfg.Chat.AckReplicas)
	}
	s := startChat(t, cfg)
	g := s.App.Module("chat").(*gateway)
	alice := s.dial("u1", "alice")
	replica.Pause()
	defer replica.Resume()
	calls := g.scriptCalls.Load()
	began := time.Now()
	alice.msg("general", "fast", "f1")
	if took := time.Since(began); took >= testAckTimeout {
		t.Errorf("ack took %s without chat.ack_replicas", took)
	}
	if n := g.scriptCalls.Load() - calls; n != 1 {
		t.Errorf("%d script calls for one message", n)
	}
}

// TestAckReplicasWarnsWithoutReplicas: a primary without the replicas
// chat.ack_replicas asks for is said at start (every message would be
// answered unavailable), and then the send answers unavailable; the log
// line for it is written once, not per message.
func TestAckReplicasWarnsWithoutReplicas(t *testing.T) {
	primary := apptest.StartRedisServer(t)
	cfg := chatConfig(t)
	cfg.Redis.URL = primary.URL
	cfg.Chat.AckReplicas = 1
	cfg.Chat.AckTimeout = testAckTimeout
	var logs apptest.Buffer
	s := &server{Server: apptest.StartWithLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil))), t: t, cfg: cfg,
		redis: primary.Client(t)}
	if !strings.Contains(logs.String(), "fewer connected replicas than chat.ack_replicas") ||
		!strings.Contains(logs.String(), "connected_replicas=0") {
		t.Errorf("no start-up warning about the missing replica in:\n%s", logs.String())
	}
	alice := s.dial("u1", "alice")
	for _, cid := range []string{"w1", "w2"} {
		if f, _, _ := sendExpectingShortfall(t, alice, "general", "no replica", cid); f["code"] != codeUnavailable {
			t.Fatalf("answer %v, want unavailable", f)
		}
	}
	if n := strings.Count(logs.String(), "message not confirmed by redis replicas"); n != 1 {
		t.Errorf("the shortfall was logged %d times for two messages, want once", n)
	}
}
