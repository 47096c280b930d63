package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds a message's life after it is sent: edits, deletions,
// reactions and read markers. Each is an entry of the message stream like a
// message (one id space, so history, `since` recovery and live delivery
// carry them in order), with a type field naming it and messageId naming
// the message it acts on (for a read marker: the last message read). A
// message entry may carry replyTo, mentions and attachments. The client
// frames are "edited", "deleted", "reaction" and "read" (LifeFrame), and a
// message frame gains the same optional fields. docs/protocol.md#message-life
// has the layouts.

// Entry types (the type field) of a message's life.
const (
	TypeEdit   = "edit"   // text: the new text
	TypeDelete = "delete" // text: ""
	TypeReact  = "react"  // emoji, on; text: ""
	TypeRead   = "read"   // messageId: the last message read; text: ""
)

// Fields of the stream entries of a message's life, besides the message
// fields. Each is written only when set.
const (
	// FieldMessageID names the message an edit, delete, react or read acts on.
	FieldMessageID = "messageId"
	// FieldEmoji and FieldOn are a reaction's: on "1" adds it, "0" removes it.
	FieldEmoji = "emoji"
	FieldOn    = "on"
	// FieldReplyTo is the id of the message a message answers.
	FieldReplyTo = "replyTo"
	// FieldMentions is the user ids a message mentions, comma-separated.
	FieldMentions = "mentions"
	// FieldAttachments is a message's attachments as a JSON array of Attachment.
	FieldAttachments = "attachments"
)

// Client frame types of a message's life.
const (
	FrameTypeEdited   = "edited"
	FrameTypeDeleted  = "deleted"
	FrameTypeReaction = "reaction"
	FrameTypeRead     = "read"
)

// Limits of the optional fields of a message.
const (
	// MaxMentions is the most mentions a message carries (more @names
	// resolve to the first MaxMentions).
	MaxMentions = 20
	// MaxAttachments is the most attachments a message carries.
	MaxAttachments = 10
	// MaxEmojiBytes bounds a reaction's emoji (one grapheme cluster: a
	// family or flag sequence is at most ~35 bytes).
	MaxEmojiBytes = 64
)

// ReadMarkerKey is the Redis key holding userID's read marker of room
// (the last message id they read) as the chat role last moved it: in the
// slot of the room's stream, since the read script appends to that stream
// in the same call. It expires (ReadMarkerTTL after its last move) once
// the store has long had the marker. GET /api/rooms reads it with the
// store's, so a marker is current before ingest stored it.
func ReadMarkerKey(shards Shards, room, userID string) string {
	return "chat:read:" + SlotTag(shards.StreamOf(room)) + ":" + userID + ":" + room
}

// ReadMarkerTTL is how long a read marker key outlives its last move.
const ReadMarkerTTL = 7 * 24 * time.Hour

// Attachment is a file a message carries, with AuroraChat's field names.
// URL is the authenticated download route of the chat role
// (/api/rooms/<room>/attachments/<id>).
type Attachment struct {
	URL      string `json:"url"`
	FileType string `json:"fileType"`
	Size     int64  `json:"size"`
	Filename string `json:"filename"`
}

// Reaction is one emoji's reactions on a message as history shows it: how
// many users reacted with it and whether the reader is one of them.
type Reaction struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Me    bool   `json:"me"`
}

// IsLife reports whether typ is the type of an edit, delete, react or read.
func IsLife(typ string) bool {
	switch typ {
	case TypeEdit, TypeDelete, TypeReact, TypeRead:
		return true
	}
	return false
}

// lifeFrameType is the client frame type of a life entry type.
func lifeFrameType(typ string) string {
	switch typ {
	case TypeEdit:
		return FrameTypeEdited
	case TypeDelete:
		return FrameTypeDeleted
	case TypeReact:
		return FrameTypeReaction
	case TypeRead:
		return FrameTypeRead
	}
	return ""
}

