package bus_test

import (
	"slices"
	"testing"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	. "github.com/auroradev/aurora/app/bus" //nolint:revive // the test reads as the package's own
)

// TestPubSubModes: the classic mode keeps AuroraChat's names and commands,
// the sharded one tags the names with the stream's slot and uses the
// sharded commands; ParseChannel reads both forms back.
func TestPubSubModes(t *testing.T) {
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	b := rc.B()
	words := func(c rueidis.Completed) []string { return c.Commands() }
	for _, c := range []struct {
		ps                   PubSub
		channel, pub, script string
		sub, unsub           string
	}{
		{PubSub{}, "chat.dev", "PUBLISH", "PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE"},
		{ShardedPubSub(), "{chat:messages}chat.dev", "SPUBLISH", "SPUBLISH", "SSUBSCRIBE", "SUNSUBSCRIBE"},
	} {
		if got := c.ps.Channel("dev"); got != c.channel {
			t.Errorf("Channel = %q, want %q", got, c.channel)
		}
		if got := words(c.ps.Publish(b, c.channel, "m")); !slices.Equal(got, []string{c.pub, c.channel, "m"}) {
			t.Errorf("Publish = %v", got)
		}
		if got := words(c.ps.Subscribe(b, c.ps.Channels("dev")...)); got[0] != c.sub || len(got) != 4 {
			t.Errorf("Subscribe = %v", got)
		}
		if got := words(c.ps.Unsubscribe(b, c.channel)); got[0] != c.unsub {
			t.Errorf("Unsubscribe = %v", got)
		}
		if got := c.ps.ScriptPublish(); got != c.script {
			t.Errorf("ScriptPublish = %q", got)
		}
		for i, ch := range c.ps.Channels("dev") {
			kind, room, ok := ParseChannel(ch)
			if !ok || room != "dev" || kind != []ChannelKind{MessageChannel, PresenceChannelKind, TypingChannelKind}[i] {
				t.Errorf("ParseChannel(%q) = %v %q %v", ch, kind, room, ok)
			}
		}
	}
	if PubSubOf(rc).Sharded() {
		t.Error("PubSubOf a single Redis's client is sharded")
	}
	for _, bad := range []string{"other.dev", "{chat:messages", "{x}other.dev", ""} {
		if _, _, ok := ParseChannel(bad); ok {
			t.Errorf("ParseChannel(%q) accepted it", bad)
		}
	}
}
