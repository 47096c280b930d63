package chat

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// slots counts each user's open connections across all replicas, for the
// per-user cap: a sorted set per user ("chat:conns:<userId>") of
// "<replica>:<conn>" scored by the entry's expiry (ms). A connection adds its
// entry on upgrade and removes it on close; every replica refreshes its
// entries, so the entries of a replica that crashed expire after slotTTL and
// are purged by the next admission.
type slots struct {
	r         rueidis.Client
	replicaID string
	max       int
}

const (
	slotTTL     = 30 * time.Second
	slotRefresh = 10 * time.Second
)

func connsKey(userID string) string { return "chat:conns:" + userID }

// admitScript: purge expired entries, refuse when the user is at the cap,
// else add the entry. KEYS: conns key. ARGV: now, expiry, member, max, ttlMs.
var admitScript = rueidis.NewLuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

func newSlots(r rueidis.Client, replicaID string, max int) *slots {
	return &slots{r: r, replicaID: replicaID, max: max}
}

// member is the set member of a connection.
func (s *slots) member(connID string) string { return s.replicaID + ":" + connID }

// acquire takes a slot for the connection; false when the user is at the cap.
func (s *slots) acquire(ctx context.Context, userID, member string) (bool, error) {
	now := time.Now()
	n, err := admitScript.Exec(ctx, s.r, []string{connsKey(userID)}, []string{
		strconv.FormatInt(now.UnixMilli(), 10),
		strconv.FormatInt(now.Add(slotTTL).UnixMilli(), 10),
		member,
		strconv.Itoa(s.max),
		strconv.FormatInt(slotTTL.Milliseconds(), 10),
	}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("count connections of user %s: %w", userID, err)
	}
	return n == 1, nil
}

// release frees the connection's slot.
func (s *slots) release(ctx context.Context, userID, member string) error {
	if err := s.r.Do(ctx, s.r.B().Zrem().Key(connsKey(userID)).Member(member).Build()).Error(); err != nil {
		return fmt.Errorf("free connection slot of user %s: %w", userID, err)
	}
	return nil
}

// refresh pushes the expiry of every local connection's entry forward.
func (s *slots) refresh(ctx context.Context, byUser map[string][]string) error {
	if len(byUser) == 0 {
		return nil
	}
	exp := float64(time.Now().Add(slotTTL).UnixMilli())
	cmds := make(rueidis.Commands, 0, 2*len(byUser))
	for uid, members := range byUser {
		z := s.r.B().Zadd().Key(connsKey(uid)).Xx().ScoreMember()
		for _, m := range members {
			z = z.ScoreMember(exp, m)
		}
		cmds = append(cmds, z.Build(), s.r.B().Pexpire().Key(connsKey(uid)).Milliseconds(slotTTL.Milliseconds()).Build())
	}
	for _, res := range s.r.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("refresh connection slots of %d users: %w", len(byUser), err)
		}
	}
	return nil
}

// run refreshes this replica's entries until ctx is done.
func (s *slots) run(ctx context.Context, h *hub, log *slog.Logger) {
	t := time.NewTicker(slotRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, redisTimeout)
			if err := s.refresh(rctx, h.slotsByUser()); err != nil && ctx.Err() == nil {
				log.Warn("refresh connection slots", "err", err)
			}
			cancel()
		}
	}
}
