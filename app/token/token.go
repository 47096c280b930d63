// Package token issues and verifies Aurora's JWTs: HS256, claims userId,
// username, iat and exp, exactly as AuroraChat's jsonwebtoken signs them, so a
// token from either system verifies in the other when they share the secret.
// Verification is stateless and pins the algorithm.
//
// Issue signs with lestrrat-go/jwx. Verify does not use jwx: it is a direct
// HS256 check of the compact form with the standard library (split,
// base64url, HMAC-SHA256 compared with hmac.Equal, then the payload's
// top-level members decoded into a map of raw values), because it is paid
// on every WebSocket connect and jwx's generic JOSE parser cost about 14 µs
// and 165 allocations per token (BenchmarkVerify, measured on the 2-core CI
// machine) against about 3.7 µs and 33 allocations here. It accepts a
// subset of what jwx.Parse accepted (the differential FuzzVerifyMatchesJWX
// holds it to that), with the same expiry rule and the same claims.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Claims are what a token says about its user.
type Claims struct {
	UserID    string
	Username  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Errors returned by Verify. ErrExpired is distinct so the chat role can close
// a connection whose token ran out with its own close code.
var (
	ErrInvalid = errors.New("invalid token")
	ErrExpired = errors.New("token expired")
)

// Issuer signs and verifies tokens with one secret.
type Issuer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 keyed with secret
}

// NewIssuer returns an Issuer; ttl is the lifetime of issued tokens.
func NewIssuer(secret []byte, ttl time.Duration) *Issuer {
	i := &Issuer{secret: secret, ttl: ttl, now: time.Now}
	i.macs.New = func() any { return hmac.New(sha256.New, i.secret) }
	return i
}

// Issue signs a token for the user; it returns the token and its expiry.
func (i *Issuer) Issue(userID, username string) (string, time.Time, error) {
	now := i.now().Truncate(time.Second)
	exp := now.Add(i.ttl)
	t, err := jwt.NewBuilder().
		Claim("userId", userID).
		Claim("username", username).
		IssuedAt(now).
		Expiration(exp).
		Build()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("build token: %w", err)
	}
	signed, err := jwt.Sign(t, jwt.WithKey(jwa.HS256, i.secret))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return string(signed), exp, nil
}

// MaxTokenLen bounds the tokens Verify decodes at all: ours are about 230
// bytes; anything longer than this is refused before any decoding.
const MaxTokenLen = 8 << 10

// b64 is the encoding of every part of a compact JWS: base64url without
// padding, strict (the unused low bits of the last character must be zero,
// so each token has exactly one spelling).
var b64 = base64.RawURLEncoding.Strict()

