package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auroradev/aurora/app/bus"
)

// inbound is a client frame's fields, each kept raw so that a field of the
// wrong type is reported as invalid_message rather than ignored.
type inbound map[string]json.RawMessage

// str reads an optional string field: ok=false when it is present but not a
// string (null included).
func (in inbound) str(key string) (s string, present, ok bool) {
	raw, present := in[key]
	if !present {
		return "", false, true
	}
	if err := json.Unmarshal(raw, &s); err != nil || string(raw) == "null" {
		return "", true, false
	}
	return s, true, true
}

// handle handles one text frame.
func (c *conn) handle(data []byte) {
	if !utf8.Valid(data) {
		c.fail(codeInvalidMessage, "frame is not valid UTF-8", "")
		return
	}
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(data) {
			c.fail(codeInvalidJSON, "frame is not valid JSON", "")
		} else {
			c.fail(codeInvalidMessage, "frame must be a JSON object", "")
		}
		return
	}
	if in == nil {
		c.fail(codeInvalidMessage, "frame must be a JSON object, not null", "")
		return
	}
	clientID, _, ok := in.str("clientId")
	if !ok {
		c.fail(codeInvalidMessage, "clientId must be a string", "")
		return
	}
	if len(clientID) > maxClientID {
		c.fail(codeInvalidMessage, fmt.Sprintf("clientId is longer than %d bytes", maxClientID), "")
		return
	}
	typ, hasType, ok := in.str("type")
	if !ok {
		c.fail(codeInvalidMessage, "type must be a string", clientID)
		return
	}
	switch {
	case !hasType:
		// AuroraChat's form: {"text": "..."} to the first joined room.
		c.onMessage(in, clientID, true)
	case typ == "message":
		c.onMessage(in, clientID, false)
	case typ == "join":
		c.onJoin(in, clientID)
	case typ == "leave":
		c.onLeave(in, clientID)
	case typ == "typing":
		c.onTyping(in, clientID)
	case typ == "ping":
		c.q.push("", item{frame: pongFrame})
	default:
		c.fail(codeUnknownType, fmt.Sprintf("unknown frame type %q", typ), clientID)
	}
}

// room reads and checks the "room" field; it sends the error itself.
func (c *conn) room(in inbound, clientID string) (string, bool) {
	room, present, ok := in.str("room")
	if !ok {
		c.fail(codeInvalidMessage, "room must be a string", clientID)
		return "", false
	}
	if !present {
		c.fail(codeInvalidRoom, "room is required", clientID)
		return "", false
	}
	if !bus.ValidRoom(room) {
		c.fail(codeInvalidRoom, bus.RoomRule, clientID)
		return "", false
	}
	if !c.d.allowed.allows(room) {
		c.fail(codeInvalidRoom, c.d.allowed.refusal(room), clientID)
		return "", false
	}
	return room, true
}

// joinLeaveRoom reads the room of a join or leave frame once the frame got
// a join token (joinAllowed); it sends the error itself.
func (c *conn) joinLeaveRoom(in inbound, clientID string) (string, bool) {
	if !c.joinAllowed(clientID) {
		return "", false
	}
	return c.room(in, clientID)
}

func (c *conn) inRoom(room string) bool { return slices.Contains(c.rooms, room) }

func (c *conn) onMessage(in inbound, clientID string, legacy bool) {
	c.d.metrics.received.Inc()
	var room string
	if legacy {
		if len(c.rooms) == 0 {
			c.fail(codeNotMember, "not in any room", clientID)
			return
		}
		room = c.rooms[0]
	} else {
		var ok bool
		if room, ok = c.room(in, clientID); !ok {
			return
		}
	}
	text, present, ok := in.str("text")
	if !ok || !present {
		c.fail(codeInvalidMessage, "text must be a string", clientID)
		return
	}
	if !c.inRoom(room) {
		c.fail(codeNotMember, "join room "+room+" first", clientID)
		return
	}
	if strings.TrimSpace(text) == "" {
		c.fail(codeEmptyText, "text is empty", clientID)
		return
	}
	if n := utf8.RuneCountInString(text); n > c.d.cfg.MaxTextLength {
		c.fail(codeTextTooLong, fmt.Sprintf("text has %d characters, the limit is %d", n, c.d.cfg.MaxTextLength), clientID)
		return
	}
	if until, ok := c.limitedUntil[room]; ok {
		// The window that refused the last message here is still closed:
		// Redis would refuse this one too. A client that waited the
		// retryAfterMs it was given arrives after until.
		if wait := time.Until(until); wait > 0 {
			c.rateLimited(room, clientID, wait)
			return
		}
		delete(c.limitedUntil, room)
	}
	// WAIT's own timeout (chat.ack_timeout) ends a wait for replicas; the
	// context only bounds Redis not answering at all.
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout+c.d.cfg.AckTimeout)
	defer cancel()
	res, err := c.d.sender.send(ctx, outgoing{Room: room, UserID: c.userID, Username: c.username, Text: text, ClientID: clientID})
	if err != nil {
		c.log.Warn("send failed", "room", room, "err", err)
		c.fail(codeUnavailable, "message not sent: service unavailable, retry later", clientID)
		return
	}
	if res.Unreplicated {
		c.unreplicated(room, clientID, res)
		return
	}
	if res.RetryAfterMs > 0 {
		// Timed from the answer: the window opened no later than that
		// (Redis measured its wait before answering).
		wait := time.Duration(res.RetryAfterMs) * time.Millisecond
		if c.limitedUntil == nil {
			c.limitedUntil = map[string]time.Time{}
		}
		c.limitedUntil[room] = time.Now().Add(wait)
		c.rateLimited(room, clientID, wait)
		return
	}
	c.reply(ackFrame{Type: "ack", ClientID: clientID, ID: res.ID.String(), Room: room, TS: int64(res.ID.Ms)})
}

