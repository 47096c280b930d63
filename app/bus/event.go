package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// This file holds room events: what happened to a room or its members
// (created, joined, kicked, ...), carried as entries of the message stream
// so that they are stored, paged by history, replayed by recovery and
// delivered live exactly as messages are. An event entry is a message
// entry (roomId, userId and username of the actor, text a human sentence)
// plus type "event" and event, the RoomEvent as a JSON object. Its client
// frame is "room_event" (EventFrame).

// Fields of a room event's stream entry, besides the message fields.
const (
	// FieldType is "event" on a room event; a message has none.
	FieldType = "type"
	// FieldEvent is the room event's JSON object (RoomEvent).
	FieldEvent = "event"
)

// TypeEvent is Entry.Type (the type field) of a room event.
const TypeEvent = "event"

// FrameTypeEvent is the type of a room event's client frame.
const FrameTypeEvent = "room_event"

// Room event names (RoomEvent.Event). Which fields each carries is
// documented in docs/protocol.md#room-events.
const (
	EventRoomCreated      = "room_created"      // title, topic, roomType; a direct room's target: the other user
	EventRoomUpdated      = "room_updated"      // title, topic: the room's, after the change
	EventRoomDeleted      = "room_deleted"      //
	EventMemberJoined     = "member_joined"     // the actor joined (target, targetName: the actor too)
	EventMemberLeft       = "member_left"       // the actor left (target, targetName: the actor too)
	EventMemberInvited    = "member_invited"    // target, targetName
	EventMemberKicked     = "member_kicked"     // target, targetName, reason
	EventMemberBanned     = "member_banned"     // target, targetName, reason, until (0: for good)
	EventMemberUnbanned   = "member_unbanned"   // target, targetName
	EventMemberMuted      = "member_muted"      // target, targetName, until (0: unmuted), reason
	EventRoleChanged      = "role_changed"      // target, targetName, role (the new one)
	EventOwnerTransferred = "owner_transferred" // target, targetName (the new owner), role "owner"
)

// eventNames are the known event names, in the order of the constants.
var eventNames = []string{
	EventRoomCreated, EventRoomUpdated, EventRoomDeleted,
	EventMemberJoined, EventMemberLeft, EventMemberInvited, EventMemberKicked,
	EventMemberBanned, EventMemberUnbanned, EventMemberMuted,
	EventRoleChanged, EventOwnerTransferred,
}

// EventNames returns every known event name.
func EventNames() []string { return append([]string(nil), eventNames...) }

// KnownEvent reports whether name is a room event name.
func KnownEvent(name string) bool {
	for _, n := range eventNames {
		if n == name {
			return true
		}
	}
	return false
}

