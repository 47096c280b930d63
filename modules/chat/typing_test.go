package chat

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
)

// TestTypingDroppedWhileRedisFails: a typing frame that cannot be
// published while Redis is unreachable is dropped without an error frame,
// but counted in aurora_chat_typing_dropped_total and logged once for the
// outage; once Redis is back typing flows again and the recovery is logged.
// Before, the drop was only a debug line: neither counted nor visible.
func TestTypingDroppedWhileRedisFails(t *testing.T) {
	cfg := chatConfig(t)
	proxy, viaProxy := apptest.NewRedisProxy(t, cfg.Redis.URL)
	direct := cfg.Redis.URL
	cfg.Redis.URL = viaProxy
	var logs apptest.Buffer
	s := &server{
		Server: apptest.StartWithLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil))),
		t:      t, cfg: cfg, redis: apptest.RedisClient(t, direct),
	}
	alice := s.dial("u1", "alice")
	bob := s.dial("u2", "bob")
	alice.join("dev")
	bob.join("dev")
	typing := map[string]any{"type": "typing", "room": "dev", "isTyping": true}

	proxy.Down()
	alice.send(typing)
	eventually(t, "one typing frame dropped", func() bool { return s.metric("aurora_chat_typing_dropped_total") == 1 })
	alice.send(typing)
	eventually(t, "two typing frames dropped", func() bool { return s.metric("aurora_chat_typing_dropped_total") == 2 })
	// No error frame for either: the next frame alice reads answers her ping.
	alice.send(map[string]any{"type": "ping"})
	if f := alice.next("pong", "presence"); f["type"] != "pong" {
		t.Fatalf("alice got %v", f)
	}
	if n := strings.Count(logs.String(), "typing: redis failing"); n != 1 {
		t.Errorf("the typing failure is logged %d times, want once:\n%s", n, logs.String())
	}

	proxy.Up()
	eventually(t, "/readyz 200", func() bool { return s.readyStatus() == 200 })
	// Typing flows again once the room is subscribed again: alice types,
	// bob pings, and bob reads up to his pong.
	eventually(t, "bob sees alice typing", func() bool {
		alice.send(typing)
		bob.send(map[string]any{"type": "ping"})
		seen := false
		for {
			f := bob.read()
			switch f["type"] {
			case "typing":
				seen = seen || f["userId"] == "u1"
			case "pong":
				return seen
			}
		}
	})
	if !strings.Contains(logs.String(), "typing: redis recovered") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
}
