package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/audit"
)

func logged(t *testing.T, e audit.Entry) map[string]any {
	t.Helper()
	var b bytes.Buffer
	audit.Log(context.Background(), slog.New(slog.NewJSONHandler(&b, nil)), e)
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Fatalf("%d lines, want 1: %q", n, b.String())
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b.String())
	}
	delete(m, "time")
	return m
}

// An Entry's fields map to fixed attribute names; empty ones are left out.
func TestLogShape(t *testing.T) {
	got := logged(t, audit.Entry{
		Event: audit.UserLoginFailed, User: "alice", UserID: "u1", Room: "dev",
		IP: netip.MustParseAddr("198.51.100.7"), Reason: audit.WrongPassword,
		Actor: audit.Actor{Kind: "cli", OSUser: "root", SudoUser: "bob"},
	})
	want := map[string]any{
		"level": "INFO", "msg": "audit", "event": "user.login_failed", "user": "alice", "user_id": "u1",
		"room": "dev", "ip": "198.51.100.7", "reason": "wrong_password", "actor": "cli", "os_user": "root", "sudo_user": "bob",
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	got = logged(t, audit.Entry{Event: audit.RoomDelete, Room: "dev"})
	if len(got) != 4 || got["event"] != "room.delete" || got["room"] != "dev" {
		t.Errorf("empty fields not left out: %v", got)
	}
}

// Text a client or an operator chose is bounded and cannot break the line.
func TestLogBoundsInput(t *testing.T) {
	got := logged(t, audit.Entry{
		Event: audit.UserLoginFailed,
		User:  "bob\n{\"msg\":\"audit\"}" + strings.Repeat("x", 16000),
		Room:  strings.Repeat("r", 200),
	})
	user, _ := got["user"].(string)
	if strings.Contains(user, "\n") || !strings.HasSuffix(user, "…(16019 bytes)") || len(user) > 100 {
		t.Errorf("user not bounded and cleaned: %q", user)
	}
	if room, _ := got["room"].(string); !strings.HasSuffix(room, "…(200 bytes)") {
		t.Errorf("room not bounded: %q", room)
	}
}

// The CLI actor names the OS account and, through sudo, its caller.
func TestCLIActor(t *testing.T) {
	t.Setenv("SUDO_USER", "bob")
	a := audit.CLI()
	if a.Kind != "cli" || a.OSUser == "" || a.SudoUser != "bob" {
		t.Fatalf("CLI() = %+v", a)
	}
	os.Unsetenv("SUDO_USER")
	if a := audit.CLI(); a.SudoUser != "" {
		t.Fatalf("CLI() without sudo = %+v", a)
	}
}
