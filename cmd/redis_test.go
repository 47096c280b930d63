package cmd_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
)

// TestWarnsWithoutAOF: a real Redis that keeps no append-only file gets a
// start-up WARN, since its restart loses the un-ingested tail. CI's real
// Redis runs with --appendonly no; the embedded one is warned about
// separately (it keeps nothing at all). Here, not in app, because it needs
// a role.
func TestWarnsWithoutAOF(t *testing.T) {
	if !apptest.RealRedis() {
		t.Skipf("needs the real Redis of %s (CI's second pass sets it)", apptest.RedisEnv)
	}
	var logs apptest.Buffer
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	apptest.StartWithLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "appendonly no") {
		t.Fatalf("no warning about appendonly no:\n%s", logs.String())
	}
}
