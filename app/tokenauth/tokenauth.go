// Package tokenauth is the HTTP edge of Aurora's tokens: where a request
// carries its JWT, verifying it with the token.Issuer, and the one 401
// answer. Every route that authenticates a request (auth's /me, the chat
// upgrade, the chat HTTP APIs) goes through Verify and Unauthorized, so they
// all read tokens and refuse them alike; each names the places it accepts.
//
// It imports app (for the {"error"} body) and app/token; roles import it.
// It is not in app/token because the runtime imports that package.
package tokenauth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/token"
)

// Source is a place in a request a token may travel; a route accepts a set
// of them (Bearer|Query, say).
type Source uint8

const (
	// Bearer is an "Authorization: Bearer <token>" header (the scheme is
	// case-insensitive): the HTTP APIs' way.
	Bearer Source = 1 << iota
	// Subprotocol is a "Sec-WebSocket-Protocol: aurora.bearer.<token>"
	// entry: the way of a browser, which cannot set headers on a WebSocket.
	Subprotocol
	// Query is "?token=<token>": how AuroraChat's clients connect.
	Query
)

// SubprotocolPrefix starts the WebSocket subprotocol that carries a token.
const SubprotocolPrefix = "aurora.bearer."

// ErrMissing is (wrapped in) what Verify returns for a request that carries
// no token where the route looks. It wraps token.ErrInvalid: no token is no
// valid token.
var ErrMissing = fmt.Errorf("%w: no token in the request", token.ErrInvalid)

// missingError is ErrMissing with the 401 body that says where a token was
// wanted.
type missingError struct{ body string }

func (e missingError) Error() string { return ErrMissing.Error() + " (" + e.body + ")" }
func (e missingError) Unwrap() error { return ErrMissing }

// Token returns the token r carries in one of from, looking at the
// Authorization header, then the subprotocols, then the query; ok is false
// when none carries one. An aurora.bearer. subprotocol is the answer even
// when empty (then ok is false): the client chose it over the query.
func Token(r *http.Request, from Source) (raw string, ok bool) {
	if from&Bearer != 0 {
		if raw, ok := bearer(r.Header.Get("Authorization")); ok {
			return raw, true
		}
	}
	if from&Subprotocol != 0 {
		if raw, found := subprotocol(r); found {
			return raw, raw != ""
		}
	}
	if from&Query != 0 {
		raw := r.URL.Query().Get("token")
		return raw, raw != ""
	}
	return "", false
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, raw, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	raw = strings.TrimSpace(raw)
	return raw, raw != ""
}

// subprotocol returns the token of the first aurora.bearer.<token>
// subprotocol the client offers, and whether it offers one.
func subprotocol(r *http.Request) (string, bool) {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, SubprotocolPrefix) {
				return p[len(SubprotocolPrefix):], true
			}
		}
	}
	return "", false
}

// Verify returns the claims of the token r carries in one of from: an error
// wrapping ErrMissing when it carries none, else what tokens.Verify says
// (token.ErrInvalid or token.ErrExpired). Pass a refusal to Unauthorized.
func Verify(r *http.Request, tokens *token.Issuer, from Source) (token.Claims, error) {
	raw, ok := Token(r, from)
	if !ok {
		body := "missing token"
		if from == Bearer {
			body = "missing bearer token"
		}
		return token.Claims{}, missingError{body}
	}
	return tokens.Verify(raw)
}

// Unauthorized answers a request Verify refused with err: 401
// {"error": "missing bearer token" | "missing token" | "invalid token" |
// "token expired"} and WWW-Authenticate: Bearer realm="aurora", with
// error="invalid_token" when a token was sent but refused (RFC 6750 §3.1).
func Unauthorized(w http.ResponseWriter, err error) {
	challenge := `Bearer realm="aurora", error="invalid_token"`
	msg := "invalid token"
	var missing missingError
	switch {
	case errors.As(err, &missing):
		challenge, msg = `Bearer realm="aurora"`, missing.body
	case errors.Is(err, ErrMissing):
		challenge, msg = `Bearer realm="aurora"`, "missing token"
	case errors.Is(err, token.ErrExpired):
		msg = "token expired"
	}
	w.Header().Set("WWW-Authenticate", challenge)
	app.WriteError(w, http.StatusUnauthorized, msg)
}
