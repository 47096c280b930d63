package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
)

// Hostile register and login bodies and tokens through a real server and
// real HTTP, at the default limits (auth.register_per_ip 10 and
// auth.login_per_ip 30 a minute): each row is what a client sends and the
// answer today, a status and {"error"} (docs/security.md#hostile-input).
// readCredentials alone is fuzzed by FuzzReadCredentials (fuzz_test.go).

type hostileBody struct {
	name  string
	ctype string
	body  string
	// The answers of register and login: status and a part of the error
	// ("" for a success).
	register, login answerHTTP
}

type answerHTTP struct {
	status int
	error  string
}

func hostileBodies() []hostileBody {
	bad := func(msg string) answerHTTP { return answerHTTP{http.StatusBadRequest, msg} }
	invalid := answerHTTP{http.StatusUnauthorized, "invalid credentials"}
	rule := bad("username must be 3-32 characters")
	row := func(name, ctype, body string, register, login answerHTTP) hostileBody {
		return hostileBody{name, ctype, body, register, login}
	}
	rows := []hostileBody{
		// Types: numbers, arrays, objects (query operators) where strings go.
		row("username number", jsonType, `{"username":123,"password":"password-1"}`, bad("username must be a string"), bad("username must be a string")),
		row("username array", jsonType, `{"username":["alice"],"password":"password-1"}`, bad("username must be a string"), bad("username must be a string")),
		row("username $gt operator", jsonType, `{"username":{"$gt":""},"password":"password-1"}`, bad("username must be a string"), bad("username must be a string")),
		row("password $ne operator", jsonType, `{"username":"alice","password":{"$ne":null}}`, bad("password must be a string"), bad("password must be a string")),
		row("password bool", jsonType, `{"username":"alice","password":true}`, bad("password must be a string"), bad("password must be a string")),
		// Nulls.
		row("username null", jsonType, `{"username":null,"password":"password-1"}`, bad("username must be a string"), bad("username must be a string")),
		row("password null", jsonType, `{"username":"alice","password":null}`, bad("password must be a string"), bad("password must be a string")),
		row("body null", jsonType, `null`, bad("must be a JSON object"), bad("must be a JSON object")),
		// Huge numbers.
		row("username 1e400", jsonType, `{"username":1e400,"password":"password-1"}`, bad("username must be a string"), bad("username must be a string")),
		row("password 400 digits", jsonType, `{"username":"alice","password":`+strings.Repeat("9", 400)+`}`, bad("password must be a string"), bad("password must be a string")),
		// Invalid UTF-8: inside a string it reads as U+FFFD (encoding/json),
		// which no username may hold; outside, the body is malformed.
		row("username invalid UTF-8", jsonType, "{\"username\":\"al\xffce\",\"password\":\"password-1\"}", rule, invalid),
		row("invalid UTF-8 after the object", jsonType, "{\"username\":\"alice\",\"password\":\"password-1\"}\xff", bad("unexpected data after"), bad("unexpected data after")),
		row("invalid UTF-8 outside strings", jsonType, "{\"username\":\"alice\",\xff\"password\":\"password-1\"}", bad("malformed JSON"), bad("malformed JSON")),
		// Control characters.
		row("raw control character", jsonType, "{\"username\":\"al\x01ice\",\"password\":\"password-1\"}", bad("malformed JSON"), bad("malformed JSON")),
		row("escaped newline and ANSI (log forging)", jsonType, `{"username":"alice\r\nlevel=ERROR msg=forged\u001b[2J","password":"password-1"}`, rule, invalid),
		row("escaped NUL", jsonType, `{"username":"alice\u0000","password":"password-1"}`, rule, invalid),
		// Look-alikes are not names: usernames are ASCII.
		row("Cyrillic а", jsonType, `{"username":"аlice","password":"password-1"}`, rule, invalid),
		row("fullwidth", jsonType, `{"username":"ａｌｉｃｅ","password":"password-1"}`, rule, invalid),
		row("SQL in username", jsonType, `{"username":"admin' OR '1'='1","password":"x' OR '1'='1"}`, rule, invalid),
		// Oversize.
		row("body over 16 KiB", jsonType, `{"username":"alice","password":"`+strings.Repeat("p", 16<<10)+`"}`,
			answerHTTP{http.StatusRequestEntityTooLarge, "request body too large"}, answerHTTP{http.StatusRequestEntityTooLarge, "request body too large"}),
		row("username of 16000 bytes", jsonType, `{"username":"`+strings.Repeat("u", 16000)+`","password":"password-1"}`, rule, invalid),
		row("password of 73 bytes", jsonType, `{"username":"longpass","password":"`+strings.Repeat("p", 73)+`"}`, bad("password must be 8-72 bytes"), invalid),
		row("nesting 8000 deep as username", jsonType, `{"username":`+strings.Repeat("[", 8000)+strings.Repeat("]", 8000)+`,"password":"password-1"}`,
			bad("username must be a string"), bad("username must be a string")),
		row("nesting 10001 deep (over 16 KiB)", jsonType, `{"x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`,
			answerHTTP{http.StatusRequestEntityTooLarge, "request body too large"}, answerHTTP{http.StatusRequestEntityTooLarge, "request body too large"}),
		// Unknown fields are ignored (as AuroraChat does), never stored.
		row("unknown fields", jsonType, `{"username":"hostile_unknown","password":"password-1","isAdmin":true,"disabled":false,"id":"000000000000000000000000","n":1e999}`,
			answerHTTP{http.StatusCreated, ""}, answerHTTP{http.StatusOK, ""}),
		row("case-folded keys are other keys", jsonType, `{"Username":"alice","PASSWORD":"password-1"}`, bad("username is required"), bad("username is required")),
		row("duplicate key: the last wins", jsonType, `{"username":"alice","password":"password-1","username":{"$gt":""}}`, bad("username must be a string"), bad("username must be a string")),
		// Not one JSON object.
		row("empty body", jsonType, ``, bad("request body is empty"), bad("request body is empty")),
		row("array body", jsonType, `[{"username":"alice","password":"password-1"}]`, bad("must be a JSON object"), bad("must be a JSON object")),
		row("two objects", jsonType, `{"username":"a","password":"b"}{"username":"c","password":"d"}`, bad("unexpected data after"), bad("unexpected data after")),
		row("byte order mark", jsonType, "\ufeff{\"username\":\"alice\",\"password\":\"password-1\"}", bad("malformed JSON"), bad("malformed JSON")),
	}
	ct := func(name, ctype string, want string) hostileBody {
		a := answerHTTP{http.StatusUnsupportedMediaType, want}
		return row(name, ctype, `{"username":"alice","password":"password-1"}`, a, a)
	}
	rows = append(rows,
		ct("no Content-Type", "", "Content-Type must be application/json"),
		ct("form Content-Type", "application/x-www-form-urlencoded", "Content-Type must be application/json"),
		ct("Latin-1 charset", "application/json; charset=latin1", "in UTF-8"),
		ct("malformed Content-Type", "application/json; ;;charset", "Content-Type must be application/json"),
	)
	return rows
}

