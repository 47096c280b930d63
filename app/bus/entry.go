package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// Entry is one message, or one room event, as the stream holds it.
type Entry struct {
	ID       ID // the stream entry id, set on read
	RoomID   string
	UserID   string // a room event's actor
	Username string
	// Text is the message; for a room event its sentence (RoomEvent.Sentence),
	// so that a consumer that ignores Type still reads something sane.
	Text     string
	TS       int64 // ms since epoch; DecodeEntry reads a missing or 0 ts as ID.Ms
	ClientID string
	// Type is "" for a chat message, TypeEvent for a room event; Event is
	// then the event's JSON object (RoomEvent) as text. Both are written
	// only when set, so a message's entry is AuroraChat's.
	Type  string
	Event string

	// A message's life (life.go). MessageID is the message an edit,
	// delete, react or read acts on; Emoji and On are a reaction's;
	// ReplyTo (a message id), Mentions (user ids) and Attachments are a
	// message's options.
	MessageID   ID
	Emoji       string
	On          bool
	ReplyTo     string
	Mentions    []string
	Attachments []Attachment

	// A stored message's state, which the store and history set and the
	// stream never carries: when it was last edited (ms; 0 never), whether
	// it was deleted (its text is then gone), and its reactions as the
	// reader sees them.
	Edited    int64
	Deleted   bool
	Reactions []Reaction
}

// Fields returns the entry as XADD field-value pairs.
func (e Entry) Fields() []string {
	f := []string{
		FieldRoomID, e.RoomID,
		FieldUserID, e.UserID,
		FieldText, e.Text,
		FieldUsername, e.Username,
	}
	if e.TS != 0 {
		f = append(f, FieldTS, strconv.FormatInt(e.TS, 10))
	}
	if e.ClientID != "" {
		f = append(f, FieldClientID, e.ClientID)
	}
	if e.Type != "" {
		f = append(f, FieldType, e.Type)
	}
	if e.Event != "" {
		f = append(f, FieldEvent, e.Event)
	}
	return e.lifeFields(f)
}

// ErrBadEntry is wrapped by the errors of DecodeEntry and DecodeForStore.
var ErrBadEntry = errors.New("bad stream entry")

// DecodeEntry reads an entry from its id and fields, accepting AuroraChat's
// entries (no ts, no clientId). A room event (type "event") must carry an
// event field that ParseEvent accepts; any other type, or an event field
// on a message, is refused.
func DecodeEntry(id string, fields map[string]string) (Entry, error) {
	pid, err := ParseID(id)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrBadEntry, err)
	}
	e := Entry{
		ID:       pid,
		RoomID:   fields[FieldRoomID],
		UserID:   fields[FieldUserID],
		Username: fields[FieldUsername],
		Text:     fields[FieldText],
		ClientID: fields[FieldClientID],
		Type:     fields[FieldType],
		Event:    fields[FieldEvent],
	}
	if e.RoomID == "" {
		return Entry{}, fmt.Errorf("%w %s: no %s", ErrBadEntry, id, FieldRoomID)
	}
	if e.UserID == "" {
		return Entry{}, fmt.Errorf("%w %s: no %s", ErrBadEntry, id, FieldUserID)
	}
	if _, ok := fields[FieldText]; !ok {
		return Entry{}, fmt.Errorf("%w %s: no %s", ErrBadEntry, id, FieldText)
	}
	if ts, ok := fields[FieldTS]; ok {
		e.TS, err = strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return Entry{}, fmt.Errorf("%w %s: %s %q is not a number", ErrBadEntry, id, FieldTS, ts)
		}
	}
	if e.TS == 0 {
		// No ts (AuroraChat's entries), or 0, which Fields writes as no ts:
		// the id's time, so an entry reads the same after a round trip.
		e.TS = int64(pid.Ms)
	}
	if err := checkKind(e); err != nil {
		return Entry{}, fmt.Errorf("%w %s: %v", ErrBadEntry, id, err)
	}
	if err := decodeLife(&e, fields); err != nil {
		return Entry{}, fmt.Errorf("%w %s: %v", ErrBadEntry, id, err)
	}
	return e, nil
}

// MessageFrame is a message as clients receive it: the live "message" frame,
// the payload on chat.<room>, and an item of the history API. User, Text and
// TS sit at the top level as AuroraChat sends them, so AuroraChat's clients
// and chat-service read Aurora's messages.
type MessageFrame struct {
	Type   string `json:"type"` // "message"
	ID     string `json:"id"`
	Room   string `json:"room"`
	User   string `json:"user"`
	UserID string `json:"userId"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`
	MessageTail
}

// MessageTail is what a message frame carries after ts, inline in its
// JSON: the client's id, a message's options (life.go), and in history its
// state. FrameParts encodes it on its own, after the id and ts Redis
// writes.
type MessageTail struct {
	ClientID    string       `json:"clientId,omitempty"`
	ReplyTo     string       `json:"replyTo,omitempty"`
	Mentions    []string     `json:"mentions,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Edited      int64        `json:"edited,omitempty"`
	Deleted     bool         `json:"deleted,omitempty"`
	Reactions   []Reaction   `json:"reactions,omitempty"`
}

// tail is e's MessageTail.
func (e Entry) tail() MessageTail {
	return MessageTail{ClientID: e.ClientID, ReplyTo: e.ReplyTo, Mentions: e.Mentions, Attachments: e.Attachments,
		Edited: e.Edited, Deleted: e.Deleted, Reactions: e.Reactions}
}

// Frame returns the message frame of a stream entry.
func (e Entry) Frame() MessageFrame {
	return MessageFrame{
		Type:        "message",
		ID:          e.ID.String(),
		Room:        e.RoomID,
		User:        e.Username,
		UserID:      e.UserID,
		Text:        e.Text,
		TS:          e.TS,
		MessageTail: e.tail(),
	}
}

// FrameParts pre-encodes e's message frame around its id and ts, which
// only Redis knows when the chat role's send script appends the entry:
// the frame is prefix + id + middle + ts + suffix, byte for byte what
// json.Marshal(e.Frame()) gives once ID and TS are set. It is the encoder
// of the live frame; Frame is that of every other copy, and the tests hold
// the two to the same bytes.
func (e Entry) FrameParts() (prefix, middle, suffix string) {
	var b bytes.Buffer
	b.Grow(len(e.Text) + len(e.Username) + len(e.RoomID) + len(e.UserID) + len(e.ClientID) + 64)
	b.WriteString(`","room":`)
	writeJSONString(&b, e.RoomID)
	b.WriteString(`,"user":`)
	writeJSONString(&b, e.Username)
	b.WriteString(`,"userId":`)
	writeJSONString(&b, e.UserID)
	b.WriteString(`,"text":`)
	writeJSONString(&b, e.Text)
	b.WriteString(`,"ts":`)
	middle = b.String()
	suffix = tailSuffix(e.tail())
	return `{"type":"message","id":"`, middle, suffix
}

// writeJSONString writes s as encoding/json encodes a string field (with
// its HTML escaping and its replacement of invalid UTF-8), so that
// FrameParts and json.Marshal of MessageFrame agree.
func writeJSONString(b *bytes.Buffer, s string) {
	// json.Marshal of a string cannot fail.
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// fieldMap returns the field-value pairs of a stream entry as a map.
func fieldMap(x rueidis.XRangeSlice) map[string]string {
	m := make(map[string]string, len(x.FieldValues))
	for _, fv := range x.FieldValues {
		m[fv.Field] = fv.Value
	}
	return m
}
