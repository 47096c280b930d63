package chat

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// member is one local connection as membership sees it: who it is, where
// its frames go and how to close it. A conn embeds its member; the hub,
// fan-out, gap recovery and the gateway's drain hold the member, never the
// conn, so they do not depend on how a connection reads and writes.
type member struct {
	userID, username string
	// issuedAt is when the connection's token was issued: a revocation
	// closes the connections of tokens issued before it.
	issuedAt time.Time
	// slot is the connection's entry in the per-user connection cap
	// (slots.member).
	slot string
	log  *slog.Logger
	q    *sendQueue
	ep   endpoint

	// gate orders the member's joins and leaves with fan-out, which
	// pushes outside the hub's lock: a frame of a room is queued under
	// gate only while in holds the room, so once leave returns no frame
	// of the room is queued for the member any more.
	gate sync.Mutex
	// in lists the rooms, a slice rather than a set: a connection is in a
	// few rooms (at most chat.max_rooms_per_conn), and an idle one in
	// general only, where a map would cost it a few hundred bytes.
	in []string
}

// enter and exit mark the member in room or not, for deliver.
func (m *member) enter(room string) {
	m.gate.Lock()
	if !slices.Contains(m.in, room) {
		m.in = append(m.in, room)
	}
	m.gate.Unlock()
}

func (m *member) exit(room string) {
	m.gate.Lock()
	m.in = slices.DeleteFunc(m.in, func(r string) bool { return r == room })
	m.gate.Unlock()
}

// deliver queues it, a frame fan-out brought for room, unless the member
// has left room since fan-out read the room's members.
func (m *member) deliver(room string, it item) {
	m.gate.Lock()
	if slices.Contains(m.in, room) {
		m.q.push(room, it)
	}
	m.gate.Unlock()
}

// remove queues f, the frame telling the member it is out of room, and
// marks it out: f is the last frame of room it gets.
func (m *member) remove(room string, f any) {
	m.gate.Lock()
	defer m.gate.Unlock()
	if !slices.Contains(m.in, room) {
		return
	}
	m.in = slices.DeleteFunc(m.in, func(r string) bool { return r == room })
	if b, err := json.Marshal(f); err == nil {
		m.q.push("", item{frame: b})
	}
}

