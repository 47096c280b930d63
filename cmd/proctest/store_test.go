package proctest_test

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// What the processes stored, read back behind their back, and the check
// that it is what the senders were told.

// storedMsg is a stored message as the test reads it back.
type storedMsg struct {
	room, id, clientID, text string
}

// assertStoredExactlyOnce fails unless the store holds every acked message
// exactly once, under the acked id, with its text, and nothing that was not
// sent. A sent but unacked message may be stored (its ack may have been
// lost), at most once.
func assertStoredExactlyOnce(t *testing.T, stored []storedMsg, sent []apptest.SentMessage) {
	t.Helper()
	byClient := map[string]*apptest.SentMessage{}
	for i := range sent {
		byClient[sent[i].ClientID] = &sent[i]
	}
	report, reported := errorsUpTo(t, 10, "")
	storedTimes := map[string]int{}
	seenID := map[string]bool{}
	for _, m := range stored {
		if seenID[m.room+"/"+m.id] {
			report("room %s: id %s stored twice", m.room, m.id)
		}
		seenID[m.room+"/"+m.id] = true
		s := byClient[m.clientID]
		switch {
		case s == nil:
			report("room %s: stored message %s (clientId %q) was never sent", m.room, m.id, m.clientID)
			continue
		case s.Room != m.room || s.Text != m.text:
			report("message %s stored as %s/%q, sent as %s/%q", m.id, m.room, m.text, s.Room, s.Text)
		case s.ID != "" && s.ID != m.id:
			report("message clientId %s stored under id %s, acked as %s", m.clientID, m.id, s.ID)
		}
		storedTimes[m.clientID]++
	}
	acked := 0
	for _, s := range sent {
		n := storedTimes[s.ClientID]
		if s.ID != "" {
			acked++
			if n != 1 {
				report("acked message %s (clientId %s, room %s) stored %d times, want once", s.ID, s.ClientID, s.Room, n)
			}
		} else if n > 1 {
			report("unacked message clientId %s stored %d times", s.ClientID, n)
		}
	}
	reported()
	t.Logf("store holds %d messages; %d sent, %d acked", len(stored), len(sent), acked)
}

// errorsUpTo returns report, which fails the test like t.Errorf for the
// first n reports and counts the others, and reported, which says how many
// were left out ("... and N more" and then more, when more is not empty).
func errorsUpTo(t *testing.T, n int, more string) (report func(format string, args ...any), reported func()) {
	bad := 0
	report = func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= n {
			t.Errorf(format, args...)
		}
	}
	reported = func() {
		t.Helper()
		if bad > n {
			t.Errorf("... and %d more%s", bad-n, more)
		}
	}
	return report, reported
}

// sqliteMessages reads every message of the rooms from the SQLite store in
// dataDir, through the store's own paging.
func sqliteMessages(t *testing.T, dataDir string, rooms []string) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*procWait)
	defer cancel()
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "aurora.db"))
	if err != nil {
		t.Fatalf("open the sqlite store: %v", err)
	}
	defer st.Close(ctx)
	var out []storedMsg
	for _, room := range rooms {
		after := bus.ID{}
		for more := true; more; {
			var page []store.Message
			page, more, err = st.Messages(ctx, room, store.Page{After: &after, Limit: 1000})
			if err != nil {
				t.Fatalf("messages of %s after %s: %v", room, after, err)
			}
			for _, m := range page {
				if m.Type == bus.TypeEvent {
					continue // a room event (joins of the traffic's clients), not a sent message
				}
				out = append(out, storedMsg{room: m.RoomID, id: m.ID.String(), clientID: m.ClientID, text: m.Text})
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return out
}

// mongoMessages reads every message Aurora wrote to the MongoDB database of
// mongoURL with the driver, document by document: a duplicate document
// shows as such, whatever the store's reads would make of it.
func mongoMessages(t *testing.T, mongoURL string) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*procWait)
	defer cancel()
	u, err := url.Parse(mongoURL)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURL))
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Redacted(), err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database(strings.Trim(u.Path, "/")).Collection(mongostore.Messages)
	cur, err := coll.Find(ctx, bson.D{{Key: "msgId", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "roomId", Value: 1}, {Key: "msgId", Value: 1}, {Key: "clientId", Value: 1}, {Key: "text", Value: 1}, {Key: "type", Value: 1}}))
	if err != nil {
		t.Fatalf("find messages: %v", err)
	}
	var docs []struct {
		RoomID   string `bson:"roomId"`
		MsgID    string `bson:"msgId"`
		ClientID string `bson:"clientId"`
		Text     string `bson:"text"`
		Type     string `bson:"type"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatalf("read messages: %v", err)
	}
	out := make([]storedMsg, 0, len(docs))
	for _, d := range docs {
		if d.Type == bus.TypeEvent {
			continue // a room event, not a sent message
		}
		out = append(out, storedMsg{room: d.RoomID, id: d.MsgID, clientID: d.ClientID, text: d.Text})
	}
	return out
}

// storedOf reads back what the processes stored: from MongoDB when
// mongoURL is set, else from the SQLite store in dataDir.
func storedOf(t *testing.T, mongoURL, dataDir string, sent []apptest.SentMessage) []storedMsg {
	t.Helper()
	if mongoURL != "" {
		return mongoMessages(t, mongoURL)
	}
	var rooms []string
	for _, m := range sent {
		if !slices.Contains(rooms, m.Room) {
			rooms = append(rooms, m.Room)
		}
	}
	return sqliteMessages(t, dataDir, rooms)
}
