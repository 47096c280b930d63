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
	"github.com/auroradev/aurora/app/membership"
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

// Frame types a client sends.
const (
	typeMessage = "message"
	typeJoin    = "join"
	typeLeave   = "leave"
	typeTyping  = "typing"
	typePing    = "ping"
	// A message's life (life.go).
	typeEdit   = "edit"
	typeDelete = "delete"
	typeReact  = "react"
	typeRead   = "read"
)

// frameError is a client frame refused: the code and message of the error
// frame that answers it.
type frameError struct{ code, msg string }

func frameErr(code, msg string) *frameError { return &frameError{code, msg} }

// frameRules are the settings a client frame is checked against on its own.
type frameRules struct {
	allowed allowedRooms
	maxText int
}

// clientFrame is a client frame decoded and checked on its own, before
// anything about the connection is consulted (decodeFrame). Its fields are
// set as far as decoding got: clientID once it was read, typ once it was
// read and known, so a refused frame is answered with its clientId and a
// refused join still draws on the join bucket.
type clientFrame struct {
	typ      string // typeMessage, typeJoin, … typeRead; "" before it is known
	legacy   bool   // AuroraChat's {"text": "..."}: a message to the first joined room
	clientID string
	room     string  // typed message, join, leave, typing, edit, delete, react, read
	text     string  // message, edit; checkText checks its content
	since    *bus.ID // join
	isTyping bool    // typing

	// A message's life: target is the "id" of an edit, delete, react or
	// read; emoji and on a reaction's (the allow-list is checked after
	// membership, as a message's text); replyTo and attachments a typed
	// message's options (attachments carry only the client's url: the
	// rest comes from storage).
	target      bus.ID
	emoji       string
	on          bool
	replyTo     *bus.ID
	attachments []bus.Attachment
}

// decodeFrame turns a client's text frame into a clientFrame, or the error
// answering it (codes invalid_json, invalid_message, unknown_type,
// invalid_room). It is pure: the connection's state (membership, the join
// bucket) is checked by handle, and a message's text by checkText after
// membership, in the order the protocol answers them.
func decodeFrame(data []byte, rules frameRules) (clientFrame, *frameError) {
	var f clientFrame
	if !utf8.Valid(data) {
		return f, frameErr(codeInvalidMessage, "frame is not valid UTF-8")
	}
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(data) {
			return f, frameErr(codeInvalidJSON, "frame is not valid JSON")
		}
		return f, frameErr(codeInvalidMessage, "frame must be a JSON object")
	}
	if in == nil {
		return f, frameErr(codeInvalidMessage, "frame must be a JSON object, not null")
	}
	clientID, _, ok := in.str("clientId")
	if !ok {
		return f, frameErr(codeInvalidMessage, "clientId must be a string")
	}
	if len(clientID) > maxClientID {
		return f, frameErr(codeInvalidMessage, fmt.Sprintf("clientId is longer than %d bytes", maxClientID))
	}
	f.clientID = clientID
	typ, hasType, ok := in.str("type")
	if !ok {
		return f, frameErr(codeInvalidMessage, "type must be a string")
	}
	var ferr *frameError
	switch {
	case !hasType:
		// AuroraChat's form: {"text": "..."} to the first joined room.
		f.typ, f.legacy = typeMessage, true
		f.text, ferr = decodeText(in)
	case typ == typeMessage:
		f.typ = typ
		if f.room, ferr = decodeRoom(in, rules.allowed); ferr == nil {
			f.text, ferr = decodeText(in)
		}
		if ferr == nil {
			f.replyTo, ferr = decodeOptionalID(in, "replyTo", false)
		}
		if ferr == nil {
			f.attachments, ferr = decodeAttachments(in)
		}
	case typ == typeEdit, typ == typeDelete, typ == typeReact, typ == typeRead:
		f.typ = typ
		ferr = decodeLife(in, &f, rules)
	case typ == typeJoin:
		f.typ = typ
		if f.room, ferr = decodeRoom(in, rules.allowed); ferr == nil {
			f.since, ferr = decodeOptionalID(in, "since", true)
		}
	case typ == typeLeave:
		f.typ = typ
		f.room, ferr = decodeRoom(in, rules.allowed)
	case typ == typeTyping:
		f.typ = typ
		if f.room, ferr = decodeRoom(in, rules.allowed); ferr == nil {
			raw, present := in["isTyping"]
			if !present || json.Unmarshal(raw, &f.isTyping) != nil || string(raw) == "null" {
				ferr = frameErr(codeInvalidMessage, "isTyping must be true or false")
			}
		}
	case typ == typePing:
		f.typ = typ
	default:
		ferr = frameErr(codeUnknownType, fmt.Sprintf("unknown frame type %q", typ))
	}
	return f, ferr
}

