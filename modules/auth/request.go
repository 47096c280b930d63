package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/auroradev/aurora/app/store"
)

// maxBody bounds request bodies: credentials are tiny, and bcrypt never
// reads more than 72 bytes of a password anyway.
const maxBody = 16 << 10

// requestError is a client error: the status and the message sent back.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// credentials is the body of register and login.
type credentials struct {
	Username string
	Password string
}

// readCredentials decodes {"username": "...", "password": "..."} strictly
// enough that nothing but two non-empty strings gets through: a field that
// is an object ({"$gt": ""}), a number or null is refused by name instead of
// being coerced, so no query operator or surprise type ever reaches the store.
// Unknown fields are ignored, as AuroraChat does.
func readCredentials(w http.ResponseWriter, r *http.Request) (credentials, *requestError) {
	if rerr := checkContentType(r.Header.Get("Content-Type")); rerr != nil {
		return credentials{}, rerr
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return credentials{}, &requestError{http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body too large (limit %d bytes)", maxBody)}
		}
		return credentials{}, badRequest("could not read request body")
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return credentials{}, badRequest("request body is empty; want a JSON object with username and password")
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return credentials{}, badRequest("malformed JSON at byte %d", syn.Offset)
		}
		return credentials{}, badRequest("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return credentials{}, badRequest("unexpected data after the JSON object")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return credentials{}, badRequest("request body must be a JSON object with username and password")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return credentials{}, badRequest("malformed JSON")
	}
	var c credentials
	var rerr *requestError
	if c.Username, rerr = stringField(fields, "username"); rerr != nil {
		return credentials{}, rerr
	}
	if c.Password, rerr = stringField(fields, "password"); rerr != nil {
		return credentials{}, rerr
	}
	return c, nil
}

// stringField returns the non-empty string field name of fields.
func stringField(fields map[string]json.RawMessage, name string) (string, *requestError) {
	v, ok := fields[name]
	if !ok {
		return "", badRequest("%s is required", name)
	}
	// json.Unmarshal accepts null into a string as "no change": refuse it here.
	var s string
	if bytes.Equal(v, []byte("null")) || json.Unmarshal(v, &s) != nil {
		return "", badRequest("%s must be a string", name)
	}
	if s == "" {
		return "", badRequest("%s is required", name)
	}
	return s, nil
}

// checkContentType accepts application/json, with a UTF-8 charset or none
// (JSON is UTF-8 by definition).
func checkContentType(ct string) *requestError {
	const want = "Content-Type must be application/json"
	if ct == "" {
		return &requestError{http.StatusUnsupportedMediaType, want}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &requestError{http.StatusUnsupportedMediaType, want}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return &requestError{http.StatusUnsupportedMediaType, want + " in UTF-8"}
	}
	return nil
}

// validUsername reports whether name may be registered: 3-32 characters of
// A-Z a-z 0-9 _ . - (ASCII only, so case folding is unambiguous).
func validUsername(name string) bool {
	if len(name) < 3 || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

const (
	msgUsername = "username must be 3-32 characters of A-Z a-z 0-9 _ . -"
	msgPassword = "password must be 8-72 bytes"
)

// InvalidError says which rule a new username or password breaks.
type InvalidError struct{ msg string }

func (e *InvalidError) Error() string { return e.msg }

// CheckPassword enforces the password rule: 8-72 bytes (bcrypt reads no
// more than 72).
func CheckPassword(password string) error {
	if len(password) < 8 || len(password) > 72 {
		return &InvalidError{msgPassword}
	}
	return nil
}

// HashPassword checks and bcrypt-hashes a password.
func HashPassword(password string, cost int) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(hash), nil
}

// NewUser validates a registration and hashes its password: the one rule
// set for users created over HTTP and by `aurora users create`. A broken
// rule is an *InvalidError.
func NewUser(username, password string, cost int) (store.User, error) {
	if !validUsername(username) {
		return store.User{}, &InvalidError{msgUsername}
	}
	hash, err := HashPassword(password, cost)
	if err != nil {
		return store.User{}, err
	}
	return store.User{Username: username, PasswordHash: hash}, nil
}
