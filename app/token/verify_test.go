package token_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/auroradev/aurora/app/token"
)

// fuzzNow is the clock of the differential tests: half a second into a
// second, so the truncation to seconds matters.
var fuzzNow = time.Unix(1_700_000_000, 500_000_000)

var enc = base64.RawURLEncoding.EncodeToString

// compact builds header.payload.signature, signed with key when key is not
// nil, else with a signature of the right length that matches nothing.
func compact(header, payload, key []byte) string {
	in := enc(header) + "." + enc(payload)
	sig := bytes.Repeat([]byte{0xA5}, sha256.Size)
	if key != nil {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	}
	return in + "." + enc(sig)
}

// referenceVerify is the jwx-based Verify this package had before it checked
// HS256 itself: the reference FuzzVerifyMatchesJWX holds Verify to.
func referenceVerify(secret []byte, now func() time.Time, raw string) (token.Claims, error) {
	if raw == "" {
		return token.Claims{}, fmt.Errorf("%w: empty", token.ErrInvalid)
	}
	t, err := jwt.Parse([]byte(raw),
		jwt.WithKey(jwa.HS256, secret),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(now)),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired()) {
			return token.Claims{}, token.ErrExpired
		}
		return token.Claims{}, fmt.Errorf("%w: %v", token.ErrInvalid, err)
	}
	c := token.Claims{IssuedAt: t.IssuedAt(), ExpiresAt: t.Expiration()}
	uid, _ := t.Get("userId")
	name, _ := t.Get("username")
	c.UserID, _ = uid.(string)
	c.Username, _ = name.(string)
	if c.UserID == "" || c.Username == "" {
		return token.Claims{}, fmt.Errorf("%w: missing userId or username claim", token.ErrInvalid)
	}
	if c.ExpiresAt.IsZero() {
		return token.Claims{}, fmt.Errorf("%w: no exp claim", token.ErrInvalid)
	}
	return c, nil
}

// jwxAccepted are the cases of TestVerifyRejectsCompact that jwx v2.1.7's
// jwt.Parse with jwt.WithKey(jwa.HS256, secret) accepted: it verifies with
// the key's algorithm whatever the header's "alg" says (or whether it says
// anything), ignores "crit", "b64": true and "jwk", ignores bytes after the
// payload object, trims spaces around the token, accepts any base64 alphabet
// with or without padding (and so newlines), takes "exp": 0 (and any exp
// below 1) as "no expiry", and takes time claims as strings of digits or
// RFC 3339. Verify refuses them all.
var jwxAccepted = map[string]bool{
	"crit header": true, "b64 header": true, "jwk header": true,
	"no alg": true, "alg HS512 label": true, "alg none label": true, "alg lower case": true, "ALG key": true,
	"payload trailing bytes": true, "padded signature": true, "space around": true, "newline inside": true,
	"exp 0": true, "exp 0.5": true, "exp a string": true, "exp RFC 3339": true, "huge token": true,
}

