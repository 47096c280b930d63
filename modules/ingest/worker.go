package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// Retry pacing for a failing store or Redis: capped exponential backoff
// with jitter, so many workers recovering together do not hit the store in
// lockstep. The ceiling bounds how long ingest takes to resume once Redis
// or the store is back (a wait is at most maxBackoff): 2 s keeps that short
// while a failing worker still tries only about once a second.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
	// attemptTimeout bounds one store or Redis call, so a hung connection
	// becomes an error that is retried rather than a stuck worker.
	attemptTimeout = 30 * time.Second
	// trimPerPass bounds the entries one periodic trim removes (and reads
	// to find its threshold); the rest go at the next pass.
	trimPerPass = 10000
)

// Options configure a Worker.
type Options struct {
	Redis rueidis.Client
	Store store.MessageWriter
	Log   *slog.Logger // default: discard
	// Config is the ingest section of the configuration.
	Config config.Ingest
	// Consumer is the name in the consumer group (default ConsumerName()).
	Consumer string
	// Embedded tells that Redis is the in-process one, which keeps nothing
	// across restarts: Stop then drains the whole stream into the store.
	Embedded bool
	// Metrics registers the aurora_ingest_* series (nil: not registered).
	Metrics prometheus.Registerer
	// MaintainEvery is how often the gauges are refreshed and the stream
	// trimmed (default 5s).
	MaintainEvery time.Duration
	// ConsumerExpiry is how long another consumer must have been idle, with
	// nothing pending, before it is removed from the group (default the
	// larger of 1h and 10 × claim_idle).
	ConsumerExpiry time.Duration
}

// Worker moves entries from the stream into the store. It is the ingest
// module (app.Module and app.Checker).
type Worker struct {
	o   Options
	log *slog.Logger
	m   *metrics

	// softCtx ends at Stop: no new reads. hardCtx ends when Stop's
	// deadline passes: the batch in hand is abandoned (it stays pending).
	softCtx    context.Context
	softCancel context.CancelFunc
	hardCtx    context.Context
	hardCancel context.CancelFunc
	done       chan struct{}
	maintDone  chan struct{}
	started    atomic.Bool
	stopping   atomic.Bool
	// left counts entries read and not stored when the worker exited.
	left atomic.Int64
	// lastRead is the highest stream id this worker has read: what it can
	// tell of the stream when Redis loses it.
	lastMu   sync.Mutex
	lastRead string

	storeHealth health
	redisHealth health
	maintHealth health
}

// NewWorker checks the options; Start begins the work.
func NewWorker(o Options) (*Worker, error) {
	if o.Redis == nil || o.Store == nil {
		return nil, errors.New("ingest worker needs a Redis client and a store")
	}
	c := o.Config
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		return nil, fmt.Errorf("ingest.batch_size %d: must be between 1 and 1000", c.BatchSize)
	}
	if c.FlushInterval <= 0 || c.ClaimIdle <= 0 {
		return nil, errors.New("ingest.flush_interval and ingest.claim_idle must be positive")
	}
	if c.MaxDeliveries < 1 || c.KeepRecent < 1 {
		return nil, errors.New("ingest.max_deliveries and ingest.keep_recent must be at least 1")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Consumer == "" {
		o.Consumer = ConsumerName()
	}
	if o.MaintainEvery <= 0 {
		o.MaintainEvery = 5 * time.Second
	}
	if o.ConsumerExpiry <= 0 {
		o.ConsumerExpiry = max(time.Hour, 10*c.ClaimIdle)
	}
	w := &Worker{
		o:         o,
		log:       o.Log.With("consumer", o.Consumer),
		m:         newMetrics(o.Metrics),
		done:      make(chan struct{}),
		maintDone: make(chan struct{}),
	}
	w.softCtx, w.softCancel = context.WithCancel(context.Background())
	w.hardCtx, w.hardCancel = context.WithCancel(context.Background())
	return w, nil
}

// Consumer is the worker's name in the group.
func (w *Worker) Consumer() string { return w.o.Consumer }

