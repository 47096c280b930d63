package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// A message goes stream entry -> stored record -> entry -> client frame, and
// each step keeps what the next one shows: the record read back gives the
// entry it was stored from, and so the frame a client saw live.
func TestMessageRoundTrip(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range []bus.Entry{
		{ID: bus.ID{Ms: 1700000000123, Seq: 4}, RoomID: "dev", UserID: "u1", Username: "alice", Text: "hi \"there\"\u2028", TS: 1700000000123, ClientID: "c1"},
		// AuroraChat's shape: no clientId, ts from the id.
		{ID: bus.ID{Ms: 1704936000000, Seq: 3}, RoomID: "general", UserID: "507f1f77bcf86cd799439011", Username: "bob", Text: "", TS: 1704936000000},
		// A room event: its type and event object travel with it.
		{ID: bus.ID{Ms: 1700000000200, Seq: 0}, RoomID: "dev", UserID: "u1", Username: "alice", Text: "alice kicked bob: spam", TS: 1700000000200,
			Type: bus.TypeEvent, Event: `{"event":"member_kicked","target":"u2","targetName":"bob","reason":"spam"}`},
	} {
		m := MessageFromEntry(e, now)
		if m.Type != e.Type || m.Event != e.Event {
			t.Errorf("record of %+v: type %q event %q", e, m.Type, m.Event)
		}
		if m.Status != "sent" || !m.CreatedAt.Equal(time.UnixMilli(e.TS)) || m.UpdatedAt != now || CheckMessage(m) != "" {
			t.Errorf("record of %+v: %+v (%s)", e, m, CheckMessage(m))
		}
		if back := m.Entry(); !reflect.DeepEqual(back, e) {
			t.Errorf("entry of the record: %+v, want %+v", back, e)
		}
		live, stored := e.FrameJSON(), m.Entry().FrameJSON()
		if string(live) != string(stored) {
			t.Errorf("frame of the stored copy %s, want the live one %s", stored, live)
		}
		var f struct{ Type string }
		if err := json.Unmarshal(stored, &f); err != nil || (f.Type == "room_event") != (e.Type == bus.TypeEvent) {
			t.Errorf("frame of the stored copy %s (%v): wrong type for an entry of type %q", stored, err, e.Type)
		}
	}
	// A record without a creation time (written by hand) shows its id's.
	m := Message{ID: bus.ID{Ms: 42, Seq: 1}, RoomID: "r", UserID: "u"}
	if e := m.Entry(); e.TS != 42 {
		t.Errorf("ts of a record without createdAt: %d, want 42", e.TS)
	}
}
