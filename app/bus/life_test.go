package bus

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// lifeEntries is one entry of each kind of a message's life, and a message
// with every option.
func lifeEntries() []Entry {
	target := ID{Ms: 1700000000100, Seq: 2}
	return []Entry{
		{RoomID: "dev", UserID: "u1", Username: "alice", Text: "fixed <b>typo</b>", TS: 1700000000200, ClientID: "c1", Type: TypeEdit, MessageID: target},
		{RoomID: "dev", UserID: "u1", Username: "alice", TS: 1700000000200, Type: TypeDelete, MessageID: target},
		{RoomID: "dev", UserID: "u2", Username: "bob", TS: 1700000000200, ClientID: "r1", Type: TypeReact, MessageID: target, Emoji: "👍", On: true},
		{RoomID: "dev", UserID: "u2", Username: "bob", TS: 1700000000200, Type: TypeReact, MessageID: target, Emoji: "❤️"},
		{RoomID: "dev", UserID: "u2", Username: "bob", TS: 1700000000200, Type: TypeRead, MessageID: target},
		{RoomID: "dev", UserID: "u2", Username: "bob", Text: "@alice see", TS: 1700000000200, ClientID: "m1", ReplyTo: target.String(),
			Mentions: []string{"u1", "u3"}, Attachments: []Attachment{{URL: "/api/rooms/dev/attachments/abc", FileType: "image/png", Size: 12, Filename: "a \"b\".png"}}},
	}
}

// TestLifeEntryRoundTrip: every life entry and a message with options
// decode from their fields to themselves.
func TestLifeEntryRoundTrip(t *testing.T) {
	for _, e := range lifeEntries() {
		got, err := DecodeEntry("1700000000200-0", fieldsMap(e.Fields()))
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		e.ID = ID{Ms: 1700000000200}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip of %q:\n got %+v\nwant %+v", e.Type, got, e)
		}
	}
}

// TestLifeFramePartsMatchJSON: the live frame the send script assembles
// is json.Marshal of the frame history and replay build, for every life
// entry and for a message with options.
func TestLifeFramePartsMatchJSON(t *testing.T) {
	for _, e := range lifeEntries() {
		e.ID = ID{Ms: 1700000000200, Seq: 7}
		var prefix, middle, suffix string
		var want []byte
		if IsLife(e.Type) {
			var err error
			if prefix, middle, suffix, err = e.LifeFrameParts(); err != nil {
				t.Fatal(err)
			}
			want, _ = json.Marshal(e.LifeFrame())
		} else {
			prefix, middle, suffix = e.FrameParts()
			want, _ = json.Marshal(e.Frame())
		}
		live := prefix + e.ID.String() + middle + "1700000000200" + suffix
		if live != string(want) {
			t.Errorf("%q frame:\n parts %s\n  json %s", e.Type, live, want)
		}
		if got := e.FrameJSON(); string(got) != string(want) {
			t.Errorf("%q FrameJSON %s, want %s", e.Type, got, want)
		}
	}
}

