package ingest

import (
	"context"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// This file is the worker's upkeep beside the batches: the periodic trim and
// gauges, the embedded Redis's final drain, and leaving or expiring
// consumers of the group.

// drain is the embedded Redis's last step: store everything still in the
// stream, new and pending, since the stream dies with the process.
func (w *Worker) drain() {
	stored := 0
	b := retry()
	for w.hardCtx.Err() == nil {
		entries, err := w.read(w.hardCtx, ">", false)
		if err != nil {
			w.redisHealth.fail(w.log, "redis", err)
			b.Wait(w.hardCtx)
			continue
		}
		if len(entries) > 0 {
			acked := w.process(entries, true)
			if acked == 0 {
				b.Wait(w.hardCtx)
			}
			stored += acked
			continue
		}
		// Nothing new: take over whatever is still pending, in any consumer.
		taken, acked := w.claim(0, true)
		if taken == 0 {
			break
		}
		if acked == 0 {
			b.Wait(w.hardCtx)
		}
		stored += acked
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	left := int64(0)
	if gs, _, err := bus.Groups(ctx, w.o.Redis, w.o.Stream); err == nil {
		for _, g := range gs {
			if g.Name == bus.Group {
				left = g.Pending + g.Lag
			}
		}
	}
	if left > 0 {
		w.left.Store(left)
		w.log.Error("the embedded Redis stops with entries not stored; they are lost", "entries", left)
		return
	}
	w.log.Info("drained the embedded Redis stream into the store", "entries", stored)
}

// leave removes this consumer from the group at a graceful stop when it has
// nothing pending, so the group lists live consumers only.
func (w *Worker) leave() {
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	defer cancel()
	if _, err := bus.RemoveConsumer(ctx, w.o.Redis, w.o.Stream, w.o.Consumer); err != nil {
		w.log.Debug("could not leave the consumer group", "err", err)
	}
}

// expireConsumers removes other consumers idle for ConsumerExpiry with
// nothing pending (workers long gone). One with pending entries is never
// removed: XGROUP DELCONSUMER would drop them from the group unacknowledged.
func (w *Worker) expireConsumers() {
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	defer cancel()
	cs, err := bus.Consumers(ctx, w.o.Redis, w.o.Stream, bus.Group)
	if err != nil {
		return
	}
	for _, ci := range cs {
		if ci.Name == w.o.Consumer || ci.Pending > 0 || ci.IdleMs < 0 || time.Duration(ci.IdleMs)*time.Millisecond < w.o.ConsumerExpiry {
			continue
		}
		if removed, err := bus.RemoveConsumer(ctx, w.o.Redis, w.o.Stream, ci.Name); err == nil && removed {
			w.log.Info("removed an idle consumer from the group", "consumer", ci.Name, "idle", time.Duration(ci.IdleMs)*time.Millisecond)
		}
	}
}

// maintain refreshes the gauges and trims the stream periodically, on its
// own goroutine so that both go on while the worker waits for the store.
func (w *Worker) maintain() {
	defer close(w.maintDone)
	t := time.NewTicker(w.o.MaintainEvery)
	defer t.Stop()
	for {
		w.maintainOnce()
		select {
		case <-w.softCtx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) maintainOnce() {
	ctx, cancel := context.WithTimeout(w.softCtx, attemptTimeout)
	defer cancel()
	c := w.o.Redis
	err := func() error {
		gs, _, err := bus.Groups(ctx, c, w.o.Stream)
		if err != nil {
			return err
		}
		var pending, lag float64
		for _, g := range gs {
			if g.Name == bus.Group {
				pending, lag = float64(g.Pending), float64(g.Lag)
			}
		}
		res, err := bus.Trim(ctx, c, w.o.Stream, int64(w.o.Config.KeepRecent), trimPerPass, false)
		if err != nil {
			return err
		}
		w.m.trimmed.Add(float64(res.Trimmed))
		w.m.setStream(w.o.Stream, pending, lag, float64(res.LengthBefore-res.Trimmed))
		if res.Trimmed > 0 {
			w.log.Debug("trimmed acknowledged entries", "entries", res.Trimmed, "min_id", res.MinID)
		}
		return nil
	}()
	if err != nil {
		if ctx.Err() == nil {
			w.maintHealth.fail(w.log, "stream maintenance", err)
		}
		return
	}
	w.maintHealth.ok(w.log, "stream maintenance")
}
