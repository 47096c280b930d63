package chat

import (
	"bytes"
	"encoding/json"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

// decodeCodes are the codes decodeFrame answers with; textCodes those of
// checkText (docs/protocol.md).
var (
	decodeCodes = []string{codeInvalidJSON, codeInvalidMessage, codeUnknownType, codeInvalidRoom, codeInvalidEmoji}
	textCodes   = []string{codeEmptyText, codeTextTooLong}
)

// frameSeeds are hostile client frames: wrong types, nulls, huge numbers,
// invalid UTF-8, control characters, unknown fields, odd room names.
// Bigger ones (deep nesting, oversize fields) are in
// testdata/fuzz/FuzzDecodeFrame.
var frameSeeds = []string{
	`{"type":"message","room":"general","text":"hi","clientId":"c1"}`,
	`{"text":"AuroraChat's form"}`,
	`{"type":"join","room":"dev","since":"1732670000000-0"}`,
	`{"type":"leave","room":"dev"}`,
	`{"type":"typing","room":"general","isTyping":true}`,
	`{"type":"ping"}`,
	`{"type":"edit","room":"general","id":"1732670000000-0","text":"fixed","clientId":"e1"}`,
	`{"type":"delete","room":"general","id":"1732670000000-0"}`,
	`{"type":"react","room":"general","id":"1732670000000-0","emoji":"👍","on":true}`,
	`{"type":"react","room":"general","id":"1732670000000-0","emoji":["👍"],"on":"yes"}`,
	`{"type":"read","room":"general","id":"0-0"}`,
	`{"type":"read","room":"general","id":1732670000000}`,
	`{"type":"message","room":"general","text":"re","replyTo":"1732670000000-0","attachments":[{"url":"/a/b"}]}`,
	`{"type":"message","room":"general","text":"re","replyTo":7,"attachments":{"url":"/a/b"}}`,
	`{"type":"message","room":"general","text":"","attachments":[null,{"url":5}]}`,
	`{"type":"message","room":"general","text":5}`,
	`{"type":"message","room":["general"],"text":"x"}`,
	`{"type":"message","room":{"$ne":""},"text":"x"}`,
	`{"type":{"a":1}}`,
	`{"type":null,"text":"x"}`,
	`{"clientId":null,"text":"x"}`,
	`{"type":"join","room":"dev","since":null}`,
	`{"type":"join","room":"dev","since":"18446744073709551616-0"}`,
	`{"type":"join","room":"dev","since":"-1-0"}`,
	`{"type":"join","room":"dev","since":1e400}`,
	`{"type":"typing","room":"general","isTyping":1}`,
	`{"type":"message","room":"general","text":"x","clientId":123456789012345678901234567890}`,
	"{\"text\":\"\xff\xfe\"}",
	"{\"text\":\"a\x00b\"}",
	`{"text":"\u0000\u001f\ud800"}`,
	`{"type":"message","room":"general","text":"x","extra":{"deep":[1,2,3]},"__proto__":{}}`,
	`{"type":"message","type":"join","room":"dev"}`,
	`{"type":"join","room":"*"}`,
	`{"type":"join","room":"a.b"}`,
	`{"type":"join","room":"a:b"}`,
	`{"type":"join","room":"{a}"}`,
	`{"type":"join","room":"../etc"}`,
	`{"type":"join","room":"gеneral"}`,
	`{"type":"join","room":"ｇｅｎｅｒａｌ"}`,
	"\ufeff{\"text\":\"bom\"}",
	`null`, `[]`, `"text"`, `12`, ``, `{`, `{}`, ` {"text":"x"} `,
}

// FuzzDecodeFrame: decodeFrame, with checkText as handle applies it, never
// panics; refuses every frame that is not valid UTF-8, valid JSON or an
// object with the code the protocol names for it, and anything else with
// one of its documented codes and a message; accepts only what the
// protocol allows, reading each field as encoding/json reads it; decodes
// a re-encoding of what it accepted to the same frame; and allocates in
// proportion to the frame.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	maxText := config.Default().Chat.MaxTextLength
	rulesets := []frameRules{
		{maxText: maxText},
		{allowed: allowedRooms{"general", "dev"}, maxText: maxText},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFrameBytes {
			t.Skip("the server does not read a frame this big: it closes with 1009")
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fr, ferr := decodeFrame(data, rulesets[0])
		runtime.ReadMemStats(&after)
		// Decoding a frame copies it a few times (the map of raw fields,
		// the strings read from them); never more.
		if n := after.TotalAlloc - before.TotalAlloc; n > uint64(64*len(data)+256<<10) {
			t.Fatalf("decoding %d bytes allocated %d", len(data), n)
		}
		checkDecoded(t, data, rulesets[0], fr, ferr)
		fr, ferr = decodeFrame(data, rulesets[1])
		checkDecoded(t, data, rulesets[1], fr, ferr)
	})
}

