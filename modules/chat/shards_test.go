package chat

import (
	"net/url"
	"testing"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// TestShardsGapRecovery: TestPubSubGapMakesMembersRecover with bus.shards
// 3. Room general is on shard 1, so its messages are in chat:messages:1,
// and the replica that lost Pub/Sub must read that stream (from the last
// id it delivered from it) to find what it missed; the rejoin's since
// replay reads it too. With only chat:messages read, bob would stay
// connected and never get the message.
func TestShardsGapRecovery(t *testing.T) {
	shards := bus.Shards(3)
	if shards.Of("general") != 1 {
		t.Fatalf("general is on shard %d; the test wants a room off shard 0", shards.Of("general"))
	}
	cfgA := chatConfig(t)
	cfgB := chatConfig(t)
	cfgA.Bus.Shards, cfgB.Bus.Shards = 3, 3 // the setting under test
	direct := cfgA.Redis.URL
	cfgB.Redis.URL = direct
	proxy, viaProxy := apptest.NewRedisProxy(t, direct)
	cfgA.Redis.URL = viaProxy
	a := &server{Server: apptest.Start(t, cfgA), t: t, cfg: cfgA, redis: apptest.RedisClient(t, direct)}
	b := startChat(t, cfgB)

	bob := a.dial("u2", "bob")
	alice := b.dial("u1", "alice")
	before := alice.msg("general", "before the gap", "c-0")
	if f := bob.next("message", "presence"); f["id"] != before["id"] {
		t.Fatalf("bob got %v, want the message before the gap", f)
	}

	proxy.Down()
	missed := alice.msg("general", "during the gap", "c-1")
	proxy.Up()

	if n := apptest.StreamLen(t, a.redis, bus.ShardStream(1)); n < 2 {
		t.Errorf("%s holds %d entries, want general's 2 messages", bus.ShardStream(1), n)
	}
	if code := bob.closeStatus(); code != websocket.StatusServiceRestart {
		t.Fatalf("bob's connection closed with %d, want 1012 after the gap", code)
	}
	path := "/ws?token=" + url.QueryEscape(a.token("u2", "bob"))
	eventually(t, "replica a to accept bob again", func() bool {
		status, _ := a.dialStatus(path, nil)
		return status == 0
	})
	bob = a.dial("u2", "bob")
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
