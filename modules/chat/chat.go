// Package chat is the chat role: Aurora's WebSocket gateway, wire-compatible
// with AuroraChat's chat-service.
//
// A client connects to GET /ws (or GET / with an Upgrade header, where
// AuroraChat clients connect) with a JWT, is joined to room "general" and
// then sends and receives JSON frames (docs/protocol.md). An accepted message
// costs exactly one Redis round trip: a Lua script that checks the resend
// dedupe key and the rate limits, appends the message to the stream
// (bus.Stream) for the ingest role, and publishes the finished message frame
// on the room's channel (bus.Channel). Every replica forwards what arrives on
// the channels of the rooms its local connections are in, encoded once per
// replica, through a bounded per-connection queue drained by one writer
// goroutine, so one slow client never holds up the others.
//
// The replica subscribes to a room's channels only while it has local members
// in it, on one dedicated Redis connection that is re-established (and every
// room re-subscribed) after a failure. Presence (package presence) and
// history (package history) are separate packages this one calls.
package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/modules/chat/history"
	"github.com/auroradev/aurora/modules/chat/presence"
)

func init() {
	app.Register(app.Registration{
		Name: "chat",
		Role: true,
		Deps: []string{app.ModRedis, app.ModStore, app.ModTokens},
		New:  newModule,
	})
}

// presenceTracker is what the gateway needs of presence.Tracker.
type presenceTracker interface {
	Join(ctx context.Context, room string, m presence.Member) error
	Leave(ctx context.Context, room, userID string) error
	Members(ctx context.Context, room string) ([]presence.Member, error)
	Run(ctx context.Context)
}

// historyReader is what the gateway needs of history.Service.
type historyReader interface {
	Since(ctx context.Context, room string, since bus.ID, limit, maxBytes int) ([]history.Frame, bool, error)
}

// gateway is the chat module: the WebSocket endpoint and everything behind it.
type gateway struct {
	cfg       config.Chat
	origins   []string
	rooms     []string // chat.rooms_allowed: when not empty, the only rooms served
	log       *slog.Logger
	redis     rueidis.Client
	tokens    *token.Issuer
	presence  presenceTracker
	history   historyReader
	metrics   *metrics
	replicaID string

	// delivered is the highest message id Pub/Sub brought this replica.
	deliveredMu sync.Mutex
	delivered   bus.ID
	// scriptCalls counts the send script's calls (what a message costs
	// Redis); tests read it.
	scriptCalls atomic.Int64
	// typingFailing is set while typing publishes fail, so that an outage
	// is logged once.
	typingFailing atomic.Bool

	hub   *hub
	subs  *subscriber
	slots *slots

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
		origins:   h.Config.HTTP.CORSOrigins,
		rooms:     cfg.RoomsAllowed,
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
	hist := history.New(h.Store, h.Redis, log.With("part", "history"))
	hist.Rooms = cfg.RoomsAllowed
	g.history = hist
	g.init()

	h.Mux.Handle("GET /ws", g)
	h.Mux.Handle("GET /api/rooms/{room}/messages", hist.Handler(g.verifyBearer))
	h.Mux.HandleFunc("GET /api/rooms/{room}/presence", g.servePresence)
	return g, nil
}

// init builds the parts that depend only on the fields set by the caller, so
// tests and benchmarks can build a gateway without an app.
func (g *gateway) init() {
	g.hub = newHub()
	g.subs = newSubscriber(g.redis, g.hub, g.deliver, g.log.With("part", "pubsub"))
	g.subs.onGap = g.recoverGap
	g.slots = newSlots(g.redis, g.replicaID, g.cfg.MaxConnsPerUser)
}

// Start subscribes, starts the presence loop and the slot refresher.
func (g *gateway) Start(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.bgCancel = cancel
	if err := g.subs.connect(ctx); err != nil {
		// Not fatal: Redis may come back; until then /readyz says why.
		g.log.Warn("pubsub connection failed, retrying in the background", "err", err)
	}
	g.bg.Add(3)
	go func() { defer g.bg.Done(); g.subs.run(bg) }()
	go func() { defer g.bg.Done(); g.presence.Run(bg) }()
	go func() { defer g.bg.Done(); g.slots.run(bg, g.hub, g.log) }()
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
			c.shutdown()
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
			c.kill()
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

// Check reports the gateway unready while its Pub/Sub connection is down:
// it would accept messages it cannot deliver.
func (g *gateway) Check(ctx context.Context) error {
	if g.draining.Load() {
		return errors.New("draining")
	}
	if !g.subs.up.Load() {
		return errors.New("redis pubsub connection down")
	}
	return nil
}

// verifyBearer reads the Authorization: Bearer token of an HTTP API request.
func (g *gateway) verifyBearer(r *http.Request) (token.Claims, error) {
	raw, ok := bearer(r)
	if !ok {
		return token.Claims{}, fmt.Errorf("%w: no bearer token", token.ErrInvalid)
	}
	return g.tokens.Verify(raw)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	raw = strings.TrimSpace(raw)
	return raw, raw != ""
}

// servePresence is GET /api/rooms/{room}/presence: the room's online members.
func (g *gateway) servePresence(w http.ResponseWriter, r *http.Request) {
	if _, err := g.verifyBearer(r); err != nil {
		msg := "missing or invalid bearer token"
		if errors.Is(err, token.ErrExpired) {
			msg = "token expired"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="aurora"`)
		app.WriteError(w, http.StatusUnauthorized, msg)
		return
	}
	room := r.PathValue("room")
	if !bus.ValidRoom(room) {
		app.WriteError(w, http.StatusBadRequest, "invalid room name: want 1-64 of a-z, 0-9, _ and -")
		return
	}
	if !g.roomAllowed(room) {
		app.WriteError(w, http.StatusBadRequest, g.roomRefusal(room))
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
func (g *gateway) roomAllowed(room string) bool {
	return len(g.rooms) == 0 || slices.Contains(g.rooms, room)
}

// roomRefusal is the human part of refusing a room chat.rooms_allowed
// keeps closed.
func (g *gateway) roomRefusal(room string) string {
	return history.RoomRefusal(room, g.rooms)
}

// redisTimeout bounds every Redis call made for a client request.
const redisTimeout = 5 * time.Second