// decodeRoom reads and checks the "room" field.
func decodeRoom(in inbound, allowed allowedRooms) (string, *frameError) {
	room, present, ok := in.str("room")
	if !ok {
		return "", frameErr(codeInvalidMessage, "room must be a string")
	}
	if !present {
		return "", frameErr(codeInvalidRoom, "room is required")
	}
	if !bus.ValidRoom(room) {
		return "", frameErr(codeInvalidRoom, bus.RoomRule)
	}
	if !allowed.allows(room) {
		return "", frameErr(codeInvalidRoom, allowed.refusal(room))
	}
	return room, nil
}

// decodeText reads the "text" field of a message.
func decodeText(in inbound) (string, *frameError) {
	text, present, ok := in.str("text")
	if !ok || !present {
		return "", frameErr(codeInvalidMessage, "text must be a string")
	}
	return text, nil
}

// decodeOptionalID reads the optional message id field of a frame: a
// join's "since" (0-0 allowed: from the start), a message's "replyTo"
// (zeroOK false: no message has the id 0-0). nil when absent.
func decodeOptionalID(in inbound, field string, zeroOK bool) (*bus.ID, *frameError) {
	s, present, ok := in.str(field)
	if !ok {
		return nil, frameErr(codeInvalidMessage, field+" must be a message id string")
	}
	if !present {
		return nil, nil
	}
	id, err := bus.ParseID(s)
	if err != nil || (!zeroOK && id.IsZero()) {
		return nil, frameErr(codeInvalidMessage, field+" must be a message id like 1732670000000-0")
	}
	return &id, nil
}

// checkText checks a message's text once the sender is known to be in the
// room: not blank, at most maxText code points.
func checkText(text string, maxText int) *frameError {
	if strings.TrimSpace(text) == "" {
		return frameErr(codeEmptyText, "text is empty")
	}
	if n := utf8.RuneCountInString(text); n > maxText {
		return frameErr(codeTextTooLong, fmt.Sprintf("text has %d characters, the limit is %d", n, maxText))
	}
	return nil
}

// handle handles one text frame: decodeFrame, then what depends on the
// connection.
func (c *conn) handle(data []byte) {
	f, ferr := decodeFrame(data, frameRules{allowed: c.d.allowed, maxText: c.d.cfg.MaxTextLength})
	// What the connection answers before the frame's own fields.
	switch f.typ {
	case typeMessage:
		c.d.metrics.received.Inc()
		if f.legacy && len(c.rooms) == 0 {
			c.fail(codeNotMember, "not in any room", f.clientID)
			return
		}
	case typeJoin, typeLeave:
		// Every join and leave frame draws on the bucket, valid or not.
		if !c.joinAllowed(f.clientID) {
			return
		}
	}
	if ferr != nil {
		c.fail(ferr.code, ferr.msg, f.clientID)
		return
	}
	switch f.typ {
	case typeMessage:
		c.onMessage(f)
	case typeJoin:
		c.onJoin(f)
	case typeLeave:
		c.onLeave(f)
	case typeTyping:
		c.onTyping(f)
	case typePing:
		c.q.push("", item{frame: pongFrame})
	case typeEdit:
		c.onEdit(f)
	case typeDelete:
		c.onDelete(f)
	case typeReact:
		c.onReact(f)
	case typeRead:
		c.onRead(f)
	}
}

