package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/attachment"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/throttle"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/modules/chat/attachapi"
	"github.com/auroradev/aurora/modules/chat/history"
	"github.com/auroradev/aurora/modules/chat/presence"
	"github.com/auroradev/aurora/modules/chat/roomapi"
)

func init() {
	app.Register(app.Registration{
		Name: "chat",
		Role: true,
		Deps: []string{app.ModRedis, app.ModStore, app.ModTokens},
		New:  newModule,
	})
}

// gateway is the chat module: the WebSocket endpoint and everything behind it.
type gateway struct {
	// rooms owns room membership: hub, subscriptions, presence, fan-out
	// and recovery.
	*rooms
	// sender is the hot path of a message.
	*sender

	cfg      config.Chat
	shards   bus.Shards // bus.shards
	origins  []string
	allowed  allowedRooms // chat.rooms_allowed
	log      *slog.Logger
	redis    rueidis.Client
	tokens   *token.Issuer
	presence presenceTracker
	history  historyReader
	// lookup finds the message a life event acts on (history.Lookup);
	// attachments vouches for a message's attachments: nil refuses them.
	lookup      messageLookup
	attachments attachmentChecker
	markers     readMarkers // the store's read markers
	metrics     *metrics
	replicaID   string

	slots *slots
	// deps is what every connection is given of the gateway.
	deps *connDeps

	// The membership rules' data: server-wide user flags (polled from
	// the store), the per-room access cache and the changes that
	// invalidate it (over Redis Pub/Sub), and the room actions.
	users   *membership.Users
	access  *membership.Cache
	members *membership.Service
	watcher *membership.Watcher
	store   membership.Store

	draining atomic.Bool
	conns    sync.WaitGroup // one per connection handler

	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

func newModule(_ context.Context, h *app.Host) (app.Module, error) {
	if h.Redis == nil || h.Store == nil || h.Tokens == nil {
		return nil, errors.New("chat needs redis, store and tokens")
	}
	cfg := h.Config.Chat
	log := h.Log.With("module", "chat")
	replicaID := app.NewID()
	g := &gateway{
		cfg:       cfg,
		shards:    bus.Shards(h.Config.Bus.Shards),
		origins:   h.Config.HTTP.CORSOrigins,
		allowed:   cfg.RoomsAllowed,
		log:       log,
		redis:     h.Redis,
		tokens:    h.Tokens,
		replicaID: replicaID,
		presence: presence.New(h.Redis, replicaID, presence.Options{
			Interval:   cfg.PresenceInterval,
			MaxMembers: cfg.PresenceMaxMembers,
		}, log.With("part", "presence")),
		metrics: newMetrics(),
	}
	if err := g.metrics.register(h.Metrics); err != nil {
		return nil, fmt.Errorf("register chat metrics: %w", err)
	}
	// The attachment routes, and the checker of a message's attachments
	// (attachapi.Service.Check). Built before init, which hands the
	// connections their deps; the access cache init makes is read per
	// request.
	storage, policy, err := attachment.FromConfig(h.Config)
	if err != nil {
		return nil, fmt.Errorf("attachment storage: %w", err)
	}
	att := &attachapi.Service{Storage: storage, Policy: policy, Verify: g.verifyBearer, Rooms: cfg.RoomsAllowed, Log: log.With("part", "attachments"),
		Access: func(ctx context.Context, room, userID string) (membership.Access, error) {
			return g.access.Fresh(ctx, room, userID)
		}}
	if n := h.Config.Attachments.UploadsPerMinute; n > 0 {
		att.Uploads = throttle.New(h.Redis, n, time.Minute)
	}
	attachapi.Register(h.Mux, att)
	g.attachments = att
	hist := history.New(h.Store, h.Redis, log.With("part", "history"))
	hist.Rooms = cfg.RoomsAllowed
	hist.Shards = g.shards
	g.history = hist
	g.lookup = hist
	g.markers = h.Store
	g.store = h.Store
	g.init()

	h.Mux.Handle("GET /ws", g)
	h.Mux.Handle("GET /api/rooms/{room}/messages", g.readable(hist.Handler(g.verifyBearer)))
	h.Mux.HandleFunc("GET /api/rooms/{room}/presence", g.servePresence)
	h.Mux.Handle("GET /api/search", hist.SearchHandler(g.verifyBearer, history.SearchDeps{Users: h.Store, Rooms: h.Store, Access: g.access}))
	roomapi.Register(h.Mux, g.members, &roomapi.Counts{Store: h.Store, Redis: h.Redis, Shards: g.shards}, g.verifyBearer, log.With("part", "roomapi"))
	return g, nil
}

// init builds the parts that depend only on the fields set by the caller, so
// tests and benchmarks can build a gateway without an app.
func (g *gateway) init() {
	g.rooms = newRooms(g.redis, g.shards, g.presence, g.history, g.log)
	g.sender = &sender{redis: g.redis, cfg: g.cfg, shards: g.shards}
	g.slots = newSlots(g.redis, g.replicaID, g.cfg.MaxConnsPerUser)
	g.users = membership.NewUsers(g.store, g.log.With("part", "users"))
	g.users.OnRevoked = g.revokeStale
	g.access = membership.NewCache(g.store, g.users)
	g.onRemoval = g.access.Apply
	g.members = &membership.Service{
		Store:        g.store,
		Events:       membership.StreamEvents{Client: g.redis, Shards: g.shards},
		Changes:      membership.LocalFirst{Cache: g.access, Next: membership.RedisPublisher{Client: g.redis}},
		Users:        g.users,
		Log:          g.log,
		CreateOnJoin: g.cfg.CreateOnJoin,
	}
	g.watcher = &membership.Watcher{Client: g.redis, Cache: g.access, OnChange: g.onChange, Log: g.log.With("part", "membership")}
	g.deps = &connDeps{
		cfg:     g.cfg,
		log:     g.log,
		metrics: g.metrics,
		rooms:   g.rooms,
		sender:  g.sender,
		typing:  &typingPublisher{redis: g.redis, log: g.log, dropped: g.metrics.typingDropped},
		allowed: g.allowed,
		access:  g.access,
		members: g.members,

		lookup:      g.lookup,
		users:       g.store,
		attachments: g.attachments,
		markers:     g.markers,
	}
	if g.cfg.WriteDelay > 0 {
		g.deps.flusher = newFlusher(g.cfg.WriteDelay)
	}
}

// Start subscribes, starts the presence loop and the slot refresher.
func (g *gateway) Start(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.bgCancel = cancel
	if err := g.subs.connect(ctx); err != nil {
		// Not fatal: Redis may come back; until then /readyz says why.
		g.log.Warn("pubsub connection failed, retrying in the background", "err", err)
	}
	if g.cfg.AckReplicas > 0 {
		g.checkReplicas(ctx)
	}
	if err := g.users.Start(ctx); err != nil {
		cancel()
		return err
	}
	g.bg.Add(5)
	go func() { defer g.bg.Done(); g.users.Run(bg) }()
	go func() { defer g.bg.Done(); g.watcher.Run(bg) }()
	go func() { defer g.bg.Done(); g.subs.run(bg) }()
	go func() { defer g.bg.Done(); g.presence.Run(bg) }()
	go func() { defer g.bg.Done(); g.slots.run(bg, g.hub.slotsByUser, g.log) }()
	return nil
}

// Stop stops accepting connections, lets in-flight sends finish, closes
// every connection with 1001 and waits for them within ctx's deadline.
func (g *gateway) Stop(ctx context.Context) error {
	conns := g.hub.drain(&g.draining)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.ep.shutdown()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		g.conns.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close %d websocket connections: %w", len(conns), ctx.Err())
		for _, c := range conns {
			c.ep.kill()
		}
		<-done
	}
	if g.bgCancel != nil {
		g.bgCancel()
	}
	g.bg.Wait()
	g.subs.close()
	return err
}

