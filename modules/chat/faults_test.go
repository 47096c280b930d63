package chat

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/coder/websocket"
)

// gatewayOf is the chat module behind a test server.
func gatewayOf(t *testing.T, s *server) *gateway {
	t.Helper()
	g, ok := s.App.Module("chat").(*gateway)
	if !ok {
		t.Fatalf("the server's chat module is %T, not the gateway", s.App.Module("chat"))
	}
	return g
}

// TestServerErrorCloses1011: a connection that cannot be joined to general
// after the upgrade (its Pub/Sub subscription fails) is closed with 1011,
// not left half-working.
func TestServerErrorCloses1011(t *testing.T) {
	s := startChat(t, chatConfig(t))
	// Close the gateway's Pub/Sub connection for good: commands still work
	// (the slot is admitted), subscribing general does not.
	gatewayOf(t, s).subs.close()
	c := s.dialRaw("/ws?token="+url.QueryEscape(s.token("u1", "alice")), nil)
	if got := c.closeStatus(); got != websocket.StatusInternalError {
		t.Fatalf("close = %v, want 1011", got)
	}
}

// TestUpgradeRefusedWhileDraining: once the gateway drains, a new upgrade
// gets 503 {"error"} before any WebSocket exists.
func TestUpgradeRefusedWhileDraining(t *testing.T) {
	s := startChat(t, chatConfig(t))
	gatewayOf(t, s).draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.wsURL()+"/ws?token="+url.QueryEscape(s.token("u1", "alice")), nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err == nil {
		ws.CloseNow()
		t.Fatal("upgrade accepted while draining")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("response %v, err %v; want 503", resp, err)
	}
	// Let the test server's own drain run as usual.
	gatewayOf(t, s).draining.Store(false)
}
