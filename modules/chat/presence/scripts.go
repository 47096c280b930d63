package presence

import (
	"context"
	_ "embed"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// batch bounds the users one script call writes, to keep scripts short.
const batch = 500

// keysOf returns the Redis keys of a room, in the order the scripts use:
// entries (zset), live entries per user (hash), usernames (hash), pending
// events (list), flush due time (string).
func keysOf(roomName string) []string {
	base := "chat:presence:{" + roomName + "}"
	return []string{base, base + ":count", base + ":names", base + ":pending", base + ":due"}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// args returns the arguments common to the write scripts.
func (t *Tracker) args(extra int) []string {
	now := t.now()
	a := make([]string, 7, 7+extra)
	a[0] = ms(now)
	a[1] = ms(now.Add(t.opt.TTL))
	a[2] = ms(now.Add(t.opt.Interval))
	a[3] = strconv.FormatInt(t.opt.TTL.Milliseconds(), 10)
	a[4] = strconv.FormatInt(max(t.opt.Interval.Milliseconds(), 1), 10)
	a[5] = strconv.Itoa(t.opt.MaxMembers)
	a[6] = t.id
	return a
}

// touch writes (adds or refreshes) this replica's entries of members.
func (t *Tracker) touch(ctx context.Context, roomName string, members []Member) error {
	a := t.args(2 * len(members))
	for _, m := range members {
		a = append(a, m.UserID, m.Username)
	}
	return t.write(ctx, touchScript, roomName, a)
}

// remove removes this replica's entries of users.
func (t *Tracker) remove(ctx context.Context, roomName string, userIDs []string) error {
	return t.write(ctx, removeScript, roomName, append(t.args(len(userIDs)), userIDs...))
}

func (t *Tracker) write(ctx context.Context, s *rueidis.Lua, roomName string, args []string) error {
	sched, err := s.Exec(ctx, t.r, keysOf(roomName), args).AsInt64()
	if err != nil {
		return err
	}
	if sched == 1 {
		t.schedule(roomName)
	}
	return nil
}

// The scripts, each built once for every Tracker. KEYS: entries Z, counts
// C, names N, pending P, due D (see keysOf). ARGV of the write scripts
// (touch, remove): now ms, expiry ms, due ms, TTL ms, interval ms, max
// members, replica id, then their data; they run after prelude.lua, their
// shared helpers (event, drop, purge, finish). Numbers passed to redis.call
// are the ARGV strings or small integers, because Lua formats large numbers
// in exponent notation.
var (
	//go:embed prelude.lua
	preludeLua string
	//go:embed touch.lua
	touchLua string
	//go:embed remove.lua
	removeLua string
	//go:embed flush.lua
	flushLua string
	//go:embed members.lua
	membersLua string

	// touchScript adds or refreshes this replica's entries of users (ARGV
	// data: user id, username pairs).
	touchScript = rueidis.NewLuaScript(preludeLua + touchLua)
	// removeScript removes this replica's entries of users (ARGV data: user
	// ids).
	removeScript = rueidis.NewLuaScript(preludeLua + removeLua)
	// flushScript: ARGV: now ms, interval ms, max members, force ("1": the
	// caller is due to flush; "0": take the events only when the replica
	// due is gone), then the caller's unsent items (of a batch it failed to
	// publish). Returns "0" when it took nothing (another replica is due),
	// else "1" followed by the items to publish, oldest first: the unsent
	// ones that are not stale, then the pending ones. An unsent item is
	// stale when its user has no pending event and is not (or no longer) in
	// its state: a newer change was published.
	flushScript = rueidis.NewLuaScript(flushLua)
	// membersScript: ARGV: now ms. Returns user id, username pairs of the
	// members as announced (see Members): live entries, less users whose
	// first pending event is an online, plus users whose first pending
	// event is an offline.
	membersScript = rueidis.NewLuaScript(membersLua)
)
