package proctest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// TestReplicasShareRooms is issue 3's Done-when, with real processes: two
// `aurora serve --roles=chat` replicas and one `--roles=auth` on one Redis.
// Users log in through the auth process; a client on replica A and one on
// replica B share room dev: messages go both ways, each sees the other's
// presence and typing. A replica subscribes to a room's channels only while
// it has members there, so one without members of room x gets no Pub/Sub
// traffic for x and delivers nothing of it.
func TestReplicasShareRooms(t *testing.T) {
	redisURL, rc := sharedRedis(t)
	cfg := newNodeConfig(t.TempDir(), redisURL)
	cfg.set("chat.presence_interval", "20ms")
	cfg.set("chat.room_rate", 1000) // 50 messages in x at once
	cfg.set("chat.user_rate", 1000)
	cfgFile := cfg.writeMigrated(t)
	auth := startNode(t, "auth", cfgFile, "auth")
	a := startNode(t, "chat-a", cfgFile, "chat")
	b := startNode(t, "chat-b", cfgFile, "chat")

	login := func(name string) (id, tok string) {
		t.Helper()
		creds := map[string]string{"username": name, "password": "correct horse battery"}
		if code, body := auth.call(t, http.MethodPost, "/api/auth/register", "", creds); code != http.StatusCreated {
			t.Fatalf("register %s = %d %v", name, code, body)
		}
		code, body := auth.call(t, http.MethodPost, "/api/auth/login", "", creds)
		tok, _ = body["token"].(string)
		if code != http.StatusOK || tok == "" {
			t.Fatalf("login %s = %d %v", name, code, body)
		}
		code, me := auth.call(t, http.MethodGet, "/api/auth/me", tok, nil)
		id, _ = me["id"].(string)
		if code != http.StatusOK || id == "" {
			t.Fatalf("me of %s = %d %v", name, code, me)
		}
		return id, tok
	}
	aliceID, aliceTok := login("alice")
	bobID, bobTok := login("bob")
	_, carolTok := login("carol")

	alice := dialWS(t, a.wsURL(aliceTok))
	if j := alice.Join("dev", ""); !hasMembers(j, "alice") {
		t.Fatalf("alice joined dev: %v, want members [alice]", j)
	}
	// A join is announced to the room after chat.presence_interval; from
	// then on every replica lists it (here: B's presence API, which bob
	// may read once he is a member of dev).
	if code, body := b.call(t, http.MethodPost, "/api/rooms/dev/join", bobTok, nil); code != http.StatusOK {
		t.Fatalf("bob joins dev over HTTP: %d %v", code, body)
	}
	waitUntil(t, "replica B to list alice in dev", func() bool {
		code, body := b.call(t, http.MethodGet, "/api/rooms/dev/presence", bobTok, nil)
		ms, _ := body["members"].([]any)
		return code == http.StatusOK && hasMembers(map[string]any{"members": ms}, "alice")
	})
	bob := dialWS(t, b.wsURL(bobTok))
	// Members are across replicas: bob on B sees alice of A.
	if j := bob.Join("dev", ""); !hasMembers(j, "alice", "bob") {
		t.Fatalf("bob joined dev: %v, want members alice and bob", j)
	}
	// alice on A is told bob came online in dev (via B's presence.dev).
	alice.Expect("bob's presence in dev", func(f map[string]any) bool {
		return f["type"] == "presence" && f["room"] == "dev" && f["user"] == "bob" && f["userId"] == bobID && f["status"] == "online"
	})
	if got := numsub(t, rc, bus.Channel("dev")); got != 2 {
		t.Fatalf("PUBSUB NUMSUB %s = %d, want 2 (both replicas have members)", bus.Channel("dev"), got)
	}

	// Messages both ways.
	alice.Send(map[string]any{"type": "message", "room": "dev", "text": "hi from A", "clientId": "a1"})
	m := bob.Expect("alice's message", func(f map[string]any) bool { return f["type"] == "message" && f["clientId"] == "a1" })
	if m["user"] != "alice" || m["userId"] != aliceID || m["text"] != "hi from A" || m["room"] != "dev" {
		t.Fatalf("bob got %v", m)
	}
	bob.Send(map[string]any{"type": "message", "room": "dev", "text": "hi from B", "clientId": "b1"})
	m = alice.Expect("bob's message", func(f map[string]any) bool { return f["type"] == "message" && f["clientId"] == "b1" })
	if m["user"] != "bob" || m["userId"] != bobID || m["text"] != "hi from B" {
		t.Fatalf("alice got %v", m)
	}

	// Typing both ways.
	alice.Send(map[string]any{"type": "typing", "room": "dev", "isTyping": true})
	bob.Expect("alice typing", func(f map[string]any) bool {
		return f["type"] == "typing" && f["room"] == "dev" && f["user"] == "alice" && f["isTyping"] == true
	})
	bob.Send(map[string]any{"type": "typing", "room": "dev", "isTyping": true})
	alice.Expect("bob typing", func(f map[string]any) bool {
		return f["type"] == "typing" && f["room"] == "dev" && f["user"] == "bob" && f["isTyping"] == true
	})

	// Room x: its members are on A only. While carol (on B) is in x, B
	// subscribes to x; once she leaves, B unsubscribes.
	alice.Join("x", "")
	waitNumsub(t, rc, "x", 1)
	carol := dialWS(t, b.wsURL(carolTok))
	carol.Join("x", "")
	waitNumsub(t, rc, "x", 2)
	carol.Send(map[string]any{"type": "leave", "room": "x"})
	carol.Expect("left x", func(f map[string]any) bool { return f["type"] == "left" && f["room"] == "x" })
	waitNumsub(t, rc, "x", 1)

	// fence sends a message in general, where everyone is, and reads B's
	// clients up to it: what they read is everything B delivered since the
	// previous fence, and none of it may be of room x.
	fences := 0
	fence := func() (read int) {
		t.Helper()
		fences++
		cid := fmt.Sprintf("fence%d", fences)
		alice.Send(map[string]any{"type": "message", "room": "general", "text": "fence", "clientId": cid})
		for _, c := range []*apptest.WS{bob, carol} {
			for {
				f := c.Read()
				read++
				if f["room"] == "x" {
					t.Fatalf("replica B, with no member in x, delivered %v", f)
				}
				if f["type"] == "message" && f["clientId"] == cid {
					break
				}
			}
		}
		return read
	}
	fence() // B's clients have read everything before this point.
	const n = 50
	deliveredA := a.metric("aurora_chat_messages_delivered_total")
	deliveredB := b.metric("aurora_chat_messages_delivered_total")
	for i := range n {
		alice.Send(map[string]any{"type": "message", "room": "x", "text": fmt.Sprintf("x %d", i), "clientId": fmt.Sprintf("x%d", i)})
	}
	alice.Expect("the last ack in x", func(f map[string]any) bool { return f["type"] == "ack" && f["clientId"] == fmt.Sprintf("x%d", n-1) })
	seenOnB := fence()
	// The counter moves right after each write: wait for it to count what
	// the clients read. It may count a frame or two more (an increment of
	// the previous fence landing late, a presence batch after the fence),
	// or a few fewer (a frame written after the first fence was read but
	// before deliveredB was taken, read by the second fence: under load
	// that happens), but not the traffic of x: that would be n frames per
	// member.
	const early = 5
	var gotB float64
	waitUntil(t, "B's delivered counter to count the fence", func() bool {
		gotB = b.metric("aurora_chat_messages_delivered_total")
		return gotB+early >= deliveredB+float64(seenOnB)
	})
	if gotB-deliveredB >= n {
		t.Fatalf("replica B delivered %v frames while %d messages went to x and its clients read %d frames, none of x",
			gotB-deliveredB, n, seenOnB)
	}
	if got := a.metric("aurora_chat_messages_delivered_total") - deliveredA; got < 2*n {
		t.Fatalf("replica A delivered %v frames, want at least %d (acks and echoes in x)", got, 2*n)
	}
	if got := numsub(t, rc, bus.Channel("x")); got != 1 {
		t.Fatalf("PUBSUB NUMSUB %s = %d at the end, want 1", bus.Channel("x"), got)
	}
	// A pattern subscription (chat.*) would bring every room's traffic to
	// every replica without showing in NUMSUB.
	if n, err := redisDo(t, rc, "PUBSUB", "NUMPAT").AsInt64(); err != nil || n != 0 {
		t.Fatalf("PUBSUB NUMPAT = %d, %v; want 0 (replicas never PSUBSCRIBE)", n, err)
	}
}

