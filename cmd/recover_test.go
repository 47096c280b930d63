package cmd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// wsWait bounds each read and write of the tests' WebSocket clients.
const wsWait = 30 * time.Second

// TestRecoverAfterReconnect: a client reads a few messages of room dev,
// disconnects, 500 messages are sent meanwhile; it reconnects and joins with
// since = the last id it saw: joined says recovered, then exactly those 500
// in order, then the live messages, with no gap and no duplicate. In
// process: the recovery is the chat role's alone.
func TestRecoverAfterReconnect(t *testing.T) {
	cfg := apptest.Config(t)
	// The room and user rates are raised because the test is about what a
	// reconnect recovers, not about the limits: 500 messages from one
	// sender at the defaults (a few a second) would take minutes to send
	// while the receiver is away. The limits at their defaults are what
	// cmd/proctest/live_test.go lives with.
	cfg.Chat.RoomRate = 100000
	cfg.Chat.UserRate = 100000
	srv := apptest.Start(t, cfg)
	wsURL := func(userID, name string) string {
		tok, _, err := srv.App.Host().Tokens.Issue(userID, name)
		if err != nil {
			t.Fatal(err)
		}
		return apptest.WSURL(srv.URL, "/ws", tok)
	}
	readerID, senderID := bson.NewObjectID().Hex(), bson.NewObjectID().Hex()

	reader := apptest.DialChat(t, wsWait, wsURL(readerID, "reader"), nil)
	reader.Join("dev", "")
	talker := apptest.DialChat(t, wsWait, wsURL(senderID, "talker"), nil)
	talker.Join("dev", "")
	var lastSeen string
	for i := range 3 {
		cid := fmt.Sprintf("before-%d", i)
		talker.Send(map[string]any{"type": "message", "room": "dev", "text": cid, "clientId": cid})
		ack := nextWhere(talker, "ack", cid)
		m := nextWhere(reader, "message", cid)
		if m["id"] != ack["id"] {
			t.Fatalf("reader got %v for ack %v", m, ack)
		}
		lastSeen = m["id"].(string)
	}
	reader.Conn.Close(websocket.StatusNormalClosure, "going away for a while")
	// The talker's socket would fill with the 500 echoes nobody reads.
	talker.Conn.Close(websocket.StatusNormalClosure, "")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	missed, err := apptest.SendMessages(ctx, apptest.SendOptions{URL: wsURL(senderID, "talker"), Room: "dev", Prefix: "missed", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	// One connection's messages are accepted in the order sent, and ids
	// increase in acceptance order.
	for i := 1; i < len(missed); i++ {
		if cmpID(t, missed[i-1].ID, missed[i].ID) >= 0 {
			t.Fatalf("acks out of order: %s then %s", missed[i-1].ID, missed[i].ID)
		}
	}

	reader = apptest.DialChat(t, wsWait, wsURL(readerID, "reader"), nil)
	j := reader.Join("dev", lastSeen)
	if j["recovered"] != true {
		t.Fatalf("joined after a reconnect = %v, want recovered true", j)
	}
	for i, want := range missed {
		m := reader.Next("message", "typing")
		if m["id"] != want.ID || m["text"] != want.Text || m["clientId"] != want.ClientID {
			t.Fatalf("replayed message %d = %v, want id %s text %q", i, m, want.ID, want.Text)
		}
	}
	talker = apptest.DialChat(t, wsWait, wsURL(senderID, "talker"), nil)
	talker.Join("dev", "")
	talker.Send(map[string]any{"type": "message", "room": "dev", "text": "live", "clientId": "live"})
	ack := nextWhere(talker, "ack", "live")
	if m := reader.Next("message", "typing"); m["id"] != ack["id"] || m["text"] != "live" {
		t.Fatalf("after the replay got %v, want the live message %v", m, ack["id"])
	}
}

// nextWhere reads until a frame of type typ for clientId, skipping frames
// of other messages, presence and typing; an error or rate_limited frame
// fails the test.
func nextWhere(c *apptest.WS, typ, clientID string) map[string]any {
	return c.Expect(typ+" of "+clientID, func(f map[string]any) bool {
		return f["type"] == typ && f["clientId"] == clientID
	})
}

func cmpID(t *testing.T, a, b string) int {
	t.Helper()
	x, err1 := bus.ParseID(a)
	y, err2 := bus.ParseID(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("ids %q, %q: %v %v", a, b, err1, err2)
	}
	return x.Compare(y)
}
