package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is one batch's way from the stream to the store: read (new,
// own pending, or claimed from idle consumers), insert, acknowledge.

// read reads up to a batch: new entries (id ">"), blocking up to the flush
// interval when block is set, or this consumer's pending entries after id.
func (w *Worker) read(ctx context.Context, id string, block bool) ([]rueidis.XRangeSlice, error) {
	var wait time.Duration
	if block {
		wait = w.o.Config.FlushInterval
	}
	entries, err := bus.ReadGroup(ctx, w.o.Redis, w.o.Stream, w.o.Consumer, id, int64(w.o.Config.BatchSize), wait)
	if bus.IsNoGroup(err) {
		// The stream was deleted (or Redis flushed): create the group
		// again, from "0" so nothing appended since is skipped.
		if err := bus.EnsureGroup(ctx, w.o.Redis, w.o.Stream); err != nil {
			return nil, err
		}
		w.groupLost(ctx)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if n := len(entries); n > 0 {
		w.noteRead(entries[n-1].ID)
	}
	return entries, nil
}

// noteRead remembers id when it is the highest read so far.
func (w *Worker) noteRead(id string) {
	pid, err := bus.ParseID(id)
	if err != nil {
		return
	}
	w.lastMu.Lock()
	defer w.lastMu.Unlock()
	if last, err := bus.ParseID(w.lastRead); err != nil || last.Compare(pid) < 0 {
		w.lastRead = id
	}
}

// groupLost reports that the consumer group vanished. Only a stream deleted
// by hand or Redis losing its data (a restart without persistence, a
// failover to a replica that lagged) does that, and then every entry that
// was appended (acknowledged to its sender) and not yet stored is gone with
// it: say so as an error, with what this worker knows of the range.
func (w *Worker) groupLost(ctx context.Context) {
	w.lastMu.Lock()
	last := w.lastRead
	w.lastMu.Unlock()
	first := "(empty)"
	if id, err := bus.FirstID(ctx, w.o.Redis, w.o.Stream); err == nil && id != "" {
		first = id
	}
	if last == "" {
		last = "(none read by this worker)"
	}
	w.log.Error("the consumer group was gone: Redis lost the message stream, so messages acknowledged to their senders "+
		"and not yet stored may be lost; created the group again (see docs/reliability.md)",
		"group", bus.Group, "last_read_by_this_worker", last, "stream_now_starts_at", first)
	w.m.groupLost.Inc()
}

// ownPending stores this consumer's pending entries: left by a previous
// run under the same name, claimed for it by an operator, or rejected
// entries waiting for their next delivery.
func (w *Worker) ownPending(final bool) {
	cursor := "0"
	for w.hardCtx.Err() == nil {
		entries, err := w.read(w.hardCtx, cursor, false)
		if err != nil {
			w.redisHealth.fail(w.log, "redis", err)
			return
		}
		if len(entries) == 0 {
			return
		}
		// Some servers ignore COUNT when reading pending entries.
		for i := 0; i < len(entries); i += w.o.Config.BatchSize {
			w.process(entries[i:min(i+w.o.Config.BatchSize, len(entries))], final)
		}
		cursor = entries[len(entries)-1].ID
	}
}

// claim takes over entries pending for at least minIdle in any consumer
// (crashed workers, and this one's own rejected entries) and stores them.
// It returns how many it took and how many of those it acknowledged.
func (w *Worker) claim(minIdle time.Duration, final bool) (taken, acked int) {
	cursor := "0-0"
	for w.hardCtx.Err() == nil && (final || w.softCtx.Err() == nil) {
		got, err := bus.AutoClaim(w.hardCtx, w.o.Redis, w.o.Stream, w.o.Consumer, minIdle, cursor, int64(w.o.Config.BatchSize))
		if err != nil {
			w.redisHealth.fail(w.log, "redis", err)
			return taken, acked
		}
		for _, err := range got.Unreadable {
			w.log.Error("unreadable entry in an XAUTOCLAIM reply", "err", err)
		}
		if len(got.Deleted) > 0 {
			w.m.lost.Add(float64(len(got.Deleted)))
			w.log.Error("pending entries were deleted from the stream before they were stored", "ids", got.Deleted)
		}
		if entries := got.Entries; len(entries) > 0 {
			taken += len(entries)
			w.m.claimed.Add(float64(len(entries)))
			w.log.Info("claimed idle entries", "entries", len(entries), "min_idle", minIdle)
			acked += w.process(entries, final)
		}
		if got.Done() {
			return taken, acked
		}
		cursor = got.Next
	}
	return taken, acked
}

// process stores a batch and acknowledges what the store confirmed (stored
// or already stored), and what went to the dead stream. It returns how many
// entries it acknowledged. final (the embedded Redis's last drain) sends
// rejected entries to the dead stream without waiting for more deliveries.
func (w *Worker) process(entries []rueidis.XRangeSlice, final bool) int {
	w.m.consumed.Add(float64(len(entries)))
	w.m.batchSize.Observe(float64(len(entries)))
	var (
		ack     []string
		msgs    []store.Message
		from    []int // index in entries of each message
		poison  []poisonEntry
		removed []bus.Attachment
		now     = time.Now().UTC()
	)
	for i, e := range entries {
		if e.FieldValues == nil {
			// Only a trim or XDEL by someone else deletes a pending entry.
			w.m.lost.Inc()
			w.log.Error("pending entry was deleted from the stream before it was stored; acknowledging it", "id", e.ID)
			ack = append(ack, e.ID)
			continue
		}
		be, err := bus.DecodeForStore(e)
		if err != nil {
			poison = append(poison, poisonEntry{entry: e, msgID: bus.DeadID(e), reason: err.Error(), undecodable: true})
			continue
		}
		msgs = append(msgs, store.MessageFromEntry(be, now))
		from = append(from, i)
	}
	if len(msgs) > 0 {
		res, ok := w.insert(msgs)
		if !ok {
			w.left.Add(int64(len(entries)))
			return 0
		}
		removed = res.Removed
		for j, m := range msgs {
			if reason, rejected := res.Rejected[j]; rejected {
				poison = append(poison, poisonEntry{entry: entries[from[j]], msgID: m.ID.String(), reason: "rejected by the store: " + reason})
				continue
			}
			ack = append(ack, entries[from[j]].ID)
		}
	}
	if len(poison) > 0 {
		ack = append(ack, w.deadLetter(poison, final)...)
	}
	// Before the ack: a crash between the two only deletes them again on
	// redelivery (the store names a deleted message's objects each time),
	// where after it the objects would be left for good, downloadable by
	// anyone holding the URL. A failed delete is logged and counted, and
	// deleteTimeout bounds them all: the batch is never held up for long.
	w.deleteAttachments(removed)
	if !w.ack(ack) {
		return 0
	}
	return len(ack)
}

// insert writes msgs with one InsertMessages call, retrying with backoff
// while the store fails. ok is false only when Stop's deadline passed
// first: then nothing may be assumed stored and nothing is acknowledged.
func (w *Worker) insert(msgs []store.Message) (res store.InsertResult, ok bool) {
	b := retry()
	for {
		ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
		start := time.Now()
		res, err := w.o.Store.InsertMessages(ctx, msgs)
		cancel()
		w.m.insertLatency.Observe(time.Since(start).Seconds())
		if err == nil {
			w.storeHealth.ok(w.log, "store")
			w.m.inserted.Add(float64(res.Inserted))
			w.m.duplicates.Add(float64(res.Duplicates))
			if got := res.Inserted + res.Duplicates + len(res.Rejected); got != len(msgs) {
				w.log.Warn("store accounted for a different number of messages than it was given",
					"given", len(msgs), "inserted", res.Inserted, "duplicates", res.Duplicates, "rejected", len(res.Rejected))
			}
			return res, true
		}
		if w.hardCtx.Err() != nil {
			return res, false
		}
		w.m.storeErrors.Inc()
		w.storeHealth.fail(w.log, "store", fmt.Errorf("insert batch of %d: %w", len(msgs), err))
		if !b.Wait(w.hardCtx) {
			return res, false
		}
	}
}

// ack acknowledges ids, retrying while Redis fails (the store already has
// them; an unacknowledged entry would only be delivered again and found a
// duplicate). It reports false when Stop's deadline passed first.
func (w *Worker) ack(ids []string) bool {
	if len(ids) == 0 {
		return true
	}
	b := retry()
	for {
		ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
		err := bus.Ack(ctx, w.o.Redis, w.o.Stream, ids...)
		cancel()
		if err == nil {
			w.redisHealth.ok(w.log, "redis")
			return true
		}
		if bus.IsNoGroup(err) {
			w.log.Warn("the consumer group is gone; nothing to acknowledge", "entries", len(ids))
			return true
		}
		if w.hardCtx.Err() != nil {
			return false
		}
		w.redisHealth.fail(w.log, "redis", err)
		if !b.Wait(w.hardCtx) {
			return false
		}
	}
}
