package chat

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/modules/chat/presence"
)

// Error codes of {"type":"error"} frames (docs/protocol.md).
const (
	codeInvalidJSON    = "invalid_json"
	codeInvalidMessage = "invalid_message"
	codeUnknownType    = "unknown_type"
	codeEmptyText      = "empty_text"
	codeTextTooLong    = "text_too_long"
	codeInvalidRoom    = "invalid_room"
	codeNotMember      = "not_member"
	codeTooManyRooms   = "too_many_rooms"
	codeUnavailable    = "unavailable"
	codeRateLimited    = "rate_limited"
	// A message's life (life.go): the target of an edit, delete,
	// reaction, reply or read is not a message of the room; it was
	// deleted; the emoji is not on the allow-list (emoji.go).
	codeUnknownMessage = "unknown_message"
	codeMessageDeleted = "message_deleted"
	codeInvalidEmoji   = "invalid_emoji"
	// The membership rules' refusals (membership.Decide).
	codeNotFound  = "not_found"
	codeForbidden = "forbidden"
	codeBanned    = "banned"
	codeMuted     = "muted"
)

// Close codes beyond RFC 6455's.
const (
	closeTokenExpired websocket.StatusCode = 4001
	closeSlowConsumer websocket.StatusCode = 4008
	// closeRevoked closes the connections of a user disabled server-wide,
	// or whose tokens were revoked: reconnecting with the same token is
	// refused.
	closeRevoked websocket.StatusCode = 4003
	// closeRecover (1012, "service restart") asks the client to reconnect
	// and rejoin its rooms with since: this replica missed what was
	// published while its Pub/Sub connection was down.
	closeRecover websocket.StatusCode = 1012
)

// Limits of the protocol.
const (
	// maxFrameBytes is the largest client frame; a bigger one closes the
	// connection with 1009.
	maxFrameBytes = 64 << 10
	// maxClientID bounds clientId, which becomes part of a Redis key.
	maxClientID = 128
	// generalRoom is the room every connection joins on connect.
	generalRoom = "general"
)

// Server -> client frames.

type welcomeFrame struct {
	Type string      `json:"type"` // "welcome"
	User welcomeUser `json:"user"`
}

type welcomeUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type joinedFrame struct {
	Type      string            `json:"type"` // "joined"
	Room      string            `json:"room"`
	Members   []presence.Member `json:"members"`
	Recovered *bool             `json:"recovered,omitempty"`
}

type roomFrame struct {
	Type string `json:"type"` // "left"
	Room string `json:"room"`
}

type ackFrame struct {
	Type     string `json:"type"` // "ack"
	ClientID string `json:"clientId,omitempty"`
	ID       string `json:"id"`
	Room     string `json:"room"`
	TS       int64  `json:"ts"`
	// Moved is a read's: whether the marker moved (ID is then the read
	// event's id) or stayed (ID is the marker, TS 0).
	Moved *bool `json:"moved,omitempty"`
}

type rateLimitedFrame struct {
	Type         string `json:"type"` // "rate_limited"
	Room         string `json:"room"`
	ClientID     string `json:"clientId,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs"`
}

type errorFrame struct {
	Type     string `json:"type"` // "error"
	Code     string `json:"code"`
	Message  string `json:"message"`
	ClientID string `json:"clientId,omitempty"`
	// RetryAfterMs is set with codeRateLimited.
	RetryAfterMs int64 `json:"retryAfterMs,omitempty"`
}

type typingFrame struct {
	Type     string `json:"type"` // "typing"
	Room     string `json:"room"`
	User     string `json:"user"`
	UserID   string `json:"userId"`
	IsTyping bool   `json:"isTyping"`
}

var pongFrame = []byte(`{"type":"pong"}`)

// writeJSONString writes s as a JSON string (the message frame's own
// encoder is bus.Entry.FrameParts).
func writeJSONString(b *bytes.Buffer, s string) {
	// json.Marshal of a string cannot fail.
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// liveHeader is what fan-out reads of a payload arriving on chat.<room>,
// once per replica: enough to normalise AuroraChat payloads, order a
// recovering join and time the delivery.
type liveHeader struct {
	Type *string         `json:"type"`
	ID   string          `json:"id"`
	TS   json.RawMessage `json:"ts"`
}

// normaliseMessage returns the frame to forward for a payload published on
// room's channel, its id and ts (ms), or ok=false for a payload that is not
// a JSON object. An AuroraChat chat-service payload {user,text,ts} has no
// type: it gets "type":"message" and "room" so Aurora clients render it too
// (AuroraChat clients ignore the extra fields).
func normaliseMessage(room string, payload []byte) (frame []byte, id bus.ID, ts int64, ok bool) {
	var h liveHeader
	if err := json.Unmarshal(payload, &h); err != nil {
		return nil, bus.ID{}, 0, false
	}
	if len(h.TS) > 0 {
		if f, err := strconv.ParseFloat(string(h.TS), 64); err == nil {
			ts = int64(f)
		}
	}
	if h.ID != "" {
		id, _ = bus.ParseID(h.ID)
	}
	if h.Type != nil {
		return payload, id, ts, true
	}
	rest := bytes.TrimSpace(payload)
	if len(rest) == 0 || rest[0] != '{' {
		return nil, bus.ID{}, 0, false
	}
	rest = bytes.TrimSpace(rest[1:])
	var b bytes.Buffer
	b.Grow(len(payload) + len(room) + 32)
	b.WriteString(`{"type":"message","room":`)
	writeJSONString(&b, room)
	if len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
	}
	b.Write(rest)
	return b.Bytes(), id, ts, true
}

// removedFrame tells a connection it is out of a room.
type removedFrame struct {
	Type   string `json:"type"` // "removed"
	Room   string `json:"room"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// roomsChangedFrame tells a user's connection that their rooms or
// invitations changed elsewhere (an invitation, a direct room opened by
// the other user, a join in another tab, a new role): GET /api/rooms and
// GET /api/invites have the news.
type roomsChangedFrame struct {
	Type string `json:"type"` // "rooms_changed"
	Room string `json:"room"`
}
