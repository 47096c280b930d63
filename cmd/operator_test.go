package cmd_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/store/storetest"
)

// operatorBackends runs the operator commands on the embedded SQLite store
// and on MongoDB (an embedded FerretDB).
func operatorBackends(t *testing.T) map[string][]string {
	return map[string][]string{
		"sqlite":  {"--data-dir", t.TempDir()},
		"mongodb": {"--data-dir", t.TempDir(), "--mongo-url", storetest.MongoURL(t)},
	}
}

// runJSON runs a command that must succeed and decodes its --json output.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, out, errOut := runAurora(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("aurora %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("aurora %s --json: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runFail runs a command that must fail and returns its error output.
func runFail(t *testing.T, args ...string) string {
	t.Helper()
	code, _, errOut := runAurora(t, args...)
	if code == 0 {
		t.Fatalf("aurora %s succeeded; want an error", strings.Join(args, " "))
	}
	return errOut
}

type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Disabled bool   `json:"disabled"`
	Password string `json:"password"`
}

func TestUsersCommands(t *testing.T) {
	clearConfigEnv(t)
	for name, base := range operatorBackends(t) {
		t.Run(name, func(t *testing.T) {
			var alice userJSON
			runJSON(t, &alice, append([]string{"users", "create", "Alice"}, base...)...)
			if alice.Username != "Alice" || len(alice.ID) != 24 || len(alice.Password) < 16 {
				t.Fatalf("create with a generated password: %+v", alice)
			}
			var bob userJSON
			runJSON(t, &bob, append([]string{"users", "create", "bob", "--password", "correct horse"}, base...)...)
			if bob.Password != "" {
				t.Errorf("a given password must not be echoed: %+v", bob)
			}

			if msg := runFail(t, append([]string{"users", "create", "alice", "--password", "whatever123"}, base...)...); !strings.Contains(msg, "already exists") {
				t.Errorf("duplicate (case-insensitive) user: %q", msg)
			}
			if msg := runFail(t, append([]string{"users", "create", "x", "--password", "whatever123"}, base...)...); !strings.Contains(msg, "username must be") {
				t.Errorf("invalid username: %q", msg)
			}
			if msg := runFail(t, append([]string{"users", "create", "carol", "--password", "short"}, base...)...); !strings.Contains(msg, "password must be 8-72 bytes") {
				t.Errorf("short password: %q", msg)
			}

			var list []userJSON
			runJSON(t, &list, append([]string{"users", "list"}, base...)...)
			if len(list) != 2 || list[0].Username != "Alice" || list[1].Username != "bob" {
				t.Fatalf("list: %+v", list)
			}

			var disabled userJSON
			runJSON(t, &disabled, append([]string{"users", "disable", "ALICE"}, base...)...)
			if !disabled.Disabled || disabled.ID != alice.ID {
				t.Errorf("disable: %+v", disabled)
			}
			var enabled userJSON
			runJSON(t, &enabled, append([]string{"users", "disable", "alice", "--enable"}, base...)...)
			if enabled.Disabled {
				t.Errorf("enable: %+v", enabled)
			}

			var reset userJSON
			runJSON(t, &reset, append([]string{"users", "reset-password", "bob"}, base...)...)
			if len(reset.Password) < 16 || reset.ID != bob.ID {
				t.Errorf("reset-password should generate and show a password: %+v", reset)
			}
			if msg := runFail(t, append([]string{"users", "reset-password", "nobody"}, base...)...); !strings.Contains(msg, `no user "nobody"`) {
				t.Errorf("reset of an unknown user: %q", msg)
			}
			if msg := runFail(t, append([]string{"users", "create", "dave", "--password", "x12345678", "--password-stdin"}, base...)...); !strings.Contains(msg, "not both") {
				t.Errorf("both password sources: %q", msg)
			}
		})
	}
}

func TestRoomsCommands(t *testing.T) {
	clearConfigEnv(t)
	for name, base := range operatorBackends(t) {
		t.Run(name, func(t *testing.T) {
			var created struct {
				Name string `json:"name"`
			}
			runJSON(t, &created, append([]string{"rooms", "create", "dev"}, base...)...)
			if created.Name != "dev" {
				t.Fatalf("create: %+v", created)
			}
			runJSON(t, &created, append([]string{"rooms", "create", "announcements"}, base...)...)
			if msg := runFail(t, append([]string{"rooms", "create", "dev"}, base...)...); !strings.Contains(msg, "already exists") {
				t.Errorf("duplicate room: %q", msg)
			}
			if msg := runFail(t, append([]string{"rooms", "create", "Bad Room"}, base...)...); !strings.Contains(msg, "a-z 0-9 _ -") {
				t.Errorf("bad room name: %q", msg)
			}
			var rooms []struct {
				Name string `json:"name"`
			}
			runJSON(t, &rooms, append([]string{"rooms", "list"}, base...)...)
			// general exists from the migration on.
			if len(rooms) != 3 || rooms[0].Name != "announcements" || rooms[1].Name != "dev" || rooms[2].Name != "general" {
				t.Fatalf("list: %+v", rooms)
			}
			var deleted map[string]string
			runJSON(t, &deleted, append([]string{"rooms", "delete", "dev"}, base...)...)
			if deleted["deleted"] != "dev" {
				t.Errorf("delete: %+v", deleted)
			}
			if msg := runFail(t, append([]string{"rooms", "delete", "dev"}, base...)...); !strings.Contains(msg, "does not exist") {
				t.Errorf("delete of a missing room: %q", msg)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	clearConfigEnv(t)
	type report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	var good report
	runJSON(t, &good, "check", "--data-dir", t.TempDir())
	if !good.OK || len(good.Checks) != 3 {
		t.Fatalf("check on the embedded stores: %+v", good)
	}

	// Nothing listens on port 1: the report must say Redis is the problem.
	code, out, _ := runAurora(t, "check", "--json", "--data-dir", t.TempDir(), "--redis-url", "redis://127.0.0.1:1")
	if code == 0 {
		t.Fatal("check with an unreachable Redis succeeded")
	}
	var bad report
	if err := json.Unmarshal([]byte(out), &bad); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, c := range bad.Checks {
		if c.Name == "redis" && (c.OK || !strings.Contains(c.Detail, "redis")) {
			t.Errorf("redis check: %+v", c)
		}
		if c.Name == "store" && !c.OK {
			t.Errorf("store check should pass: %+v", c)
		}
	}
	if bad.OK {
		t.Error("overall ok with a failed check")
	}
}
