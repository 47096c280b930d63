// Package ingest is the ingest role: it persists every message the chat role
// (or an AuroraChat chat-service) appends to the Redis stream chat:messages
// into the store, exactly once, reading through the consumer group
// mongo_workers that any number of ingest workers share.
//
// The promise is that no entry is acknowledged before the store confirmed
// it, and no message is stored twice. The first half is the order of
// operations: one InsertMessages per batch, XACK only after it returned
// without error, so a crash or a store outage leaves the entries pending in
// the group, where this worker (after a restart under the same name) or any
// other (XAUTOCLAIM once they are idle for ingest.claim_idle) reads them
// again. The second half is the store's unique (roomId, msgId) key: an entry
// delivered again after it was stored comes back as a duplicate, which is
// then acknowledged without a second copy.
//
// Entries that can never be stored do not block the stream: an entry that
// does not decode goes to the dead stream at once (it will never decode),
// one the store rejects goes there once it has been delivered
// ingest.max_deliveries times; both keep their original fields plus deadId
// and reason, and `aurora streams dead --requeue` puts them back.
//
// With stream shards (bus.shards) all of this holds per shard stream: the
// module runs one Worker per stream (Shards), each with the group
// mongo_workers on its stream.
//
// The stream is trimmed of entries every group acknowledged, keeping the
// newest ingest.keep_recent for reconnect recovery. A graceful stop stores
// and acknowledges the batch in hand; on the embedded Redis, which keeps
// nothing across restarts, it first drains the whole stream into the store.
package ingest

import (
	"context"
	"fmt"
	"os"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/attachment"
	"github.com/auroradev/aurora/app/bus"
)

func init() {
	app.Register(app.Registration{
		Name: "ingest",
		Role: true,
		Deps: []string{app.ModRedis, app.ModStore},
		// Stop after chat: on the embedded Redis the final drain must see
		// every message chat accepted.
		Before: []string{"chat"},
		New:    newModule,
	})
}

func newModule(_ context.Context, h *app.Host) (app.Module, error) {
	// The attachments' storage, the chat role's: ingest deletes the
	// objects of deleted and expired messages.
	storage, _, err := attachment.FromConfig(h.Config)
	if err != nil {
		return nil, fmt.Errorf("attachment storage: %w", err)
	}
	s, err := NewShards(Options{
		Redis:       h.Redis,
		Store:       h.Store,
		Log:         h.Log.With("module", "ingest"),
		Config:      h.Config.Ingest,
		Consumer:    ConsumerName(),
		Embedded:    h.RedisEmbedded,
		Metrics:     h.Metrics,
		Attachments: attachment.Deleter{Storage: storage},
		Rooms:       h.Store,
	}, bus.Shards(h.Config.Bus.Shards))
	if err != nil {
		return nil, fmt.Errorf("ingest workers: %w", err)
	}
	return s, nil
}

// ConsumerName is this process's consumer name in the group:
// "<hostname>-<pid>". A process restarted under the same name (a Kubernetes
// pod's hostname with pid 1) re-reads its own pending entries first; any
// other name's pending entries are taken over by XAUTOCLAIM.
func ConsumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "aurora"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
