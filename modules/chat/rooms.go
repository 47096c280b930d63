package chat

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/modules/chat/history"
	"github.com/auroradev/aurora/modules/chat/presence"
)

// presenceTracker is what membership (and the presence API) needs of
// presence.Tracker.
type presenceTracker interface {
	Join(ctx context.Context, room string, m presence.Member) error
	Leave(ctx context.Context, room, userID string) error
	Members(ctx context.Context, room string) ([]presence.Member, error)
	Run(ctx context.Context)
}

// historyReader is what a recovering join needs of history.Service.
type historyReader interface {
	Since(ctx context.Context, room string, since bus.ID, viewer string, direct bool, limit, maxBytes int) ([]history.Frame, bool, error)
}

// rooms is the one owner of this replica's room membership: the hub (which
// local connections are in which room), the Pub/Sub subscriptions that
// follow it, presence, fan-out of what the channels bring, and recovery
// (the replay of a joining connection, the gap after a Pub/Sub loss). A
// connection joins or leaves a room with one call, join or leave; what a
// connection may join (its room cap, which join replays) it decides
// itself.
type rooms struct {
	hub      *hub
	subs     *subscriber
	presence presenceTracker
	history  historyReader
	redis    rueidis.Client
	log      *slog.Logger

	// onRemoval, when set, is told of a removal fan-out acts on from its
	// room event, before the connections are removed (the gateway drops
	// the cached access there).
	onRemoval func(membership.Change)

	// shards is bus.shards: which stream holds a room's messages.
	shards bus.Shards
	// delivered is the highest message id Pub/Sub brought this replica,
	// per stream shard (ids of two shards are not comparable).
	deliveredMu sync.Mutex
	delivered   map[int]bus.ID
}

func newRooms(redis rueidis.Client, shards bus.Shards, p presenceTracker, h historyReader, log *slog.Logger) *rooms {
	r := &rooms{hub: newHub(), presence: p, history: h, redis: redis, log: log, shards: shards, delivered: map[int]bus.ID{}}
	r.subs = newSubscriber(redis, shards, r.hub, r.deliver, log.With("part", "pubsub"))
	r.subs.onGap = r.recoverGap
	return r
}

// joinRequest is what a connection asks of a join (see conn.join).
type joinRequest struct {
	// enter: the connection is not in the room yet. It becomes a local
	// member, the room is subscribed (waited for, so it receives everything
	// published after the join is answered) and its user is online there.
	enter bool
	// since is the client's since, nil without. replay: replay the history
	// after since; the room's live frames to the connection are held back
	// meanwhile and follow the replay without a gap or a duplicate.
	since  *bus.ID
	replay bool
	// welcome, set on the join on connect, is the connection's first frame:
	// queued once the room is subscribed, ahead of what the room delivered
	// meanwhile. Such a join is answered by it rather than by "joined".
	welcome []byte
}

// join is a connection's one call to join room: membership, subscription,
// presence, and the answer on m's queue ("joined", with the replay when
// asked, or the welcome). It fails only when the room cannot be
// subscribed; m is then not in the room and nothing was answered.
func (r *rooms) join(ctx context.Context, m *member, room string, req joinRequest) error {
	var since bus.ID
	if req.since != nil {
		since = *req.since
	}
	hold := req.replay || req.welcome != nil
	if hold {
		m.q.beginRecovery(room)
	}
	if req.enter {
		r.hub.join(room, m)
		if err := r.subs.sync(ctx, room); err != nil {
			r.hub.leave(room, m)
			if hold {
				m.q.endRecovery(room, since, nil, false, nil)
			}
			return err
		}
		if err := r.presence.Join(ctx, room, presence.Member{UserID: m.userID, Username: m.username}); err != nil {
			m.log.Warn("presence join", "room", room, "err", err)
		}
	}
	if req.welcome != nil {
		m.q.push("", item{frame: req.welcome})
		m.q.endRecovery(room, bus.ID{}, nil, true, nil)
		return nil
	}
	members, err := r.presence.Members(ctx, room)
	if err != nil {
		m.log.Warn("read room members", "room", room, "err", err)
	}
	// The joiner's own join may still wait in this interval's presence
	// batch; it is online all the same.
	members = presence.WithMember(members, presence.Member{UserID: m.userID, Username: m.username})
	joined := joinedFrame{Type: "joined", Room: room, Members: members}
	if req.since == nil {
		m.reply(joined)
		return nil
	}
	if !req.replay {
		joined.Recovered = new(bool)
		m.reply(joined)
		return nil
	}
	// No more than the replay budget admits now (endRecovery decides).
	var frames []history.Frame
	complete := false
	if limit, maxBytes := m.q.replayRoom(); limit > 0 && maxBytes > 0 {
		// A direct room's read frames are its other member's too.
		direct := strings.HasPrefix(room, membership.DirectPrefix)
		frames, complete, err = r.history.Since(ctx, room, since, m.userID, direct, limit, maxBytes)
		if err != nil {
			m.log.Warn("read history for recovery", "room", room, "since", since.String(), "err", err)
			frames, complete = nil, false
		}
	}
	m.q.endRecovery(room, since, frames, complete, func(complete bool) []byte {
		joined.Recovered = &complete
		b, err := json.Marshal(joined)
		if err != nil {
			m.log.Error("encode frame", "err", err)
		}
		return b
	})
	return nil
}

// leave is a connection's one call to leave room: it is no longer a local
// member, the room is unsubscribed when it was the last one, and its user
// goes offline there when this was the user's last connection in it.
func (r *rooms) leave(ctx context.Context, m *member, room string) {
	r.hub.leave(room, m)
	r.settle(ctx, m, room)
}

// settle brings the subscription and presence in line once m has left
// room's hub.
func (r *rooms) settle(ctx context.Context, m *member, room string) {
	if err := r.subs.sync(ctx, room); err != nil {
		m.log.Warn("unsubscribe room", "room", room, "err", err)
	}
	if err := r.presence.Leave(ctx, room, m.userID); err != nil {
		m.log.Warn("presence leave", "room", room, "err", err)
	}
}
