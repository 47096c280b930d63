package chat

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
)

// noteDelivered remembers the highest message id of room's stream shard
// that reached this replica, where recoverGap starts reading that stream
// after a Pub/Sub loss.
func (r *rooms) noteDelivered(room string, id bus.ID) {
	if id.IsZero() {
		return
	}
	shard := r.shards.Of(room)
	r.deliveredMu.Lock()
	if d := r.delivered[shard]; d.Compare(id) < 0 {
		r.delivered[shard] = id
	}
	r.deliveredMu.Unlock()
}

// lastDelivered is the highest id of shard's stream delivered here.
func (r *rooms) lastDelivered(shard int) bus.ID {
	r.deliveredMu.Lock()
	defer r.deliveredMu.Unlock()
	return r.delivered[shard]
}

// deliver forwards a Pub/Sub payload to the room's local members. It runs
// on the Pub/Sub goroutine, once per payload per replica: the payload is
// decoded at most once and the same bytes are queued for every member;
// queueing never blocks, and happens outside the hub's lock (see hub).
func (r *rooms) deliver(channel, payload string) {
	kind, room, _ := bus.ParseChannel(channel)
	switch kind {
	case bus.MessageChannel:
		frame, id, ts, ok := normaliseMessage(room, []byte(payload))
		if !ok {
			r.log.Debug("dropping a non-object payload", "channel", channel)
			return
		}
		it := item{frame: frame, id: id, ts: ts, message: true}
		r.noteDelivered(room, id)
		if reader, ok := bus.PeekRead(frame); ok {
			// A read marker is the reader's: for their other devices,
			// and in a direct room the other member's "seen".
			for _, c := range r.hub.inRoom(room) {
				if readFor(c.userID, reader, room) {
					c.deliver(room, it)
				}
			}
			return
		}
		for _, c := range r.hub.inRoom(room) {
			c.deliver(room, it)
		}
		// A removal's own event, in the room's order: nothing published
		// after it reaches the removed members (removal.go).
		r.afterEvent(room, frame)

	case bus.PresenceChannelKind:
		var events []json.RawMessage
		if err := json.Unmarshal([]byte(payload), &events); err != nil {
			r.log.Debug("dropping a presence payload that is not an array", "channel", channel, "err", err)
			return
		}
		if len(events) == 0 {
			return
		}
		frames := make([][]byte, len(events))
		for i, e := range events {
			frames[i] = e
		}
		// One item: the batch is written together.
		it := item{frames: frames}
		for _, c := range r.hub.inRoom(room) {
			c.deliver(room, it)
		}

	case bus.TypingChannelKind:
		var h struct {
			UserID string `json:"userId"`
		}
		if err := json.Unmarshal([]byte(payload), &h); err != nil {
			r.log.Debug("dropping a bad typing payload", "channel", channel, "err", err)
			return
		}
		it := item{frame: []byte(payload)}
		for _, c := range r.hub.inRoom(room) {
			// To the others: a user's own tabs need not see it typing.
			if c.userID != h.UserID {
				c.deliver(room, it)
			}
		}
	}
}

// readFor reports whether the read frame of reader in room goes to a
// connection of userID: the reader's own, and in a direct room the other
// member's. A direct room is named by membership.DirectName of its two
// members, a name no other room may take (membership refuses the prefix),
// so the name says whether userID is the other member without a lookup
// on the Pub/Sub goroutine.
func readFor(userID, reader, room string) bool {
	return userID == reader ||
		strings.HasPrefix(room, membership.DirectPrefix) && room == membership.DirectName(reader, userID)
}

// gapScan bounds how many stream entries recoverGap reads; a longer gap
// closes every member.
const gapScan = 10000

// recoverGap runs after the replica's Pub/Sub connection came back from a
// loss: messages acknowledged meanwhile (by any replica) were never
// delivered here, and nothing else would tell the members. It reads the
// stream (every shard's) after the last message this replica delivered
// from it (or from shortly before the loss) and closes, with 1012, the local members of every room
// that received one; they reconnect and rejoin with since, which replays
// it. A gap in which nothing reached the replica's rooms costs nothing.
func (r *rooms) recoverGap(lostAt time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	// Each stream shard from its own last delivered id: ids of two
	// streams are not comparable.
	var err error
	all := false
	rooms := map[string]bool{}
	for shard, stream := range r.shards.Streams() {
		from := r.lastDelivered(shard)
		if from.IsZero() {
			// Nothing delivered yet: start a little before the loss (the
			// margin covers the clocks of this host and Redis disagreeing).
			from = bus.ID{Ms: uint64(max(lostAt.Add(-5*time.Second).UnixMilli(), 0))}
		}
		entries, rerr := bus.ReadRange(ctx, r.redis, stream, from, bus.MaxID(), true, gapScan)
		if rerr != nil && err == nil {
			err = rerr
		}
		all = all || rerr != nil || len(entries) == gapScan
		for _, e := range entries {
			id, perr := bus.ParseID(e.ID)
			if perr != nil || id.Compare(from) <= 0 {
				continue
			}
			rooms[e.FieldValues[bus.FieldRoomID]] = true
		}
	}
	var members []*member
	if all {
		members = r.hub.members()
	} else {
		seen := map[*member]bool{}
		for room := range rooms {
			for _, c := range r.hub.inRoom(room) {
				if !seen[c] && c.isIn(room) {
					seen[c] = true
					members = append(members, c)
				}
			}
		}
	}
	if len(members) == 0 {
		return
	}
	r.log.Warn("pubsub was down while messages were sent: closing their rooms' local members (1012) so they recover them",
		"connections", len(members), "rooms", len(rooms), "stream_read_failed", err != nil)
	for _, c := range members {
		c.ep.closeWith(closeRecover, "reconnect and rejoin with since: messages may have been missed")
	}
}
