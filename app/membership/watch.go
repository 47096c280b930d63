package membership

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/backoff"
	"github.com/auroradev/aurora/app/bus"
)

// Watcher follows Channel on its own Redis connection: each change is
// applied to the cache and handed to OnChange (which removes connections).
// Whenever the subscription is (re)established the cache is purged, since
// changes announced while it was down were missed; until then Up is false.
type Watcher struct {
	Client   rueidis.Client
	Cache    *Cache
	OnChange func(Change)
	Log      *slog.Logger
	up       atomic.Bool
}

// Up reports whether the subscription is established.
func (w *Watcher) Up() bool { return w.up.Load() }

// Run keeps the subscription until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for ctx.Err() == nil {
		err := w.once(ctx, retry.Reset)
		w.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		wait := retry.Next()
		w.Log.Warn("membership changes subscription lost", "err", err, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

var (
	errWatchDown  = errors.New("pubsub connection closed")
	errWatchMoved = errors.New("unsubscribed by the server (the channel's slot moved)")
)

func (w *Watcher) once(ctx context.Context, subscribed func()) error {
	ps := bus.PubSubOf(w.Client)
	dc, release := w.Client.Dedicate()
	defer release()
	// On a cluster, a slot migration or failover ends the subscription
	// with an unsolicited sunsubscribe: resubscribe (and purge).
	moved := make(chan struct{}, 1)
	errs := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnSubscription: func(s rueidis.PubSubSubscription) {
			if s.Kind == "sunsubscribe" || s.Kind == "unsubscribe" {
				select {
				case moved <- struct{}{}:
				default:
				}
			}
		},
		OnMessage: func(m rueidis.PubSubMessage) {
			ch, err := DecodeChange(m.Message)
			if err != nil {
				w.Log.Debug("dropping a bad membership change", "err", err)
				return
			}
			w.Cache.Apply(ch)
			if w.OnChange != nil {
				w.OnChange(ch)
			}
		},
	})
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := dc.Do(sctx, ps.Subscribe(dc.B(), Channel)).Error()
	cancel()
	if err != nil {
		dc.Close()
		return err
	}
	w.Cache.Purge()
	w.up.Store(true)
	subscribed()
	select {
	case <-ctx.Done():
		dc.Close()
		return ctx.Err()
	case <-moved:
		dc.Close()
		return errWatchMoved
	case err := <-errs:
		dc.Close()
		if err == nil {
			err = errWatchDown
		}
		return err
	}
}