// Start creates the group if needed and starts reading.
func (w *Worker) Start(ctx context.Context) error {
	if err := EnsureGroup(ctx, w.o.Redis); err != nil {
		return err
	}
	w.started.Store(true)
	w.log.Info("ingest worker started", "stream", bus.Stream, "group", bus.Group,
		"batch_size", w.o.Config.BatchSize, "embedded_redis", w.o.Embedded)
	go w.run()
	go w.maintain()
	return nil
}

// Stop stops reading, stores and acknowledges the batch in hand (on the
// embedded Redis: the whole stream) and returns. When ctx ends first, what
// is in hand stays pending for redelivery.
func (w *Worker) Stop(ctx context.Context) error {
	if !w.started.Load() || !w.stopping.CompareAndSwap(false, true) {
		return nil
	}
	w.softCancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.hardCancel()
		<-w.done
	}
	<-w.maintDone
	w.hardCancel()
	if n := w.left.Load(); n > 0 {
		if w.o.Embedded {
			return fmt.Errorf("stopped with %d entries not stored: the embedded Redis loses them", n)
		}
		w.log.Warn("stopped before storing every entry read; they stay pending and are delivered again", "entries", n)
	}
	w.log.Info("ingest worker stopped")
	return nil
}

// Check fails while the worker cannot write to the store or read Redis, so
// /readyz tells operators that persistence is stalled (entries wait in the
// stream meanwhile).
func (w *Worker) Check(context.Context) error {
	if since, err := w.storeHealth.get(); err != nil {
		return fmt.Errorf("cannot write to the %s store since %s (entries stay pending in %s): %w",
			w.o.Store.Kind(), since.Format(time.RFC3339), bus.Stream, err)
	}
	if since, err := w.redisHealth.get(); err != nil {
		return fmt.Errorf("cannot use redis since %s: %w", since.Format(time.RFC3339), err)
	}
	select {
	case <-w.done:
		if !w.stopping.Load() {
			return errors.New("ingest worker is not running")
		}
	default:
	}
	return nil
}

// run is the worker's only reading goroutine: reads, claims and stores all
// happen here, one batch at a time, so no entry is ever in two hands of the
// same worker.
func (w *Worker) run() {
	defer close(w.done)
	// After a restart under the same name, what this consumer read and did
	// not acknowledge comes first.
	w.ownPending(false)
	claimEvery := max(w.o.Config.ClaimIdle/2, time.Millisecond)
	nextClaim := time.Now().Add(claimEvery)
	var rb backoff
	for w.softCtx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			w.ownPending(false)
			w.claim(w.o.Config.ClaimIdle, false)
			w.expireConsumers()
			nextClaim = time.Now().Add(claimEvery)
		}
		entries, err := w.read(w.softCtx, ">", true)
		if err != nil {
			if w.softCtx.Err() != nil {
				break
			}
			w.redisHealth.fail(w.log, "redis", err)
			sleep(w.softCtx, rb.next())
			continue
		}
		rb = backoff{}
		w.redisHealth.ok(w.log, "redis")
		if len(entries) > 0 {
			w.process(entries, false)
		}
	}
	// A read interrupted by the stop may have been delivered to this
	// consumer all the same: store those entries now rather than leave
	// them for another worker's XAUTOCLAIM.
	w.ownPending(w.o.Embedded)
	if w.o.Embedded {
		w.drain()
	} else if w.hardCtx.Err() == nil {
		w.leave()
	}
}