// Verify checks the signature (HS256 only: "none" and every other algorithm
// are rejected), the expiry and the claims, and returns the claims.
//
// It checks the compact form directly: three base64url parts; a protected
// header whose "alg" is "HS256" and that has no "crit", "b64", "jwk" or "x5c"
// (we implement no extension and take no key from the token); the
// HMAC-SHA256 of header.payload, compared in constant time before the payload
// is read; then the payload, as jwx v2 reads and validates it: "iat", "exp"
// and "nbf" are non-negative JSON numbers of seconds (a fraction is
// truncated), checked against the clock truncated to the second (expired
// when now >= exp, invalid when now < iat or now < nbf); "iss", "sub" and
// "jti" are strings, "aud" a string or an array of strings; "userId" and
// "username" must be non-empty strings; other members are ignored; of a
// duplicated member the last one counts.
//
// Where jwx was laxer it is stricter (FuzzVerifyMatchesJWX lists the cases):
// it does not trim spaces around the token, does not accept other base64
// alphabets, padding or the JSON serialization, requires "alg": "HS256" (jwx
// only used the algorithm of its key), rejects "exp": 0 (jwx's "no expiry")
// as expired, rejects time claims given as strings, and rejects bytes after
// the header or payload object.
func (i *Issuer) Verify(raw string) (Claims, error) {
	if raw == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(raw) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	dot1, dot2 := -1, -1
	for k := 0; k < len(raw); k++ {
		switch c := raw[k]; {
		case c == '.':
			switch {
			case dot1 < 0:
				dot1 = k
			case dot2 < 0:
				dot2 = k
			default:
				return Claims{}, fmt.Errorf("%w: more than three parts", ErrInvalid)
			}
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return Claims{}, fmt.Errorf("%w: byte %#02x at %d is not base64url", ErrInvalid, c, k)
		}
	}
	if dot2 < 0 {
		return Claims{}, fmt.Errorf("%w: not three dot-separated parts", ErrInvalid)
	}
	hdr64, pay64, sig64 := raw[:dot1], raw[dot1+1:dot2], raw[dot2+1:]

	// The signature, on the stack: an HS256 MAC is 32 bytes, 43 characters.
	var sig [sha256.Size]byte
	if len(sig64) != b64.EncodedLen(sha256.Size) {
		return Claims{}, fmt.Errorf("%w: signature is not %d base64url characters", ErrInvalid, b64.EncodedLen(sha256.Size))
	}
	if _, err := b64.Decode(sig[:], []byte(sig64)); err != nil { // 43 bytes: no allocation
		return Claims{}, fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}

	// One buffer: the signing input (header.payload), room for both decoded
	// JSON documents and the MAC.
	signing := len(hdr64) + 1 + len(pay64)
	buf := make([]byte, signing+b64.DecodedLen(len(hdr64))+b64.DecodedLen(len(pay64))+sha256.Size)
	copy(buf, raw[:signing])
	hdrJSON, err := decodePart(buf[signing:signing], buf[:len(hdr64)])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: header: %v", ErrInvalid, err)
	}
	if err := checkHeader(hdrJSON); err != nil {
		return Claims{}, fmt.Errorf("%w: header: %v", ErrInvalid, err)
	}

	mac := i.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf[:signing])
	sum := buf[len(buf)-sha256.Size : len(buf)-sha256.Size]
	ok := hmac.Equal(mac.Sum(sum), sig[:])
	i.macs.Put(mac)
	if !ok {
		return Claims{}, fmt.Errorf("%w: signature mismatch", ErrInvalid)
	}

	payJSON, err := decodePart(buf[signing+len(hdrJSON):signing+len(hdrJSON)], buf[len(hdr64)+1:signing])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}
	var p payload
	if err := p.read(payJSON); err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}

	// jwx's validators, in its order (iat, exp, nbf), zero skew, the clock
	// truncated to the second; a claim of 0 is "absent" to jwx, except that
	// "exp": 0 is expired here rather than eternal.
	now := i.now().Unix()
	if p.iat.set && p.iat.sec != 0 && now < p.iat.sec {
		return Claims{}, fmt.Errorf(`%w: "iat" is in the future`, ErrInvalid)
	}
	if p.exp.set && now >= p.exp.sec {
		return Claims{}, ErrExpired
	}
	if p.nbf.set && p.nbf.sec != 0 && now < p.nbf.sec {
		return Claims{}, fmt.Errorf(`%w: "nbf" is in the future`, ErrInvalid)
	}

	c := Claims{ExpiresAt: p.exp.time(), IssuedAt: p.iat.time()}
	c.UserID, ok = jsonString(p.userID)
	if ok {
		c.Username, ok = jsonString(p.username)
	}
	if !ok || c.UserID == "" || c.Username == "" {
		return Claims{}, fmt.Errorf("%w: missing userId or username claim", ErrInvalid)
	}
	if !p.exp.set {
		return Claims{}, fmt.Errorf("%w: no exp claim", ErrInvalid)
	}
	return c, nil
}

