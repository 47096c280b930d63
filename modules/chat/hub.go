package chat

import (
	"sort"
	"sync"
	"sync/atomic"
)

// hub is this replica's membership: which local connections are in which
// room. Fan-out reads it under a read lock for every message, so it holds
// nothing else and no I/O ever happens under its lock.
type hub struct {
	mu       sync.RWMutex
	rooms    map[string]map[*conn]struct{}
	conns    map[*conn]struct{}
	draining bool
}

func newHub() *hub {
	return &hub{rooms: map[string]map[*conn]struct{}{}, conns: map[*conn]struct{}{}}
}

// register adds a connection unless the gateway is draining; it counts the
// connection on wg under the same lock, so Stop's wait sees every
// connection registered before it started draining.
func (h *hub) register(c *conn, wg *sync.WaitGroup) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.conns[c] = struct{}{}
	wg.Add(1)
	return true
}

func (h *hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// drain marks the hub draining (no more registrations) and returns the
// registered connections.
func (h *hub) drain(flag *atomic.Bool) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	flag.Store(true)
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// join adds c to room.
func (h *hub) join(room string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	if m == nil {
		m = map[*conn]struct{}{}
		h.rooms[room] = m
	}
	m[c] = struct{}{}
}

// leave removes c from room.
func (h *hub) leave(room string, c *conn) {
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
func (h *hub) each(room string, fn func(*conn)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.rooms[room] {
		fn(c)
	}
}

// members returns every connection that is in at least one room.
func (h *hub) members() []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seen := map[*conn]struct{}{}
	for _, cs := range h.rooms {
		for c := range cs {
			seen[c] = struct{}{}
		}
	}
	out := make([]*conn, 0, len(seen))
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