// checkDecoded holds decodeFrame's answer for data to the properties of
// FuzzDecodeFrame.
func checkDecoded(t *testing.T, data []byte, rules frameRules, fr clientFrame, ferr *frameError) {
	t.Helper()
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case !utf8.Valid(data):
		wantCode(t, data, ferr, codeInvalidMessage)
		return
	case !json.Valid(data):
		wantCode(t, data, ferr, codeInvalidJSON)
		return
	case trimmed[0] != '{':
		wantCode(t, data, ferr, codeInvalidMessage)
		return
	}
	if ferr != nil {
		if !slices.Contains(decodeCodes, ferr.code) || ferr.msg == "" {
			t.Fatalf("%q: error %+v, want one of %v with a message", data, ferr, decodeCodes)
		}
		if len(fr.clientID) > maxClientID {
			t.Fatalf("%q: refused frame carries %+v", data, fr)
		}
		return
	}

	// Accepted: every field is what encoding/json reads.
	// UseNumber: a number no float64 holds (1e700) is fine in a field
	// nobody reads.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var ref map[string]any
	if err := dec.Decode(&ref); err != nil {
		t.Fatalf("%q accepted, but is not a JSON object: %v", data, err)
	}
	if cid, present := ref["clientId"]; present && cid != fr.clientID || !present && fr.clientID != "" || len(fr.clientID) > maxClientID {
		t.Fatalf("%q: clientId %q, JSON has %v", data, fr.clientID, ref["clientId"])
	}
	typ, hasType := ref["type"]
	switch {
	case !hasType:
		if fr.typ != typeMessage || !fr.legacy {
			t.Fatalf("%q: a frame without type is AuroraChat's message, got %+v", data, fr)
		}
	case typ != fr.typ || fr.legacy:
		t.Fatalf("%q: type %q legacy %v, JSON has %v", data, fr.typ, fr.legacy, typ)
	}
	needsRoom := fr.typ != typePing && !fr.legacy
	if needsRoom && (ref["room"] != fr.room || !bus.ValidRoom(fr.room) || !rules.allowed.allows(fr.room)) {
		t.Fatalf("%q: room %q accepted (allowed %v)", data, fr.room, rules.allowed)
	}
	if !needsRoom && fr.room != "" {
		t.Fatalf("%q: %s frame decoded a room %q", data, fr.typ, fr.room)
	}
	if (fr.typ == typeMessage || fr.typ == typeEdit) && ref["text"] != fr.text {
		t.Fatalf("%q: text %q, JSON has %v", data, fr.text, ref["text"])
	}
	if fr.typ == typeJoin {
		s, present := ref["since"]
		switch {
		case !present && fr.since != nil, present && fr.since == nil:
			t.Fatalf("%q: since %v, JSON has %v", data, fr.since, s)
		case present:
			if id, err := bus.ParseID(s.(string)); err != nil || id != *fr.since {
				t.Fatalf("%q: since %v, JSON has %v", data, fr.since, s)
			}
		}
	}
	if fr.typ == typeTyping && ref["isTyping"] != fr.isTyping {
		t.Fatalf("%q: isTyping %v, JSON has %v", data, fr.isTyping, ref["isTyping"])
	}
	if fr.typ == typeMessage {
		text := checkText(fr.text, rules.maxText)
		valid := strings.TrimSpace(fr.text) != "" && utf8.RuneCountInString(fr.text) <= rules.maxText
		if (text == nil) != valid || text != nil && (!slices.Contains(textCodes, text.code) || text.msg == "") {
			t.Fatalf("%q: checkText = %+v", data, text)
		}
	}

	// What was accepted survives a re-encoding.
	again, err := decodeFrame(encodeFrame(fr), rules)
	if err != nil || !sameFrame(again, fr) {
		t.Fatalf("%q: decoded %+v, its re-encoding %s decodes to %+v, %+v", data, fr, encodeFrame(fr), again, err)
	}
}

