package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/backoff"
	"github.com/auroradev/aurora/app/bus"
)

// errPubSubDown is returned by sync while the Pub/Sub connection is down.
var errPubSubDown = errors.New("redis pubsub connection down")

// subscriber owns the replica's one Pub/Sub connection (a dedicated Redis
// connection with Pub/Sub hooks). It is subscribed to the channels of
// exactly the rooms with local members: sync reconciles one room with the
// hub, and after a reconnect every such room is subscribed again. No
// PSUBSCRIBE: a replica never receives the traffic of rooms it does not
// serve.
//
// The commands and channel names are bus.PubSub's: SUBSCRIBE on a single
// Redis, SSUBSCRIBE on a Redis Cluster, where the dedicated connection is
// to the primary of the slot the rooms' sharded channels share. There
// Redis also takes subscriptions away by itself when that slot moves (a
// reshard, or a failover that made another node its owner): it sends
// "sunsubscribe" notices this subscriber did not ask for, which it treats
// as a lost connection (subscribe again, on the slot's owner, and recover
// the gap).
type subscriber struct {
	client    rueidis.Client
	ps        bus.PubSub
	hub       *hub
	onMessage func(channel, payload string)
	log       *slog.Logger

	// mu serialises SUBSCRIBE/UNSUBSCRIBE and reconnects, so the
	// subscription state always converges to the hub's membership.
	mu         sync.Mutex
	dc         rueidis.DedicatedClient
	errs       <-chan error
	subscribed map[string]bool
	closed     bool

	up atomic.Bool

	// asked counts the sunsubscribe notices this subscriber asked for
	// (SUNSUBSCRIBE of a room it left) and has not seen yet; a notice
	// beyond them is Redis's own, and signals moved.
	asked atomic.Int64
	moved chan struct{}
	// gen numbers the connections: a notice of an older one (closed, its
	// last notices still being read) is ignored.
	gen atomic.Int64

	// onGap is called after the connection came back from a loss (lost at
	// lostAt): what was published meanwhile never reached this replica
	// (Pub/Sub keeps nothing), so the local members may have to recover it.
	onGap func(lostAt time.Time)
}

func newSubscriber(c rueidis.Client, h *hub, onMessage func(channel, payload string), log *slog.Logger) *subscriber {
	return &subscriber{client: c, ps: bus.PubSubOf(c), hub: h, onMessage: onMessage, log: log,
		subscribed: map[string]bool{}, moved: make(chan struct{}, 1)}
}

// onSubscription sees every (un)subscribe notice of the connection. It
// runs on the connection's reading goroutine, so it must not block nor
// take s.mu (sync holds it while it waits for the answer).
func (s *subscriber) onSubscription(gen int64, n rueidis.PubSubSubscription) {
	if !s.ps.Sharded() || n.Kind != "sunsubscribe" || gen != s.gen.Load() {
		return
	}
	if s.asked.Add(-1) >= 0 {
		return
	}
	s.asked.Add(1)
	select {
	case s.moved <- struct{}{}:
	default: // already signalled
	}
}

// subscribeChunk bounds the channels of one SUBSCRIBE after a reconnect.
const subscribeChunk = 300

// connect opens the Pub/Sub connection (if it is not open) and subscribes
// every room with local members.
func (s *subscriber) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("subscriber closed")
	}
	if s.dc != nil {
		return nil
	}
	dc, _ := s.client.Dedicate()
	gen := s.gen.Add(1)
	s.asked.Store(0)
	errs := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      func(m rueidis.PubSubMessage) { s.onMessage(m.Channel, m.Message) },
		OnSubscription: func(n rueidis.PubSubSubscription) { s.onSubscription(gen, n) },
	})
	fail := func(err error) error {
		dc.Close()
		return err
	}
	rooms := s.hub.roomNames()
	var chs []string
	for _, r := range rooms {
		chs = append(chs, s.ps.Channels(r)...)
	}
	for len(chs) > 0 {
		n := min(len(chs), subscribeChunk)
		if err := dc.Do(ctx, s.ps.Subscribe(dc.B(), chs[:n]...)).Error(); err != nil {
			return fail(fmt.Errorf("subscribe %d channels: %w", n, err))
		}
		chs = chs[n:]
	}
	select {
	case err := <-errs:
		if err == nil {
			err = errPubSubDown
		}
		return fail(fmt.Errorf("open pubsub connection: %w", err))
	default:
	}
	select {
	case <-s.moved: // signalled by the connection this one replaces
	default:
	}
	s.dc, s.errs = dc, errs
	s.subscribed = make(map[string]bool, len(rooms))
	for _, r := range rooms {
		s.subscribed[r] = true
	}
	s.up.Store(true)
	return nil
}

// teardown forgets a broken connection.
func (s *subscriber) teardown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up.Store(false)
	if s.dc != nil {
		// Close, not release: the connection is broken, or we are done.
		s.dc.Close()
	}
	s.dc, s.errs = nil, nil
	s.subscribed = map[string]bool{}
}

// run keeps the connection up until ctx is done: it waits for the
// connection to fail, then reconnects with backoff.
func (s *subscriber) run(ctx context.Context) {
	retry := backoff.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	var lostAt time.Time // the connection was up and broke then: a gap to recover
	for {
		s.mu.Lock()
		errs := s.errs
		s.mu.Unlock()
		if errs == nil {
			cctx, cancel := context.WithTimeout(ctx, redisTimeout)
			err := s.connect(cctx)
			cancel()
			if err == nil {
				s.log.Info("pubsub connected", "rooms", len(s.hub.roomNames()))
				retry.Reset()
				if !lostAt.IsZero() && s.onGap != nil {
					s.onGap(lostAt)
				}
				lostAt = time.Time{}
				continue
			}
			if ctx.Err() != nil {
				return
			}
			wait := retry.Next()
			s.log.Warn("pubsub connect failed", "err", err, "retry_in", wait)
			if !backoff.Sleep(ctx, wait) {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			s.log.Warn("pubsub connection lost", "err", err)
			s.teardown()
			lostAt = time.Now()
		case <-s.moved:
			s.log.Warn("redis took this replica's sharded subscriptions away (their slot moved to another node); subscribing again")
			s.teardown()
			lostAt = time.Now()
		}
	}
}

// sync makes the subscription of room match whether it has local members.
// A room gaining its first member waits for SUBSCRIBE, so a member receives
// everything published after its join was answered.
func (s *subscriber) sync(ctx context.Context, room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.hub.has(room)
	if want == s.subscribed[room] {
		return nil
	}
	if s.dc == nil {
		if want {
			return errPubSubDown
		}
		delete(s.subscribed, room)
		return nil
	}
	chs := s.ps.Channels(room)
	if want {
		if err := s.dc.Do(ctx, s.ps.Subscribe(s.dc.B(), chs...)).Error(); err != nil {
			return fmt.Errorf("subscribe room %s: %w", room, err)
		}
		s.subscribed[room] = true
		return nil
	}
	// Forget it even when UNSUBSCRIBE fails: a failure means the connection
	// broke, and the next one subscribes only rooms with members.
	delete(s.subscribed, room)
	if s.ps.Sharded() {
		s.asked.Add(int64(len(chs))) // one notice per channel
	}
	if err := s.dc.Do(ctx, s.ps.Unsubscribe(s.dc.B(), chs...)).Error(); err != nil {
		return fmt.Errorf("unsubscribe room %s: %w", room, err)
	}
	return nil
}

// close closes the connection for good.
func (s *subscriber) close() {
	s.teardown()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
