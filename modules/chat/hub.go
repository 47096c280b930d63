package chat

import (
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// member is one local connection as membership sees it: who it is, where
// its frames go and how to close it. A conn embeds its member; the hub,
// fan-out, gap recovery and the gateway's drain hold the member, never the
// conn, so they do not depend on how a connection reads and writes.
type member struct {
	userID, username string
	// slot is the connection's entry in the per-user connection cap
	// (slots.member).
	slot string
	log  *slog.Logger
	q    *sendQueue
	ep   endpoint
}

// endpoint is how a member's connection is closed (conn implements it).
type endpoint interface {
	// closeWith flushes what is queued and closes with code; the first
	// request wins.
	closeWith(code websocket.StatusCode, reason string)
	// shutdown lets the frame being handled finish, then closes with 1001.
	shutdown()
	// kill closes without waiting for the peer.
	kill()
}

// reply queues a frame for this connection alone.
func (m *member) reply(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		m.log.Error("encode frame", "err", err)
		return
	}
	m.q.push("", item{frame: b})
}

// hub is this replica's membership: which local connections are in which
// room. Fan-out reads it under a read lock for every message, so it holds
// nothing else and no I/O ever happens under its lock.
type hub struct {
	mu       sync.RWMutex
	rooms    map[string]map[*member]struct{}
	conns    map[*member]struct{}
	draining bool
}

func newHub() *hub {
	return &hub{rooms: map[string]map[*member]struct{}{}, conns: map[*member]struct{}{}}
}

// register adds a connection unless the gateway is draining; it counts the
// connection on wg under the same lock, so Stop's wait sees every
// connection registered before it started draining.
func (h *hub) register(c *member, wg *sync.WaitGroup) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.conns[c] = struct{}{}
	wg.Add(1)
	return true
}

func (h *hub) unregister(c *member) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// drain marks the hub draining (no more registrations) and returns the
// registered connections.
func (h *hub) drain(flag *atomic.Bool) []*member {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	flag.Store(true)
	out := make([]*member, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// join adds c to room.
func (h *hub) join(room string, c *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	if m == nil {
		m = map[*member]struct{}{}
		h.rooms[room] = m
	}
	m[c] = struct{}{}
}

// leave removes c from room.
func (h *hub) leave(room string, c *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	delete(m, c)
	if len(m) == 0 {
		delete(h.rooms, room)
	}
}

// has reports whether room has a local member.
func (h *hub) has(room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room]) > 0
}

// roomNames lists the rooms with local members, sorted.
func (h *hub) roomNames() []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.rooms))
	for r := range h.rooms {
		out = append(out, r)
	}
	h.mu.RUnlock()
	sort.Strings(out)
	return out
}

// each calls fn for every local member of room, under the read lock: fn
// must not block.
func (h *hub) each(room string, fn func(*member)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.rooms[room] {
		fn(c)
	}
}

// members returns every connection that is in at least one room.
func (h *hub) members() []*member {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seen := map[*member]struct{}{}
	for _, cs := range h.rooms {
		for c := range cs {
			seen[c] = struct{}{}
		}
	}
	out := make([]*member, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	return out
}

// slotsByUser returns the connection-slot members of every local
// connection, by user id.
func (h *hub) slotsByUser() map[string][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[string][]string{}
	for c := range h.conns {
		out[c.userID] = append(out[c.userID], c.slot)
	}
	return out
}