// unreplicated answers a message that is in the stream (it will be stored
// and delivered; members may have it already) but that fewer than
// chat.ack_replicas replicas confirmed within chat.ack_timeout: no ack,
// since a failover now could lose it, but unavailable. With a clientId the
// client's resend is answered from the dedupe key with the same id, and
// acked once the replicas have it: never stored twice. Without one a resend
// is a new message, and the error says so.
func (c *conn) unreplicated(room, clientID string, res sendResult) {
	c.d.metrics.unreplicated.Inc()
	n, within := c.d.cfg.AckReplicas, c.d.cfg.AckTimeout
	if c.d.sender.warnUnreplicated() {
		// Once per replicaWarnEvery: while replicas are away every send
		// lands here; aurora_chat_unreplicated_total counts them all.
		c.log.Warn("message not confirmed by redis replicas: answered unavailable (logged once per 10s)", "room", room,
			"id", res.ID.String(), "replicas", res.Replicas, "want", n, "timeout", within, "err", res.WaitErr)
	}
	what := fmt.Sprintf("message %s is queued (it will be stored and delivered) but %d of %d Redis replicas confirmed it within %s",
		res.ID, res.Replicas, n, within)
	if res.WaitErr != nil {
		what = fmt.Sprintf("message %s is queued (it will be stored and delivered) but the Redis replicas could not be asked", res.ID)
	}
	if clientID == "" {
		c.fail(codeUnavailable, what+"; it has no clientId, so a resend would be sent as a second message", "")
		return
	}
	c.fail(codeUnavailable, what+"; resend it with the same clientId: it is not stored twice, and is acked with this id once replicated", clientID)
}

func (c *conn) onJoin(in inbound, clientID string) {
	room, ok := c.joinLeaveRoom(in, clientID)
	if !ok {
		return
	}
	var since *bus.ID
	if s, present, ok := in.str("since"); !ok {
		c.fail(codeInvalidMessage, "since must be a message id string", clientID)
		return
	} else if present {
		id, err := bus.ParseID(s)
		if err != nil {
			c.fail(codeInvalidMessage, "since must be a message id like 1732670000000-0", clientID)
			return
		}
		since = &id
	}
	if code := c.join(room, since, false); code != "" {
		switch code {
		case codeTooManyRooms:
			c.fail(code, fmt.Sprintf("a connection can be in at most %d rooms", c.d.cfg.MaxRoomsPerConn), clientID)
		default:
			c.fail(code, "cannot join "+room+": service unavailable, retry later", clientID)
		}
	}
}

// join joins room (idempotently) and answers "joined"; with since it
// replays what the client missed without a gap or a duplicate: the room's
// live frames are held back while history is read, then follow the replay.
// A room replays once per join: a join of a room the connection is in
// already (general after its first join frame) answers "joined" with
// recovered false and replays nothing, since everything after that join
// reached the connection already. implicit is the join to general on
// connect, answered by welcome instead and replaying nothing, so general's
// first join frame may still replay. It returns an error code, or "".
func (c *conn) join(room string, since *bus.ID, implicit bool) string {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	member := c.inRoom(room)
	if !member && len(c.rooms) >= c.d.cfg.MaxRoomsPerConn {
		return codeTooManyRooms
	}
	req := joinRequest{
		enter:  !member,
		since:  since,
		replay: since != nil && (!member || (room == generalRoom && c.generalOnConnect)),
	}
	if room == generalRoom {
		c.generalOnConnect = implicit
	}
	if implicit {
		// json.Marshal of this frame, strings only, cannot fail.
		req.welcome, _ = json.Marshal(welcomeFrame{Type: "welcome", User: welcomeUser{ID: c.userID, Username: c.username}})
	}
	if err := c.d.rooms.join(ctx, &c.member, room, req); err != nil {
		c.log.Warn("join failed", "room", room, "err", err)
		return codeUnavailable
	}
	if !member {
		c.rooms = append(c.rooms, room)
	}
	return ""
}

func (c *conn) onLeave(in inbound, clientID string) {
	room, ok := c.joinLeaveRoom(in, clientID)
	if !ok {
		return
	}
	if !c.inRoom(room) {
		c.fail(codeNotMember, "not in room "+room, clientID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	c.leaveRoom(ctx, room)
	c.reply(roomFrame{Type: "left", Room: room})
}

// leaveRoom removes the connection from room: membership, subscription
// (when it was the room's last local member) and presence.
func (c *conn) leaveRoom(ctx context.Context, room string) {
	c.rooms = slices.DeleteFunc(c.rooms, func(r string) bool { return r == room })
	c.d.rooms.leave(ctx, &c.member, room)
}

func (c *conn) onTyping(in inbound, clientID string) {
	room, ok := c.room(in, clientID)
	if !ok {
		return
	}
	var isTyping bool
	raw, present := in["isTyping"]
	if !present || json.Unmarshal(raw, &isTyping) != nil || string(raw) == "null" {
		c.fail(codeInvalidMessage, "isTyping must be true or false", clientID)
		return
	}
	if !c.inRoom(room) {
		c.fail(codeNotMember, "join room "+room+" first", clientID)
		return
	}
	now := time.Now()
	if now.Sub(c.typingStart) >= time.Second {
		c.typingStart, c.typingN = now, 0
	}
	if c.typingN++; c.typingN > typingPerSecond {
		return
	}
	b, err := json.Marshal(typingFrame{Type: "typing", Room: room, User: c.username, UserID: c.userID, IsTyping: isTyping})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	c.d.typing.publish(ctx, room, b)
}