// isIn reports whether the member is in room (a removal may have taken it
// out since its connection joined).
func (m *member) isIn(room string) bool {
	m.gate.Lock()
	defer m.gate.Unlock()
	return slices.Contains(m.in, room)
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
// room. It holds nothing else, and no I/O ever happens under its lock.
//
// Fan-out reads a room's members for every frame. It does not push under
// the lock: each room keeps its members also as a list whose handed-out
// part never changes (a join appends past it, a leave leaves the member
// in it, marked out, until a compaction makes a new list), so fan-out
// takes the current list under the read lock and pushes to it after
// releasing the lock. A
// join or leave therefore never waits for a push, nor a push for them.
// What that costs in ordering is nothing: frames of a room reach a
// connection in the order Pub/Sub brought them, because one goroutine
// (the subscriber's) pushes them all, as before; a member is marked in the
// room (member.enter) before it is in a list and out (member.exit) when it
// leaves, and member.deliver checks that mark, so a frame is
// queued only while the member is in the room. A joiner misses only frames
// fan-out read the members for before the join: published before the join
// was subscribed, they are what a join with since replays from the history
// (the send script stores a message before it publishes it), and a
// recovering join's buffer drops a live frame that the replay holds.
type hub struct {
	mu    sync.RWMutex
	rooms map[string]*roomMembers
	conns map[*member]struct{}
	// byUser is conns by user id: a change to one user (a revocation, a
	// rooms_changed notice) reaches their connections, joined to rooms or
	// not, without a walk over every connection.
	byUser   map[string][]*member
	draining bool
}

// roomMembers are the local members of one room: a set, and the same
// members as a list whose elements, once handed out, never change (a leave
// makes a new list, a join appends past every length handed out), so it
// can be read after the hub's lock is released.
type roomMembers struct {
	set  map[*member]struct{}
	list []*member
	// gone are members that left but are still in list: a leave does not
	// copy the list (n leaves of a room of n would copy n²/2 pointers), it
	// leaves the member there, where fan-out skips it (member.deliver
	// checks the member's rooms). The list is compacted into a new one
	// when they outnumber the members, or when one of them joins again.
	gone map[*member]struct{}
}

// compact replaces the list by one without the members that left.
func (rm *roomMembers) compact() {
	list := make([]*member, 0, len(rm.set))
	for _, m := range rm.list {
		if _, ok := rm.set[m]; ok {
			list = append(list, m)
		}
	}
	rm.list, rm.gone = list, nil
}

func newHub() *hub {
	return &hub{rooms: map[string]*roomMembers{}, conns: map[*member]struct{}{}, byUser: map[string][]*member{}}
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
	h.byUser[c.userID] = append(h.byUser[c.userID], c)
	wg.Add(1)
	return true
}

func (h *hub) unregister(c *member) {
	h.mu.Lock()
	if _, ok := h.conns[c]; ok {
		delete(h.conns, c)
		// A new slice, not an in-place delete: ofUser's callers may be
		// reading the old one.
		list := h.byUser[c.userID]
		rest := make([]*member, 0, len(list)-1)
		for _, m := range list {
			if m != c {
				rest = append(rest, m)
			}
		}
		if len(rest) == 0 {
			delete(h.byUser, c.userID)
		} else {
			h.byUser[c.userID] = rest
		}
	}
	h.mu.Unlock()
}

// ofUser returns the registered connections of userID, in a room or not.
// The slice is never modified: read it after the lock is released.
func (h *hub) ofUser(userID string) []*member {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.byUser[userID]
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
	c.enter(room)
	h.mu.Lock()
	defer h.mu.Unlock()
	rm := h.rooms[room]
	if rm == nil {
		rm = &roomMembers{set: map[*member]struct{}{}}
		h.rooms[room] = rm
	}
	if _, ok := rm.set[c]; ok {
		return
	}
	if _, ok := rm.gone[c]; ok {
		rm.compact() // it must not be in the list twice
	}
	rm.set[c] = struct{}{}
	// Appended in place when there is room: fan-out may be reading the
	// list, but only up to the length it took, and the new element lies
	// past it (no list handed out ever reached that index). Copying the
	// list instead would make N joins cost N²/2 pointer copies and as much
	// garbage: 400 MB for 10,000 connections in general.
	rm.list = append(rm.list, c)
}

// leave removes c from room; once it returns, fan-out queues no more
// frames of room for c.
func (h *hub) leave(room string, c *member) {
	h.mu.Lock()
	if rm := h.rooms[room]; rm != nil {
		if _, ok := rm.set[c]; ok {
			delete(rm.set, c)
			switch {
			case len(rm.set) == 0:
				delete(h.rooms, room)
			default:
				if rm.gone == nil {
					rm.gone = map[*member]struct{}{}
				}
				rm.gone[c] = struct{}{}
				if len(rm.gone) > len(rm.set) {
					rm.compact()
				}
			}
		}
	}
	h.mu.Unlock()
	c.exit(room)
}

// has reports whether room has a local member.
func (h *hub) has(room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	rm := h.rooms[room]
	return rm != nil && len(rm.set) > 0
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

// inRoom returns the local members of room, and perhaps some that left it
// (roomMembers.gone): deliver to them with member.deliver, or check
// member.isIn. The list is never modified (see hub): read it after the
// lock is released, but do not change it.
func (h *hub) inRoom(room string) []*member {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if rm := h.rooms[room]; rm != nil {
		return rm.list
	}
	return nil
}

// members returns every connection that is in at least one room.
func (h *hub) members() []*member {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seen := map[*member]struct{}{}
	for _, rm := range h.rooms {
		for c := range rm.set {
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
