package infra

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// checkRedis is the redis module's readiness: PING on one Redis; on a
// cluster, the cluster's state as any node sees it, so a dead seed node
// changes nothing while the cluster is healthy. (With Redis's default
// cluster-require-full-coverage yes, a cluster with a slot unserved is
// "fail" and refuses every command, so that is unready; with no, the rest
// of the cluster serves and stays "ok", see docs/deploy.md.)
func checkRedis(ctx context.Context, c rueidis.Client) error {
	if c.Mode() != rueidis.ClientModeCluster {
		return c.Do(ctx, c.B().Ping().Build()).Error()
	}
	state, node, err := bus.ClusterState(ctx, c)
	if err != nil {
		return err
	}
	if state != "ok" {
		return fmt.Errorf("redis cluster state is %q (as node %s sees it)", state, node)
	}
	return nil
}