// inRoom reports whether the connection is in room. A removal (a kick,
// a ban) takes a connection out of a room on the Pub/Sub goroutine; the
// rooms it left that way are dropped here, on the reader's.
func (c *conn) inRoom(room string) bool {
	c.rooms = slices.DeleteFunc(c.rooms, func(r string) bool { return !c.isIn(r) })
	return slices.Contains(c.rooms, room)
}

func (c *conn) onMessage(f clientFrame) {
	clientID, room := f.clientID, f.room
	if f.legacy {
		if room = c.firstRoom(); room == "" {
			c.fail(codeNotMember, "not in any room", clientID)
			return
		}
	}
	if !c.inRoom(room) {
		c.fail(codeNotMember, "join room "+room+" first", clientID)
		return
	}
	if code, msg := c.allowed(room, membership.Send); code != "" {
		c.fail(code, msg, clientID)
		return
	}
	if ferr := checkMessageText(f, c.d.cfg.MaxTextLength); ferr != nil {
		c.fail(ferr.code, ferr.msg, clientID)
		return
	}
	if c.windowClosed(room, clientID) {
		return
	}
	ctx, cancel := c.sendCtx()
	defer cancel()
	m := outgoing{Room: room, UserID: c.userID, Username: c.username, Text: f.text, ClientID: clientID}
	// AuroraChat's form carries no options, but its @names are mentions
	// too.
	f.room = room
	if code, msg := c.messageOptions(ctx, f, &m); code != "" {
		if code == codeMessageDeleted {
			// Unless it is the resend of a reply acked before the delete.
			c.deletedAnswer(ctx, room, "", clientID)
			return
		}
		c.fail(code, msg, clientID)
		return
	}
	res, err := c.d.sender.send(ctx, m)
	c.answerSend(room, clientID, "message", res, err)
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

func (c *conn) onJoin(f clientFrame) {
	if code, msg := c.join(f.room, f.since, false); code != "" {
		c.fail(code, msg, f.clientID)
	}
}

// firstRoom is the room AuroraChat's {"text"} goes to: the first the
// connection joined and is still in, or "".
func (c *conn) firstRoom() string {
	for _, r := range c.rooms {
		if c.isIn(r) {
			return r
		}
	}
	return ""
}

// join joins room (idempotently) and answers "joined"; with since it
// replays what the client missed without a gap or a duplicate: the room's
// live frames are held back while history is read, then follow the replay.
// A room replays once per join: a join of a room the connection is in
// already (general after its first join frame) answers "joined" with
// recovered false and replays nothing, since everything after that join
// reached the connection already. implicit is the join to general on
// connect, answered by welcome instead and replaying nothing, so general's
// first join frame may still replay. A join the membership rules refuse
// (membership.Decide) answers their error. It returns an error code and
// text, or "".
func (c *conn) join(room string, since *bus.ID, implicit bool) (code, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	member := c.inRoom(room)
	if !member && len(c.rooms) >= c.d.cfg.MaxRoomsPerConn {
		return codeTooManyRooms, fmt.Sprintf("a connection can be in at most %d rooms", c.d.cfg.MaxRoomsPerConn)
	}
	if !member {
		if code, msg := c.admit(ctx, room); code != "" {
			return code, msg
		}
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
		return codeUnavailable, "cannot join " + room + ": service unavailable, retry later"
	}
	if !member {
		c.rooms = append(c.rooms, room)
	}
	return "", ""
}

func (c *conn) onLeave(f clientFrame) {
	clientID, room := f.clientID, f.room
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

func (c *conn) onTyping(f clientFrame) {
	clientID, room, isTyping := f.clientID, f.room, f.isTyping
	if !c.inRoom(room) {
		c.fail(codeNotMember, "join room "+room+" first", clientID)
		return
	}
	if code, msg := c.allowed(room, membership.Typing); code != "" {
		c.fail(code, msg, clientID)
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
