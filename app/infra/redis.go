package infra

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
)

func newRedisModule(ctx context.Context, h *app.Host) (app.Module, error) {
	var embedded *embeddedredis.Server
	var removeRuntime func()
	url := h.Config.Redis.URL
	var opt rueidis.ClientOption
	if url == "" {
		// The runtime file below holds the embedded Redis' password.
		if err := PrivateDataDir(h.Config.DataDir, h.Log); err != nil {
			return nil, err
		}
		var err error
		embedded, err = embeddedredis.Start("127.0.0.1:0", embeddedredis.Options{})
		if err != nil {
			return nil, err
		}
		// Operator commands on this data dir find the Redis through this file.
		removeRuntime, err = embedded.WriteRuntime(h.Config.DataDir)
		if err != nil {
			embedded.Close()
			return nil, err
		}
		opt = embedded.ClientOptions()
		h.RedisEmbedded = true
	} else {
		var err error
		opt, err = RedisOptions(url)
		if err != nil {
			return nil, err
		}
	}
	closeEmbedded := func() {
		if embedded != nil {
			removeRuntime()
			embedded.Close()
		}
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		closeEmbedded()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	h.Redis = client
	if embedded == nil {
		warnWithoutAOF(ctx, client, h.Log)
	}
	return funcModule{
		stop: func(context.Context) error {
			client.Close()
			closeEmbedded()
			return nil
		},
		check: func(ctx context.Context) error { return checkRedis(ctx, client) },
	}, nil
}

// warnWithoutAOF warns when the Redis says it keeps no append-only file: a
// restart then loses every message acknowledged and not yet stored. On a
// cluster it asks the primary of the stream's slot (where the messages
// wait), not whichever node a keyless command reaches. Best effort:
// managed Redis often refuses CONFIG, and then nothing is said.
func warnWithoutAOF(ctx context.Context, c rueidis.Client, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := bus.StreamPrimary(ctx, c)
	if err != nil {
		return
	}
	kv, err := c.Do(ctx, c.B().ConfigGet().Parameter("appendonly").Build()).AsStrMap()
	if err != nil {
		return
	}
	if v, ok := kv["appendonly"]; ok && v == "no" {
		log.Warn("Redis runs without its append-only file (appendonly no): a Redis restart loses the messages " +
			"acknowledged to senders and not yet stored; see docs/reliability.md")
	}
}

// clusterRefreshInterval is how often a cluster client reads the slot map.
const clusterRefreshInterval = 5 * time.Second

// RedisOptions returns client options for a Redis URL. Client-side caching is
// off: Aurora reads nothing that it would cache.
func RedisOptions(url string) (rueidis.ClientOption, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return opt, fmt.Errorf("config key redis.url: %w", err)
	}
	opt.DisableCache = true
	// On a Redis Cluster (ignored elsewhere): read the slot map again every
	// few seconds, not only after an error or a MOVED, so that a failover or
	// a reshard is known before the next command to the slot fails on it.
	opt.ClusterOption.ShardsRefreshInterval = clusterRefreshInterval
	if opt.AlwaysRESP2 {
		// ?protocol=2 marks a RESP2-only server such as `aurora dev redis`,
		// which is never a cluster either.
		opt.ForceSingleClient = true
	}
	return opt, nil
}
