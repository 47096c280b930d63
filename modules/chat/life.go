package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
)

// A message's life on the WebSocket (issue 13; docs/protocol.md#message-life):
// the client frames edit, delete, react and read, and a message's replyTo,
// attachments and mentions. Edits, deletes and reactions are stream
// entries appended by the send script like a message (same rate limits,
// same clientId dedupe, under a key of their own per frame type); a read
// marker by read.lua, which moves it only forward.

// messageLookup finds the entry an event acts on (history.Service.Lookup):
// store.ErrNotFound when room has none with the id.
type messageLookup interface {
	Lookup(ctx context.Context, room string, id bus.ID) (bus.Entry, error)
}

// attachmentChecker vouches for the attachments of userID's message to
// room: each names an attachment userID uploaded to that room, and the
// answer carries the stored fileType, size and filename (never the
// client's). An error wrapping membership.ErrInvalid or store.ErrNotFound
// refuses the message (invalid_message, with the error's text); any other
// is the storage failing (unavailable). The gateway's is nil until
// attachments are wired in: then a message with attachments is refused.
type attachmentChecker interface {
	Check(ctx context.Context, room, userID string, in []bus.Attachment) ([]bus.Attachment, error)
}

// maxAttachmentURL bounds an attachment url of a client frame.
const maxAttachmentURL = 2048

// decodeTarget reads the "id" of an edit, delete, react or read.
func decodeTarget(in inbound) (bus.ID, *frameError) {
	s, present, ok := in.str("id")
	if !ok || !present {
		return bus.ID{}, frameErr(codeInvalidMessage, "id must be a message id string")
	}
	id, err := bus.ParseID(s)
	if err != nil || id.IsZero() {
		return bus.ID{}, frameErr(codeInvalidMessage, "id must be a message id like 1732670000000-0")
	}
	return id, nil
}

// decodeLife reads an edit, delete, react or read frame into f.
func decodeLife(in inbound, f *clientFrame, rules frameRules) *frameError {
	var ferr *frameError
	if f.room, ferr = decodeRoom(in, rules.allowed); ferr != nil {
		return ferr
	}
	if f.target, ferr = decodeTarget(in); ferr != nil {
		return ferr
	}
	switch f.typ {
	case typeEdit:
		f.text, ferr = decodeText(in)
	case typeReact:
		emoji, present, ok := in.str("emoji")
		switch {
		case !ok || !present:
			return frameErr(codeInvalidMessage, "emoji must be a string")
		case emoji == "" || len(emoji) > bus.MaxEmojiBytes:
			return frameErr(codeInvalidEmoji, fmt.Sprintf("emoji must be one emoji of the allow-list (1 to %d bytes)", bus.MaxEmojiBytes))
		}
		f.emoji = emoji
		raw, present := in["on"]
		if !present || json.Unmarshal(raw, &f.on) != nil || string(raw) == "null" {
			return frameErr(codeInvalidMessage, "on must be true or false")
		}
	}
	return ferr
}

// decodeAttachments reads a message's optional "attachments": an array of
// at most bus.MaxAttachments objects with a url (what else they carry the
// server takes from storage). An empty array is none.
func decodeAttachments(in inbound) ([]bus.Attachment, *frameError) {
	raw, present := in["attachments"]
	if !present {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || string(raw) == "null" {
		return nil, frameErr(codeInvalidMessage, "attachments must be an array of {\"url\"} objects")
	}
	if len(items) > bus.MaxAttachments {
		return nil, frameErr(codeInvalidMessage, fmt.Sprintf("a message carries at most %d attachments, not %d", bus.MaxAttachments, len(items)))
	}
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]bus.Attachment, 0, len(items))
	for i, item := range items {
		var a inbound
		if err := json.Unmarshal(item, &a); err != nil || a == nil {
			return nil, frameErr(codeInvalidMessage, fmt.Sprintf("attachments[%d] must be an object with a url", i))
		}
		url, present, ok := a.str("url")
		if !ok || !present || url == "" || len(url) > maxAttachmentURL {
			return nil, frameErr(codeInvalidMessage, fmt.Sprintf("attachments[%d].url must be the url the upload answered", i))
		}
		out = append(out, bus.Attachment{URL: url})
	}
	return out, nil
}

// checkMessageText is checkText for a typed message: one carrying
// attachments may have no text (a file on its own), but not too much.
func checkMessageText(f clientFrame, maxText int) *frameError {
	if len(f.attachments) > 0 && strings.TrimSpace(f.text) == "" {
		return nil
	}
	return checkText(f.text, maxText)
}

