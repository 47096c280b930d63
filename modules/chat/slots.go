package chat

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// slots counts each user's open connections across all replicas, for the
// per-user cap: a sorted set per user ("chat:conns:<userId>") of
// "<replica>:<conn>" scored by the entry's expiry (ms). A connection adds its
// entry on upgrade and removes it on close; every replica refreshes its
// entries (re-adding any that Redis lost), so the entries of a replica that
// crashed expire after slotTTL and are purged by the next admission.
//
// Refreshing every entry is one command per user, so it runs seldom; what
// frees a crashed replica's slots quickly is its heartbeat instead: every
// replica keeps "chat:replica:<replica>" alive for replicaTTL, and an
// admission that finds the user at the cap removes the entries of replicas
// whose heartbeat is gone, then tries once more. The heartbeat also tells a
// replica that Redis lost its data (the key was missing), and then it
// re-adds its entries at once, so the cap holds after a wipe.
type slots struct {
	r         rueidis.Client
	replicaID string
	max       int
}

const (
	slotTTL     = 30 * time.Second
	slotRefresh = 10 * time.Second
	// A replica's heartbeat lives replicaTTL and is renewed every
	// replicaBeat: a crashed replica's slots are free within replicaTTL.
	replicaTTL  = 5 * time.Second
	replicaBeat = 1500 * time.Millisecond
)

func connsKey(userID string) string { return "chat:conns:" + userID }

func replicaKey(replicaID string) string { return "chat:replica:" + replicaID }

// admitScript: purge expired entries, refuse when the user is at the cap,
// else add the entry. KEYS: conns key. ARGV: now, expiry, member, max, ttlMs.
var admitScript = rueidis.NewLuaScript(admitLua)

//go:embed admit.lua
var admitLua string

func newSlots(r rueidis.Client, replicaID string, max int) *slots {
	return &slots{r: r, replicaID: replicaID, max: max}
}

// member is the set member of a connection.
func (s *slots) member(connID string) string { return s.replicaID + ":" + connID }

// acquire takes a slot for the connection; false when the user is at the
// cap, counting only replicas that are alive.
func (s *slots) acquire(ctx context.Context, userID, member string) (bool, error) {
	ok, err := s.admit(ctx, userID, member)
	if ok || err != nil {
		return ok, err
	}
	purged, err := s.purgeDeadReplicas(ctx, userID)
	if err != nil || purged == 0 {
		return false, err
	}
	return s.admit(ctx, userID, member)
}

// purgeDeadReplicas removes the user's entries held by replicas whose
// heartbeat is gone and returns how many it removed.
func (s *slots) purgeDeadReplicas(ctx context.Context, userID string) (int, error) {
	members, err := s.r.Do(ctx, s.r.B().Zrange().Key(connsKey(userID)).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		return 0, fmt.Errorf("list connections of user %s: %w", userID, err)
	}
	byReplica := map[string][]string{}
	for _, m := range members {
		replica, _, ok := strings.Cut(m, ":")
		if ok && replica != s.replicaID {
			byReplica[replica] = append(byReplica[replica], m)
		}
	}
	if len(byReplica) == 0 {
		return 0, nil
	}
	replicas := make([]string, 0, len(byReplica))
	cmds := make(rueidis.Commands, 0, len(byReplica))
	for r := range byReplica {
		replicas = append(replicas, r)
		// One EXISTS each: on a cluster the heartbeats live in other slots.
		cmds = append(cmds, s.r.B().Exists().Key(replicaKey(r)).Build())
	}
	var dead []string
	for i, res := range s.r.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return 0, fmt.Errorf("check replica heartbeats for user %s: %w", userID, err)
		}
		if n == 0 {
			dead = append(dead, byReplica[replicas[i]]...)
		}
	}
	if len(dead) == 0 {
		return 0, nil
	}
	if err := s.r.Do(ctx, s.r.B().Zrem().Key(connsKey(userID)).Member(dead...).Build()).Error(); err != nil {
		return 0, fmt.Errorf("free connections of stopped replicas for user %s: %w", userID, err)
	}
	return len(dead), nil
}

// admit runs the admission script once.
func (s *slots) admit(ctx context.Context, userID, member string) (bool, error) {
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
		// Not XX: an entry Redis lost (a restart without persistence, a
		// failover) is added back, so the cap holds again.
		z := s.r.B().Zadd().Key(connsKey(uid)).ScoreMember()
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

// beat renews this replica's heartbeat and reports whether it had expired
// or been lost, which means Redis lost its data (or this is the first beat).
func (s *slots) beat(ctx context.Context) (lost bool, err error) {
	err = s.r.Do(ctx, s.r.B().Set().Key(replicaKey(s.replicaID)).Value("1").Get().Px(replicaTTL).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("renew the heartbeat of replica %s: %w", s.replicaID, err)
	}
	return false, nil
}

// run keeps the heartbeat and refreshes this replica's entries (local
// returns them, by user id) until ctx is done; a lost heartbeat refreshes
// them at once.
func (s *slots) run(ctx context.Context, local func() map[string][]string, log *slog.Logger) {
	beat := time.NewTicker(replicaBeat)
	defer beat.Stop()
	t := time.NewTicker(slotRefresh)
	defer t.Stop()
	first := true
	refresh := func() {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		if err := s.refresh(rctx, local()); err != nil && ctx.Err() == nil {
			log.Warn("refresh connection slots", "err", err)
		}
	}
	doBeat := func() {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		lost, err := s.beat(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("replica heartbeat", "err", err)
			}
			return
		}
		if lost && !first {
			log.Warn("replica heartbeat was gone: Redis lost its data; adding this replica's connections back")
			refresh()
		}
		first = false
	}
	doBeat()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			doBeat()
		case <-t.C:
			refresh()
		}
	}
}