// hasMembers reports whether a joined frame lists exactly the usernames.
func hasMembers(joined map[string]any, names ...string) bool {
	ms, _ := joined["members"].([]any)
	if len(ms) != len(names) {
		return false
	}
	got := map[string]bool{}
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		name, _ := mm["username"].(string)
		id, _ := mm["userId"].(string)
		if id == "" {
			return false
		}
		got[name] = true
	}
	for _, n := range names {
		if !got[n] {
			return false
		}
	}
	return true
}

// numsub is PUBSUB NUMSUB of one channel: how many subscriptions it has.
func numsub(t *testing.T, rc rueidis.Client, channel string) int64 {
	t.Helper()
	arr, err := redisDo(t, rc, "PUBSUB", "NUMSUB", channel).ToArray()
	if err != nil || len(arr) != 2 {
		t.Fatalf("PUBSUB NUMSUB %s: %v %v", channel, arr, err)
	}
	n, err := arr[1].AsInt64()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB %s: %v", channel, err)
	}
	return n
}

// waitNumsub waits until each of the room's three channels has want
// subscriptions: one per replica with members in the room.
func waitNumsub(t *testing.T, rc rueidis.Client, room string, want int64) {
	t.Helper()
	for _, ch := range []string{bus.Channel(room), bus.PresenceChannel(room), bus.TypingChannel(room)} {
		var got int64
		if !apptest.Poll(procWait, func() bool { got = numsub(t, rc, ch); return got == want }) {
			t.Fatalf("PUBSUB NUMSUB %s = %d, want %d", ch, got, want)
		}
	}
}
