package bus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestEventFrameMatchesJSON: the room event frame of every event name,
// with every field empty or set to a hostile string, is byte for byte
// json.Marshal of its EventFrame, so a client decodes it as EventFrame;
// the same bytes come from FrameJSON, whatever reads the entry.
func TestEventFrameMatchesJSON(t *testing.T) {
	for _, name := range eventNames {
		for _, s := range hostile {
			full := RoomEvent{Event: name, Target: s, TargetName: s, Role: s, Reason: s, Until: -1 << 63, Title: s, Topic: s, RoomType: s}
			for _, ev := range []RoomEvent{{Event: name}, full} {
				raw, _ := json.Marshal(ev)
				e := Entry{ID: ID{Ms: 1700000000123, Seq: 2}, RoomID: "dev", UserID: s + "u", Username: s, Text: s,
					TS: 1700000000123, Type: TypeEvent, Event: string(raw)}
				checkEventFrame(t, e)
			}
		}
	}
}

func TestEventFrameShape(t *testing.T) {
	e, err := NewEvent("dev", "u1", "alice", RoomEvent{Event: EventMemberBanned, Target: "u2", TargetName: "bob",
		Reason: "spam", Until: 1700086400000})
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.TS = ID{Ms: 1700000000123, Seq: 4}, 1700000000123
	got, err := e.EventFrameJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"room_event","id":"1700000000123-4","room":"dev","event":"member_banned","user":"alice","userId":"u1",` +
		`"ts":1700000000123,"target":"u2","targetName":"bob","reason":"spam","until":1700086400000}`
	if string(got) != want {
		t.Errorf("frame\n%s\nwant\n%s", got, want)
	}
	if e.Text != "alice banned bob until 2023-11-15 22:13 UTC: spam" {
		t.Errorf("text %q", e.Text)
	}
	if e.Event != `{"event":"member_banned","target":"u2","targetName":"bob","reason":"spam","until":1700086400000}` {
		t.Errorf("event %s", e.Event)
	}
	// A message's frame is still the message frame.
	m := Entry{ID: ID{Ms: 5}, RoomID: "dev", UserID: "u1", Username: "alice", Text: "hi", TS: 5}
	if got := string(m.FrameJSON()); got != `{"type":"message","id":"5-0","room":"dev","user":"alice","userId":"u1","text":"hi","ts":5}` {
		t.Errorf("message frame %s", got)
	}
	if _, _, _, err := m.EventFrameParts(); !errors.Is(err, ErrBadEvent) {
		t.Errorf("EventFrameParts of a message: %v, want ErrBadEvent", err)
	}
}

// TestEventSentences: every event name has its own sentence, subject the
// actor, with the target, role, expiry and reason where it has them.
func TestEventSentences(t *testing.T) {
	until := int64(1764601200000) // 2025-12-01 15:00 UTC
	for _, tc := range []struct {
		ev   RoomEvent
		want string
	}{
		{RoomEvent{Event: EventRoomCreated}, "alice created the room"},
		{RoomEvent{Event: EventRoomCreated, RoomType: "private", Title: "Dev", Topic: "builds"}, `alice created the private room "Dev" with the topic "builds"`},
		{RoomEvent{Event: EventRoomCreated, RoomType: "direct", Target: "u2", TargetName: "bob"}, "alice opened a direct room with bob"},
		{RoomEvent{Event: EventRoomUpdated, Topic: "new"}, `alice updated the room: the topic "new"`},
		{RoomEvent{Event: EventRoomUpdated, Title: "X", Topic: "y"}, `alice updated the room: the name "X" and the topic "y"`},
		{RoomEvent{Event: EventRoomUpdated}, "alice updated the room"},
		{RoomEvent{Event: EventRoomDeleted}, "alice deleted the room"},
		{RoomEvent{Event: EventMemberJoined}, "alice joined the room"},
		{RoomEvent{Event: EventMemberLeft}, "alice left the room"},
		{RoomEvent{Event: EventMemberInvited, Target: "u2", TargetName: "bob"}, "alice invited bob"},
		{RoomEvent{Event: EventMemberKicked, Target: "u2", TargetName: "bob"}, "alice kicked bob"},
		{RoomEvent{Event: EventMemberKicked, Target: "u2", Reason: "spam"}, "alice kicked u2: spam"},
		{RoomEvent{Event: EventMemberBanned, TargetName: "bob"}, "alice banned bob"},
		{RoomEvent{Event: EventMemberBanned, TargetName: "bob", Until: until, Reason: "spam"}, "alice banned bob until 2025-12-01 15:00 UTC: spam"},
		{RoomEvent{Event: EventMemberUnbanned, TargetName: "bob"}, "alice unbanned bob"},
		{RoomEvent{Event: EventMemberMuted, TargetName: "bob", Until: until}, "alice muted bob until 2025-12-01 15:00 UTC"},
		{RoomEvent{Event: EventMemberMuted, TargetName: "bob"}, "alice unmuted bob"},
		{RoomEvent{Event: EventRoleChanged, TargetName: "bob", Role: "admin"}, "alice made bob admin"},
		{RoomEvent{Event: EventOwnerTransferred, TargetName: "bob"}, "alice made bob the owner"},
	} {
		if got := tc.ev.Sentence("alice"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.ev, got, tc.want)
		}
	}
	if got := (RoomEvent{Event: EventMemberKicked}).Sentence(""); got != "someone kicked someone" {
		t.Errorf("no names: %q", got)
	}
	for _, name := range eventNames {
		if s := (RoomEvent{Event: name}).Sentence("alice"); strings.Contains(s, name) || !strings.HasPrefix(s, "alice ") {
			t.Errorf("%s has no sentence of its own: %q", name, s)
		}
	}
}

func TestNewEventRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		room, actor string
		ev          RoomEvent
	}{
		"bad room":      {"Dev!", "u1", RoomEvent{Event: EventMemberLeft}},
		"no room":       {"", "u1", RoomEvent{Event: EventMemberLeft}},
		"no actor":      {"dev", "", RoomEvent{Event: EventMemberLeft}},
		"unknown event": {"dev", "u1", RoomEvent{Event: "member_exploded"}},
		"no event":      {"dev", "u1", RoomEvent{}},
	} {
		if e, err := NewEvent(tc.room, tc.actor, "alice", tc.ev); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %+v, %v; want ErrBadEvent", name, e, err)
		}
	}
	e, err := NewEvent("dev", "u1", "alice", RoomEvent{Event: EventMemberLeft})
	if err != nil || e.Type != TypeEvent || e.Event != `{"event":"member_left"}` || e.Text != "alice left the room" {
		t.Errorf("NewEvent: %+v, %v", e, err)
	}
}

// TestDecodeEventEntries: an event entry decodes with its type and event
// as they are; each malformed kind is refused with ErrBadEntry, saying why.
func TestDecodeEventEntries(t *testing.T) {
	base := func(extra ...string) map[string]string {
		m := map[string]string{FieldRoomID: "dev", FieldUserID: "u1", FieldUsername: "alice", FieldText: "alice left the room"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	ev := `{"event":"member_left","future":{"x":[1,2]}}`
	e, err := DecodeEntry("7-1", base(FieldType, TypeEvent, FieldEvent, ev))
	if err != nil || e.Type != TypeEvent || e.Event != ev || e.TS != 7 {
		t.Fatalf("event entry: %+v, %v", e, err)
	}
	// An empty type is no type: a message.
	if e, err := DecodeEntry("7-1", base(FieldType, "")); err != nil || e.Type != "" {
		t.Errorf("empty type: %+v, %v", e, err)
	}
	for name, tc := range map[string]struct {
		fields map[string]string
		says   string
	}{
		"no event":             {base(FieldType, TypeEvent), "not a JSON object"},
		"event not JSON":       {base(FieldType, TypeEvent, FieldEvent, `{"event":`), "bad room event"},
		"event an array":       {base(FieldType, TypeEvent, FieldEvent, `[{"event":"member_left"}]`), "not a JSON object"},
		"event null":           {base(FieldType, TypeEvent, FieldEvent, `null`), "not a JSON object"},
		"unknown event":        {base(FieldType, TypeEvent, FieldEvent, `{"event":"member_exploded"}`), `unknown event "member_exploded"`},
		"no event name":        {base(FieldType, TypeEvent, FieldEvent, `{"target":"u2"}`), `unknown event ""`},
		"until not an integer": {base(FieldType, TypeEvent, FieldEvent, `{"event":"member_muted","until":"soon"}`), "until"},
		"unknown type":         {base(FieldType, "poll", FieldEvent, `{"event":"member_left"}`), `unknown type "poll"`},
		"event on a message":   {base(FieldEvent, `{"event":"member_left"}`), "event on an entry without type"},
	} {
		_, err := DecodeEntry("7-1", tc.fields)
		if !errors.Is(err, ErrBadEntry) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want ErrBadEntry saying %q", name, err, tc.says)
		}
	}
}

// TestFrameJSONOfBrokenEvent: a room event whose event does not decode
// (a record edited by hand) is shown as a message with its sentence, not
// dropped and not a broken frame.
func TestFrameJSONOfBrokenEvent(t *testing.T) {
	e := Entry{ID: ID{Ms: 5}, RoomID: "dev", UserID: "u1", Username: "alice", Text: "alice left the room", TS: 5,
		Type: TypeEvent, Event: "{"}
	want := `{"type":"message","id":"5-0","room":"dev","user":"alice","userId":"u1","text":"alice left the room","ts":5}`
	if got := string(e.FrameJSON()); got != want {
		t.Errorf("frame %s, want %s", got, want)
	}
}

func TestPeekEvent(t *testing.T) {
	e, _ := NewEvent("dev", "u1", "alice", RoomEvent{Event: EventMemberKicked, Target: "u2", TargetName: "bob"})
	e.ID, e.TS = ID{Ms: 9, Seq: 1}, 9
	frame, err := e.EventFrameJSON()
	if err != nil {
		t.Fatal(err)
	}
	if ev, target, ok := PeekEvent(frame); !ok || ev != EventMemberKicked || target != "u2" {
		t.Errorf("PeekEvent(%s) = %q %q %v", frame, ev, target, ok)
	}
	for _, other := range []string{
		`{"type":"message","id":"9-1","room":"dev","user":"alice","userId":"u1","text":"{\"type\":\"room_event\"}","ts":9}`,
		`{"user":"old","text":"from auroraChat","ts":1704936000000}`,
		`{"type":"room_event","id":"9-1","event":"member_exploded"}`,
		`{"type":"room_event","id":"9-1","event":`,
		`{"type": "room_event","event":"member_kicked"}`, // not as EventFrameParts writes it
		``,
	} {
		if ev, target, ok := PeekEvent([]byte(other)); ok {
			t.Errorf("PeekEvent(%s) = %q %q, true", other, ev, target)
		}
	}
}