// checkReplicas warns at start when the Redis reports fewer replicas than
// chat.ack_replicas (or is not a primary): then every send waits
// chat.ack_timeout and is answered unavailable. On a cluster it asks the
// primary of the stream's slot (whose replicas WAIT counts), not whichever
// node a keyless INFO would reach. Best effort: a Redis that refuses INFO
// says nothing reliable, and then nothing is said.
func (g *gateway) checkReplicas(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := bus.StreamPrimary(ctx, g.redis)
	if err != nil {
		return
	}
	info, err := r.Do(ctx, r.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		return
	}
	role, replicas := "", -1
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			role = v
		case "connected_slaves":
			replicas, _ = strconv.Atoi(v)
		}
	}
	if role != "" && role != "master" {
		g.log.Warn("chat.ack_replicas is set but redis.url names a replica, not a primary: WAIT fails there and every message "+
			"will be answered unavailable", "role", role)
		return
	}
	if replicas >= 0 && replicas < g.cfg.AckReplicas {
		g.log.Warn("Redis has fewer connected replicas than chat.ack_replicas: until more connect, every message waits "+
			"chat.ack_timeout and is answered unavailable (queued, not acked)",
			"connected_replicas", replicas, "ack_replicas", g.cfg.AckReplicas, "ack_timeout", g.cfg.AckTimeout)
	}
}

