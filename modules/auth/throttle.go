package auth

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/auroradev/aurora/app/store"
)

// failKeyPrefix starts the Redis keys counting failed logins (an
// app/throttle.Throttle of LoginMaxFailures per LoginWindow). The keys are
// private to the auth role, so they live here and not in app/bus.
const failKeyPrefix = "auth:fail:"

// FailKey is the Redis key that counts failed logins for username (folded
// like the store folds usernames, so "Alice" and "ALICE" share a counter).
// Deleting it lifts the throttle early. Very long names, which a client may
// send at login, are hashed so a key stays small.
func FailKey(username string) string {
	k := store.UsernameKey(username)
	if len(k) > 64 {
		sum := sha256.Sum256([]byte(k))
		return failKeyPrefix + "sha256:" + hex.EncodeToString(sum[:])
	}
	return failKeyPrefix + k
}
