package bus

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/redis/rueidis"
)

// idShape is what ParseID accepts: two runs of ASCII digits around one
// dash, each at most math.MaxUint64.
var idShape = regexp.MustCompile(`^([0-9]+)-([0-9]+)$`)

var maxUint64 = new(big.Int).SetUint64(1<<64 - 1)

// FuzzParseID: ParseID never panics, accepts exactly "<ms>-<seq>" of
// decimal digits that fit 64 bits, reads the numbers they spell, and
// parses its own String back to the same id. Hostile seeds are in
// testdata/fuzz/FuzzParseID.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0-0", "1732670000000-3", "18446744073709551615-18446744073709551615",
		"18446744073709551616-0", "1-", "-1", "+1-1", "1-+1", "-1-1", "1--1", "1-2-3", " 1-2", "1-2\n", "٣-1", "0x1-0", "1_000-0", "01-01", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		m := idShape.FindStringSubmatch(s)
		fits := m != nil
		var ms, seq *big.Int
		if fits {
			ms, _ = new(big.Int).SetString(m[1], 10)
			seq, _ = new(big.Int).SetString(m[2], 10)
			fits = ms.Cmp(maxUint64) <= 0 && seq.Cmp(maxUint64) <= 0
		}
		switch {
		case fits != (err == nil):
			t.Fatalf("ParseID(%q) = %v, %v; want accepted %v", s, id, err, fits)
		case err != nil:
			if err.Error() == "" {
				t.Fatalf("ParseID(%q): empty error", s)
			}
			return
		case ms.Uint64() != id.Ms || seq.Uint64() != id.Seq:
			t.Fatalf("ParseID(%q) = %v", s, id)
		}
		if again, err := ParseID(id.String()); err != nil || again != id {
			t.Fatalf("ParseID(%q) = %v, and its String %q parses %v %v", s, id, id.String(), again, err)
		}
	})
}

// entryFieldNames are the fields a stream entry may carry, in the order
// of FuzzDecodeEntry's arguments: present's bits for the first seven,
// kind's for the last two.
var entryFieldNames = []string{FieldRoomID, FieldUserID, FieldUsername, FieldText, FieldTS, FieldClientID, FieldDeadID,
	FieldType, FieldEvent}

// FuzzDecodeEntry: DecodeEntry and DecodeForStore never panic; refuse,
// with ErrBadEntry, exactly the entries with a bad id, no roomId, no
// userId, no text, a ts that is not a 64-bit integer, a type other than
// none or "event", an event field without type "event", a room event
// whose event is not a JSON object naming a known event, or
// (DecodeForStore) a bad deadId; read every other field as it is; and what
// they decoded, written again with Fields, decodes to the same entry.
// present says which of the first seven fields the entry carries (bit i:
// entryFieldNames[i]), kind which of type (bit 0) and event (bit 1).
// Hostile seeds are in testdata/fuzz/FuzzDecodeEntry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("1700000000123-0", "general", "u1", "alice", "hi", "1700000000123", "c1", "", uint8(0b0111111), "", "", uint8(0))
	f.Add("1704936000000-3", "general", "507f1f77bcf86cd799439011", "alice", "Hello", "", "", "", uint8(0b0001111), "", "", uint8(0))
	f.Add("5-0", "r", "u", "n", "t", "0", "", "", uint8(0b0011111), "", "", uint8(0))
	f.Add("5-0", "r", "u", "", "", "-1", "", "1-1", uint8(0b1011011), "", "", uint8(0))
	f.Add("9-9", "r", "u", "n", "t", "99999999999999999999", "", "", uint8(0b0011111), "", "", uint8(0))
	f.Add("9-9", "r", "u", "n", "t", " 1", "", "", uint8(0b0011111), "", "", uint8(0))
	f.Add("9-9", "r", "u", "n", "t", "", "", "not-an-id", uint8(0b1001111), "", "", uint8(0))
	f.Add("x", "r", "u", "n", "t", "", "", "", uint8(0b0001111), "", "", uint8(0))
	f.Add("1-0", "", "u", "n", "t", "", "", "", uint8(0b0001111), "", "", uint8(0))
	f.Add("1-0", "r\x00", "u\xff", "n\u202e", "\x1b[2J", "+5", "\n", "", uint8(0xff), "\x00", "{", uint8(3))
	// Room events: valid, then each way of being invalid.
	f.Add("1700000000123-0", "dev", "u1", "alice", "alice kicked bob", "1700000000123", "", "", uint8(0b0011111),
		TypeEvent, `{"event":"member_kicked","target":"u2","targetName":"bob","reason":"spam"}`, uint8(3))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), TypeEvent, `{"event":"room_created","until":1e3}`, uint8(3))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), TypeEvent, `{"event":"nope"}`, uint8(3))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), TypeEvent, `null`, uint8(3))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), TypeEvent, "", uint8(1))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), "", `{"event":"member_left"}`, uint8(2))
	f.Add("1-0", "dev", "u1", "alice", "t", "", "", "", uint8(0b0001111), "poll", `{"event":"member_left"}`, uint8(3))
	f.Fuzz(func(t *testing.T, id, room, user, username, text, ts, clientID, deadID string, present uint8, typ, event string, kind uint8) {
		values := []string{room, user, username, text, ts, clientID, deadID, typ, event}
		bits := uint16(present)&0x7f | uint16(kind&3)<<7
		fields := map[string]string{}
		var fv []rueidis.XRangeFieldValue
		for i, name := range entryFieldNames {
			if bits&(1<<i) != 0 {
				fields[name] = values[i]
				fv = append(fv, rueidis.XRangeFieldValue{Field: name, Value: values[i]})
			}
		}
		checkDecodeEntry(t, id, fields)
		checkDecodeForStore(t, rueidis.XRangeSlice{ID: id, FieldValues: fv}, fields)
	})
}

