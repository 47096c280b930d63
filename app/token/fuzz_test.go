package token_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/token"
)

// FuzzVerifyMatchesJWX builds a compact token from a header and a payload
// (signed with the issuer's secret, or with a garbage signature) and holds
// Verify to referenceVerify, the jwx-based verification it replaced:
//
//   - when Verify accepts, jwx accepts, with the same claims;
//   - when both refuse, both say ErrExpired or neither does;
//   - when jwx accepts and Verify refuses, the token is in one of the corners
//     where Verify is deliberately stricter (laxerCorner).
func FuzzVerifyMatchesJWX(f *testing.F) {
	now := fuzzNow.Unix()
	hdr := `{"alg":"HS256","typ":"JWT"}`
	for _, s := range []struct {
		header, payload string
		sign            bool
	}{
		{hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d}`, now, now+3600), true},
		{hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d}`, now, now+3600), false},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d}`, now), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d}`, now+1), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d.999999999}`, now), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":1,"username":"alice","exp":%d}`, now-5), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d,"nbf":%d}`, now+9, now+1), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d,"iat":%d}`, now-9, now+1), true},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":"%d"}`, now+9), true},
		{`{"alg":"HS256"}`, `{"userId":"u1","username":"alice","exp":0}`, true},
		{`{"alg":"HS256"}`, `{"userId":"u1","username":"alice","exp":1e19}`, true},
		{`{"alg":"HS256"}`, `{"userId":"","username":"alice","exp":2e9}`, true},
		{`{"alg":"HS256"}`, `{"userId":"u","username":"a","exp":2e9,"aud":["x",1],"iss":null}`, true},
		{`{"alg":"HS256"}`, `{"u\u0073erId":"u\u00e9","username":"a","exp":2e9,"userId":"v"}`, true},
		{`{"alg":"none"}`, `{"userId":"u","username":"a","exp":2e9}`, true},
		{`{"alg":"HS256","crit":["b64"],"b64":false}`, `{"userId":"u","username":"a","exp":2e9}`, true},
		{`{"alg":"HS256","kid":5}`, `{"userId":"u","username":"a","exp":2e9}`, true},
		{`{"alg":"HS256","x5c":["AA"]}`, `{"userId":"u","username":"a","exp":2e9}`, true},
		{` {"alg":"HS256"}`, `{"userId":"u","username":"a","exp":2e9} x`, true},
	} {
		f.Add([]byte(s.header), []byte(s.payload), s.sign)
	}
	iss := token.NewIssuerAt(secret, time.Hour, func() time.Time { return fuzzNow })
	f.Fuzz(func(t *testing.T, header, payload []byte, sign bool) {
		key := secret
		if !sign {
			key = nil
		}
		raw := compact(header, payload, key)
		got, err := iss.Verify(raw)
		want, jerr := referenceVerify(secret, func() time.Time { return fuzzNow }, raw)
		switch {
		case err == nil && jerr != nil:
			t.Fatalf("Verify accepted what jwx refused (%v): %+v\nheader %q\npayload %q", jerr, got, header, payload)
		case err == nil && got != want:
			t.Fatalf("claims %+v, jwx %+v\nheader %q\npayload %q", got, want, header, payload)
		case err != nil && jerr == nil:
			if why := laxerCorner(header, payload); why == "" {
				t.Fatalf("Verify refused what jwx accepted: %v\nheader %q\npayload %q", err, header, payload)
			}
		case err != nil && errors.Is(err, token.ErrExpired) != errors.Is(jerr, token.ErrExpired):
			if why := laxerCorner(header, payload); why == "" {
				t.Fatalf("Verify says %v, jwx %v\nheader %q\npayload %q", err, jerr, header, payload)
			}
		}
	})
}

// laxerCorner says why a token whose verdict differs from jwx's is one of the
// places where Verify is stricter on purpose, or "" when it is none.
func laxerCorner(header, payload []byte) string {
	if len(header)+len(payload) > token.MaxTokenLen*3/4-50 {
		return "longer than MaxTokenLen"
	}
	h, err := topMembers(header)
	if err != nil {
		return "" // jwx refuses a header that is not a JSON object
	}
	if !bytes.HasPrefix(header, []byte("{")) || !bytes.HasSuffix(header, []byte("}")) {
		return "" // and one with spaces around it (it verifies the re-encoded object)
	}
	if h.trailing {
		return "bytes after the header object"
	}
	algs := 0
	for _, m := range h.list {
		switch m.key {
		case "alg":
			algs++
			var s string
			if json.Unmarshal(m.val, &s) != nil || s != "HS256" {
				return `"alg" other than "HS256" (jwx ignores it)`
			}
		case "crit", "b64", "jwk", "x5c":
			return m.key + " in the header"
		}
	}
	if algs == 0 {
		return `no "alg" (jwx ignores it)`
	}
	p, err := topMembers(payload)
	if err != nil {
		return ""
	}
	if p.trailing {
		return "bytes after the payload object"
	}
	for _, m := range p.list {
		switch m.key {
		case "exp", "iat", "nbf":
			var v any
			if json.Unmarshal(m.val, &v) == nil {
				if _, ok := v.(string); ok {
					return "a time claim as a string"
				}
			}
		}
	}
	if exp := p.last("exp"); exp != nil {
		var f float64
		if json.Unmarshal(exp, &f) == nil && f >= 0 && f < 1 {
			return `"exp" 0 (jwx: no expiry)`
		}
	}
	return ""
}

type member struct {
	key string
	val json.RawMessage
}

type object struct {
	list     []member
	trailing bool // bytes after the object
}

func (o object) last(key string) json.RawMessage {
	var v json.RawMessage
	for _, m := range o.list {
		if m.key == key {
			v = m.val
		}
	}
	return v
}

// topMembers reads the top-level members of the JSON object doc starts
// with, in order, duplicates included, as jwx's decoder does.
func topMembers(doc []byte) (object, error) {
	var o object
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return o, errors.New("not an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return o, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return o, err
		}
		o.list = append(o.list, member{key: tok.(string), val: v})
	}
	if _, err := dec.Token(); err != nil {
		return o, err
	}
	_, err := dec.Token()
	o.trailing = err == nil || !errors.Is(err, io.EOF)
	return o, nil
}