// TestLifeFrameShapes pins the frames' wire names.
func TestLifeFrameShapes(t *testing.T) {
	es := lifeEntries()
	for i, want := range []string{
		`{"type":"edited","id":"1700000000200-0","room":"dev","messageId":"1700000000100-2","user":"alice","userId":"u1","ts":1700000000200,"text":"fixed \u003cb\u003etypo\u003c/b\u003e","clientId":"c1"}`,
		`{"type":"deleted","id":"1700000000200-0","room":"dev","messageId":"1700000000100-2","user":"alice","userId":"u1","ts":1700000000200}`,
		`{"type":"reaction","id":"1700000000200-0","room":"dev","messageId":"1700000000100-2","user":"bob","userId":"u2","ts":1700000000200,"emoji":"👍","on":true,"clientId":"r1"}`,
		`{"type":"reaction","id":"1700000000200-0","room":"dev","messageId":"1700000000100-2","user":"bob","userId":"u2","ts":1700000000200,"emoji":"❤️","on":false}`,
		`{"type":"read","id":"1700000000200-0","room":"dev","messageId":"1700000000100-2","user":"bob","userId":"u2","ts":1700000000200}`,
		`{"type":"message","id":"1700000000200-0","room":"dev","user":"bob","userId":"u2","text":"@alice see","ts":1700000000200,"clientId":"m1","replyTo":"1700000000100-2","mentions":["u1","u3"],"attachments":[{"url":"/api/rooms/dev/attachments/abc","fileType":"image/png","size":12,"filename":"a \"b\".png"}]}`,
	} {
		e := es[i]
		e.ID = ID{Ms: 1700000000200}
		if got := string(e.FrameJSON()); got != want {
			t.Errorf("frame %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// A stored message's state.
	m := Entry{ID: ID{Ms: 5}, RoomID: "dev", UserID: "u1", Username: "alice", TS: 5, Edited: 9, Deleted: true,
		Reactions: []Reaction{{Emoji: "👍", Count: 2, Me: true}}}
	if got, want := string(m.FrameJSON()), `{"type":"message","id":"5-0","room":"dev","user":"alice","userId":"u1","text":"","ts":5,"edited":9,"deleted":true,"reactions":[{"emoji":"👍","count":2,"me":true}]}`; got != want {
		t.Errorf("stored state:\n got %s\nwant %s", got, want)
	}
}

// TestDecodeBadLifeEntries: what DecodeEntry refuses of a message's life.
func TestDecodeBadLifeEntries(t *testing.T) {
	base := func(typ string) map[string]string {
		return map[string]string{FieldRoomID: "dev", FieldUserID: "u1", FieldUsername: "a", FieldText: "", FieldType: typ, FieldMessageID: "1-1"}
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "\x00delete" {
				delete(m, kv[i])
				continue
			}
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := map[string]map[string]string{
		"edit without messageId":  with(base(TypeEdit), FieldMessageID, "\x00delete"),
		"delete of id 0-0":        with(base(TypeDelete), FieldMessageID, "0-0"),
		"read of a bad id":        with(base(TypeRead), FieldMessageID, "yesterday"),
		"react without emoji":     with(base(TypeReact), FieldOn, "1"),
		"react with a huge emoji": with(base(TypeReact), FieldEmoji, strings.Repeat("😀", 40), FieldOn, "1"),
		"react with on=true":      with(base(TypeReact), FieldEmoji, "👍", FieldOn, "true"),
		"edit with an event":      with(base(TypeEdit), FieldEvent, `{"event":"member_left"}`),
		"messageId on a message":  with(base(""), FieldText, "hi"),
		"replyTo on a reaction":   with(base(TypeReact), FieldEmoji, "👍", FieldOn, "1", FieldReplyTo, "1-0"),
		"replyTo not an id":       with(base(""), FieldMessageID, "\x00delete", FieldReplyTo, "x"),
		"too many mentions":       with(base(""), FieldMessageID, "\x00delete", FieldMentions, strings.Repeat("u,", MaxMentions)+"u"),
		"attachments not JSON":    with(base(""), FieldMessageID, "\x00delete", FieldAttachments, "[{"),
		"attachments an object":   with(base(""), FieldMessageID, "\x00delete", FieldAttachments, `{"url":"x"}`),
	}
	for name, fields := range cases {
		if _, err := DecodeEntry("5-0", fields); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

// TestPeekRead: fan-out recognises a read frame and whose it is, and
// nothing else.
func TestPeekRead(t *testing.T) {
	es := lifeEntries()
	read := es[4]
	read.ID = ID{Ms: 1}
	if u, ok := PeekRead(read.FrameJSON()); !ok || u != "u2" {
		t.Errorf("PeekRead(read) = %q, %v", u, ok)
	}
	for _, e := range []Entry{es[0], es[2], es[5]} {
		e.ID = ID{Ms: 1}
		if _, ok := PeekRead(e.FrameJSON()); ok {
			t.Errorf("PeekRead took a %q frame for a read", e.Type)
		}
	}
	if _, ok := PeekRead([]byte(`{"type":"read","id":"1-0"`)); ok {
		t.Error("PeekRead took a broken frame")
	}
}

func TestReadMarkerKey(t *testing.T) {
	if got := ReadMarkerKey(0, "dev", "u1"); got != "chat:read:{chat:messages}:u1:dev" {
		t.Errorf("ReadMarkerKey = %q", got)
	}
}
