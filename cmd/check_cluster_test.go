package cmd_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/redistest"
)

// TestCheckCluster: `aurora check` on a Redis Cluster reports the
// cluster's state and the primary and replica serving the stream's slot,
// read from whichever node answers: with the first seed of redis.url
// dead, it still does.
func TestCheckCluster(t *testing.T) {
	redistest.RequireCluster(t)
	clearConfigEnv(t)
	cl := redistest.StartCluster(t, 3, 1)
	type report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	redisDetail := func() string {
		t.Helper()
		var r report
		runJSON(t, &r, "check", "--data-dir", t.TempDir(), "--redis-url", cl.URL)
		for _, c := range r.Checks {
			if c.Name == "redis" {
				return c.Detail
			}
		}
		t.Fatalf("no redis check in %+v", r)
		return ""
	}
	prim := cl.PrimaryOf(bus.Stream)
	want := []string{"cluster_state ok", fmt.Sprintf("slot %d on primary 127.0.0.1:%d", cl.Slot(bus.Stream), prim.Port), "replicas 127.0.0.1:"}
	d := redisDetail()
	for _, w := range want {
		if !strings.Contains(d, w) {
			t.Errorf("check's redis detail %q lacks %q", d, w)
		}
	}
	seed := cl.Nodes[0]
	if seed == prim {
		t.Fatalf("the seed %d serves the stream's slot", seed.Port)
	}
	seed.Kill()
	cl.WaitHealthy()
	if d := redisDetail(); !strings.Contains(d, "cluster_state ok") || !strings.Contains(d, want[1]) {
		t.Errorf("with the seed dead, check's redis detail is %q", d)
	}
}
