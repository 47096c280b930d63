package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Member is one online user of a room.
type Member struct {
	UserID   string `json:"userId"`
	Username string `json:"username"`
}

// Frame is one presence event as clients receive it. A message on
// bus.PresenceChannel(room) is a JSON array of frames.
type Frame struct {
	Type   string `json:"type"` // always "presence"
	Room   string `json:"room"`
	User   string `json:"user"` // the username
	UserID string `json:"userId"`
	Status string `json:"status"` // StatusOnline or StatusOffline
}

// Frame statuses.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Options tune the tracker; zero fields take the defaults.
type Options struct {
	// TTL is how long an entry lives without a refresh: the longest a dead
	// replica's users stay online. Default 60s.
	TTL time.Duration
	// Refresh is how often Run refreshes this replica's entries. Default
	// 20s; a Refresh not under TTL becomes TTL/3, so entries never lapse
	// between refreshes.
	Refresh time.Duration
	// Interval is the coalescing window of a room's events (config
	// chat.presence_interval). Default 250ms.
	Interval time.Duration
	// MaxMembers is the number of online users above which a room's events
	// are not published (config chat.presence_max_members). Default 1000.
	MaxMembers int
}

// Defaults of Options.
const (
	DefaultTTL        = 60 * time.Second
	DefaultRefresh    = 20 * time.Second
	DefaultInterval   = 250 * time.Millisecond
	DefaultMaxMembers = 1000
)

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Refresh >= o.TTL {
		o.Refresh = o.TTL / 3
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxMembers <= 0 {
		o.MaxMembers = DefaultMaxMembers
	}
	return o
}

// Tracker is this replica's part of presence: it counts the local
// connections per room and user, and keeps this replica's entries in Redis.
type Tracker struct {
	r   rueidis.Client
	id  string
	opt Options
	log *slog.Logger
	now func() time.Time // the clock of the scores; tests move it

	mu    sync.Mutex
	rooms map[string]*room
	due   map[string]time.Time // rooms this replica flushes, and when
	wake  chan struct{}        // tells Run that due changed
	// unsent holds, per room, the events of a batch this replica took but
	// failed to publish (as pending items, one per user), for the room's
	// next flush.
	unsent map[string][]string

	// beforePublish, when set (by tests), runs between taking a batch and
	// publishing it.
	beforePublish func()
}

// room is the local state of one room.
type room struct {
	// io orders Redis writes: Join and Leave hold it shared while they write
	// one user's entry, Run holds it exclusive while it rewrites all of the
	// room's entries, so a refresh never re-adds an entry a Leave removed.
	io    sync.RWMutex
	users map[string]*user // guarded by Tracker.mu
	refs  int              // calls using the room; guarded by Tracker.mu
	// joins and leaves write the entries of the Joins (Leaves) of many
	// users in one script call: those that arrive while one runs go
	// together in the next.
	joins, leaves combiner
}

// user counts one user's local connections to a room.
type user struct {
	// mu orders the Redis writes of this user's Join and Leave, so the
	// entry is added and removed in the order the counts changed.
	mu   sync.Mutex
	n    int    // local connections; guarded by Tracker.mu
	name string // guarded by Tracker.mu
	refs int    // calls using the user; guarded by Tracker.mu
}

// New returns a tracker for replica replicaID, which must be unique among
// the replicas sharing r and stable for the life of the process.
func New(r rueidis.Client, replicaID string, opt Options, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{
		r:     r,
		id:    replicaID,
		opt:   opt.withDefaults(),
		log:   log.With("component", "presence", "replica", replicaID),
		now:   time.Now,
		rooms: map[string]*room{},
		due:   map[string]time.Time{},
		wake:  make(chan struct{}, 1),

		unsent: map[string][]string{},
	}
}

// ErrBadInput is wrapped by the errors of Join and Leave for an empty room
// or user id, or one containing a NUL byte.
var ErrBadInput = errors.New("presence: bad input")

func check(room, userID string) error {
	switch {
	case room == "":
		return fmt.Errorf("%w: empty room", ErrBadInput)
	case userID == "":
		return fmt.Errorf("%w: empty user id", ErrBadInput)
	case strings.IndexByte(userID, 0) >= 0:
		return fmt.Errorf("%w: user id contains NUL", ErrBadInput)
	}
	return nil
}