// decodePart decodes the base64url part src into dst's spare capacity and
// checks it is one JSON object (surrounding spaces allowed, nothing after).
func decodePart(dst, src []byte) ([]byte, error) {
	n, err := b64.Decode(dst[:cap(dst)], src)
	if err != nil {
		return nil, err
	}
	doc := dst[:n]
	if !json.Valid(doc) {
		return nil, errors.New("not valid JSON")
	}
	if d := bytes.TrimLeft(doc, " \t\r\n"); len(d) == 0 || d[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	return doc, nil
}

// checkHeader checks a JOSE header: "alg" is "HS256", no member asks for
// an extension or carries a key, and the members jwx types are of its type.
// doc is a JSON object (decodePart).
func checkHeader(doc []byte) error {
	// jwx signs and verifies the header as re-encoded from the object's own
	// bytes, so one with spaces around it never verified there.
	if doc[0] != '{' || doc[len(doc)-1] != '}' {
		return errors.New("spaces around the JSON object")
	}
	m, err := topLevel(doc)
	if err != nil {
		return err
	}
	algOK := false
	for name, val := range m {
		switch name {
		case "alg":
			if string(val) == `"HS256"` {
				algOK = true
				continue
			}
			if s, ok := jsonString(val); !ok || s != "HS256" { // escaped
				return fmt.Errorf(`"alg" %.40s is not "HS256"`, val)
			}
			algOK = true
		case "crit", "b64", "jwk", "x5c":
			return fmt.Errorf("%q is not supported", name)
		case "typ", "cty", "kid", "jku", "x5u", "x5t", "x5t#S256":
			if !stringOrNull(val) {
				return fmt.Errorf("%q is not a string", name)
			}
		}
	}
	if !algOK {
		return errors.New(`no "alg"`)
	}
	return nil
}

// payload is what Verify reads of the claims.
type payload struct {
	userID, username []byte // raw JSON values, checked after validation
	exp, iat, nbf    numericDate
}

// read walks the claims object, typing the registered claims as jwx does.
func (p *payload) read(doc []byte) error {
	m, err := topLevel(doc)
	if err != nil {
		return err
	}
	for name, val := range m {
		switch name {
		case "userId":
			p.userID = val
		case "username":
			p.username = val
		case "exp", "iat", "nbf":
			d, err := parseNumericDate(val)
			if err != nil {
				return fmt.Errorf("%q: %v", name, err)
			}
			switch name {
			case "exp":
				p.exp = d
			case "iat":
				p.iat = d
			default:
				p.nbf = d
			}
		case "iss", "sub", "jti":
			if !stringOrNull(val) {
				return fmt.Errorf("%q is not a string", name)
			}
		case "aud":
			if !audience(val) {
				return errors.New(`"aud" is not a string or an array of strings`)
			}
		}
	}
	return nil
}

// numericDate is a time claim: whole seconds since the epoch.
type numericDate struct {
	sec int64
	set bool
}

func (d numericDate) time() time.Time {
	if !d.set {
		return time.Time{}
	}
	return time.Unix(d.sec, 0).UTC()
}

// parseNumericDate reads a time claim as jwx v2 does by default: a JSON
// number, decoded as a float64, printed with %.9f, its integer part parsed
// as an int64 (so the fraction is dropped and a negative value, even -0, is
// refused). jwx also took strings of digits and RFC 3339 strings; we do not.
func parseNumericDate(val []byte) (numericDate, error) {
	if len(val) == 0 || (val[0] != '-' && (val[0] < '0' || val[0] > '9')) {
		return numericDate{}, fmt.Errorf("%.40s is not a number", val)
	}
	f, err := strconv.ParseFloat(string(val), 64)
	if err != nil {
		return numericDate{}, fmt.Errorf("%.40s: out of range", val)
	}
	if math.Signbit(f) || f >= 1<<63 {
		return numericDate{}, fmt.Errorf("%.40s: out of range", val)
	}
	// Exactly jwx's integer part, rounding of the ninth decimal included.
	var b [40]byte
	s := strconv.AppendFloat(b[:0], f, 'f', 9, 64)
	sec, err := strconv.ParseInt(string(s[:len(s)-10]), 10, 64)
	if err != nil {
		return numericDate{}, fmt.Errorf("%.40s: out of range", val)
	}
	return numericDate{sec: sec, set: true}, nil
}

// topLevel is the top-level members of the JSON object doc, each value
// raw. encoding/json matches map keys exactly (a struct's fields would
// match "EXP" or "UserId", which jwx ignores), unescapes escaped names, and
// keeps the last of a duplicated member, as jwx does.
func topLevel(doc []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return m, nil
}

// jsonString returns the string a raw JSON value is, as encoding/json
// decodes it; ok is false when the value is not a string.
func jsonString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' {
		return "", false
	}
	if in := val[1 : len(val)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		return "", false
	}
	return s, true
}

// stringOrNull is whether a raw JSON value is a string or null: what jwx
// accepts for its string-typed members.
func stringOrNull(val []byte) bool {
	return (len(val) > 0 && val[0] == '"') || string(val) == "null"
}

// audience is whether a raw JSON value is a string or an array of strings.
func audience(val []byte) bool {
	if len(val) > 0 && val[0] == '"' {
		return true
	}
	if len(val) == 0 || val[0] != '[' {
		return false
	}
	var list []any // not []string, which would take a null element
	if json.Unmarshal(val, &list) != nil {
		return false
	}
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}