// read reads up to a batch: new entries (id ">"), blocking up to the flush
// interval when block is set, or this consumer's pending entries after id.
func (w *Worker) read(ctx context.Context, id string, block bool) ([]rueidis.XRangeSlice, error) {
	c := w.o.Redis
	n := int64(w.o.Config.BatchSize)
	var cmd rueidis.Completed
	if block {
		ms := max(w.o.Config.FlushInterval.Milliseconds(), 1) // BLOCK 0 would wait forever
		cmd = c.B().Xreadgroup().Group(bus.Group, w.o.Consumer).Count(n).Block(ms).Streams().Key(bus.Stream).Id(id).Build()
	} else {
		cmd = c.B().Xreadgroup().Group(bus.Group, w.o.Consumer).Count(n).Streams().Key(bus.Stream).Id(id).Build()
	}
	res, err := c.Do(ctx, cmd).AsXReadSlices()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if isNoGroup(err) {
		// The stream was deleted (or Redis flushed): create the group
		// again, from "0" so nothing appended since is skipped.
		if err := EnsureGroup(ctx, c); err != nil {
			return nil, err
		}
		w.groupLost(ctx)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s as %s/%s: %w", bus.Stream, bus.Group, w.o.Consumer, err)
	}
	entries := res[bus.Stream]
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
	c := w.o.Redis
	if e, err := c.Do(ctx, c.B().Xrange().Key(bus.Stream).Start("-").End("+").Count(1).Build()).AsXRange(); err == nil && len(e) > 0 {
		first = e[0].ID
	}
	if last == "" {
		last = "(none read by this worker)"
	}
	w.log.Error("the consumer group was gone: Redis lost the message stream, so messages acknowledged to their senders "+
		"and not yet stored may be lost; created the group again (see docs/reliability.md)",
		"stream", bus.Stream, "group", bus.Group, "last_read_by_this_worker", last, "stream_now_starts_at", first)
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
	c := w.o.Redis
	cursor := "0-0"
	for w.hardCtx.Err() == nil && (final || w.softCtx.Err() == nil) {
		cmd := c.B().Xautoclaim().Key(bus.Stream).Group(bus.Group).Consumer(w.o.Consumer).
			MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Start(cursor).Count(int64(w.o.Config.BatchSize)).Build()
		arr, err := c.Do(w.hardCtx, cmd).ToArray()
		if err != nil || len(arr) < 2 {
			if err == nil {
				err = fmt.Errorf("reply of %d elements", len(arr))
			}
			w.redisHealth.fail(w.log, "redis", fmt.Errorf("claim idle entries of %s: %w", bus.Group, err))
			return taken, acked
		}
		next, _ := arr[0].ToString()
		items, _ := arr[1].ToArray()
		entries := make([]rueidis.XRangeSlice, 0, len(items))
		for _, it := range items {
			if it.IsNil() {
				continue
			}
			e, err := it.AsXRangeSlice()
			if err != nil {
				w.log.Error("unreadable entry in an XAUTOCLAIM reply", "err", err)
				continue
			}
			entries = append(entries, e)
		}
		if len(arr) >= 3 {
			// Redis 7 drops pending entries whose stream entry is gone.
			if gone, _ := arr[2].AsStrSlice(); len(gone) > 0 {
				w.m.lost.Add(float64(len(gone)))
				w.log.Error("pending entries were deleted from the stream before they were stored", "ids", gone)
			}
		}
		if len(entries) > 0 {
			taken += len(entries)
			w.m.claimed.Add(float64(len(entries)))
			w.log.Info("claimed idle entries", "entries", len(entries), "min_idle", minIdle)
			acked += w.process(entries, final)
		}
		if next == "" || next == "0-0" || next == "0" {
			return taken, acked
		}
		cursor = next
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
		ack    []string
		msgs   []store.Message
		from   []int // index in entries of each message
		poison []poisonEntry
		now    = time.Now().UTC()
	)
	for i, e := range entries {
		if e.FieldValues == nil {
			// Only a trim or XDEL by someone else deletes a pending entry.
			w.m.lost.Inc()
			w.log.Error("pending entry was deleted from the stream before it was stored; acknowledging it", "id", e.ID)
			ack = append(ack, e.ID)
			continue
		}
		m, err := decode(e, now)
		if err != nil {
			poison = append(poison, poisonEntry{entry: e, msgID: deadID(e), reason: err.Error(), undecodable: true})
			continue
		}
		msgs = append(msgs, m)
		from = append(from, i)
	}
	if len(msgs) > 0 {
		res, ok := w.insert(msgs)
		if !ok {
			w.left.Add(int64(len(entries)))
			return 0
		}
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
	if !w.ack(ack) {
		return 0
	}
	return len(ack)
}

// insert writes msgs with one InsertMessages call, retrying with backoff
// while the store fails. ok is false only when Stop's deadline passed
// first: then nothing may be assumed stored and nothing is acknowledged.
func (w *Worker) insert(msgs []store.Message) (res store.InsertResult, ok bool) {
	var b backoff
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
		if !sleep(w.hardCtx, b.next()) {
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
	c := w.o.Redis
	var b backoff
	for {
		ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
		err := c.Do(ctx, c.B().Xack().Key(bus.Stream).Group(bus.Group).Id(ids...).Build()).Error()
		cancel()
		if err == nil {
			w.redisHealth.ok(w.log, "redis")
			return true
		}
		if isNoGroup(err) {
			w.log.Warn("the consumer group is gone; nothing to acknowledge", "entries", len(ids))
			return true
		}
		if w.hardCtx.Err() != nil {
			return false
		}
		w.redisHealth.fail(w.log, "redis", fmt.Errorf("acknowledge %d entries: %w", len(ids), err))
		if !sleep(w.hardCtx, b.next()) {
			return false
		}
	}
}

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
	counts, err := w.deliveries(ids)
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
		if err := w.addDead(p); err != nil {
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

// deliveries returns the delivery count of each of ids still pending for
// this consumer.
func (w *Worker) deliveries(ids []string) (map[string]int64, error) {
	c := w.o.Redis
	cmds := make(rueidis.Commands, len(ids))
	for i, id := range ids {
		cmds[i] = c.B().Xpending().Key(bus.Stream).Group(bus.Group).Start(id).End(id).Count(1).Consumer(w.o.Consumer).Build()
	}
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	defer cancel()
	out := make(map[string]int64, len(ids))
	for i, r := range c.DoMulti(ctx, cmds...) {
		arr, err := r.ToArray()
		if err != nil {
			return nil, fmt.Errorf("delivery count of %s: %w", ids[i], err)
		}
		if len(arr) == 0 {
			continue
		}
		pe, err := parsePending(arr[0])
		if err != nil {
			return nil, fmt.Errorf("delivery count of %s: %w", ids[i], err)
		}
		out[pe.ID] = pe.Deliveries
	}
	return out, nil
}

// addDead appends p to the dead stream: its original fields (a deadId or
// reason of an earlier round replaced) plus deadId and reason.
func (w *Worker) addDead(p poisonEntry) error {
	c := w.o.Redis
	cmd := c.B().Xadd().Key(bus.DeadStream).Id("*").FieldValue()
	for _, fv := range p.entry.FieldValues {
		if fv.Field != bus.FieldDeadID && fv.Field != bus.FieldDeadReason {
			cmd = cmd.FieldValue(fv.Field, fv.Value)
		}
	}
	cmd = cmd.FieldValue(bus.FieldDeadID, p.msgID).FieldValue(bus.FieldDeadReason, p.reason)
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	defer cancel()
	if err := c.Do(ctx, cmd.Build()).Error(); err != nil {
		return fmt.Errorf("move %s to %s: %w", p.entry.ID, bus.DeadStream, err)
	}
	return nil
}

// decode turns a stream entry into a message. An entry requeued from the
// dead stream carries deadId: it is stored under that original message id.
func decode(e rueidis.XRangeSlice, now time.Time) (store.Message, error) {
	fields := make(map[string]string, len(e.FieldValues))
	for _, fv := range e.FieldValues {
		fields[fv.Field] = fv.Value
	}
	be, err := bus.DecodeEntry(e.ID, fields)
	if err != nil {
		return store.Message{}, err
	}
	if d, ok := fields[bus.FieldDeadID]; ok {
		id, err := bus.ParseID(d)
		if err != nil {
			return store.Message{}, fmt.Errorf("%w %s: %s: %v", bus.ErrBadEntry, e.ID, bus.FieldDeadID, err)
		}
		be.ID = id
	}
	return store.Message{
		ID:        be.ID,
		RoomID:    be.RoomID,
		UserID:    be.UserID,
		Username:  be.Username,
		Text:      be.Text,
		ClientID:  be.ClientID,
		Status:    "sent",
		CreatedAt: time.UnixMilli(int64(be.ID.Ms)).UTC(),
		UpdatedAt: now,
	}, nil
}

// deadID is the message id a poison entry is filed under: its deadId when
// it was requeued already (and is a valid id), else its stream id.
func deadID(e rueidis.XRangeSlice) string {
	for _, fv := range e.FieldValues {
		if fv.Field == bus.FieldDeadID {
			if _, err := bus.ParseID(fv.Value); err == nil {
				return fv.Value
			}
		}
	}
	return e.ID
}

// drain is the embedded Redis's last step: store everything still in the
// stream, new and pending, since the stream dies with the process.
func (w *Worker) drain() {
	stored := 0
	var b backoff
	for w.hardCtx.Err() == nil {
		entries, err := w.read(w.hardCtx, ">", false)
		if err != nil {
			w.redisHealth.fail(w.log, "redis", err)
			sleep(w.hardCtx, b.next())
			continue
		}
		if len(entries) > 0 {
			acked := w.process(entries, true)
			if acked == 0 {
				sleep(w.hardCtx, b.next())
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
			sleep(w.hardCtx, b.next())
		}
		stored += acked
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	left := int64(0)
	if gs, _, err := groups(ctx, w.o.Redis); err == nil {
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
	if _, err := removeConsumer(ctx, w.o.Redis, w.o.Consumer); err != nil {
		w.log.Debug("could not leave the consumer group", "err", err)
	}
}

// removeConsumerScript deletes a consumer only if it has nothing pending,
// in one script so that nothing can be delivered to it between the check and
// the delete (a read the stop interrupted may still be served by Redis for
// a moment; XGROUP DELCONSUMER would drop such an entry from the group
// without it ever being stored).
const removeConsumerScript = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1`

// removeConsumer deletes consumer from the ingest group if it has nothing
// pending, and reports whether it did.
func removeConsumer(ctx context.Context, c rueidis.Client, consumer string) (bool, error) {
	script := rueidis.NewLuaScript(removeConsumerScript)
	n, err := script.Exec(ctx, c, []string{bus.Stream}, []string{bus.Group, consumer}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("remove consumer %s from group %s: %w", consumer, bus.Group, err)
	}
	return n == 1, nil
}

// expireConsumers removes other consumers idle for ConsumerExpiry with
// nothing pending (workers long gone). One with pending entries is never
// removed: XGROUP DELCONSUMER would drop them from the group unacknowledged.
func (w *Worker) expireConsumers() {
	ctx, cancel := context.WithTimeout(w.hardCtx, attemptTimeout)
	defer cancel()
	cs, err := consumers(ctx, w.o.Redis, bus.Group)
	if err != nil {
		return
	}
	for _, ci := range cs {
		if ci.Name == w.o.Consumer || ci.Pending > 0 || ci.IdleMs < 0 || time.Duration(ci.IdleMs)*time.Millisecond < w.o.ConsumerExpiry {
			continue
		}
		if removed, err := removeConsumer(ctx, w.o.Redis, ci.Name); err == nil && removed {
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
		gs, _, err := groups(ctx, c)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Name == bus.Group {
				w.m.pending.Set(float64(g.Pending))
				w.m.lag.Set(float64(g.Lag))
			}
		}
		res, err := Trim(ctx, c, int64(w.o.Config.KeepRecent), trimPerPass, false)
		if err != nil {
			return err
		}
		w.m.trimmed.Add(float64(res.Trimmed))
		w.m.length.Set(float64(res.LengthBefore - res.Trimmed))
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

// health remembers whether a dependency works, to log once per change of
// state instead of once per attempt.
type health struct {
	mu    sync.Mutex
	err   error
	since time.Time
	tries int
}

func (h *health) fail(log *slog.Logger, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return // our own stop, not a failure of what
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	if h.err == nil {
		h.since = time.Now()
		log.Error(what+" failing; entries stay pending and are retried", "err", err)
	}
	h.err = err
}

func (h *health) ok(log *slog.Logger, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		log.Info(what+" works again", "after", time.Since(h.since).Round(time.Millisecond), "failed_attempts", h.tries)
	}
	h.err, h.tries = nil, 0
}

func (h *health) get() (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.err
}

// backoff doubles from minBackoff to maxBackoff; each wait is drawn from
// the upper half of the current step.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = minBackoff
	} else {
		b.d = min(2*b.d, maxBackoff)
	}
	return b.d/2 + rand.N(b.d/2+1)
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
