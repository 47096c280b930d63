// Package token issues and verifies Aurora's JWTs: HS256, claims userId,
// username, iat and exp, exactly as AuroraChat's jsonwebtoken signs them, so a
// token from either system verifies in the other when they share the secret.
// Verification is stateless and pins the algorithm.
package token

import (
	"errors"
	"fmt"
	"time"

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
}

// NewIssuer returns an Issuer; ttl is the lifetime of issued tokens.
func NewIssuer(secret []byte, ttl time.Duration) *Issuer {
	return &Issuer{secret: secret, ttl: ttl, now: time.Now}
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

// Verify checks the signature (HS256 only: "none" and every other algorithm
// are rejected), the expiry and the claims, and returns the claims.
func (i *Issuer) Verify(raw string) (Claims, error) {
	if raw == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	t, err := jwt.Parse([]byte(raw),
		jwt.WithKey(jwa.HS256, i.secret),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(i.now)),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired()) {
			return Claims{}, ErrExpired
		}
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := Claims{IssuedAt: t.IssuedAt(), ExpiresAt: t.Expiration()}
	uid, _ := t.Get("userId")
	name, _ := t.Get("username")
	c.UserID, _ = uid.(string)
	c.Username, _ = name.(string)
	if c.UserID == "" || c.Username == "" {
		return Claims{}, fmt.Errorf("%w: missing userId or username claim", ErrInvalid)
	}
	if c.ExpiresAt.IsZero() {
		return Claims{}, fmt.Errorf("%w: no exp claim", ErrInvalid)
	}
	return c, nil
}