func wantCode(t *testing.T, data []byte, ferr *frameError, code string) {
	t.Helper()
	if ferr == nil || ferr.code != code || ferr.msg == "" {
		t.Fatalf("%q: error %+v, want code %s with a message", data, ferr, code)
	}
}

// encodeFrame is a client's encoding of a decoded frame.
func encodeFrame(f clientFrame) []byte {
	m := map[string]any{}
	if !f.legacy {
		m["type"] = f.typ
	}
	if f.clientID != "" {
		m["clientId"] = f.clientID
	}
	switch f.typ {
	case typeMessage:
		m["text"] = f.text
		if f.replyTo != nil {
			m["replyTo"] = f.replyTo.String()
		}
		if len(f.attachments) > 0 {
			var atts []map[string]string
			for _, a := range f.attachments {
				atts = append(atts, map[string]string{"url": a.URL})
			}
			m["attachments"] = atts
		}
	case typeEdit:
		m["id"], m["text"] = f.target.String(), f.text
	case typeDelete, typeRead:
		m["id"] = f.target.String()
	case typeReact:
		m["id"], m["emoji"], m["on"] = f.target.String(), f.emoji, f.on
	case typeTyping:
		m["isTyping"] = f.isTyping
	case typeJoin:
		if f.since != nil {
			m["since"] = f.since.String()
		}
	}
	if f.room != "" {
		m["room"] = f.room
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings and bools only
	}
	return b
}

func sameFrame(a, b clientFrame) bool {
	// Pointers (since, replyTo) compare by what they point at.
	return reflect.DeepEqual(a, b)
}

// TestDecodeFrameAnswers: the answers of decodeFrame and checkText to
// hostile frames, one by one (the same frames through a real server are in
// hostile_test.go).
func TestDecodeFrameAnswers(t *testing.T) {
	rules := frameRules{maxText: 10}
	for _, tc := range []struct {
		frame, code, clientID string
	}{
		{`{"type":"message","room":"general","text":"hi","clientId":"c1"}`, "", "c1"},
		{`{"type":"message","room":"general","text":5,"clientId":"c2"}`, codeInvalidMessage, "c2"},
		{`{"type":"message","room":"general","text":"` + strings.Repeat("é", 11) + `"}`, codeTextTooLong, ""},
		{`{"text":"  "}`, codeEmptyText, ""},
		{`{"clientId":"` + strings.Repeat("c", maxClientID+1) + `","text":"x"}`, codeInvalidMessage, ""},
		{`{"type":"join","room":"gеneral","clientId":"c3"}`, codeInvalidRoom, "c3"},
		{`{"type":"join","room":"dev","since":"18446744073709551616-0"}`, codeInvalidMessage, ""},
		{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), codeInvalidJSON, ""},
		{"{\"text\":\"\xc3\x28\"}", codeInvalidMessage, ""},
		{"{\"text\":\"a\nb\"}", codeInvalidJSON, ""},
		{`{"type":"ping","room":7}`, "", ""},
	} {
		fr, ferr := decodeFrame([]byte(tc.frame), rules)
		if ferr == nil && fr.typ == typeMessage {
			ferr = checkText(fr.text, rules.maxText)
		}
		code := ""
		if ferr != nil {
			code = ferr.code
		}
		if code != tc.code || fr.clientID != tc.clientID {
			t.Errorf("%.60q: code %q clientId %q, want %q %q", tc.frame, code, fr.clientID, tc.code, tc.clientID)
		}
	}
}