func TestVerifyRejectsCompact(t *testing.T) {
	iss := token.NewIssuerAt(secret, time.Hour, func() time.Time { return fuzzNow })
	now := fuzzNow.Unix()
	hdr := `{"alg":"HS256","typ":"JWT"}`
	claims := func(extra string) string {
		return fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d%s}`, now-10, now+3600, extra)
	}
	good := compact([]byte(hdr), []byte(claims("")), secret)
	if _, err := iss.Verify(good); err != nil {
		t.Fatalf("good token: %v", err)
	}
	parts := strings.Split(good, ".")
	sign := func(h, p string) string { return compact([]byte(h), []byte(p), secret) }
	for _, tc := range []struct {
		name, raw string
		want      error
	}{
		{"crit header", sign(`{"alg":"HS256","crit":["exp"],"exp":1}`, claims("")), token.ErrInvalid},
		{"b64 header", sign(`{"alg":"HS256","b64":true}`, claims("")), token.ErrInvalid},
		{"b64 false", sign(`{"alg":"HS256","b64":false}`, claims("")), token.ErrInvalid},
		{"jwk header", sign(`{"alg":"HS256","jwk":{"kty":"oct","k":"AA"}}`, claims("")), token.ErrInvalid},
		{"no alg", sign(`{"typ":"JWT"}`, claims("")), token.ErrInvalid},
		{"alg HS512 label", sign(`{"alg":"HS512"}`, claims("")), token.ErrInvalid},
		{"alg none label", sign(`{"alg":"none"}`, claims("")), token.ErrInvalid},
		{"alg lower case", sign(`{"alg":"hs256"}`, claims("")), token.ErrInvalid},
		{"ALG key", sign(`{"ALG":"HS256"}`, claims("")), token.ErrInvalid},
		{"typ number", sign(`{"alg":"HS256","typ":1}`, claims("")), token.ErrInvalid},
		{"header array", sign(`["alg","HS256"]`, claims("")), token.ErrInvalid},
		{"header trailing bytes", sign(hdr+`x`, claims("")), token.ErrInvalid},
		{"payload trailing bytes", sign(hdr, claims("")+` {}`), token.ErrInvalid},
		{"payload not JSON", sign(hdr, `{"userId":`), token.ErrInvalid},
		{"bad base64 header", "*" + parts[0][1:] + "." + parts[1] + "." + parts[2], token.ErrInvalid},
		{"bad base64 payload", parts[0] + "." + parts[1][:len(parts[1])-1] + "!." + parts[2], token.ErrInvalid},
		{"bad base64 signature", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "=", token.ErrInvalid},
		{"padded signature", good + "=", token.ErrInvalid},
		{"signature low bits", parts[0] + "." + parts[1] + "." + parts[2][:42] + string(parts[2][42]^1), token.ErrInvalid},
		{"short signature", parts[0] + "." + parts[1] + "." + parts[2][:40], token.ErrInvalid},
		{"std alphabet", good[:10] + "+" + good[11:], token.ErrInvalid},
		{"header spaces", sign(" "+hdr, claims("")), token.ErrInvalid},
		{"space around", " " + good + "\n", token.ErrInvalid},
		{"newline inside", parts[0] + "\n." + parts[1] + "." + parts[2], token.ErrInvalid},
		{"two parts", parts[0] + "." + parts[1], token.ErrInvalid},
		{"four parts", good + "." + parts[2], token.ErrInvalid},
		{"empty parts", "..", token.ErrInvalid},
		{"other secret", compact([]byte(hdr), []byte(claims("")), []byte("another-secret-another-secret-1234")), token.ErrInvalid},
		{"garbage signature", compact([]byte(hdr), []byte(claims("")), nil), token.ErrInvalid},
		{"nbf in the future", sign(hdr, claims(fmt.Sprintf(`,"nbf":%d`, now+1))), token.ErrInvalid},
		{"iat in the future", sign(hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d}`, now+1, now+3600)), token.ErrInvalid},
		{"iat future and expired", sign(hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d}`, now+1, now)), token.ErrInvalid},
		{"exp now", sign(hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d}`, now)), token.ErrExpired},
		{"exp 0", sign(hdr, `{"userId":"u1","username":"alice","exp":0}`), token.ErrExpired},
		{"exp 0.5", sign(hdr, `{"userId":"u1","username":"alice","exp":0.5}`), token.ErrExpired},
		{"expired, userId a number", sign(hdr, fmt.Sprintf(`{"userId":1,"username":"alice","exp":%d}`, now-1)), token.ErrExpired},
		{"exp a string", sign(hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":"%d"}`, now+3600)), token.ErrInvalid},
		{"exp RFC 3339", sign(hdr, `{"userId":"u1","username":"alice","exp":"2100-01-01T00:00:00Z"}`), token.ErrInvalid},
		{"exp null", sign(hdr, `{"userId":"u1","username":"alice","exp":null}`), token.ErrInvalid},
		{"exp negative", sign(hdr, `{"userId":"u1","username":"alice","exp":-1}`), token.ErrInvalid},
		{"exp -0", sign(hdr, `{"userId":"u1","username":"alice","exp":-0}`), token.ErrInvalid},
		{"exp 1e400", sign(hdr, `{"userId":"u1","username":"alice","exp":1e400}`), token.ErrInvalid},
		{"exp 2^63", sign(hdr, `{"userId":"u1","username":"alice","exp":9223372036854775808}`), token.ErrInvalid},
		{"no exp", sign(hdr, `{"userId":"u1","username":"alice"}`), token.ErrInvalid},
		{"EXP key", sign(hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","EXP":%d}`, now+3600)), token.ErrInvalid},
		{"UserId key", sign(hdr, claims(`,"userId":null,"UserId":"u2"`)), token.ErrInvalid},
		{"userId empty", sign(hdr, claims(`,"userId":""`)), token.ErrInvalid},
		{"username number", sign(hdr, claims(`,"username":7`)), token.ErrInvalid},
		{"iss number", sign(hdr, claims(`,"iss":7`)), token.ErrInvalid},
		{"aud object", sign(hdr, claims(`,"aud":{}`)), token.ErrInvalid},
		{"aud null element", sign(hdr, claims(`,"aud":["a",null]`)), token.ErrInvalid},
		{"payload null", sign(hdr, `null`), token.ErrInvalid},
		{"payload array", sign(hdr, `[]`), token.ErrInvalid},
		{"huge token", sign(hdr, claims(`,"pad":"`+strings.Repeat("x", 9000)+`"`)), token.ErrInvalid},
	} {
		if _, err := iss.Verify(tc.raw); !errors.Is(err, tc.want) || (errors.Is(tc.want, token.ErrInvalid) && errors.Is(err, token.ErrExpired)) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		_, jerr := referenceVerify(secret, func() time.Time { return fuzzNow }, tc.raw)
		if (jerr == nil) != jwxAccepted[tc.name] {
			t.Errorf("%s: jwx says %v, the table says jwx accepted it: %v", tc.name, jerr, jwxAccepted[tc.name])
		}
	}

	// Accepted, as jwx accepts them, with the same claims.
	for _, tc := range []struct{ name, header, payload string }{
		{"no typ", `{"alg":"HS256"}`, claims("")},
		{"typ anything", `{"alg":"HS256","typ":"at+jwt","kid":"k1","x":[1,{"y":2}]}`, claims("")},
		{"typ null", `{"alg":"HS256","typ":null}`, claims("")},
		{"escaped alg", `{"alg":"HS\u0032\u0035\u0036"}`, claims("")},
		{"spaces in JSON", "{\n \"alg\" : \"HS256\" }", " " + claims("") + "\t"},
		{"float exp", hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d.9,"exp":%d.999}`, now, now+3600)},
		{"exponent exp", hdr, `{"userId":"u1","username":"alice","exp":1.8e9}`},
		{"exp just after now", hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","exp":%d}`, now+1)},
		{"nbf now", hdr, claims(fmt.Sprintf(`,"nbf":%d`, now))},
		{"iat now", hdr, fmt.Sprintf(`{"userId":"u1","username":"alice","iat":%d,"exp":%d}`, now, now+3600)},
		{"extra claims", hdr, claims(`,"role":"admin","n":1.5,"o":{"a":[1,"}"]},"iss":"x","sub":null,"aud":["a","b"]`)},
		{"escaped claims", hdr, fmt.Sprintf(`{"u\u0073erId":"u\"1\u00e9","username":"al\/ice","exp":%d}`, now+60)},
		{"invalid UTF-8", hdr, fmt.Sprintf("{\"userId\":\"u\xff1\",\"username\":\"alice\",\"exp\":%d}", now+60)},
		{"duplicate userId", hdr, claims(`,"userId":"u2"`)},
		{"duplicate exp", hdr, claims(fmt.Sprintf(`,"exp":%d`, now+7200))},
	} {
		raw := sign(tc.header, tc.payload)
		got, err := iss.Verify(raw)
		want, werr := referenceVerify(secret, func() time.Time { return fuzzNow }, raw)
		if err != nil || werr != nil || got != want {
			t.Errorf("%s: got %+v, %v; jwx %+v, %v", tc.name, got, err, want, werr)
		}
	}
}
