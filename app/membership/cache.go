package membership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// CacheTTL bounds how long an access entry is kept without a change
// announced: a backstop for a lost announcement, not the way changes
// arrive (they arrive on Channel within milliseconds, and a replica whose
// subscription was lost purges everything when it comes back).
const CacheTTL = 30 * time.Second

// cacheMax bounds the entries: past it the cache is emptied (a replica
// serves at most its connections' rooms, so this is far above need).
const cacheMax = 200000

// Cache is a replica's copy of what the rules read: per room and user the
// room record, the membership and the ban. A message, typing frame or
// history read consults it, so the hot path costs no store round trip;
// a change announced on Channel drops the entries it concerns (Apply).
type Cache struct {
	rooms store.Rooms
	users *Users // server administrators; nil: nobody is one

	mu      sync.Mutex
	gen     uint64 // bumped by every invalidation: a load started before one is not kept
	entries map[cacheKey]cacheEntry
	now     func() time.Time

	// general is everyone's room: one snapshot of its record and of its
	// few rows (roles, mutes, bans) answers every user, so a storm of
	// reconnecting clients costs one store read, not three per user.
	// generalLoad lets one caller load it while the others wait.
	general     *generalSnapshot
	generalLoad sync.Mutex
}

type generalSnapshot struct {
	room    *store.Room
	members map[string]store.Member
	bans    map[string]store.Ban
	at      time.Time
}

type cacheKey struct{ room, user string }

type cacheEntry struct {
	a  Access
	at time.Time
}

// NewCache returns an empty cache reading rooms; users says who is a
// server administrator (nil: nobody).
func NewCache(rooms store.Rooms, users *Users) *Cache {
	return &Cache{rooms: rooms, users: users, entries: map[cacheKey]cacheEntry{}, now: time.Now}
}

// Access returns what the rules read for userID in room, from the cache
// or, on a miss, from the store.
func (c *Cache) Access(ctx context.Context, room, userID string) (Access, error) {
	if room == General {
		return c.generalAccess(ctx, userID)
	}
	k := cacheKey{room, userID}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.at) < CacheTTL {
		return c.withAdmin(e.a, userID), nil
	}
	a, err := Load(ctx, c.rooms, room, userID, now)
	if err != nil {
		return Access{}, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= cacheMax {
			clear(c.entries)
		}
		c.entries[k] = cacheEntry{a: a, at: now}
	}
	c.mu.Unlock()
	return c.withAdmin(a, userID), nil
}

// Fresh reads userID's access to room from the store, bypassing and
// refreshing the cache: for the decisions that must not trust an entry a
// change may be on its way to invalidate (the join or history read of a
// private room right after a kick on another replica). They cost one
// store round trip each, and are per join or request, never per message.
func (c *Cache) Fresh(ctx context.Context, room, userID string) (Access, error) {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	now := c.now()
	a, err := Load(ctx, c.rooms, room, userID, now)
	if err != nil {
		return Access{}, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.entries[cacheKey{room, userID}] = cacheEntry{a: a, at: now}
	}
	c.mu.Unlock()
	return c.withAdmin(a, userID), nil
}

// generalAccess answers Access for general from its snapshot.
func (c *Cache) generalAccess(ctx context.Context, userID string) (Access, error) {
	now := c.now()
	c.mu.Lock()
	g := c.general
	c.mu.Unlock()
	if g == nil || now.Sub(g.at) >= CacheTTL {
		c.generalLoad.Lock()
		c.mu.Lock()
		g = c.general
		gen := c.gen
		c.mu.Unlock()
		if g == nil || now.Sub(g.at) >= CacheTTL {
			var err error
			if g, err = loadGeneral(ctx, c.rooms, now); err != nil {
				c.generalLoad.Unlock()
				return Access{}, err
			}
			c.mu.Lock()
			if c.gen == gen {
				c.general = g
			}
			c.mu.Unlock()
		}
		c.generalLoad.Unlock()
	}
	var a Access
	if g.room == nil {
		return a, nil
	}
	a.Room = g.room
	if b, ok := g.bans[userID]; ok && b.Active(now) {
		a.Ban = &b
		return c.withAdmin(a, userID), nil
	}
	m, ok := g.members[userID]
	if !ok {
		m = store.Member{Room: General, UserID: userID, Role: store.RoleMember}
	}
	a.Member = &m
	return c.withAdmin(a, userID), nil
}

func loadGeneral(ctx context.Context, rooms store.Rooms, now time.Time) (*generalSnapshot, error) {
	g := &generalSnapshot{members: map[string]store.Member{}, bans: map[string]store.Ban{}, at: now}
	r, err := rooms.Room(ctx, General)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("read room %s: %w", General, err)
	}
	g.room = &r
	ms, err := rooms.Members(ctx, General)
	if err != nil {
		return nil, fmt.Errorf("read the members of %s: %w", General, err)
	}
	for _, m := range ms {
		g.members[m.UserID] = m
	}
	bs, err := rooms.Bans(ctx, General)
	if err != nil {
		return nil, fmt.Errorf("read the bans of %s: %w", General, err)
	}
	for _, b := range bs {
		g.bans[b.UserID] = b
	}
	return g, nil
}

func (c *Cache) withAdmin(a Access, userID string) Access {
	if c.users != nil {
		a.ServerAdmin = c.users.Admin(userID)
	}
	return a
}

// Apply drops what ch concerns: one user's entry of a room, a whole
// room, or a user in every room.
func (c *Cache) Apply(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if ch.Room == General || ch.Room == "" {
		c.general = nil
	}
	for k := range c.entries {
		if (ch.Room == "" || k.room == ch.Room) && (ch.UserID == "" || k.user == ch.UserID) {
			delete(c.entries, k)
		}
	}
}

// Purge empties the cache: after the subscription to Channel was lost,
// changes may have been missed.
func (c *Cache) Purge() {
	c.mu.Lock()
	c.gen++
	c.general = nil
	clear(c.entries)
	c.mu.Unlock()
}

// Load reads from the store what the rules read for userID in room (no
// server-administrator flag: the caller adds it).
func Load(ctx context.Context, rooms store.Rooms, room, userID string, now time.Time) (Access, error) {
	var a Access
	r, err := rooms.Room(ctx, room)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return a, nil
	case err != nil:
		return a, fmt.Errorf("read room %s: %w", room, err)
	}
	a.Room = &r
	m, err := rooms.Member(ctx, room, userID)
	switch {
	case err == nil:
		a.Member = &m
	case errors.Is(err, store.ErrNotFound) && room == General:
		// Everyone is a member of general; a row exists only for a
		// role or a mute given there, so a connect writes nothing.
		a.Member = &store.Member{Room: General, UserID: userID, Role: store.RoleMember}
	case !errors.Is(err, store.ErrNotFound):
		return a, fmt.Errorf("read membership of %s in %s: %w", userID, room, err)
	}
	b, err := rooms.Ban(ctx, room, userID)
	switch {
	case err == nil:
		if b.Active(now) {
			a.Ban = &b
			if room == General {
				a.Member = nil // banned from general: not a member
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return a, fmt.Errorf("read ban of %s in %s: %w", userID, room, err)
	}
	return a, nil
}