// TestHostileBodies posts each hostile body to register, then to login,
// from 127.0.0.1: the bodies that get past decoding count towards the
// address's limits, and stay under them (9 registrations, 9 logins).
func TestHostileBodies(t *testing.T) {
	s := authServer(t, func(*config.Config) {})
	for _, row := range hostileBodies() {
		t.Run(row.name, func(t *testing.T) {
			for _, step := range []struct {
				path string
				want answerHTTP
			}{{"/api/auth/register", row.register}, {"/api/auth/login", row.login}} {
				r := call(t, s.URL, "POST", step.path, row.ctype, row.body, nil)
				if step.want.error == "" {
					r.want(t, step.want.status)
					continue
				}
				r.wantError(t, step.want.status, step.want.error)
			}
		})
	}
	// The unknown fields were not stored: the user is plain.
	u, err := s.App.Host().Store.UserByName(context.Background(), "hostile_unknown")
	if err != nil || u.Disabled || u.ID == "000000000000000000000000" {
		t.Fatalf("user of the unknown-fields row: %+v %v", u, err)
	}
}

// TestHostileFloodsAndTokens: a register flood from one address, and
// tokens that must not pass on /me.
func TestHostileFloodsAndTokens(t *testing.T) {
	var secret []byte
	s := authServer(t, func(c *config.Config) { secret = []byte(c.Auth.JWTSecret) })

	// A register flood from 127.0.0.2: the first auth.register_per_ip (10)
	// in the window are created, the rest 429 with Retry-After; another
	// address is not affected.
	t.Run("register flood", func(t *testing.T) {
		from := apptest.ClientFrom("127.0.0.2")
		created, limited := 0, 0
		for i := 0; i < 30; i++ {
			r := callWith(t, from, s.URL, "POST", "/api/auth/register", jsonType, creds(fmt.Sprintf("flood%02d", i), "password-1"), nil)
			switch r.status {
			case http.StatusCreated:
				created++
			case http.StatusTooManyRequests:
				r.wantError(t, http.StatusTooManyRequests, "too many attempts from this address")
				wantRetryAfter(t, r, time.Minute)
				limited++
			default:
				t.Fatalf("registration %d: %d %s", i, r.status, r.raw)
			}
		}
		if created != 10 || limited != 20 {
			t.Fatalf("%d created, %d refused; want 10 and 20", created, limited)
		}
		callWith(t, apptest.ClientFrom("127.0.0.3"), s.URL, "POST", "/api/auth/register", jsonType, creds("flood_other", "password-1"), nil).
			want(t, http.StatusCreated)
	})

	now := time.Now()
	claims := func(userID string, nbf, exp time.Time) map[string]any {
		m := map[string]any{"userId": userID, "username": "mallory", "iat": now.Unix(), "exp": exp.Unix()}
		if !nbf.IsZero() {
			m["nbf"] = nbf.Unix()
		}
		return m
	}
	valid := claims("507f1f77bcf86cd799439011", time.Time{}, now.Add(time.Hour))

	// A user disabled after logging in: the token is verified without the
	// store, so /me still answers until it expires; logging in again is
	// refused like a wrong password.
	register(t, s, "dora", "").want(t, http.StatusCreated)
	login := call(t, s.URL, "POST", "/api/auth/login", jsonType, creds("dora", "password-dora"), nil)
	login.want(t, http.StatusOK)
	var doraToken string
	if err := json.Unmarshal(login.body["token"], &doraToken); err != nil {
		t.Fatal(err)
	}
	st := s.App.Host().Store
	u, err := st.UserByName(context.Background(), "dora")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	call(t, s.URL, "POST", "/api/auth/login", jsonType, creds("dora", "password-dora"), nil).
		wantError(t, http.StatusUnauthorized, "invalid credentials")

	for _, row := range []struct {
		name, token string
		status      int
		error       string
	}{
		{"alg none", noneToken(valid), http.StatusUnauthorized, "invalid token"},
		{"wrong key", apptest.SignJWT(t, jwa.HS256, []byte("another-secret-0123456789abcdef0123"), valid), http.StatusUnauthorized, "invalid token"},
		{"expired", apptest.SignJWT(t, jwa.HS256, secret, claims("507f1f77bcf86cd799439011", time.Time{}, now.Add(-time.Minute))), http.StatusUnauthorized, "token expired"},
		{"not yet valid", apptest.SignJWT(t, jwa.HS256, secret, claims("507f1f77bcf86cd799439011", now.Add(time.Hour), now.Add(2*time.Hour))), http.StatusUnauthorized, "invalid token"},
		{"disabled user (stateless: valid until it expires)", doraToken, http.StatusOK, ""},
	} {
		t.Run(row.name, func(t *testing.T) {
			r := call(t, s.URL, "GET", "/api/auth/me", "", "", map[string]string{"Authorization": "Bearer " + row.token})
			if row.error == "" {
				r.want(t, row.status)
				return
			}
			r.wantError(t, row.status, row.error)
		})
	}
}
