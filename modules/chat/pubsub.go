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

// subscriber owns the replica's Pub/Sub connections: one (subConn) on a
// single Redis, and on a Redis Cluster with one stream shard; one per
// stream shard on a Redis Cluster with bus.shards N > 1, since a room's
// sharded message channel is then in its shard stream's slot (bus.PubSub)
// and a dedicated connection reaches the one node of the slot it first
// subscribed. Connection k carries the message channels of the rooms of
// shard k, and connection 0 also every room's presence and typing
// channels, which stay in shard 0's slot (bus.PubSub.ChannelsBySlot).
// up is set while every connection is up; onGap is called once all of
// them are up again after a loss of any (reconnected).
type subscriber struct {
	conns []*subConn
	upMu  sync.Mutex // orders refreshUp's reads and write
	up    atomic.Bool
	onGap func(lostAt time.Time)

	// lostAt is the earliest loss not yet recovered (reconnected).
	gapMu  sync.Mutex
	lostAt time.Time
}

func newSubscriber(c rueidis.Client, shards bus.Shards, h *hub, onMessage func(channel, payload string), log *slog.Logger) *subscriber {
	ps := bus.PubSubOf(c).WithShards(shards)
	s := &subscriber{}
	if !ps.Sharded() || shards.N() == 1 {
		s.conns = []*subConn{newSubConn(c, ps, h, onMessage, log, ps.Channels)}
	} else {
		for k := range shards.N() {
			chans := func(room string) []string { return ps.ChannelsBySlot(room)[k] }
			s.conns = append(s.conns, newSubConn(c, ps, h, onMessage, log.With("shard", k), chans))
		}
	}
	for _, sc := range s.conns {
		sc.parent = s
	}
	return s
}

// refreshUp sets up from the connections'.
func (s *subscriber) refreshUp() {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for _, sc := range s.conns {
		if !sc.up.Load() {
			s.up.Store(false)
			return
		}
	}
	s.up.Store(true)
}

// reconnected is told by a connection that it is up again after a loss at
// lostAt (zero: its first connection, no loss). The gap is recovered once
// every connection is up, from the earliest loss since the last recovery:
// one failover can take down two of them (two shard streams' slots on the
// failed node), and members closed for recovery while another connection
// is still down would find their rejoin refused (sync fails) and be closed
// again when it comes back.
func (s *subscriber) reconnected(lostAt time.Time) {
	s.gapMu.Lock()
	if !lostAt.IsZero() && (s.lostAt.IsZero() || lostAt.Before(s.lostAt)) {
		s.lostAt = lostAt
	}
	from := s.lostAt
	if from.IsZero() || !s.up.Load() {
		s.gapMu.Unlock()
		return
	}
	s.lostAt = time.Time{}
	s.gapMu.Unlock()
	if s.onGap != nil {
		s.onGap(from)
	}
}

// connect opens every connection that is not open and subscribes the rooms
// with local members.
func (s *subscriber) connect(ctx context.Context) error {
	for _, sc := range s.conns {
		if err := sc.connect(ctx); err != nil {
			return err
		}
	}
	return nil
}

// run keeps every connection up until ctx is done.
func (s *subscriber) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, sc := range s.conns {
		wg.Add(1)
		go func() { defer wg.Done(); sc.run(ctx) }()
	}
	wg.Wait()
}

// sync makes room's subscriptions match whether it has local members, on
// every connection that carries a channel of it.
func (s *subscriber) sync(ctx context.Context, room string) error {
	for _, sc := range s.conns {
		if err := sc.sync(ctx, room); err != nil {
			return err
		}
	}
	return nil
}

// close closes every connection for good.
func (s *subscriber) close() {
	for _, sc := range s.conns {
		sc.close()
	}
}

// subConn is one Pub/Sub connection (a dedicated Redis connection with
// Pub/Sub hooks). It is subscribed to the channels it carries (chans) of
// exactly the rooms with local members: sync reconciles one room with the
// hub, and after a reconnect every such room is subscribed again. No
// PSUBSCRIBE: a replica never receives the traffic of rooms it does not
// serve.
//
// The commands and channel names are bus.PubSub's: SUBSCRIBE on a single
// Redis, SSUBSCRIBE on a Redis Cluster, where the dedicated connection is
// to the primary of the slot its channels share. There
// Redis also takes subscriptions away by itself when that slot moves (a
// reshard, or a failover that made another node its owner): it sends
// "sunsubscribe" notices this subscriber did not ask for, which it treats
// as a lost connection (subscribe again, on the slot's owner, and recover
// the gap).
type subConn struct {
	client    rueidis.Client
	ps        bus.PubSub
	hub       *hub
	onMessage func(channel, payload string)
	log       *slog.Logger
	// chans are the channels of a room this connection carries (none:
	// the room is another connection's).
	chans  func(room string) []string
	parent *subscriber

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
}

func newSubConn(c rueidis.Client, ps bus.PubSub, h *hub, onMessage func(channel, payload string), log *slog.Logger,
	chans func(room string) []string) *subConn {
	return &subConn{client: c, ps: ps, hub: h, onMessage: onMessage, log: log, chans: chans,
		subscribed: map[string]bool{}, moved: make(chan struct{}, 1)}
}

// setUp records whether the connection is up.
func (s *subConn) setUp(up bool) {
	s.up.Store(up)
	if s.parent != nil {
		s.parent.refreshUp()
	}
}

// onSubscription sees every (un)subscribe notice of the connection. It
// runs on the connection's reading goroutine, so it must not block nor
// take s.mu (sync holds it while it waits for the answer).
func (s *subConn) onSubscription(gen int64, n rueidis.PubSubSubscription) {
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
func (s *subConn) connect(ctx context.Context) error {
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
	var rooms []string
	var chs []string
	for _, r := range s.hub.roomNames() {
		if c := s.chans(r); len(c) > 0 {
			rooms = append(rooms, r)
			chs = append(chs, c...)
		}
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
	s.setUp(true)
	return nil
}

// teardown forgets a broken connection.
func (s *subConn) teardown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setUp(false)
	if s.dc != nil {
		// Close, not release: the connection is broken, or we are done.
		s.dc.Close()
	}
	s.dc, s.errs = nil, nil
	s.subscribed = map[string]bool{}
}

// run keeps the connection up until ctx is done: it waits for the
// connection to fail, then reconnects with backoff.
func (s *subConn) run(ctx context.Context) {
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
				if s.parent != nil {
					s.parent.reconnected(lostAt)
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
func (s *subConn) sync(ctx context.Context, room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chs := s.chans(room)
	if len(chs) == 0 {
		return nil // another connection's room
	}
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
func (s *subConn) close() {
	s.teardown()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
