package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"unicode/utf8"
)

// credentialSeeds are hostile register and login bodies: wrong types,
// nulls, huge numbers, query operators, invalid UTF-8, control
// characters, unknown fields. Bigger ones (deep nesting, oversize) are in
// testdata/fuzz/FuzzReadCredentials.
var credentialSeeds = []string{
	`{"username":"alice","password":"password-1"}`,
	`{"username":"alice","password":"password-1","admin":true,"role":"root"}`,
	`{"username":{"$gt":""},"password":"x"}`,
	`{"username":["alice"],"password":"x"}`,
	`{"username":12345678901234567890123,"password":1e400}`,
	`{"username":null,"password":"x"}`,
	`{"username":"alice","password":null}`,
	`{"username":"","password":""}`,
	`{"username":"alice"}`,
	`{"USERNAME":"alice","Password":"x"}`,
	`{"username":"a","username":"b","password":"x"}`,
	"{\"username\":\"\xff\xfe\",\"password\":\"x\"}",
	`{"username":"al\u0000ice","password":"\u001b[31m"}`,
	"{\"username\":\"al\nice\",\"password\":\"x\"}",
	`{"username":"alice","password":"x"} {"more":1}`,
	`{"username":"alice","password":"x"}garbage`,
	`null`, `[]`, `"alice"`, `0`, ``, `{`, ` `,
}

// FuzzReadCredentials: readCredentials never panics; answers 415 for a
// body that is not declared application/json in UTF-8, 413 for one over
// maxBody, and 400 with a message for everything else it refuses; accepts
// exactly the bodies that are one JSON object whose username and password
// are non-empty strings (as encoding/json reads them, unknown fields
// ignored); and reads back what a client encodes.
func FuzzReadCredentials(f *testing.F) {
	for _, s := range credentialSeeds {
		f.Add("application/json", []byte(s))
	}
	for _, ct := range []string{"", "text/plain", "application/json; charset=latin1", "application/json; charset=UTF-8", "application/json;;", "application/x-www-form-urlencoded"} {
		f.Add(ct, []byte(credentialSeeds[0]))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		c, rerr := read(contentType, body)
		ctOK := checkContentType(contentType) == nil
		switch {
		case !ctOK:
			wantStatus(t, body, rerr, http.StatusUnsupportedMediaType)
			return
		case len(body) > maxBody:
			wantStatus(t, body, rerr, http.StatusRequestEntityTooLarge)
			return
		}
		user, pass, ok := referenceCredentials(body)
		if !ok {
			wantStatus(t, body, rerr, http.StatusBadRequest)
			return
		}
		if rerr != nil || c.Username != user || c.Password != pass {
			t.Fatalf("%q: read %+v %v, want username %q password %q", body, c, rerr, user, pass)
		}
		// A client's encoding of what was read reads back the same (strings
		// encoding/json writes as they are: valid UTF-8).
		if utf8.ValidString(user) && utf8.ValidString(pass) {
			enc, err := json.Marshal(map[string]string{"username": user, "password": pass})
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) <= maxBody {
				if again, rerr := read("application/json", enc); rerr != nil || again != c {
					t.Fatalf("%q: re-encoded %s reads %+v %v", body, enc, again, rerr)
				}
			}
		}
	})
}

// read runs readCredentials on a POST with contentType and body.
func read(contentType string, body []byte) (credentials, *requestError) {
	r := httptest.NewRequest(http.MethodPost, "/api/auth/login", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return readCredentials(httptest.NewRecorder(), r)
}

// referenceCredentials is what readCredentials must accept, read the
// plain way: one JSON value, an object, with username and password
// non-empty strings.
func referenceCredentials(body []byte) (user, pass string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // any number is fine in a field nobody reads
	var v map[string]any
	if err := dec.Decode(&v); err != nil || v == nil {
		return "", "", false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", "", false // more after the object
	}
	user, uok := v["username"].(string)
	pass, pok := v["password"].(string)
	return user, pass, uok && pok && user != "" && pass != ""
}

func wantStatus(t *testing.T, body []byte, rerr *requestError, status int) {
	t.Helper()
	if rerr == nil || rerr.status != status || rerr.msg == "" {
		t.Fatalf("%.200q: %+v, want status %d with a message", body, rerr, status)
	}
	if !slices.Contains([]int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}, rerr.status) {
		t.Fatalf("status %d is not a documented answer", rerr.status)
	}
}
