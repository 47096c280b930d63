package apptest

import (
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// SignJWT signs claims with alg and key the way another system would
// (AuroraChat's jsonwebtoken, an attacker with a guessed key), bypassing
// Aurora's issuer: for tests of what Verify refuses. A nil claim value
// leaves the claim out.
func SignJWT(t testing.TB, alg jwa.SignatureAlgorithm, key any, claims map[string]any) string {
	t.Helper()
	b := jwt.NewBuilder()
	for k, v := range claims {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatalf("build token: %v", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return string(signed)
}
