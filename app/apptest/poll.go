package apptest

import (
	"testing"
	"time"
)

// pollEvery is how often Poll and Eventually look again.
const pollEvery = 10 * time.Millisecond

// Poll calls cond every 10 ms until it holds or within has passed, and
// reports whether it held. It is for state that offers no signal to wait
// on (metrics, readiness, Redis and store contents); where the code under
// test can signal, wait on the signal instead.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// Eventually is Poll that fails the test, naming what it waited for, when
// cond does not hold within the time given.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}
