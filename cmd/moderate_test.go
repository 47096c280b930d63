package cmd_test

import (
	"strings"
	"testing"
	"time"
)

// TestRoomModerationCommands runs the member and moderation subcommands of
// `aurora rooms` with --json on both stores, with no server running (so no
// Redis: each says the change is stored and replicas apply it from the
// store), and the refusals an operator can hit.
func TestRoomModerationCommands(t *testing.T) {
	clearConfigEnv(t)
	for name, base := range operatorBackends(t) {
		t.Run(name, func(t *testing.T) {
			args := func(a ...string) []string { return append(a, base...) }
			users := map[string]string{}
			for _, n := range []string{"alice", "bob", "carol"} {
				var u userJSON
				runJSON(t, &u, args("users", "create", n)...)
				users[n] = u.ID
			}
			var room struct {
				Name, Type string
			}
			runJSON(t, &room, args("rooms", "create", "ops", "--type", "private", "--topic", "on call")...)
			if room.Type != "private" {
				t.Fatalf("create: %+v", room)
			}
			for _, n := range []string{"alice", "bob", "carol"} {
				var out map[string]any
				runJSON(t, &out, args("rooms", "add", "ops", n)...)
			}
			var out map[string]any
			runJSON(t, &out, args("rooms", "role", "ops", "alice", "owner")...)
			if out["role"] != "owner" {
				t.Errorf("role: %v", out)
			}
			type member struct {
				UserID, Username, Role string
				MutedUntil             *time.Time
			}
			members := func() map[string]member {
				var ms []member
				runJSON(t, &ms, args("rooms", "members", "ops")...)
				byName := map[string]member{}
				for _, m := range ms {
					byName[m.Username] = m
				}
				return byName
			}
			if ms := members(); len(ms) != 3 || ms["alice"].Role != "owner" || ms["bob"].Role != "member" {
				t.Fatalf("members: %+v", ms)
			}

			runJSON(t, &out, args("rooms", "kick", "ops", "carol", "--reason", "spam")...)
			if ms := members(); len(ms) != 2 {
				t.Errorf("after the kick: %+v", ms)
			}
			runJSON(t, &out, args("rooms", "ban", "ops", "carol", "--for", "1h", "--reason", "again")...)
			var bans []struct {
				UserID, Reason string
				ExpiresAt      *time.Time
			}
			runJSON(t, &bans, args("rooms", "bans", "ops")...)
			if len(bans) != 1 || bans[0].UserID != users["carol"] || bans[0].Reason != "again" || bans[0].ExpiresAt == nil {
				t.Errorf("bans: %+v", bans)
			}
			if msg := runFail(t, args("rooms", "add", "ops", "carol")...); !strings.Contains(msg, "banned") {
				t.Errorf("adding a banned user: %q", msg)
			}
			runJSON(t, &out, args("rooms", "unban", "ops", "carol")...)
			runJSON(t, &bans, args("rooms", "bans", "ops")...)
			if len(bans) != 0 {
				t.Errorf("bans after unban: %+v", bans)
			}

			runJSON(t, &out, args("rooms", "mute", "ops", "bob", "--for", "10m")...)
			if m := members()["bob"]; m.MutedUntil == nil || time.Until(*m.MutedUntil) < 9*time.Minute {
				t.Errorf("bob after the mute: %+v", m)
			}
			runJSON(t, &out, args("rooms", "mute", "ops", "bob", "--for", "0")...)
			runJSON(t, &out, args("rooms", "role", "ops", "bob", "readonly")...)
			if m := members()["bob"]; m.MutedUntil != nil || m.Role != "readonly" {
				t.Errorf("bob after unmute and readonly: %+v", m)
			}

			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"rooms", "kick", "ops", "nobody"}, "no user"},
				{[]string{"rooms", "kick", "nowhere", "bob"}, "no room"},
				{[]string{"rooms", "role", "ops", "bob", "boss"}, "role must be"},
				{[]string{"rooms", "kick", "ops", "carol"}, "not a member"},
				{[]string{"rooms", "unban", "ops", "bob"}, "not banned"},
				{[]string{"rooms", "kick", "general", "bob"}, "ban instead"},
			} {
				if msg := runFail(t, args(c.args...)...); !strings.Contains(msg, c.want) {
					t.Errorf("aurora %s: %q, want it to say %q", strings.Join(c.args, " "), msg, c.want)
				}
			}

			var promoted struct {
				Admin bool `json:"admin"`
			}
			runJSON(t, &promoted, args("users", "promote", "alice")...)
			if !promoted.Admin {
				t.Errorf("promote: %+v", promoted)
			}
			runJSON(t, &promoted, args("users", "demote", "alice")...)
			if promoted.Admin {
				t.Errorf("demote: %+v", promoted)
			}
		})
	}
}