// LifeFrame is an edit, delete, reaction or read as clients receive it:
// live, and in a `since` replay. ID is the event's own stream id (so
// `since` covers it), MessageID the message it acts on; User and UserID
// the actor. Text is an edit's new text; Emoji and On a reaction's.
type LifeFrame struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Room      string `json:"room"`
	MessageID string `json:"messageId"`
	User      string `json:"user"`
	UserID    string `json:"userId"`
	TS        int64  `json:"ts"`
	Text      string `json:"text,omitempty"`
	Emoji     string `json:"emoji,omitempty"`
	On        *bool  `json:"on,omitempty"`
	ClientID  string `json:"clientId,omitempty"`
}

// lifeTail is what a life frame carries after ts.
type lifeTail struct {
	Text     string `json:"text,omitempty"`
	Emoji    string `json:"emoji,omitempty"`
	On       *bool  `json:"on,omitempty"`
	ClientID string `json:"clientId,omitempty"`
}

// LifeFrameParts encodes e's life frame around its id and ts, as
// FrameParts does a message's: the frame is prefix + id + middle + ts +
// suffix, the bytes json.Marshal(e.LifeFrame()) gives once ID and TS are
// set. It fails when e is not an edit, delete, react or read.
func (e Entry) LifeFrameParts() (prefix, middle, suffix string, err error) {
	ft := lifeFrameType(e.Type)
	if ft == "" {
		return "", "", "", fmt.Errorf("%w: entry of type %q is not of a message's life", ErrBadEntry, e.Type)
	}
	var b bytes.Buffer
	b.Grow(len(e.RoomID) + len(e.Username) + len(e.UserID) + 96)
	b.WriteString(`","room":`)
	writeJSONString(&b, e.RoomID)
	b.WriteString(`,"messageId":`)
	writeJSONString(&b, e.MessageID.String())
	b.WriteString(`,"user":`)
	writeJSONString(&b, e.Username)
	b.WriteString(`,"userId":`)
	writeJSONString(&b, e.UserID)
	b.WriteString(`,"ts":`)
	t := e.lifeTail()
	return `{"type":"` + ft + `","id":"`, b.String(), tailSuffix(t), nil
}

func (e Entry) lifeTail() lifeTail {
	t := lifeTail{ClientID: e.ClientID}
	switch e.Type {
	case TypeEdit:
		t.Text = e.Text
	case TypeReact:
		on := e.On
		t.Emoji, t.On = e.Emoji, &on
	}
	return t
}

// tailSuffix is the JSON of a frame's fields after ts, with the closing
// brace: json.Marshal of v (a struct of omitempty fields) without its
// opening brace, after a comma.
func tailSuffix(v any) string {
	// json.Marshal of the tail structs (strings, integers, bools and
	// slices of them) cannot fail.
	b, _ := json.Marshal(v)
	if len(b) <= 2 {
		return "}"
	}
	return "," + string(b[1:])
}

// LifeFrame returns the life frame of an edit, delete, react or read entry.
func (e Entry) LifeFrame() LifeFrame {
	t := e.lifeTail()
	return LifeFrame{
		Type:      lifeFrameType(e.Type),
		ID:        e.ID.String(),
		Room:      e.RoomID,
		MessageID: e.MessageID.String(),
		User:      e.Username,
		UserID:    e.UserID,
		TS:        e.TS,
		Text:      t.Text,
		Emoji:     t.Emoji,
		On:        t.On,
		ClientID:  t.ClientID,
	}
}

// readFramePrefix starts every read frame, up to its id.
const readFramePrefix = `{"type":"` + FrameTypeRead + `","id":"`

// PeekRead recognises a read frame (as Pub/Sub delivers it) and reads
// whose marker it is, for fan-out to deliver it only to that user's
// connections (and the other member of a direct room): any other payload
// costs a prefix comparison.
func PeekRead(frame []byte) (userID string, ok bool) {
	if !bytes.HasPrefix(frame, []byte(readFramePrefix)) {
		return "", false
	}
	var h struct {
		UserID string `json:"userId"`
	}
	if err := json.Unmarshal(frame, &h); err != nil || h.UserID == "" {
		return "", false
	}
	return h.UserID, true
}