// windowClosed answers a frame sharing the message limits with
// rate_limited while the window that refused the connection's last message
// to room is still closed (Redis would refuse it too), and reports whether
// it did.
func (c *conn) windowClosed(room, clientID string) bool {
	until, ok := c.limitedUntil[room]
	if !ok {
		return false
	}
	// A client that waited the retryAfterMs it was given arrives after
	// until.
	if wait := time.Until(until); wait > 0 {
		c.rateLimited(room, clientID, wait)
		return true
	}
	delete(c.limitedUntil, room)
	return false
}

// sendCtx bounds a send: WAIT's own timeout (chat.ack_timeout) ends a wait
// for replicas; the context only bounds Redis not answering at all.
func (c *conn) sendCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout+c.d.cfg.AckTimeout)
}

// answerSend answers a message, edit, delete or reaction the send script
// ran for: acked, refused, or rate limited (what names the frame in the
// refusal of a failure).
func (c *conn) answerSend(room, clientID, what string, res sendResult, err error) {
	switch {
	case err != nil:
		c.log.Warn("send failed", "room", room, "what", what, "err", err)
		c.fail(codeUnavailable, what+" not sent: service unavailable, retry later", clientID)
	case res.Unreplicated:
		c.unreplicated(room, clientID, res)
	case res.Deleted:
		c.fail(codeMessageDeleted, "that message was deleted", clientID)
	case res.RetryAfterMs > 0:
		// Timed from the answer: the window opened no later than that
		// (Redis measured its wait before answering).
		wait := time.Duration(res.RetryAfterMs) * time.Millisecond
		if c.limitedUntil == nil {
			c.limitedUntil = map[string]time.Time{}
		}
		c.limitedUntil[room] = time.Now().Add(wait)
		c.rateLimited(room, clientID, wait)
	default:
		c.reply(ackFrame{Type: "ack", ClientID: clientID, ID: res.ID.String(), Room: room, TS: int64(res.ID.Ms)})
	}
}

// target looks up the message id of room an event acts on (or a message
// replies to): it must be a message (not a room event, not a life event).
// It answers the refusal's code and text, or "".
func (c *conn) target(ctx context.Context, room string, id bus.ID) (bus.Entry, string, string) {
	if c.d.lookup == nil {
		return bus.Entry{}, codeUnavailable, "messages cannot be looked up here: service unavailable"
	}
	e, err := c.d.lookup.Lookup(ctx, room, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e, codeUnknownMessage, fmt.Sprintf("room %s has no message %s", room, id)
	case err != nil:
		c.log.Warn("look up a message", "room", room, "id", id.String(), "err", err)
		return e, codeUnavailable, "cannot look up message " + id.String() + ": service unavailable, retry later"
	case e.Type != "":
		return e, codeUnknownMessage, fmt.Sprintf("%s in room %s is not a message (it is a %s entry)", id, room, e.Type)
	}
	return e, "", ""
}

// deletedAnswer refuses an event on a deleted message, unless it is the
// resend of one the send script accepted before the delete (its dedupe
// key holds the id): that one is acked again, as any resend is. typ is
// the event's entry type ("" a message replying to the deleted one).
func (c *conn) deletedAnswer(ctx context.Context, room, typ, clientID string) {
	if clientID != "" {
		s := c.d.sender
		tag := keyTag(s.shards, room)
		key := dedupeKey(tag, c.userID, room, clientID)
		if typ != "" {
			key = lifeDedupeKey(tag, typ, c.userID, room, clientID)
		}
		if v, err := s.redis.Do(ctx, s.redis.B().Get().Key(key).Build()).ToString(); err == nil {
			if id, err := bus.ParseID(v); err == nil {
				c.reply(ackFrame{Type: "ack", ClientID: clientID, ID: id.String(), Room: room, TS: int64(id.Ms)})
				return
			}
		}
	}
	c.fail(codeMessageDeleted, "that message was deleted", clientID)
}

// lifeStart is what every life frame checks first: the connection is in
// the room and the rules allow act. It answers a refusal itself.
func (c *conn) lifeStart(f clientFrame, act membership.Action) bool {
	if !c.inRoom(f.room) {
		c.fail(codeNotMember, "join room "+f.room+" first", f.clientID)
		return false
	}
	if code, msg := c.allowed(f.room, act); code != "" {
		c.fail(code, msg, f.clientID)
		return false
	}
	return true
}

