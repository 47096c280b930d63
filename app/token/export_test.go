package token

import "time"

// NewIssuerAt is NewIssuer with the clock now, for tests.
func NewIssuerAt(secret []byte, ttl time.Duration, now func() time.Time) *Issuer {
	i := NewIssuer(secret, ttl)
	i.now = now
	return i
}