// Check reports the gateway unready while its Pub/Sub connection is down:
// it would accept messages it cannot deliver.
func (g *gateway) Check(ctx context.Context) error {
	if g.draining.Load() {
		return errors.New("draining")
	}
	if !g.subs.up.Load() {
		return errors.New("redis pubsub connection down")
	}
	if !g.watcher.Up() {
		// Its cache could hold a kicked member's access.
		return errors.New("membership changes subscription down")
	}
	return nil
}

// verifyBearer reads the Authorization: Bearer token of an HTTP API
// request, refusing a disabled user's or a revoked one.
func (g *gateway) verifyBearer(r *http.Request) (token.Claims, error) {
	claims, err := tokenauth.Verify(r, g.tokens, tokenauth.Bearer)
	if err != nil {
		return claims, err
	}
	if err := g.users.Allowed(claims.UserID, claims.IssuedAt); err != nil {
		return claims, fmt.Errorf("%w: %w", token.ErrInvalid, err)
	}
	return claims, nil
}

// readable serves next only to a user allowed to read the room (member,
// or server administrator), answering 404 for a room the user may not
// see and 403 for one they must join first.
func (g *gateway) readable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		if !bus.ValidRoom(room) || !g.roomAllowed(room) {
			next.ServeHTTP(w, r) // it answers the 400
			return
		}
		claims, err := g.verifyBearer(r)
		if err != nil {
			tokenauth.Unauthorized(w, err)
			return
		}
		if !g.mayRead(w, r, room, claims.UserID) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mayRead decides membership.Read for an HTTP request, answering the
// refusal itself.
func (g *gateway) mayRead(w http.ResponseWriter, r *http.Request, room, userID string) bool {
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	// From the store, not the cache: the request reads the store (or
	// Redis) anyway, and must not serve a member kicked a moment ago.
	a, err := g.access.Fresh(ctx, room, userID)
	if err == nil {
		err = membership.Decide(a, membership.Read, time.Now())
	}
	if err != nil {
		roomapi.WriteError(w, r, g.log, err)
		return false
	}
	return true
}

// onChange acts on a membership change another process announced. A user
// disabled by a server administrator on another replica is also polled
// for at once, so their reconnect here is refused before the next poll.
func (g *gateway) onChange(ch membership.Change) {
	g.applyChange(ch)
	if ch.Room == "" && ch.Removed == membership.RemovedDisabled {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
			defer cancel()
			if err := g.users.Poll(ctx); err != nil {
				g.log.Warn("poll changed users", "err", err)
			}
		}()
	}
}

// revokeStale closes the local connections of userID whose tokens the
// users view no longer accepts (the user was disabled, or their tokens
// revoked).
func (g *gateway) revokeStale(userID string) {
	for _, m := range g.hub.ofUser(userID) {
		if err := g.users.Allowed(userID, m.issuedAt); err != nil {
			m.ep.closeWith(closeRevoked, err.Error())
		}
	}
}

// servePresence is GET /api/rooms/{room}/presence: the room's online members.
func (g *gateway) servePresence(w http.ResponseWriter, r *http.Request) {
	claims, err := g.verifyBearer(r)
	if err != nil {
		tokenauth.Unauthorized(w, err)
		return
	}
	room := r.PathValue("room")
	if !bus.ValidRoom(room) {
		app.WriteError(w, http.StatusBadRequest, bus.RoomRule)
		return
	}
	if !g.roomAllowed(room) {
		app.WriteError(w, http.StatusBadRequest, g.roomRefusal(room))
		return
	}
	if !g.mayRead(w, r, room, claims.UserID) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	members, err := g.presence.Members(ctx, room)
	if err != nil {
		app.Logger(r.Context(), g.log).Error("read room presence", "room", room, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "service unavailable")
		return
	}
	if members == nil {
		members = []presence.Member{}
	}
	app.WriteJSON(w, http.StatusOK, map[string]any{"members": members, "count": len(members)})
}

// roomAllowed reports whether chat.rooms_allowed lets users into room (an
// empty list lets them into every room).
func (g *gateway) roomAllowed(room string) bool { return g.allowed.allows(room) }

// roomRefusal is the human part of refusing a room chat.rooms_allowed
// keeps closed.
func (g *gateway) roomRefusal(room string) string { return g.allowed.refusal(room) }
