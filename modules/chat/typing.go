package chat

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// typingPublisher publishes a connection's typing frames on the room's
// typing channel (bus.PubSub's: SPUBLISH on a cluster, PUBLISH elsewhere). Typing is ephemeral: a failed publish is not worth an
// error frame nor a retry (it would be stale), but it is counted, and
// logged once per outage.
type typingPublisher struct {
	redis   rueidis.Client
	log     *slog.Logger
	dropped prometheus.Counter
	// failing is set while typing publishes fail, so that an outage is
	// logged once.
	failing atomic.Bool
}

// publish publishes frame, a typing frame of room.
func (p *typingPublisher) publish(ctx context.Context, room string, frame []byte) {
	r := p.redis
	ps := bus.PubSubOf(r)
	if err := r.Do(ctx, ps.Publish(r.B(), ps.TypingChannel(room), string(frame))).Error(); err != nil {
		p.dropped.Inc()
		if p.failing.CompareAndSwap(false, true) {
			p.log.Warn("typing: redis failing; dropping typing frames until it recovers", "room", room, "err", err)
		}
		return
	}
	if p.failing.Load() && p.failing.CompareAndSwap(true, false) {
		p.log.Info("typing: redis recovered")
	}
}
