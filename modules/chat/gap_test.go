package chat

import (
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
)

// TestPubSubGapMakesMembersRecover: a message acked by another replica while
// this replica's Pub/Sub connection is down is never published to it. When
// the connection comes back, its members are closed with 1012 so they
// reconnect and rejoin with since, which replays the message. Before, they
// stayed connected and never received it (3 of 66 messages in the review).
func TestPubSubGapMakesMembersRecover(t *testing.T) {
	cfgA := chatConfig(t)
	cfgB := chatConfig(t)
	direct := cfgA.Redis.URL
	cfgB.Redis.URL = direct
	proxy, viaProxy := apptest.NewRedisProxy(t, direct)
	cfgA.Redis.URL = viaProxy
	a := &server{Server: apptest.Start(t, cfgA), t: t, cfg: cfgA, redis: apptest.RedisClient(t, direct)}
	b := startChat(t, cfgB)

	bob := a.dial("u2", "bob")     // on the replica that loses Pub/Sub
	alice := b.dial("u1", "alice") // on the other one
	before := alice.msg("general", "before the gap", "c-0")
	if f := bob.next("message", "presence"); f["id"] != before["id"] {
		t.Fatalf("bob got %v, want the message before the gap", f)
	}

	proxy.Down()
	missed := alice.msg("general", "during the gap", "c-1")
	proxy.Up()

	if code := bob.closeStatus(); code != websocket.StatusServiceRestart {
		t.Fatalf("bob's connection closed with %d, want 1012 after the gap", code)
	}
	// Reconnect as a client does, retrying while the replica's own Redis
	// connections are still coming back (a first command may fail with EOF
	// and the upgrade answer 503).
	// Each of the replica's Redis connections may fail its first command
	// once, so a dial can be refused again after one that got in: the
	// connection that gets in is the one kept.
	wsURL := apptest.WSURL(a.URL, "/ws", a.token("u2", "bob"))
	eventually(t, "replica a to accept bob again", func() bool {
		c, status := apptest.TryDialChat(t, waitFor, wsURL, nil)
		if c == nil {
			if status != http.StatusServiceUnavailable {
				t.Fatalf("reconnect refused with %d, want 503 while Redis comes back", status)
			}
			return false
		}
		bob = &client{WS: c, ws: c.Conn, t: t}
		return true
	})
	bob.send(map[string]any{"type": "join", "room": "general", "since": before["id"]})
	for {
		f := bob.next("message", "presence", "joined")
		if f["type"] == "message" {
			if f["id"] != missed["id"] {
				t.Fatalf("replayed %v, want the message acked during the gap", f)
			}
			return
		}
	}
}
