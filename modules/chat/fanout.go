package chat

import (
	"encoding/json"
	"strings"

	"github.com/auroradev/aurora/app/bus"
)

// noteDelivered remembers the highest message id that reached this
// replica, where recoverGap starts reading after a Pub/Sub loss.
func (g *gateway) noteDelivered(id bus.ID) {
	if id.IsZero() {
		return
	}
	g.deliveredMu.Lock()
	if g.delivered.Compare(id) < 0 {
		g.delivered = id
	}
	g.deliveredMu.Unlock()
}

func (g *gateway) lastDelivered() bus.ID {
	g.deliveredMu.Lock()
	defer g.deliveredMu.Unlock()
	return g.delivered
}

// deliver forwards a Pub/Sub payload to the room's local members. It runs
// on the Pub/Sub goroutine, once per payload per replica: the payload is
// decoded at most once and the same bytes are queued for every member;
// queueing never blocks.
func (g *gateway) deliver(channel, payload string) {
	switch {
	case strings.HasPrefix(channel, bus.ChannelPrefix):
		room := channel[len(bus.ChannelPrefix):]
		frame, id, ts, ok := normaliseMessage(room, []byte(payload))
		if !ok {
			g.log.Debug("dropping a non-object payload", "channel", channel)
			return
		}
		it := item{frame: frame, id: id, ts: ts, message: true}
		g.noteDelivered(id)
		g.hub.each(room, func(c *conn) { c.q.push(room, it) })

	case strings.HasPrefix(channel, bus.PresenceChannelPrefix):
		room := channel[len(bus.PresenceChannelPrefix):]
		var events []json.RawMessage
		if err := json.Unmarshal([]byte(payload), &events); err != nil {
			g.log.Debug("dropping a presence payload that is not an array", "channel", channel, "err", err)
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
		g.hub.each(room, func(c *conn) { c.q.push(room, it) })

	case strings.HasPrefix(channel, bus.TypingChannelPrefix):
		room := channel[len(bus.TypingChannelPrefix):]
		var h struct {
			UserID string `json:"userId"`
		}
		if err := json.Unmarshal([]byte(payload), &h); err != nil {
			g.log.Debug("dropping a bad typing payload", "channel", channel, "err", err)
			return
		}
		it := item{frame: []byte(payload)}
		g.hub.each(room, func(c *conn) {
			// To the others: a user's own tabs need not see it typing.
			if c.userID != h.UserID {
				c.q.push(room, it)
			}
		})
	}
}
