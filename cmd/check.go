package cmd

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"
	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/infra"
)

// checkResult is one line of `aurora check`.
type checkResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func newCheckCmd(o *options) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Connect to the configured stores and report what is wrong, in plain words",
		Example: `  aurora check
  aurora check --json
  AURORA_REDIS_URL=redis://redis:6379 AURORA_MONGO_URL=mongodb://mongo:27017/aurorachat aurora check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := o.load(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			var results []checkResult
			add := func(name string, err error, okDetail string) {
				if err != nil {
					results = append(results, checkResult{name, false, err.Error()})
				} else {
					results = append(results, checkResult{name, true, okDetail})
				}
			}
			add("config", nil, fmt.Sprintf("roles %v, data dir %s", cfg.Roles, cfg.DataDir))

			if cfg.Redis.URL == "" {
				// serve starts its own embedded Redis, so none running is
				// no failure; one that is running must answer.
				if rt, err := embeddedredis.ReadRuntime(cfg.DataDir); err != nil {
					add("redis", nil, "embedded (in-process; starts with `aurora serve`, keeps nothing across restarts); none running on this data dir")
				} else {
					_, err := checkRedis(ctx, rt.URL, bus.Shards(cfg.Bus.Shards))
					add("redis", err, fmt.Sprintf("embedded, in the aurora serve running on this data dir (pid %d) at %s", rt.PID, rt.Addr))
				}
			} else {
				cluster, err := checkRedis(ctx, cfg.Redis.URL, bus.Shards(cfg.Bus.Shards))
				detail := "reachable at " + cfg.Masked().Redis.URL
				if cluster != "" {
					detail = "a Redis Cluster (sharded Pub/Sub) reached through " + cfg.Masked().Redis.URL + ": " + cluster
				}
				add("redis", err, detail)
			}

			s, err := infra.OpenStore(ctx, &app.Host{Config: cfg, Log: log})
			if err != nil {
				add("store", fmt.Errorf("cannot open the store: %w", err), "")
			} else {
				defer s.Close(context.Background())
				detail := s.Kind() + " store answers"
				if cfg.Mongo.URL == "" {
					detail = "embedded sqlite at " + cfg.SQLitePath()
				}
				if err := s.Ping(ctx); err != nil {
					add("store", fmt.Errorf("%s store does not answer: %w", s.Kind(), err), "")
				} else {
					add("store", nil, detail)
				}
			}

			failed := 0
			for _, r := range results {
				if !r.OK {
					failed++
				}
			}
			err = output(o.stdout, asJSON, map[string]any{"ok": failed == 0, "checks": results}, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
				for _, r := range results {
					st := "ok"
					if !r.OK {
						st = "FAIL"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, st, r.Detail)
				}
			})
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// checkRedis pings Redis and looks at the stream ingest reads, explaining
// common misconfigurations. On a Redis Cluster it also returns the
// cluster's state and the nodes serving Aurora's slot (the stream's, which
// the chat role's keys and sharded channels share), and fails when the
// cluster is not "ok" or nothing serves that slot.
func checkRedis(ctx context.Context, url string, shards bus.Shards) (cluster string, err error) {
	opt, err := infra.RedisOptions(url)
	if err != nil {
		return "", err
	}
	opt.DisableRetry = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return "", fmt.Errorf("cannot connect to redis: %w (is it running, and is the URL right?)", err)
	}
	defer c.Close()
	if c.Mode() == rueidis.ClientModeCluster {
		return checkCluster(ctx, c, shards)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		return "", fmt.Errorf("redis does not answer PING: %w", err)
	}
	if err := c.Do(ctx, c.B().Type().Key(bus.Stream).Build()).Error(); err != nil {
		return "", fmt.Errorf("redis answers PING but not TYPE %s: %w", bus.Stream, err)
	}
	return "", nil
}

// checkCluster is checkRedis on a Redis Cluster: the slot of every stream
// shard's stream (bus.shards), with its keys and message channels.
func checkCluster(ctx context.Context, c rueidis.Client, shards bus.Shards) (string, error) {
	state, node, err := bus.ClusterState(ctx, c)
	if err != nil {
		return "", err
	}
	serving, err := bus.ServingNodes(ctx, c, shards.Streams()...)
	if err != nil {
		return "", err
	}
	parts := []string{fmt.Sprintf("cluster_state %s (as %s sees it), %d nodes known", state, node, len(c.Nodes()))}
	var missing []string
	for _, s := range serving {
		if s.Primary == "" {
			missing = append(missing, fmt.Sprintf("%s (slot %d)", s.Key, s.Slot))
			continue
		}
		reps := "no replica"
		if len(s.Replicas) > 0 {
			reps = "replicas " + strings.Join(s.Replicas, ", ")
		}
		parts = append(parts, fmt.Sprintf("%s, its keys and the rooms' channels: slot %d on primary %s, %s", s.Key, s.Slot, s.Primary, reps))
	}
	detail := strings.Join(parts, "; ")
	if state != "ok" {
		return detail, fmt.Errorf("redis cluster is not healthy: %s", detail)
	}
	if len(missing) > 0 {
		return detail, fmt.Errorf("no node serves %s: %s", strings.Join(missing, ", "), detail)
	}
	if err := c.Do(ctx, c.B().Type().Key(bus.Stream).Build()).Error(); err != nil {
		return detail, fmt.Errorf("the primary of %s does not answer TYPE: %w", bus.Stream, err)
	}
	return detail, nil
}