func (c *conn) onEdit(f clientFrame) {
	if !c.lifeStart(f, membership.Edit) {
		return
	}
	if ferr := checkText(f.text, c.d.cfg.MaxTextLength); ferr != nil {
		c.fail(ferr.code, ferr.msg, f.clientID)
		return
	}
	if c.windowClosed(f.room, f.clientID) {
		return
	}
	ctx, cancel := c.sendCtx()
	defer cancel()
	e, code, msg := c.target(ctx, f.room, f.target)
	switch {
	case code != "":
		c.fail(code, msg, f.clientID)
		return
	case e.UserID != c.userID:
		c.fail(codeForbidden, "you can edit only your own messages", f.clientID)
		return
	case e.Deleted:
		c.deletedAnswer(ctx, f.room, bus.TypeEdit, f.clientID)
		return
	}
	res, err := c.d.sender.send(ctx, outgoing{Room: f.room, UserID: c.userID, Username: c.username, Text: f.text, ClientID: f.clientID,
		Type: bus.TypeEdit, MessageID: f.target})
	c.answerSend(f.room, f.clientID, "edit", res, err)
}

func (c *conn) onDelete(f clientFrame) {
	// One's own message needs Read only: a muted or readonly member may
	// take back what they wrote. Others' need DeleteAny, decided below.
	if !c.lifeStart(f, membership.Read) {
		return
	}
	if c.windowClosed(f.room, f.clientID) {
		return
	}
	ctx, cancel := c.sendCtx()
	defer cancel()
	e, code, msg := c.target(ctx, f.room, f.target)
	if code != "" {
		c.fail(code, msg, f.clientID)
		return
	}
	if e.UserID != c.userID {
		if code, msg := c.allowed(f.room, membership.DeleteAny); code != "" {
			c.fail(code, msg, f.clientID)
			return
		}
	}
	if e.Deleted {
		c.deletedAnswer(ctx, f.room, bus.TypeDelete, f.clientID)
		return
	}
	res, err := c.d.sender.send(ctx, outgoing{Room: f.room, UserID: c.userID, Username: c.username, ClientID: f.clientID,
		Type: bus.TypeDelete, MessageID: f.target})
	c.answerSend(f.room, f.clientID, "delete", res, err)
}

func (c *conn) onReact(f clientFrame) {
	if !c.lifeStart(f, membership.React) {
		return
	}
	emoji, ok := allowedEmoji(f.emoji)
	if !ok {
		c.fail(codeInvalidEmoji, "that emoji is not on the allow-list (docs/protocol.md#message-life)", f.clientID)
		return
	}
	if c.windowClosed(f.room, f.clientID) {
		return
	}
	ctx, cancel := c.sendCtx()
	defer cancel()
	e, code, msg := c.target(ctx, f.room, f.target)
	if code != "" {
		c.fail(code, msg, f.clientID)
		return
	}
	if e.Deleted {
		c.deletedAnswer(ctx, f.room, bus.TypeReact, f.clientID)
		return
	}
	res, err := c.d.sender.send(ctx, outgoing{Room: f.room, UserID: c.userID, Username: c.username, ClientID: f.clientID,
		Type: bus.TypeReact, MessageID: f.target, Emoji: emoji, On: f.on})
	c.answerSend(f.room, f.clientID, "reaction", res, err)
}

func (c *conn) onRead(f clientFrame) {
	if !c.lifeStart(f, membership.Read) {
		return
	}
	ctx, cancel := c.sendCtx()
	defer cancel()
	if c.d.lookup == nil {
		c.fail(codeUnavailable, "messages cannot be looked up here: service unavailable", f.clientID)
		return
	}
	// Any entry of the room will do (the last frame a client saw may be a
	// room event or an edit): the marker is a position in the room's id
	// space.
	if _, err := c.d.lookup.Lookup(ctx, f.room, f.target); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.fail(codeUnknownMessage, fmt.Sprintf("room %s has no message %s", f.room, f.target), f.clientID)
			return
		}
		c.log.Warn("look up a read message", "room", f.room, "id", f.target.String(), "err", err)
		c.fail(codeUnavailable, "read marker not moved: service unavailable, retry later", f.clientID)
		return
	}
	res, err := c.d.sender.read(ctx, outgoing{Room: f.room, UserID: c.userID, Username: c.username, ClientID: f.clientID,
		Type: bus.TypeRead, MessageID: f.target}, c.storedMarker)
	switch {
	case err != nil:
		c.log.Warn("read marker failed", "room", f.room, "err", err)
		c.fail(codeUnavailable, "read marker not moved: service unavailable, retry later", f.clientID)
	case res.Unreplicated:
		c.unreplicated(f.room, f.clientID, res.sendResult)
	case res.RetryAfterMs > 0:
		// Read markers have a limit of their own: a refusal closes no
		// window of the room's messages.
		c.rateLimited(f.room, f.clientID, time.Duration(res.RetryAfterMs)*time.Millisecond)
	case res.Duplicate:
		moved := false
		c.reply(ackFrame{Type: "ack", ClientID: f.clientID, ID: res.ID.String(), Room: f.room, TS: 0, Moved: &moved})
	default: // moved, or a resend of a read that moved it: the original ack
		moved := true
		c.reply(ackFrame{Type: "ack", ClientID: f.clientID, ID: res.ID.String(), Room: f.room, TS: int64(res.ID.Ms), Moved: &moved})
	}
}

