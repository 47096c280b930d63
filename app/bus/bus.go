// Package bus is the contract the roles share on Redis: the names of the
// stream, consumer group and channels, the fields of a stream entry, and the
// message id. The chat role writes what the ingest role reads, so both import
// this package and neither imports the other. The names are AuroraChat's, so
// an AuroraChat service and an Aurora role can share one Redis.
package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Stream names and the consumer group, as in AuroraChat.
const (
	// Stream receives every accepted message; its entry id is the message id.
	Stream = "chat:messages"
	// Group is the consumer group of the ingest workers.
	Group = "mongo_workers"
	// DeadStream holds entries that could not be stored after the allowed
	// deliveries, with the reason.
	DeadStream = "chat:messages:dead"
)

// Fields of a stream entry. AuroraChat writes the first four only.
const (
	FieldRoomID   = "roomId"
	FieldUserID   = "userId"
	FieldText     = "text"
	FieldUsername = "username"
	FieldTS       = "ts"
	FieldClientID = "clientId"
	// Fields of a dead-letter entry besides the original ones.
	FieldDeadID     = "deadId"
	FieldDeadReason = "reason"
)

// Pub/Sub channel prefixes. A replica subscribes to the three channels of a
// room while it has local members in it. chat.<room> is AuroraChat's; the
// presence and typing names are the ones its design planned (section 18.1).
const (
	ChannelPrefix         = "chat."
	PresenceChannelPrefix = "presence."
	TypingChannelPrefix   = "typing."
)

// Channel is the Pub/Sub channel of a room's messages ("chat.<room>"), as in
// AuroraChat. Its payload is exactly the MessageFrame clients receive.
func Channel(room string) string { return ChannelPrefix + room }

// PresenceChannel carries a room's presence events: a JSON array of presence
// frames, coalesced by the publishing replica over a short interval.
func PresenceChannel(room string) string { return PresenceChannelPrefix + room }

// TypingChannel carries a room's typing frames.
func TypingChannel(room string) string { return TypingChannelPrefix + room }

// RoomOfChannel returns the room of a channel name, or false.
func RoomOfChannel(ch string) (string, bool) {
	if !strings.HasPrefix(ch, ChannelPrefix) {
		return "", false
	}
	return ch[len(ChannelPrefix):], true
}

// Entry is one message as the stream holds it.
type Entry struct {
	ID       ID // the stream entry id, set on read
	RoomID   string
	UserID   string
	Username string
	Text     string
	TS       int64 // ms since epoch; 0 in AuroraChat's entries (use ID.Ms)
	ClientID string
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
	return f
}

// ErrBadEntry is wrapped by DecodeEntry's errors.
var ErrBadEntry = errors.New("bad stream entry")

// DecodeEntry reads an entry from its id and fields, accepting AuroraChat's
// entries (no ts, no clientId).
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
	} else {
		e.TS = int64(pid.Ms)
	}
	return e, nil
}

// ID is a message id: a Redis stream entry id "<ms>-<seq>". IDs compare
// numerically, part by part.
type ID struct {
	Ms  uint64
	Seq uint64
}

// ParseID parses "<ms>-<seq>". A bare "<ms>" is not accepted: ids on the
// wire are always complete.
func ParseID(s string) (ID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return ID{}, fmt.Errorf("message id %q is not <ms>-<seq>", s)
	}
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || ms == "" || seq == "" || ms[0] == '+' || seq[0] == '+' {
		return ID{}, fmt.Errorf("message id %q is not <ms>-<seq>", s)
	}
	return ID{Ms: m, Seq: q}, nil
}

// String formats the id as Redis does.
func (id ID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Compare returns -1, 0 or +1 as id is before, equal to or after o.
func (id ID) Compare(o ID) int {
	switch {
	case id.Ms < o.Ms:
		return -1
	case id.Ms > o.Ms:
		return 1
	case id.Seq < o.Seq:
		return -1
	case id.Seq > o.Seq:
		return 1
	}
	return 0
}

// IsZero reports whether id is the zero id "0-0".
func (id ID) IsZero() bool { return id.Ms == 0 && id.Seq == 0 }

// MessageFrame is a message as clients receive it: the live "message" frame,
// the payload on chat.<room>, and an item of the history API. User, Text and
// TS sit at the top level as AuroraChat sends them, so AuroraChat's clients
// and chat-service read Aurora's messages.
type MessageFrame struct {
	Type     string `json:"type"` // "message"
	ID       string `json:"id"`
	Room     string `json:"room"`
	User     string `json:"user"`
	UserID   string `json:"userId"`
	Text     string `json:"text"`
	TS       int64  `json:"ts"`
	ClientID string `json:"clientId,omitempty"`
}

// Frame returns the message frame of a stream entry.
func (e Entry) Frame() MessageFrame {
	return MessageFrame{
		Type:     "message",
		ID:       e.ID.String(),
		Room:     e.RoomID,
		User:     e.Username,
		UserID:   e.UserID,
		Text:     e.Text,
		TS:       e.TS,
		ClientID: e.ClientID,
	}
}

// RoomRule says what ValidRoom accepts, in the words of every refusal of a
// room name (API errors, error frames, config and command-line messages).
const RoomRule = "room names are 1-64 characters of a-z 0-9 _ -"

// ValidRoom reports whether name is a room name: 1-64 of [a-z0-9_-]
// (RoomRule). Room names become channel names and keys, so every role
// checks them here.
func ValidRoom(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