// validKind is the rule for type and event: a message has neither (empty
// counts as none); a room event has an event that is a JSON object,
// decodes as RoomEvent and names a known event.
func validKind(typ, event string) bool {
	switch typ {
	case "":
		return event == ""
	case TypeEvent:
		var obj map[string]json.RawMessage
		var ev RoomEvent
		return json.Unmarshal([]byte(event), &obj) == nil && obj != nil &&
			json.Unmarshal([]byte(event), &ev) == nil && slices.Contains(eventNames, ev.Event)
	}
	return false
}

func checkDecodeEntry(t *testing.T, id string, fields map[string]string) {
	t.Helper()
	e, err := DecodeEntry(id, fields)
	pid, idErr := ParseID(id)
	_, hasText := fields[FieldText]
	ts, hasTS := fields[FieldTS]
	var tsErr error
	if hasTS {
		_, tsErr = strconv.ParseInt(ts, 10, 64)
	}
	valid := idErr == nil && fields[FieldRoomID] != "" && fields[FieldUserID] != "" && hasText && tsErr == nil &&
		validKind(fields[FieldType], fields[FieldEvent])
	if valid != (err == nil) || err != nil && !errors.Is(err, ErrBadEntry) {
		t.Fatalf("DecodeEntry(%q, %q) = %+v, %v; want valid %v", id, fields, e, err, valid)
	}
	if err != nil {
		return
	}
	want := Entry{ID: pid, RoomID: fields[FieldRoomID], UserID: fields[FieldUserID], Username: fields[FieldUsername],
		Text: fields[FieldText], ClientID: fields[FieldClientID], Type: fields[FieldType], Event: fields[FieldEvent]}
	if hasTS {
		want.TS, _ = strconv.ParseInt(ts, 10, 64)
	}
	if want.TS == 0 {
		// No ts (AuroraChat's entries), or 0: the id's time.
		want.TS = int64(pid.Ms)
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("DecodeEntry(%q, %q) = %+v, want %+v", id, fields, e, want)
	}
	roundTrip(t, e)
}

func checkDecodeForStore(t *testing.T, x rueidis.XRangeSlice, fields map[string]string) {
	t.Helper()
	e, err := DecodeForStore(x)
	plain, plainErr := DecodeEntry(x.ID, fields)
	dead, hasDead := fields[FieldDeadID]
	deadID, deadErr := ParseID(dead)
	switch {
	case plainErr != nil:
		if err == nil {
			t.Fatalf("DecodeForStore(%+v) = %+v, but DecodeEntry refuses it: %v", x, e, plainErr)
		}
	case hasDead && deadErr != nil:
		if !errors.Is(err, ErrBadEntry) {
			t.Fatalf("DecodeForStore(%+v) = %+v, %v; deadId %q is not an id", x, e, err, dead)
		}
	case err != nil:
		t.Fatalf("DecodeForStore(%+v): %v", x, err)
	case hasDead:
		plain.ID = deadID
		fallthrough
	default:
		if !reflect.DeepEqual(e, plain) {
			t.Fatalf("DecodeForStore(%+v) = %+v, want %+v", x, e, plain)
		}
	}
}

// roundTrip: e written with Fields decodes to e; a message's live frame
// (FrameParts) is byte for byte json.Marshal of its Frame, and FrameJSON,
// and decodes back to the Frame when its strings are valid UTF-8; a room
// event's frame (EventFrameJSON, FrameJSON) is json.Marshal of the
// EventFrame of its fields, and PeekEvent reads its event and target.
func roundTrip(t *testing.T, e Entry) {
	t.Helper()
	f := e.Fields()
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	if len(m)*2 != len(f) {
		t.Fatalf("Fields of %+v repeat a field: %q", e, f)
	}
	back, err := DecodeEntry(e.ID.String(), m)
	if err != nil || !reflect.DeepEqual(back, e) {
		t.Fatalf("%+v: Fields %q decode to %+v, %v", e, f, back, err)
	}
	if e.Type == TypeEvent {
		checkEventFrame(t, e)
		return
	}
	live := liveFrame(e)
	want, err := json.Marshal(e.Frame())
	if err != nil {
		t.Fatal(err)
	}
	if live != string(want) || string(e.FrameJSON()) != live {
		t.Fatalf("%+v: live frame\n%s\nFrameJSON\n%s\nwant\n%s", e, live, e.FrameJSON(), want)
	}
	var fr MessageFrame
	if err := json.Unmarshal([]byte(live), &fr); err != nil {
		t.Fatalf("%+v: live frame %s does not decode: %v", e, live, err)
	}
	valid := utf8.ValidString(e.RoomID) && utf8.ValidString(e.UserID) && utf8.ValidString(e.Username) &&
		utf8.ValidString(e.Text) && utf8.ValidString(e.ClientID)
	if valid && !reflect.DeepEqual(fr, e.Frame()) {
		t.Fatalf("%+v: live frame decodes to %+v, want %+v", e, fr, e.Frame())
	}
	if _, _, ok := PeekEvent([]byte(live)); ok {
		t.Fatalf("%+v: PeekEvent takes the message frame %s for a room event", e, live)
	}
}