// storedMarker is the store's read marker of room for userID (the zero id
// when it has none, or no store is wired).
func (c *conn) storedMarker(ctx context.Context, room, userID string) (bus.ID, error) {
	if c.d.markers == nil {
		return bus.ID{}, nil
	}
	ms, err := c.d.markers.ReadMarkers(ctx, userID)
	if err != nil {
		return bus.ID{}, fmt.Errorf("read the stored read markers: %w", err)
	}
	return ms[room], nil
}

// readMarkers reads the store's read markers (store.MessageReader).
type readMarkers interface {
	ReadMarkers(ctx context.Context, userID string) (map[string]bus.ID, error)
}

// mentionLookups bounds the store lookups of one message's @names.
const mentionLookups = 2 * bus.MaxMentions

// mentions resolves the @username tokens of text to the ids of users who
// exist and are members of room (general: every user), at most
// bus.MaxMentions, in order of first mention. A token is '@' at the start
// or after a character that cannot be in a username, then a username
// (A-Z a-z 0-9 _ . -, 3 to 32); a name that resolves to nobody stays text,
// as does one beyond the bounds. Text without '@' costs nothing.
func (c *conn) mentions(ctx context.Context, room, text string) []string {
	if !strings.Contains(text, "@") {
		return nil
	}
	var ids []string
	seen := map[string]bool{}
	lookups := 0
	for _, name := range mentionTokens(text) {
		key := store.UsernameKey(name)
		if seen[key] {
			continue
		}
		seen[key] = true
		if lookups++; lookups > mentionLookups || len(ids) == bus.MaxMentions {
			break
		}
		id, ok := c.mentioned(ctx, room, name)
		if !ok {
			// "@bob." ends a sentence: try without the trailing dots and
			// dashes, which usernames may hold but rarely end with.
			trimmed := strings.TrimRight(name, ".-")
			if trimmed == name || len(trimmed) < 3 || seen[store.UsernameKey(trimmed)] {
				continue
			}
			seen[store.UsernameKey(trimmed)] = true
			if id, ok = c.mentioned(ctx, room, trimmed); !ok {
				continue
			}
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// mentioned resolves one @name to a member of room.
func (c *conn) mentioned(ctx context.Context, room, name string) (string, bool) {
	if c.d.users == nil {
		return "", false
	}
	u, err := c.d.users.UserByName(ctx, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			// A mention is a courtesy: the message goes without it.
			c.log.Warn("resolve a mention", "room", room, "err", err)
		}
		return "", false
	}
	if room == generalRoom {
		return u.ID, true
	}
	a, err := c.d.access.Access(ctx, room, u.ID)
	if err != nil || a.Member == nil {
		return "", false
	}
	return u.ID, true
}

// usernameByte reports whether b may be in a username (registration's
// rule: A-Z a-z 0-9 _ . -).
func usernameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-'
}

// mentionTokens returns the @names of text, in order, duplicates kept.
func mentionTokens(text string) []string {
	var out []string
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || i > 0 && usernameByte(text[i-1]) {
			continue
		}
		j := i + 1
		for j < len(text) && usernameByte(text[j]) {
			j++
		}
		if n := j - i - 1; n >= 3 && n <= 32 {
			out = append(out, text[i+1:j])
		}
		i = j - 1
	}
	return out
}

// messageOptions checks a typed message's replyTo and attachments and
// resolves its mentions into m. It answers a refusal's code and text, or "".
func (c *conn) messageOptions(ctx context.Context, f clientFrame, m *outgoing) (code, msg string) {
	if f.replyTo != nil {
		e, code, msg := c.target(ctx, f.room, *f.replyTo)
		if code != "" {
			return code, msg
		}
		if e.Deleted {
			return codeMessageDeleted, "the message replied to was deleted"
		}
		m.ReplyTo = f.replyTo.String()
	}
	if len(f.attachments) > 0 {
		if c.d.attachments == nil {
			return codeInvalidMessage, "attachments are not enabled"
		}
		atts, err := c.d.attachments.Check(ctx, f.room, c.userID, f.attachments)
		switch {
		case errors.Is(err, membership.ErrInvalid), errors.Is(err, store.ErrNotFound):
			return codeInvalidMessage, err.Error()
		case err != nil:
			c.log.Warn("check attachments", "room", f.room, "err", err)
			return codeUnavailable, "attachments cannot be checked: service unavailable, retry later"
		}
		m.Attachments = atts
	}
	m.Mentions = c.mentions(ctx, f.room, f.text)
	return "", ""
}
