package cmd_test

import (
	"encoding/json"
	"os/user"
	"slices"
	"strings"
	"testing"
)

// cliAudits runs an operator command that must succeed and returns the
// audit lines (msg "audit") it logged to standard error, decoded.
func cliAudits(t *testing.T, args ...string) (stdout, stderr string, audits []map[string]string) {
	t.Helper()
	code, out, errOut := runAurora(t, args...)
	if code != 0 {
		t.Fatalf("aurora %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut, decodeAudits(t, errOut)
}

func decodeAudits(t *testing.T, log string) []map[string]string {
	t.Helper()
	var audits []map[string]string
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if m["msg"] != "audit" {
			continue
		}
		s := map[string]string{}
		for k, v := range m {
			if k != "time" && k != "msg" {
				s[k], _ = v.(string)
			}
		}
		audits = append(audits, s)
	}
	return audits
}

// Every command that changes a user or a room logs exactly one audit line
// naming it and the actor: "cli", the OS user it ran as and, through sudo,
// who ran sudo. A command that fails logs none, and no line carries a
// password.
func TestOperatorAudit(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("SUDO_USER", "operator-on-call")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-dir", t.TempDir(), "--json"}
	// run runs a command that must succeed, checks its one audit line
	// against want and that the log has no password the command printed.
	run := func(want map[string]string, args ...string) {
		t.Helper()
		out, errOut, audits := cliAudits(t, append(args, base...)...)
		var printed struct {
			Password string `json:"password"`
		}
		if err := json.Unmarshal([]byte(out), &printed); err != nil {
			t.Fatalf("aurora %s: output not JSON: %v: %q", strings.Join(args, " "), err, out)
		}
		if printed.Password != "" && strings.Contains(errOut, printed.Password) {
			t.Errorf("aurora %s logged the password it generated", strings.Join(args, " "))
		}
		if len(audits) != 1 {
			t.Fatalf("aurora %s: %d audit lines, want exactly 1: %v", strings.Join(args, " "), len(audits), audits)
		}
		want["level"] = "INFO"
		want["actor"] = "cli"
		want["os_user"] = me.Username
		want["sudo_user"] = "operator-on-call"
		got := audits[0]
		var gotKeys, wantKeys []string
		for k := range got {
			gotKeys = append(gotKeys, k)
		}
		for k := range want {
			wantKeys = append(wantKeys, k)
		}
		slices.Sort(gotKeys)
		slices.Sort(wantKeys)
		if !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("aurora %s: audit attributes %v, want %v", strings.Join(args, " "), gotKeys, wantKeys)
		}
		for k, v := range want {
			if v == "*" && got[k] != "" {
				continue
			}
			if got[k] != v {
				t.Errorf("aurora %s: audit %s = %q, want %q", strings.Join(args, " "), k, got[k], v)
			}
		}
	}

	// bob is created first so alice's id is known for her lines.
	out, _, _ := cliAudits(t, append([]string{"users", "list"}, base...)...)
	if out != "[]\n" {
		t.Fatalf("users list on a new store: %q", out)
	}
	run(map[string]string{"event": "user.create", "user": "bob", "user_id": "*"}, "users", "create", "bob")
	out, _, audits := cliAudits(t, append([]string{"users", "list"}, base...)...)
	if len(audits) != 0 {
		t.Errorf("users list logged audit lines: %v", audits)
	}
	var users []struct{ ID string }
	if err := json.Unmarshal([]byte(out), &users); err != nil || len(users) != 1 {
		t.Fatalf("users list %q: %v", out, err)
	}
	run(map[string]string{"event": "user.disable", "user": "bob", "user_id": users[0].ID}, "users", "disable", "BOB")
	run(map[string]string{"event": "user.enable", "user": "bob", "user_id": users[0].ID}, "users", "disable", "bob", "--enable")
	run(map[string]string{"event": "user.password_reset", "user": "bob", "user_id": users[0].ID}, "users", "reset-password", "bob")
	run(map[string]string{"event": "room.create", "room": "dev"}, "rooms", "create", "dev")
	run(map[string]string{"event": "room.delete", "room": "dev"}, "rooms", "delete", "dev")

	// Failures change nothing and audit nothing.
	for _, args := range [][]string{
		{"users", "disable", "nobody"},
		{"users", "create", "BOB", "--password", "whatever123"},
		{"rooms", "create", "Bad Room"},
		{"rooms", "delete", "dev"},
	} {
		code, _, errOut := runAurora(t, append(args, base...)...)
		if code == 0 {
			t.Fatalf("aurora %s succeeded; want an error", strings.Join(args, " "))
		}
		if a := decodeAudits(t, errOut); len(a) != 0 {
			t.Errorf("failed aurora %s logged audit lines: %v", strings.Join(args, " "), a)
		}
		if strings.Contains(errOut, "whatever123") {
			t.Errorf("aurora %s logged the password", strings.Join(args, " "))
		}
	}
}