// RoomEvent is a room event's object: the stream entry's event field, and
// the fields its frame adds after ts. Empty fields are omitted. Target is
// the user acted on (a user id), TargetName their username then; Until is
// ms since the epoch.
type RoomEvent struct {
	Event      string `json:"event"`
	Target     string `json:"target,omitempty"`
	TargetName string `json:"targetName,omitempty"`
	Role       string `json:"role,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Until      int64  `json:"until,omitempty"`
	Title      string `json:"title,omitempty"`
	Topic      string `json:"topic,omitempty"`
	RoomType   string `json:"roomType,omitempty"`
}

// ErrBadEvent is wrapped by the errors of ParseEvent and NewEvent.
var ErrBadEvent = errors.New("bad room event")

// ParseEvent reads a room event's object: a JSON object that decodes as
// RoomEvent (as encoding/json reads it: field names matched without regard
// to case, unknown fields ignored, so a newer writer's additions do not
// make an entry unreadable) and names a known event.
func ParseEvent(text string) (RoomEvent, error) {
	var ev RoomEvent
	t := strings.TrimLeft(text, " \t\r\n")
	if t == "" || t[0] != '{' {
		return ev, fmt.Errorf("%w: not a JSON object", ErrBadEvent)
	}
	if err := json.Unmarshal([]byte(text), &ev); err != nil {
		return RoomEvent{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if !KnownEvent(ev.Event) {
		return RoomEvent{}, fmt.Errorf("%w: unknown event %q", ErrBadEvent, ev.Event)
	}
	return ev, nil
}

// checkKind is DecodeEntry's rule for type and event: a message has
// neither (an empty one counts as none), a room event has a valid event.
func checkKind(e Entry) error {
	switch e.Type {
	case "":
		if e.Event != "" {
			return fmt.Errorf("%s on an entry without %s %q", FieldEvent, FieldType, TypeEvent)
		}
		return nil
	case TypeEvent:
		if _, err := ParseEvent(e.Event); err != nil {
			return fmt.Errorf("%s: %w", FieldEvent, err)
		}
		return nil
	case TypeEdit, TypeDelete, TypeReact, TypeRead:
		if e.Event != "" {
			return fmt.Errorf("%s on an entry of type %q", FieldEvent, e.Type)
		}
		return nil
	}
	return fmt.Errorf("unknown %s %q", FieldType, e.Type)
}

// NewEvent is the stream entry of a room event in room, done by the actor
// (actorID, actorName): type "event", the event as JSON, and its sentence
// as text. It refuses what DecodeEntry would refuse (a room that is not a
// room name, no actor id, an unknown event name).
func NewEvent(room, actorID, actorName string, ev RoomEvent) (Entry, error) {
	switch {
	case !ValidRoom(room):
		return Entry{}, fmt.Errorf("%w: room %q: %s", ErrBadEvent, room, RoomRule)
	case actorID == "":
		return Entry{}, fmt.Errorf("%w: no actor", ErrBadEvent)
	case !KnownEvent(ev.Event):
		return Entry{}, fmt.Errorf("%w: unknown event %q", ErrBadEvent, ev.Event)
	}
	// json.Marshal of RoomEvent (strings and an integer) cannot fail.
	b, _ := json.Marshal(ev)
	return Entry{
		RoomID:   room,
		UserID:   actorID,
		Username: actorName,
		Text:     ev.Sentence(actorName),
		Type:     TypeEvent,
		Event:    string(b),
	}, nil
}

// untilLayout is how a sentence shows an expiry.
const untilLayout = "2006-01-02 15:04 UTC"

// Sentence is the event told in English with actor as its subject
// ("alice kicked bob: spam"): the text of its stream entry, for consumers
// that read text and not the event (AuroraChat's), and for logs.
func (ev RoomEvent) Sentence(actor string) string {
	if actor == "" {
		actor = "someone"
	}
	target := ev.TargetName
	if target == "" {
		target = ev.Target
	}
	if target == "" {
		target = "someone"
	}
	until := func() string {
		return time.UnixMilli(ev.Until).UTC().Format(untilLayout)
	}
	var s string
	switch ev.Event {
	case EventRoomCreated:
		s = actor + " created the room"
		// "direct" is store.RoomDirect, which bus, imported by store, cannot name.
		if ev.RoomType == "direct" && (ev.Target != "" || ev.TargetName != "") {
			s = actor + " opened a direct room with " + target
			break
		}
		if ev.RoomType != "" {
			s = actor + " created the " + ev.RoomType + " room"
		}
		if ev.Title != "" {
			s += ` "` + ev.Title + `"`
		}
		if ev.Topic != "" {
			s += ` with the topic "` + ev.Topic + `"`
		}
	case EventRoomUpdated:
		var parts []string
		if ev.Title != "" {
			parts = append(parts, `the name "`+ev.Title+`"`)
		}
		if ev.Topic != "" {
			parts = append(parts, `the topic "`+ev.Topic+`"`)
		}
		s = actor + " updated the room"
		if len(parts) > 0 {
			s += ": " + strings.Join(parts, " and ")
		}
	case EventRoomDeleted:
		s = actor + " deleted the room"
	case EventMemberJoined:
		s = actor + " joined the room"
	case EventMemberLeft:
		s = actor + " left the room"
	case EventMemberInvited:
		s = actor + " invited " + target
	case EventMemberKicked:
		s = actor + " kicked " + target
	case EventMemberBanned:
		s = actor + " banned " + target
		if ev.Until != 0 {
			s += " until " + until()
		}
	case EventMemberUnbanned:
		s = actor + " unbanned " + target
	case EventMemberMuted:
		if ev.Until == 0 {
			s = actor + " unmuted " + target
		} else {
			s = actor + " muted " + target + " until " + until()
		}
	case EventRoleChanged:
		role := ev.Role
		if role == "" {
			role = "a member"
		}
		s = actor + " made " + target + " " + role
	case EventOwnerTransferred:
		s = actor + " made " + target + " the owner"
	default:
		s = actor + " changed the room (" + ev.Event + ")"
	}
	if ev.Reason != "" {
		s += ": " + ev.Reason
	}
	return s
}

// EventFrame is a room event as clients receive it: live on chat.<room>,
// in history and in a since replay. The RoomEvent fields sit flat after
// ts; User and UserID are the actor. It is the decoder's shape: the
// encoder is Entry.EventFrameParts, which gives json.Marshal of it.
type EventFrame struct {
	Type       string `json:"type"` // "room_event"
	ID         string `json:"id"`
	Room       string `json:"room"`
	Event      string `json:"event"`
	User       string `json:"user"`
	UserID     string `json:"userId"`
	TS         int64  `json:"ts"`
	Target     string `json:"target,omitempty"`
	TargetName string `json:"targetName,omitempty"`
	Role       string `json:"role,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Until      int64  `json:"until,omitempty"`
	Title      string `json:"title,omitempty"`
	Topic      string `json:"topic,omitempty"`
	RoomType   string `json:"roomType,omitempty"`
}

