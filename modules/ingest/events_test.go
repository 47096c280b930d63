package ingest

import (
	"context"
	"reflect"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/config"
)

// Room events take the messages' path: an event appended with
// bus.AppendEvent is stored once, with its type and event object, among
// the messages of its room; a redelivered batch (a worker that crashed
// between insert and XACK) stores none twice; an event entry whose event
// is broken goes to the dead stream instead of being stored as a message.
func TestRoomEventsStoredOnce(t *testing.T) {
	testEventsStoredOnce(t, testStore(t))
}

// The same on the MongoDB store (FerretDB, or AURORA_TEST_MONGO_URL).
func TestRoomEventsStoredOnceIntoMongoDB(t *testing.T) {
	url := storetest.MongoURL(t)
	ctx := context.Background()
	cfg := config.Config{Mongo: config.Mongo{URL: url}}
	st, err := mongostore.Open(ctx, url, cfg.MongoDatabase())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	testEventsStoredOnce(t, st)
}

func testEventsStoredOnce(t *testing.T, st store.Store) {
	t.Helper()
	rc := testRedis(t)
	ctx := context.Background()
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	events := []bus.RoomEvent{
		{Event: bus.EventRoomCreated, RoomType: "private", Title: "Dev", Topic: "builds"},
		{Event: bus.EventMemberInvited, Target: "665f1c2a9b1e8a0012345679", TargetName: "bob"},
		{Event: bus.EventMemberKicked, Target: "665f1c2a9b1e8a0012345679", TargetName: "bob", Reason: "spam \"again\""},
		{Event: bus.EventMemberMuted, Target: "665f1c2a9b1e8a0012345679", TargetName: "bob", Until: 1764601200000},
	}
	var ids []string
	want := map[string]bus.Entry{}
	for i, ev := range events {
		ids = append(ids, addEntries(t, rc, "dev", 2)...)
		e, err := bus.NewEvent("dev", "665f1c2a9b1e8a0012345678", "alice", ev)
		if err != nil {
			t.Fatal(err)
		}
		id, err := bus.AppendEvent(ctx, rc, 1, e)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		e.ID, e.TS = id, int64(id.Ms)
		ids = append(ids, id.String())
		want[id.String()] = e
	}
	broken := xadd(t, rc, bus.FieldRoomID, "dev", bus.FieldUserID, "u1", bus.FieldUsername, "alice",
		bus.FieldText, "alice left the room", bus.FieldType, bus.TypeEvent, bus.FieldEvent, `{"event":"member_left"`)

	// A worker read everything, stored the first 7 (the first two events
	// among them) and crashed before XACK.
	const name = "host-1"
	crashedRead(t, rc, st, name, len(ids)+1, 7)

	w := startWorker(t, Options{Redis: rc, Store: st, Config: testConfig(), Consumer: name})
	eventually(t, "pending list empty", func() bool { p, lag := groupState(t, rc); return p == 0 && lag == 0 })
	assertStoredOnce(t, st, "dev", ids)
	if d, i := value(w.m.duplicates), value(w.m.inserted); d != 7 || i != float64(len(ids)-7) {
		t.Errorf("duplicates %v inserted %v, want 7 and %d", d, i, len(ids)-7)
	}

	for _, m := range stored(t, st, "dev") {
		e, isEvent := want[m.ID.String()]
		if !isEvent {
			if m.Type != "" || m.Event != "" {
				t.Errorf("message %s stored with type %q event %q", m.ID, m.Type, m.Event)
			}
			continue
		}
		if m.Type != bus.TypeEvent || m.Event != e.Event {
			t.Errorf("room event %s stored with type %q and event %q, want %q and %s: "+
				"the store must keep Message.Type and Message.Event (columns type, event)", m.ID, m.Type, m.Event, bus.TypeEvent, e.Event)
			continue
		}
		if back := m.Entry(); !reflect.DeepEqual(back, e) {
			t.Errorf("room event %s reads back as %+v, want %+v", m.ID, back, e)
		}
		live, _ := e.EventFrameJSON()
		if got := m.Entry().FrameJSON(); string(got) != string(live) {
			t.Errorf("room event %s: stored frame\n%s\nwant the live one\n%s", m.ID, got, live)
		}
	}

	dead, err := bus.DeadEntries(ctx, rc, 10)
	if err != nil || len(dead) != 1 || dead[0].DeadID != broken {
		t.Fatalf("dead entries %+v (%v), want the broken event %s", dead, err, broken)
	}
}