// acquire returns the room and user state, created if needed and pinned
// until release.
func (t *Tracker) acquire(roomName, userID string) (*room, *user) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rm := t.rooms[roomName]
	if rm == nil {
		rm = &room{users: map[string]*user{}}
		rm.joins.run = func(ctx context.Context, data []string) error {
			for i := 0; i < len(data); i += 2 * batch {
				if err := t.write(ctx, touchScript, roomName, append(t.args(2*batch), data[i:min(i+2*batch, len(data))]...)); err != nil {
					return err
				}
			}
			return nil
		}
		rm.leaves.run = func(ctx context.Context, data []string) error {
			for i := 0; i < len(data); i += batch {
				if err := t.remove(ctx, roomName, data[i:min(i+batch, len(data))]); err != nil {
					return err
				}
			}
			return nil
		}
		t.rooms[roomName] = rm
	}
	u := rm.users[userID]
	if u == nil {
		u = &user{}
		rm.users[userID] = u
	}
	rm.refs++
	u.refs++
	return rm, u
}

// release unpins what acquire returned and forgets it when unused.
func (t *Tracker) release(roomName, userID string, rm *room, u *user) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u.refs--
	rm.refs--
	if u.refs == 0 && u.n == 0 {
		delete(rm.users, userID)
	}
	if rm.refs == 0 && len(rm.users) == 0 {
		delete(t.rooms, roomName)
	}
}

// Join records one connection of m joining room on this replica. The first
// local connection of the user writes its entry to Redis, and makes the
// user online if no other replica has it. The connection is counted even
// when Redis fails (the error is returned and Run's next refresh writes the
// entry), so every Join must be matched by one Leave.
func (t *Tracker) Join(ctx context.Context, roomName string, m Member) error {
	if err := check(roomName, m.UserID); err != nil {
		return err
	}
	err := t.count(roomName, m.UserID, func(u *user) bool {
		u.n++
		if u.n == 1 {
			u.name = m.Username
		}
		return u.n == 1
	}, func(rm *room) error { return rm.joins.do(ctx, m.UserID, m.Username) })
	if err != nil {
		return fmt.Errorf("join %s to room %s: %w", m.UserID, roomName, err)
	}
	return nil
}

// Leave records one connection of userID leaving room on this replica. The
// last local connection removes the user's entry, and makes the user offline
// if no other replica has it. A Leave without a matching Join does nothing.
// When Redis fails the error is returned and the entry expires after TTL.
func (t *Tracker) Leave(ctx context.Context, roomName, userID string) error {
	if err := check(roomName, userID); err != nil {
		return err
	}
	err := t.count(roomName, userID, func(u *user) bool {
		last := u.n == 1
		if u.n > 0 {
			u.n--
		}
		return last
	}, func(rm *room) error { return rm.leaves.do(ctx, userID) })
	if err != nil {
		return fmt.Errorf("leave %s from room %s: %w", userID, roomName, err)
	}
	return nil
}

// count changes the count of one user's local connections to a room: step
// runs under Tracker.mu and reports whether the user's entry changes (its
// first connection came, or its last went); then write changes it in Redis,
// holding the user's lock (so the user's writes follow the order of the
// counts) and the room's io lock shared (so a refresh cannot undo it).
func (t *Tracker) count(roomName, userID string, step func(u *user) bool, write func(rm *room) error) error {
	rm, u := t.acquire(roomName, userID)
	defer t.release(roomName, userID, rm, u)
	u.mu.Lock()
	defer u.mu.Unlock()
	t.mu.Lock()
	changed := step(u)
	t.mu.Unlock()
	if !changed {
		return nil
	}
	rm.io.RLock()
	defer rm.io.RUnlock()
	return write(rm)
}

// Members returns the users online in room across replicas, each once,
// sorted by username (then user id), as ANNOUNCED to the room: changes still
// waiting in the current interval's batch are left out, because they reach
// the room's subscribers with that batch. A client that subscribes, reads
// the members and then applies the batches therefore sees every change once
// and is never told of a user whose join and leave cancelled out. (A
// joiner's own join is such a pending change: the gateway adds the joiner
// to the list it sends it.) An empty room gives an empty slice.
func (t *Tracker) Members(ctx context.Context, roomName string) ([]Member, error) {
	res, err := membersScript.Exec(ctx, t.r, keysOf(roomName), []string{ms(t.now())}).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("read members of room %s: %w", roomName, err)
	}
	out := make([]Member, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		out = append(out, Member{UserID: res[i], Username: res[i+1]})
	}
	sortMembers(out)
	return out, nil
}

func sortMembers(ms []Member) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Username != ms[j].Username {
			return ms[i].Username < ms[j].Username
		}
		return ms[i].UserID < ms[j].UserID
	})
}

