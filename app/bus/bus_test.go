package bus

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestParseIDAndCompare(t *testing.T) {
	for _, bad := range []string{"", "1", "-1", "1-", "a-1", "1-b", "+1-2", "1-+2", "1-2-3", "18446744073709551616-0"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	a, err := ParseID("999-5")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseID("1000-0")
	c, _ := ParseID("1000-1")
	if a.String() != "999-5" || a.Compare(b) != -1 || b.Compare(a) != 1 || b.Compare(c) != -1 || c.Compare(c) != 0 {
		t.Errorf("ids compare numerically, part by part: %v %v %v", a, b, c)
	}
	if !(ID{}).IsZero() || a.IsZero() {
		t.Error("IsZero")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := Entry{RoomID: "dev", UserID: "u1", Username: "alice", Text: "hi", TS: 1700000000123, ClientID: "c1"}
	f := e.Fields()
	m := map[string]string{}
	for i := 0; i < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	got, err := DecodeEntry("1700000000123-0", m)
	if err != nil {
		t.Fatal(err)
	}
	e.ID = ID{Ms: 1700000000123}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %+v, want %+v", got, e)
	}
	fr := got.Frame()
	if fr.Type != "message" || fr.ID != "1700000000123-0" || fr.Room != "dev" || fr.User != "alice" || fr.TS != e.TS || fr.ClientID != "c1" {
		t.Errorf("frame %+v", fr)
	}
}

func TestDecodeAuroraChatEntry(t *testing.T) {
	// AuroraChat writes these four fields only; ts comes from the id.
	got, err := DecodeEntry("1704936000000-3", map[string]string{
		FieldRoomID: "general", FieldUserID: "507f1f77bcf86cd799439011", FieldText: "Hello", FieldUsername: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.TS != 1704936000000 || got.ClientID != "" || got.ID.Seq != 3 {
		t.Errorf("%+v", got)
	}
}

// TestDecodeZeroTS: Fields writes a ts of 0 as no ts, so DecodeEntry
// reads an explicit "0" as it reads a missing ts, the id's time; before,
// such an entry decoded to ts 0 and its re-encoding to the id's time
// (found by FuzzDecodeEntry, testdata/fuzz/FuzzDecodeEntry/ts-zero).
func TestDecodeZeroTS(t *testing.T) {
	fields := map[string]string{FieldRoomID: "r", FieldUserID: "u", FieldText: "t", FieldTS: "0"}
	e, err := DecodeEntry("5-0", fields)
	if err != nil || e.TS != 5 {
		t.Fatalf("DecodeEntry with ts 0 = %+v, %v; want ts 5, the id's", e, err)
	}
	if _, ok := fieldsMap(e.Fields())[FieldTS]; !ok {
		t.Fatalf("Fields of %+v has no ts", e)
	}
}

func fieldsMap(f []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

func TestDecodeBadEntries(t *testing.T) {
	ok := map[string]string{FieldRoomID: "r", FieldUserID: "u", FieldText: "t"}
	without := func(k string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			if a != k {
				m[a] = b
			}
		}
		return m
	}
	withTS := map[string]string{FieldRoomID: "r", FieldUserID: "u", FieldText: "t", FieldTS: "soon"}
	for name, tc := range map[string]struct {
		id     string
		fields map[string]string
	}{
		"bad id":     {"x", ok},
		"no room":    {"1-0", without(FieldRoomID)},
		"no user":    {"1-0", without(FieldUserID)},
		"no text":    {"1-0", without(FieldText)},
		"ts not int": {"1-0", withTS},
	} {
		if _, err := DecodeEntry(tc.id, tc.fields); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: err %v, want ErrBadEntry", name, err)
		}
	}
	// An empty text is a text: the chat role refuses empty messages, but an
	// entry that has one still decodes.
	if _, err := DecodeEntry("1-0", map[string]string{FieldRoomID: "r", FieldUserID: "u", FieldText: ""}); err != nil {
		t.Errorf("empty text: %v", err)
	}
}

func TestNamesAndRooms(t *testing.T) {
	if Channel("dev") != "chat.dev" || PresenceChannel("dev") != "presence.dev" || TypingChannel("dev") != "typing.dev" {
		t.Error("channel names are AuroraChat's chat.<room> and its planned presence./typing.")
	}
	if r, ok := RoomOfChannel("chat.dev"); !ok || r != "dev" {
		t.Error("RoomOfChannel")
	}
	if _, ok := RoomOfChannel("typing.dev"); ok {
		t.Error("RoomOfChannel accepted another prefix")
	}
	long := make([]byte, 65)
	for i := range long {
		long[i] = 'a'
	}
	for _, good := range []string{"general", "a", "dev_2-x", string(long[:64])} {
		if !ValidRoom(good) {
			t.Errorf("ValidRoom(%q) = false", good)
		}
	}
	for _, bad := range []string{"", "Dev", "a b", "dev.x", "ü", string(long), "*"} {
		if ValidRoom(bad) {
			t.Errorf("ValidRoom(%q) = true", bad)
		}
	}
}

func TestNextAndPrev(t *testing.T) {
	top := MaxID()
	for _, tc := range []struct {
		id, next, prev   ID
		hasNext, hasPrev bool
	}{
		{ID{}, ID{Seq: 1}, ID{}, true, false},
		{ID{Ms: 5, Seq: 2}, ID{Ms: 5, Seq: 3}, ID{Ms: 5, Seq: 1}, true, true},
		{ID{Ms: 5, Seq: top.Seq}, ID{Ms: 6}, ID{Ms: 5, Seq: top.Seq - 1}, true, true},
		{ID{Ms: 6}, ID{Ms: 6, Seq: 1}, ID{Ms: 5, Seq: top.Seq}, true, true},
		{top, top, ID{Ms: top.Ms, Seq: top.Seq - 1}, false, true},
	} {
		if n, ok := tc.id.Next(); n != tc.next || ok != tc.hasNext {
			t.Errorf("%s.Next() = %s %v, want %s %v", tc.id, n, ok, tc.next, tc.hasNext)
		}
		if p, ok := tc.id.Prev(); p != tc.prev || ok != tc.hasPrev {
			t.Errorf("%s.Prev() = %s %v, want %s %v", tc.id, p, ok, tc.prev, tc.hasPrev)
		}
	}
}

func TestParseGroupID(t *testing.T) {
	for s, want := range map[string]ID{"0": {}, "0-0": {}, "12": {Ms: 12}, "12-3": {Ms: 12, Seq: 3}} {
		if got, err := parseGroupID(s); err != nil || got != want {
			t.Errorf("parseGroupID(%q) = %v %v, want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "+1", "1-x"} {
		if _, err := parseGroupID(bad); err == nil {
			t.Errorf("parseGroupID(%q) accepted", bad)
		}
	}
}

// hostile are strings that JSON encoders get wrong: quotes, backslashes,
// control characters, HTML, invalid UTF-8, the JavaScript line separators.
var hostile = []string{
	"", `"`, `\`, `"\"\\`, "a\x00b\x01\x1f\x7f", "tab\tnew\nline\r", "<script>&amp;</script>",
	"\xff\xfe bad \xc3\x28 utf8 \xed\xa0\x80", "\u2028\u2029", "emoji 😀 and ü", "}\",\"type\":\"x",
}

// TestFramePartsMatchJSON: the live frame the send script assembles from
// FrameParts is byte for byte json.Marshal of the entry's MessageFrame, so
// every copy of a message (live, Pub/Sub, history, replay) reads the same.
func TestFramePartsMatchJSON(t *testing.T) {
	for _, s := range hostile {
		for _, e := range []Entry{
			{ID: ID{Ms: 1700000000123, Seq: 7}, RoomID: s, UserID: s, Username: s, Text: s, TS: 1700000000123, ClientID: s},
			{ID: ID{Ms: 1, Seq: 0}, RoomID: "dev", UserID: "u", Username: s, Text: s, TS: 1},
		} {
			live := liveFrame(e)
			want, err := json.Marshal(e.Frame())
			if err != nil {
				t.Fatal(err)
			}
			if live != string(want) {
				t.Errorf("%q: live frame\n%s\nwant\n%s", s, live, want)
			}
			var back MessageFrame
			if err := json.Unmarshal([]byte(live), &back); err != nil || !reflect.DeepEqual(back, e.Frame()) && utf8.ValidString(s) {
				t.Errorf("%q: live frame decodes to %+v (%v), want %+v", s, back, err, e.Frame())
			}
		}
	}
}

// liveFrame is the frame the send script assembles from FrameParts around
// the id and ts only it knows.
func liveFrame(e Entry) string {
	prefix, middle, suffix := e.FrameParts()
	return prefix + e.ID.String() + middle + strconv.FormatInt(e.TS, 10) + suffix
}
