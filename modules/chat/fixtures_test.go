package chat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/auroradev/aurora/config"
)

// Set-ups the chat tests share (the WebSocket client is in helpers_test.go).

// configWith is chatConfig with the chat settings set changes.
func configWith(t testing.TB, set func(c *config.Chat)) *config.Config {
	t.Helper()
	cfg := chatConfig(t)
	set(&cfg.Chat)
	return cfg
}

// aliceAndBobIn dials alice (u1) and bob (u2) and joins both to room.
func (s *server) aliceAndBobIn(room string) (alice, bob *client) {
	s.t.Helper()
	alice = s.dial("u1", "alice")
	bob = s.dial("u2", "bob")
	alice.join(room)
	bob.join(room)
	return alice, bob
}

// sendNumbered sends n acked messages to room, text and clientId numbered
// from 0 after their prefixes, and returns their ids.
func sendNumbered(c *client, room, text, clientID string, n int) []string {
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, c.msg(room, fmt.Sprint(text, i), fmt.Sprint(clientID, i))["id"].(string))
	}
	return ids
}

// getJSON GETs path on s, with tok as Bearer token unless it is empty, and
// returns the status and the decoded JSON body.
func (s *server) getJSON(path, tok string) (int, map[string]any) {
	t := s.t
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}
