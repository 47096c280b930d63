package bus

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
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
// of FuzzDecodeEntry's arguments.
var entryFieldNames = []string{FieldRoomID, FieldUserID, FieldUsername, FieldText, FieldTS, FieldClientID, FieldDeadID}

// FuzzDecodeEntry: DecodeEntry and DecodeForStore never panic; refuse,
// with ErrBadEntry, exactly the entries with a bad id, no roomId, no
// userId, no text, a ts that is not a 64-bit integer, or (DecodeForStore)
// a bad deadId; read every other field as it is; and what they decoded,
// written again with Fields, decodes to the same entry. present says which
// of the fields the entry carries (bit i: entryFieldNames[i]). Hostile
// seeds are in testdata/fuzz/FuzzDecodeEntry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("1700000000123-0", "general", "u1", "alice", "hi", "1700000000123", "c1", "", uint8(0b0111111))
	f.Add("1704936000000-3", "general", "507f1f77bcf86cd799439011", "alice", "Hello", "", "", "", uint8(0b0001111))
	f.Add("5-0", "r", "u", "n", "t", "0", "", "", uint8(0b0011111))
	f.Add("5-0", "r", "u", "", "", "-1", "", "1-1", uint8(0b1011011))
	f.Add("9-9", "r", "u", "n", "t", "99999999999999999999", "", "", uint8(0b0011111))
	f.Add("9-9", "r", "u", "n", "t", " 1", "", "", uint8(0b0011111))
	f.Add("9-9", "r", "u", "n", "t", "", "", "not-an-id", uint8(0b1001111))
	f.Add("x", "r", "u", "n", "t", "", "", "", uint8(0b0001111))
	f.Add("1-0", "", "u", "n", "t", "", "", "", uint8(0b0001111))
	f.Add("1-0", "r\x00", "u\xff", "n\u202e", "\x1b[2J", "+5", "\n", "", uint8(0xff))
	f.Fuzz(func(t *testing.T, id, room, user, username, text, ts, clientID, deadID string, present uint8) {
		values := []string{room, user, username, text, ts, clientID, deadID}
		fields := map[string]string{}
		var fv []rueidis.XRangeFieldValue
		for i, name := range entryFieldNames {
			if present&(1<<i) != 0 {
				fields[name] = values[i]
				fv = append(fv, rueidis.XRangeFieldValue{Field: name, Value: values[i]})
			}
		}
		checkDecodeEntry(t, id, fields)
		checkDecodeForStore(t, rueidis.XRangeSlice{ID: id, FieldValues: fv}, fields)
	})
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
	valid := idErr == nil && fields[FieldRoomID] != "" && fields[FieldUserID] != "" && hasText && tsErr == nil
	if valid != (err == nil) || err != nil && !errors.Is(err, ErrBadEntry) {
		t.Fatalf("DecodeEntry(%q, %q) = %+v, %v; want valid %v", id, fields, e, err, valid)
	}
	if err != nil {
		return
	}
	want := Entry{ID: pid, RoomID: fields[FieldRoomID], UserID: fields[FieldUserID], Username: fields[FieldUsername],
		Text: fields[FieldText], ClientID: fields[FieldClientID]}
	if hasTS {
		want.TS, _ = strconv.ParseInt(ts, 10, 64)
	}
	if want.TS == 0 {
		// No ts (AuroraChat's entries), or 0: the id's time.
		want.TS = int64(pid.Ms)
	}
	if e != want {
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
		if e != plain {
			t.Fatalf("DecodeForStore(%+v) = %+v, want %+v", x, e, plain)
		}
	}
}

// roundTrip: e written with Fields decodes to e, and its live frame
// (FrameParts) is byte for byte json.Marshal of its Frame, which decodes
// back to the Frame when its strings are valid UTF-8.
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
	if err != nil || back != e {
		t.Fatalf("%+v: Fields %q decode to %+v, %v", e, f, back, err)
	}
	live := liveFrame(e)
	want, err := json.Marshal(e.Frame())
	if err != nil {
		t.Fatal(err)
	}
	if live != string(want) {
		t.Fatalf("%+v: live frame\n%s\nwant\n%s", e, live, want)
	}
	var fr MessageFrame
	if err := json.Unmarshal([]byte(live), &fr); err != nil {
		t.Fatalf("%+v: live frame %s does not decode: %v", e, live, err)
	}
	valid := utf8.ValidString(e.RoomID) && utf8.ValidString(e.UserID) && utf8.ValidString(e.Username) &&
		utf8.ValidString(e.Text) && utf8.ValidString(e.ClientID)
	if valid && fr != e.Frame() {
		t.Fatalf("%+v: live frame decodes to %+v, want %+v", e, fr, e.Frame())
	}
}

// FuzzEntryRoundTrip: any entry the chat role can write (a room and a
// user, anything in the other fields, any id and ts) decodes from its
// Fields to itself, and its live frame is json.Marshal of its Frame.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint64(1700000000123), uint64(7), "general", "u1", "alice", "hi", int64(1700000000123), "c1")
	f.Add(uint64(1<<64-1), uint64(1<<64-1), "r", "u", "", "", int64(-1<<63), "")
	f.Add(uint64(0), uint64(0), "\"", "\\", "<script>&amp;</script>", "\xff\xfe bad \xc3\x28", int64(1<<63-1), "\u2028\u2029")
	f.Add(uint64(5), uint64(0), "r", "u", "n", "t", int64(0), "")
	f.Fuzz(func(t *testing.T, ms, seq uint64, room, user, username, text string, ts int64, clientID string) {
		if room == "" || user == "" {
			t.Skip("the chat role never writes an entry without room or user")
		}
		e := Entry{ID: ID{Ms: ms, Seq: seq}, RoomID: room, UserID: user, Username: username, Text: text, TS: ts, ClientID: clientID}
		if e.TS == 0 {
			// A ts of 0 is no ts: the entry's time is its id's.
			e.TS = int64(ms)
		}
		roundTrip(t, e)
	})
}
