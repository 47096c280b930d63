package chat

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
)

// subprotocol is the one the server answers with. A client that cannot set
// headers (a browser) may send its token as the subprotocol
// tokenauth.SubprotocolPrefix+"<jwt>" next to it; the server never echoes
// the token.
const subprotocol = "aurora.v1"

// tokenSources are where an upgrade request may carry its token:
// Authorization: Bearer, the aurora.bearer.<jwt> subprotocol, or
// AuroraChat's ?token=.
const tokenSources = tokenauth.Bearer | tokenauth.Subprotocol | tokenauth.Query

func headerHasToken(r *http.Request, name, tok string) bool {
	for _, v := range r.Header.Values(name) {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), tok) {
				return true
			}
		}
	}
	return false
}

// ServeHTTP upgrades an authenticated request to a chat connection. Every
// refusal happens before the upgrade, as an HTTP status with {"error"}.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := app.Logger(r.Context(), g.log)
	if g.draining.Load() {
		app.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if !app.OriginAllowed(r, g.origins) {
		app.WriteError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	claims, err := tokenauth.Verify(r, g.tokens, tokenSources)
	if err == nil {
		// A map lookup: the users view is polled, not read per connect.
		if rerr := g.users.Allowed(claims.UserID, claims.IssuedAt); rerr != nil {
			err = fmt.Errorf("%w: %w", token.ErrInvalid, rerr)
		}
	}
	if err != nil {
		tokenauth.Unauthorized(w, err)
		return
	}
	if !headerHasToken(r, "Connection", "upgrade") || !headerHasToken(r, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		app.WriteError(w, http.StatusUpgradeRequired, "websocket upgrade required")
		return
	}

	connID := app.NewID()
	slot := g.slots.member(connID)
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	ok, err := g.slots.acquire(ctx, claims.UserID, slot)
	cancel()
	if err != nil {
		log.Error("admit websocket connection", "user", claims.UserID, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "service unavailable")
		return
	}
	if !ok {
		app.WriteError(w, http.StatusTooManyRequests, "too many connections for this user")
		return
	}
	releaseSlot := func() {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		if err := g.slots.release(ctx, claims.UserID, slot); err != nil {
			log.Warn("free connection slot", "err", err)
		}
	}

	cw := &corkingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		Subprotocols: []string{subprotocol},
		// The Origin was checked above against the same rule.
		InsecureSkipVerify: true,
	})
	if err != nil {
		log.Debug("websocket accept failed", "err", err)
		releaseSlot()
		return
	}
	c := newConn(g.deps, ws, cw.conn, connID, slot, claims)
	if !g.hub.register(&c.member, &g.conns) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		releaseSlot()
		return
	}
	g.metrics.connections.Inc()
	c.log.Debug("connected", "subprotocol", ws.Subprotocol(), "expires", claims.ExpiresAt)
	c.start(claims.ExpiresAt)
	// The connection goes on on a goroutine of its own, and this handler
	// returns: net/http then lets go of the request, its connection state
	// and this goroutine's stack, which the handshake grew, instead of
	// keeping them for the life of the WebSocket.
	go g.serveConn(c)
}

// serveConn serves an upgraded connection until it closes, then frees its
// place in the hub and its connection slot.
func (g *gateway) serveConn(c *conn) {
	defer g.conns.Done()
	defer g.metrics.connections.Dec()
	c.serve()
	g.hub.unregister(&c.member)
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := g.slots.release(ctx, c.userID, c.slot); err != nil {
		c.log.Warn("free connection slot", "err", err)
	}
}
