package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/backoff"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// This file is the worker's life: its options, start, stop, health check
// and its reading loop. batch.go stores what it reads, dead.go moves what
// cannot be stored, upkeep.go trims, drains and tidies the group.

// Retry pacing for a failing store or Redis (app/backoff): capped
// exponential backoff with jitter, so many workers recovering together do
// not hit the store in lockstep. The ceiling bounds how long ingest takes
// to resume once Redis or the store is back (a wait is at most maxBackoff):
// 2 s keeps that short while a failing worker still tries only about once
// a second.
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

// retry is a fresh retry schedule for one loop.
func retry() *backoff.Backoff { return &backoff.Backoff{Min: minBackoff, Max: maxBackoff} }

// Options configure a Worker.
type Options struct {
	Redis rueidis.Client
	Store store.MessageWriter
	Log   *slog.Logger // default: discard
	// Config is the ingest section of the configuration.
	Config config.Ingest
	// Consumer is the name in the consumer group (default ConsumerName()).
	Consumer string
	// Stream is the stream this worker reads, through the group bus.Group
	// on it (default bus.Stream, shard 0). The ingest module runs one
	// Worker per shard stream (bus.Shards.Streams).
	Stream string
	// Embedded tells that Redis is the in-process one, which keeps nothing
	// across restarts: Stop then drains the whole stream into the store.
	Embedded bool
	// Metrics registers the aurora_ingest_* series (nil: not registered).
	Metrics prometheus.Registerer
	// Attachments deletes the objects of the attachments that deletes and
	// retention removed from the store (nil: none are deleted).
	Attachments AttachmentDeleter
	// Rooms lists the rooms and their retention for the retention loop
	// (Shards runs it; nil: no retention).
	Rooms RoomLister
	// shared are series already made for another Worker of the same
	// process (another shard), which this one adds to instead of
	// registering its own.
	shared *metrics
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
	if o.Stream == "" {
		o.Stream = bus.Stream
	}
	m := o.shared
	if m == nil {
		m = newMetrics(o.Metrics)
	}
	if o.MaintainEvery <= 0 {
		o.MaintainEvery = 5 * time.Second
	}
	if o.ConsumerExpiry <= 0 {
		o.ConsumerExpiry = max(time.Hour, 10*c.ClaimIdle)
	}
	w := &Worker{
		o:         o,
		log:       o.Log.With("consumer", o.Consumer, "stream", o.Stream),
		m:         m,
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
	if err := bus.EnsureGroup(ctx, w.o.Redis, w.o.Stream); err != nil {
		return err
	}
	w.started.Store(true)
	w.log.Info("ingest worker started", "group", bus.Group,
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
			w.o.Store.Kind(), since.Format(time.RFC3339), w.o.Stream, err)
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
	rb := retry()
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
			rb.Wait(w.softCtx)
			continue
		}
		rb.Reset()
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
