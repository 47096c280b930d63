package ingest

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// This file moves entries that cannot be stored to the dead stream.

// poisonEntry is an entry that could not be stored.
type poisonEntry struct {
	entry       rueidis.XRangeSlice
	msgID       string
	reason      string
	undecodable bool
}

// deadLetter moves poison entries that have used up their deliveries (or
// can never succeed) to the dead stream and returns their ids for XACK.
// The others stay pending and come back through claim. The XADD and the
// XACK are two commands: a crash between them leaves a second dead copy on
// the next delivery, which `aurora streams dead` requeues once (same deadId).
func (w *Worker) deadLetter(ps []poisonEntry, final bool) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.entry.ID
	}
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	counts, err := bus.Deliveries(ctx, w.o.Redis, w.o.Stream, w.o.Consumer, ids)
	cancel()
	if err != nil {
		w.redisHealth.fail(w.log, "redis", err)
		return nil
	}
	var done []string
	for _, p := range ps {
		n, mine := counts[p.entry.ID]
		if !mine {
			continue // another consumer took it over meanwhile
		}
		if !p.undecodable && !final && n < int64(w.o.Config.MaxDeliveries) {
			w.log.Warn("the store rejected a message; it stays pending and is tried again",
				"id", p.entry.ID, "deliveries", n, "max_deliveries", w.o.Config.MaxDeliveries, "reason", p.reason)
			continue
		}
		ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
		err := bus.AddDead(ctx, w.o.Redis, p.entry, p.msgID, p.reason)
		cancel()
		if err != nil {
			w.redisHealth.fail(w.log, "redis", err)
			continue
		}
		w.m.deadLettered.Inc()
		w.log.Error("entry moved to the dead stream", "id", p.entry.ID, "dead_stream", bus.DeadStream,
			"deliveries", n, "reason", p.reason)
		done = append(done, p.entry.ID)
	}
	return done
}