// checkEventFrame: the frame of room event e is json.Marshal of the
// EventFrame its fields make (so clients decode it as EventFrame), FrameJSON
// gives the same bytes, and PeekEvent reads it.
func checkEventFrame(t *testing.T, e Entry) {
	t.Helper()
	ev, err := ParseEvent(e.Event)
	if err != nil {
		t.Fatalf("%+v: %v", e, err)
	}
	got, err := e.EventFrameJSON()
	if err != nil {
		t.Fatalf("%+v: %v", e, err)
	}
	wantFrame := EventFrame{Type: "room_event", ID: e.ID.String(), Room: e.RoomID, Event: ev.Event, User: e.Username,
		UserID: e.UserID, TS: e.TS, Target: ev.Target, TargetName: ev.TargetName, Role: ev.Role, Reason: ev.Reason,
		Until: ev.Until, Title: ev.Title, Topic: ev.Topic, RoomType: ev.RoomType}
	want, err := json.Marshal(wantFrame)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) || string(e.FrameJSON()) != string(want) {
		t.Fatalf("%+v: event frame\n%s\nFrameJSON\n%s\nwant\n%s", e, got, e.FrameJSON(), want)
	}
	var back EventFrame
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%+v: event frame %s does not decode: %v", e, got, err)
	}
	valid := utf8.ValidString(e.RoomID) && utf8.ValidString(e.UserID) && utf8.ValidString(e.Username)
	if valid && !reflect.DeepEqual(back, wantFrame) {
		t.Fatalf("%+v: event frame decodes to %+v, want %+v", e, back, wantFrame)
	}
	name, target, ok := PeekEvent(got)
	if !ok || name != ev.Event || valid && utf8.ValidString(ev.Target) && target != ev.Target {
		t.Fatalf("%+v: PeekEvent(%s) = %q %q %v, want %q %q", e, got, name, target, ok, ev.Event, ev.Target)
	}
}

// FuzzEntryRoundTrip: any entry the chat role or AppendEvent can write (a
// room and a user, anything in the other fields, any id and ts; a message,
// or a room event of any name with any target, reason and until) decodes
// from its Fields to itself, and its frame is json.Marshal of its
// MessageFrame or EventFrame. kind picks the event name (eventNames[kind
// mod 13]) or, with the 13th, a message.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint64(1700000000123), uint64(7), "general", "u1", "alice", "hi", int64(1700000000123), "c1", uint8(12), "", "", int64(0))
	f.Add(uint64(1<<64-1), uint64(1<<64-1), "r", "u", "", "", int64(-1<<63), "", uint8(12), "", "", int64(0))
	f.Add(uint64(0), uint64(0), "\"", "\\", "<script>&amp;</script>", "\xff\xfe bad \xc3\x28", int64(1<<63-1), "\u2028\u2029", uint8(12), "", "", int64(0))
	f.Add(uint64(5), uint64(0), "r", "u", "n", "t", int64(0), "", uint8(12), "", "", int64(0))
	f.Add(uint64(1700000000123), uint64(0), "dev", "u1", "alice", "alice banned bob", int64(1700000000123), "", uint8(7), "u2", "spam", int64(1700086400000))
	f.Add(uint64(1), uint64(1), "dev", "u1", "alice", "", int64(1), "", uint8(9), "\xff\"<>", "}\",\"type\":\"x", int64(-1))
	f.Fuzz(func(t *testing.T, ms, seq uint64, room, user, username, text string, ts int64, clientID string,
		kind uint8, target, reason string, until int64) {
		if room == "" || user == "" {
			t.Skip("the chat role never writes an entry without room or user")
		}
		e := Entry{ID: ID{Ms: ms, Seq: seq}, RoomID: room, UserID: user, Username: username, Text: text, TS: ts, ClientID: clientID}
		if e.TS == 0 {
			// A ts of 0 is no ts: the entry's time is its id's.
			e.TS = int64(ms)
		}
		if k := int(kind) % (len(eventNames) + 1); k < len(eventNames) {
			ev, _ := json.Marshal(RoomEvent{Event: eventNames[k], Target: target, TargetName: username, Reason: reason,
				Until: until, Role: reason, Title: text, Topic: reason, RoomType: target})
			e.Type, e.Event = TypeEvent, string(ev)
		}
		roundTrip(t, e)
	})
}
