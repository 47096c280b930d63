package token_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/token"
)

var secret = []byte("a-test-secret-of-enough-length-0123456789")

func TestIssueVerify(t *testing.T) {
	iss := token.NewIssuer(secret, time.Hour)
	raw, exp, err := iss.Issue("507f1f77bcf86cd799439011", "alice")
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "507f1f77bcf86cd799439011" || c.Username != "alice" || !c.ExpiresAt.Equal(exp) {
		t.Errorf("claims %+v, exp %v", c, exp)
	}
	if d := exp.Sub(c.IssuedAt); d != time.Hour {
		t.Errorf("lifetime %v", d)
	}
}

func TestVerifyRejects(t *testing.T) {
	iss := token.NewIssuer(secret, time.Hour)
	now := time.Now()
	good := map[string]any{"userId": "u1", "username": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	// alg none: header and payload with an empty signature.
	payload, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."

	for name, tc := range map[string]struct {
		raw  string
		want error
	}{
		"empty":          {"", token.ErrInvalid},
		"garbage":        {"not.a.token", token.ErrInvalid},
		"other secret":   {apptest.SignJWT(t, jwa.HS256, []byte("another-secret-another-secret-1234"), good), token.ErrInvalid},
		"HS512":          {apptest.SignJWT(t, jwa.HS512, secret, good), token.ErrInvalid},
		"alg none":       {none, token.ErrInvalid},
		"expired":        {apptest.SignJWT(t, jwa.HS256, secret, with("exp", now.Add(-time.Minute).Unix())), token.ErrExpired},
		"no exp":         {apptest.SignJWT(t, jwa.HS256, secret, with("exp", nil)), token.ErrInvalid},
		"no userId":      {apptest.SignJWT(t, jwa.HS256, secret, with("userId", nil)), token.ErrInvalid},
		"userId not str": {apptest.SignJWT(t, jwa.HS256, secret, with("userId", 42)), token.ErrInvalid},
	} {
		if _, err := iss.Verify(tc.raw); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
	// AuroraChat's jsonwebtoken tokens: HS256 with these claims verify.
	if _, err := iss.Verify(apptest.SignJWT(t, jwa.HS256, secret, good)); err != nil {
		t.Errorf("an AuroraChat-style token: %v", err)
	}
}

// BenchmarkVerify is the cost of checking one connection's token, paid on
// every WebSocket connect.
func BenchmarkVerify(b *testing.B) {
	iss := token.NewIssuer(secret, time.Hour)
	raw, _, err := iss.Issue("507f1f77bcf86cd799439011", "alice")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}