// eventFramePrefix starts every room event frame, up to its id.
const eventFramePrefix = `{"type":"` + FrameTypeEvent + `","id":"`

// EventFrameParts encodes e's room event frame around its id and ts, as
// FrameParts does a message's: the frame is prefix + id + middle + ts +
// suffix. It is the one encoder of the frame: AppendEvent's script
// assembles the live copy from it, and EventFrameJSON (history, replay)
// fills in the id and ts itself. It fails when e is not a room event.
func (e Entry) EventFrameParts() (prefix, middle, suffix string, err error) {
	if e.Type != TypeEvent {
		return "", "", "", fmt.Errorf("%w: entry of type %q", ErrBadEvent, e.Type)
	}
	ev, err := ParseEvent(e.Event)
	if err != nil {
		return "", "", "", err
	}
	var b bytes.Buffer
	b.Grow(len(e.RoomID) + len(e.Username) + len(e.UserID) + len(e.Event) + 128)
	b.WriteString(`","room":`)
	writeJSONString(&b, e.RoomID)
	b.WriteString(`,"event":`)
	writeJSONString(&b, ev.Event)
	b.WriteString(`,"user":`)
	writeJSONString(&b, e.Username)
	b.WriteString(`,"userId":`)
	writeJSONString(&b, e.UserID)
	b.WriteString(`,"ts":`)
	middle = b.String()
	b.Reset()
	for _, f := range []struct{ name, v string }{
		{"target", ev.Target}, {"targetName", ev.TargetName}, {"role", ev.Role}, {"reason", ev.Reason},
	} {
		if f.v != "" {
			b.WriteString(`,"` + f.name + `":`)
			writeJSONString(&b, f.v)
		}
	}
	if ev.Until != 0 {
		b.WriteString(`,"until":`)
		b.WriteString(strconv.FormatInt(ev.Until, 10))
	}
	for _, f := range []struct{ name, v string }{{"title", ev.Title}, {"topic", ev.Topic}, {"roomType", ev.RoomType}} {
		if f.v != "" {
			b.WriteString(`,"` + f.name + `":`)
			writeJSONString(&b, f.v)
		}
	}
	b.WriteByte('}')
	return eventFramePrefix, middle, b.String(), nil
}