// lifeFields appends the life and message-option fields of e to f.
func (e Entry) lifeFields(f []string) []string {
	if IsLife(e.Type) {
		f = append(f, FieldMessageID, e.MessageID.String())
	}
	if e.Type == TypeReact {
		on := "0"
		if e.On {
			on = "1"
		}
		f = append(f, FieldEmoji, e.Emoji, FieldOn, on)
	}
	if e.ReplyTo != "" {
		f = append(f, FieldReplyTo, e.ReplyTo)
	}
	if len(e.Mentions) > 0 {
		f = append(f, FieldMentions, strings.Join(e.Mentions, ","))
	}
	if len(e.Attachments) > 0 {
		// json.Marshal of []Attachment cannot fail.
		b, _ := json.Marshal(e.Attachments)
		f = append(f, FieldAttachments, string(b))
	}
	return f
}

// decodeLife reads the life and message-option fields into e (DecodeEntry).
func decodeLife(e *Entry, fields map[string]string) error {
	if IsLife(e.Type) {
		s, ok := fields[FieldMessageID]
		if !ok {
			return fmt.Errorf("no %s on a %s", FieldMessageID, e.Type)
		}
		id, err := ParseID(s)
		if err != nil || id.IsZero() {
			return fmt.Errorf("%s %q is not a message id", FieldMessageID, s)
		}
		e.MessageID = id
	} else if _, ok := fields[FieldMessageID]; ok {
		return fmt.Errorf("%s on an entry of type %q", FieldMessageID, e.Type)
	}
	if e.Type == TypeReact {
		e.Emoji = fields[FieldEmoji]
		if e.Emoji == "" || len(e.Emoji) > MaxEmojiBytes {
			return fmt.Errorf("%s must be 1 to %d bytes", FieldEmoji, MaxEmojiBytes)
		}
		switch fields[FieldOn] {
		case "1":
			e.On = true
		case "0":
		default:
			return fmt.Errorf("%s must be 1 or 0", FieldOn)
		}
	}
	if s, ok := fields[FieldReplyTo]; ok {
		if e.Type != "" {
			return fmt.Errorf("%s on an entry of type %q", FieldReplyTo, e.Type)
		}
		if id, err := ParseID(s); err != nil || id.IsZero() {
			return fmt.Errorf("%s %q is not a message id", FieldReplyTo, s)
		}
		e.ReplyTo = s
	}
	if s, ok := fields[FieldMentions]; ok && s != "" {
		e.Mentions = strings.Split(s, ",")
		if len(e.Mentions) > MaxMentions {
			return fmt.Errorf("%s holds %d ids, at most %d", FieldMentions, len(e.Mentions), MaxMentions)
		}
	}
	if s, ok := fields[FieldAttachments]; ok {
		if err := json.Unmarshal([]byte(s), &e.Attachments); err != nil {
			return fmt.Errorf("%s is not a JSON array of attachments: %v", FieldAttachments, err)
		}
		if len(e.Attachments) > MaxAttachments {
			return fmt.Errorf("%s holds %d, at most %d", FieldAttachments, len(e.Attachments), MaxAttachments)
		}
	}
	return nil
}

// lifeJSON is the frame of a life entry with its id and ts.
func (e Entry) lifeJSON() ([]byte, error) {
	prefix, middle, suffix, err := e.LifeFrameParts()
	if err != nil {
		return nil, err
	}
	return e.assemble(prefix, middle, suffix), nil
}

// assemble is a frame of e from the parts its encoder gave, with e's id
// and ts where the send and event scripts put Redis' (the frame is
// prefix + id + middle + ts + suffix).
func (e Entry) assemble(prefix, middle, suffix string) []byte {
	id := e.ID.String()
	ts := strconv.FormatInt(e.TS, 10)
	b := make([]byte, 0, len(prefix)+len(id)+len(middle)+len(ts)+len(suffix))
	b = append(b, prefix...)
	b = append(b, id...)
	b = append(b, middle...)
	b = append(b, ts...)
	return append(b, suffix...)
}
