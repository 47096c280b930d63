package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/redistest"
)

// TestClusterView on a real loopback cluster (AURORA_TEST_CLUSTER=1): the
// cluster's state, the nodes serving the stream's slot and a client of
// its primary, also after the first seed node died; and PubSubOf a
// cluster client is sharded.
func TestClusterView(t *testing.T) {
	redistest.RequireCluster(t)
	cl := redistest.StartCluster(t, 3, 1)
	c := cl.Client(t)
	if !bus.PubSubOf(c).Sharded() {
		t.Error("PubSubOf a cluster client is classic")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func(when string) {
		t.Helper()
		prim := cl.PrimaryOf(bus.Stream)
		if state, node, err := bus.ClusterState(ctx, c); err != nil || state != "ok" || node == "" {
			t.Errorf("%s: ClusterState = %q %q %v", when, state, node, err)
		}
		s, err := bus.ServingNodes(ctx, c, bus.Stream)
		if err != nil || len(s) != 1 || s[0].Primary != fmt.Sprintf("127.0.0.1:%d", prim.Port) || s[0].Slot != uint16(cl.Slot(bus.Stream)) {
			t.Errorf("%s: ServingNodes = %+v %v (primary %d)", when, s, err, prim.Port)
		}
		n, err := bus.StreamPrimary(ctx, c)
		if err != nil {
			t.Fatalf("%s: StreamPrimary: %v", when, err)
		}
		info, err := n.Do(ctx, n.B().Info().Section("server").Build()).ToString()
		if err != nil || !strings.Contains(info, fmt.Sprintf("tcp_port:%d", prim.Port)) {
			t.Errorf("%s: StreamPrimary answered INFO from another node (want port %d): %v", when, prim.Port, err)
		}
	}
	check("healthy")
	if cl.PrimaryOf(bus.Stream) == cl.Nodes[0] {
		t.Fatal("the seed node serves the stream's slot")
	}
	cl.Nodes[0].Kill()
	cl.WaitHealthy()
	check("with the seed dead")
}