// EventFrameJSON is e's room event frame with its id and ts, the bytes the
// live copy had.
func (e Entry) EventFrameJSON() ([]byte, error) {
	prefix, middle, suffix, err := e.EventFrameParts()
	if err != nil {
		return nil, err
	}
	return e.assemble(prefix, middle, suffix), nil
}

// FrameJSON is the client frame of any entry: the room_event frame of a
// room event, the message frame (json.Marshal of Frame) of anything else.
// A room event whose event does not decode (only a record edited by hand
// can hold one: DecodeEntry refuses such an entry, so ingest never stores
// it) is shown as a message with its sentence rather than dropped.
func (e Entry) FrameJSON() []byte {
	if IsLife(e.Type) {
		if b, err := e.lifeJSON(); err == nil {
			return b
		}
	}
	if e.Type == TypeEvent {
		if b, err := e.EventFrameJSON(); err == nil {
			return b
		}
	}
	// json.Marshal of MessageFrame (strings and an integer) cannot fail.
	b, _ := json.Marshal(e.Frame())
	return b
}

// PeekEvent recognises a room event frame (as Pub/Sub delivers it) and
// reads its event name and target, for fan-out to act on one (a kicked
// member) without decoding every message: a frame that does not start as
// EventFrameParts writes it costs a prefix comparison; an event frame is
// decoded for the two fields only. ok is false for any other payload, and
// for an event frame with an unknown event name.
func PeekEvent(frame []byte) (event, target string, ok bool) {
	if !bytes.HasPrefix(frame, []byte(eventFramePrefix)) {
		return "", "", false
	}
	var h struct {
		Event  string `json:"event"`
		Target string `json:"target"`
	}
	if err := json.Unmarshal(frame, &h); err != nil || !KnownEvent(h.Event) {
		return "", "", false
	}
	return h.Event, h.Target, true
}

// AppendEvent appends a room event to the room's stream (of shards) and
// publishes its frame on the room's channel, in one script (event.lua),
// which share a slot on a Redis Cluster: the event is stored
// (through ingest) and delivered live together, never one without the
// other. There is no dedupe and no rate limit: the caller (the membership
// service) appends an event once per change it made. e is an entry of
// NewEvent (its ID and TS are ignored: the id, and the ts, are Redis');
// the id it got is returned.
func AppendEvent(ctx context.Context, c rueidis.Client, shards Shards, e Entry) (ID, error) {
	if err := checkAppend(e); err != nil {
		return ID{}, err
	}
	// No ts field: the entry's time is its id's, which only Redis knows.
	e.ID, e.TS = ID{}, 0
	prefix, middle, suffix, err := e.EventFrameParts()
	if err != nil {
		return ID{}, err
	}
	ps := PubSubOf(c).WithShards(shards)
	args := append([]string{ps.Channel(e.RoomID), prefix, middle, suffix, ps.ScriptPublish()}, e.Fields()...)
	s, err := appendEventScript.Exec(ctx, c, []string{shards.StreamOf(e.RoomID)}, args).ToString()
	if err != nil {
		return ID{}, fmt.Errorf("append %s event to room %s: %w", eventName(e), e.RoomID, err)
	}
	id, err := ParseID(s)
	if err != nil {
		return ID{}, fmt.Errorf("append %s event to room %s: the script answered id %q: %w", eventName(e), e.RoomID, s, err)
	}
	return id, nil
}

// checkAppend refuses an entry that ingest would refuse, before it is
// broadcast.
func checkAppend(e Entry) error {
	switch {
	case e.Type != TypeEvent:
		return fmt.Errorf("%w: entry of type %q is not a room event", ErrBadEvent, e.Type)
	case !ValidRoom(e.RoomID):
		return fmt.Errorf("%w: room %q: %s", ErrBadEvent, e.RoomID, RoomRule)
	case e.UserID == "":
		return fmt.Errorf("%w: no actor", ErrBadEvent)
	}
	_, err := ParseEvent(e.Event)
	return err
}

// eventName is e's event name for an error message.
func eventName(e Entry) string {
	if ev, err := ParseEvent(e.Event); err == nil {
		return ev.Event
	}
	return "a"
}