// WithMember returns members with m added, in Members' order, unless a
// member with m's user id is there already.
func WithMember(members []Member, m Member) []Member {
	for _, x := range members {
		if x.UserID == m.UserID {
			return members
		}
	}
	out := append(append(make([]Member, 0, len(members)+1), members...), m)
	sortMembers(out)
	return out
}

// Run refreshes this replica's entries every Refresh and publishes the
// rooms' coalesced events when their interval ends, until ctx is done. It
// then removes this replica's entries, publishing the resulting offline
// events, so a graceful stop does not wait for the entries to expire. Redis
// errors are logged when the state changes (failing, recovered).
func (t *Tracker) Run(ctx context.Context) {
	refresh := time.NewTicker(t.opt.Refresh)
	defer refresh.Stop()
	flush := time.NewTimer(time.Hour)
	defer flush.Stop()
	var health health
	for {
		if next, ok := t.nextDue(); ok {
			flush.Reset(time.Until(next))
		} else {
			flush.Stop()
		}
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := t.removeAll(stopCtx); err != nil {
				t.log.Error("remove presence entries on stop", "err", err)
			}
			cancel()
			return
		case <-refresh.C:
			err := t.refresh(ctx)
			if ctx.Err() == nil {
				health.report(t.log, err)
			}
		case <-flush.C:
			err := t.flushDue(ctx, time.Now())
			if ctx.Err() == nil {
				health.report(t.log, err)
			}
		case <-t.wake:
		}
	}
}

// health logs Redis failures of Run once per change of state.
type health struct{ failing bool }

func (h *health) report(log *slog.Logger, err error) {
	switch {
	case err != nil && !h.failing:
		h.failing = true
		log.Error("presence: redis failing; retrying quietly", "err", err)
	case err == nil && h.failing:
		h.failing = false
		log.Info("presence: redis recovered")
	}
}

// roomNames returns the rooms with local state, sorted.
func (t *Tracker) roomNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.rooms))
	for r := range t.rooms {
		names = append(names, r)
	}
	sort.Strings(names)
	return names
}

// lockRoom pins room and takes its io lock exclusively, then returns its
// users with local connections; unlock releases both. ok is false when the
// room is gone.
func (t *Tracker) lockRoom(roomName string) (members []Member, unlock func(), ok bool) {
	t.mu.Lock()
	rm := t.rooms[roomName]
	if rm == nil {
		t.mu.Unlock()
		return nil, nil, false
	}
	rm.refs++
	t.mu.Unlock()
	rm.io.Lock()
	t.mu.Lock()
	for id, u := range rm.users {
		if u.n > 0 {
			members = append(members, Member{UserID: id, Username: u.name})
		}
	}
	t.mu.Unlock()
	return members, func() {
		rm.io.Unlock()
		t.mu.Lock()
		rm.refs--
		if rm.refs == 0 && len(rm.users) == 0 {
			delete(t.rooms, roomName)
		}
		t.mu.Unlock()
	}, true
}

// refresh rewrites the entries of all local users (re-adding any that
// expired or failed to be written), purging expired entries of other
// replicas on the way, and publishes events of rooms whose flushing replica
// is gone.
func (t *Tracker) refresh(ctx context.Context) error {
	return t.eachRoom(func(r string, members []Member) error {
		for i := 0; i < len(members); i += batch {
			if err := t.touch(ctx, r, members[i:min(i+batch, len(members))]); err != nil {
				return fmt.Errorf("refresh %d entries of room %s: %w", len(members), r, err)
			}
		}
		return nil
	}, func(r string) error { return t.flush(ctx, r, false) })
}

// removeAll removes this replica's entries of all rooms and publishes the
// resulting events now.
func (t *Tracker) removeAll(ctx context.Context) error {
	err := t.eachRoom(func(r string, members []Member) error {
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = m.UserID
		}
		for i := 0; i < len(ids); i += batch {
			if err := t.remove(ctx, r, ids[i:min(i+batch, len(ids))]); err != nil {
				return fmt.Errorf("remove %d entries of room %s: %w", len(ids), r, err)
			}
		}
		return nil
	}, nil)
	return errors.Join(err, t.flushAll(ctx))
}

// eachRoom calls locked for every room with local state, with the room's
// users that have local connections, holding the room's io lock
// exclusively (lockRoom); then after (unless nil) without the lock. It
// returns their errors, joined.
func (t *Tracker) eachRoom(locked func(room string, members []Member) error, after func(room string) error) error {
	var errs []error
	for _, r := range t.roomNames() {
		members, unlock, ok := t.lockRoom(r)
		if !ok {
			continue
		}
		if err := locked(r, members); err != nil {
			errs = append(errs, err)
		}
		unlock()
		if after != nil {
			if err := after(r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
