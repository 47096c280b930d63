package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// subscribe receives the payloads published on channel until the test
// ends; it returns once Redis confirmed the subscription.
func subscribe(t *testing.T, url, channel string) <-chan string {
	t.Helper()
	c := apptest.RedisClient(t, url)
	got := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = c.Receive(ctx, c.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
			got <- m.Message
		})
	}()
	apptest.Eventually(t, 5*time.Second, "the subscription to "+channel, func() bool {
		n, err := c.Do(context.Background(), c.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
		return err == nil && n[channel] == 1
	})
	return got
}

func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published within 5 s")
		return ""
	}
}

// TestAppendEvent: one call stores the event in the stream (as ingest and
// history decode it: type, event, the sentence as text, ts the id's time)
// and publishes its frame on the room's channel, the same bytes history
// builds from the stored entry.
func TestAppendEvent(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	ctx := context.Background()
	live := subscribe(t, url, bus.Channel("dev"))

	e, err := bus.NewEvent("dev", "u1", "alice", bus.RoomEvent{Event: bus.EventMemberKicked, Target: "u2", TargetName: "bob", Reason: "spam"})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second).UnixMilli()
	id, err := bus.AppendEvent(ctx, rc, 1, e)
	if err != nil {
		t.Fatal(err)
	}
	if int64(id.Ms) < before || int64(id.Ms) > time.Now().Add(time.Second).UnixMilli() {
		t.Errorf("id %s is not Redis' time now", id)
	}
	xs, err := bus.ReadRange(ctx, rc, bus.Stream, bus.ID{}, bus.MaxID(), true, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 1 || xs[0].ID != id.String() {
		t.Fatalf("stream holds %+v, want the event %s alone", xs, id)
	}
	if ts, ok := xs[0].FieldValues[bus.FieldTS]; ok {
		t.Errorf("ts field %q: an event's time is its id's", ts)
	}
	stored, err := bus.DecodeEntry(xs[0].ID, xs[0].FieldValues)
	if err != nil {
		t.Fatal(err)
	}
	want := e
	want.ID, want.TS = id, int64(id.Ms)
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("stored %+v, want %+v", stored, want)
	}
	frame := receive(t, live)
	if historic, err := stored.EventFrameJSON(); err != nil || string(historic) != frame {
		t.Errorf("live frame\n%s\nhistory's\n%s (%v)", frame, historic, err)
	}
	var f bus.EventFrame
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatal(err)
	}
	if f != (bus.EventFrame{Type: "room_event", ID: id.String(), Room: "dev", Event: "member_kicked", User: "alice", UserID: "u1",
		TS: int64(id.Ms), Target: "u2", TargetName: "bob", Reason: "spam"}) {
		t.Errorf("frame %+v", f)
	}
	if ev, target, ok := bus.PeekEvent([]byte(frame)); !ok || ev != bus.EventMemberKicked || target != "u2" {
		t.Errorf("PeekEvent(live frame) = %q %q %v", ev, target, ok)
	}

	// No dedupe and no rate limit: the same event again, and a burst, are
	// each appended and published.
	for i := 0; i < 20; i++ {
		if _, err := bus.AppendEvent(ctx, rc, 1, e); err != nil {
			t.Fatal(err)
		}
		receive(t, live)
	}
	if n := apptest.StreamLen(t, rc, bus.Stream); n != 21 {
		t.Errorf("stream length %d, want 21", n)
	}
}

// TestAppendEventAfterClockStep: when the stream's last id is ahead of
// Redis' clock (a clock stepped back), the event still goes in, after it,
// and its ts, stored and live, is its id's time.
func TestAppendEventAfterClockStep(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	ctx := context.Background()
	future := time.Now().Add(time.Hour).UnixMilli()
	apptest.XAdd(t, rc, bus.Stream, bus.ID{Ms: uint64(future)}.String(), bus.FieldRoomID, "dev", bus.FieldUserID, "u", bus.FieldText, "t")
	live := subscribe(t, url, bus.Channel("dev"))

	e, _ := bus.NewEvent("dev", "u1", "alice", bus.RoomEvent{Event: bus.EventMemberLeft})
	id, err := bus.AppendEvent(ctx, rc, 1, e)
	if err != nil {
		t.Fatal(err)
	}
	if id.Compare(bus.ID{Ms: uint64(future)}) <= 0 {
		t.Fatalf("id %s not after the last entry %d-0", id, future)
	}
	xs, err := bus.ReadRange(ctx, rc, bus.Stream, id, id, true, 1)
	if err != nil || len(xs) != 1 {
		t.Fatalf("read %s: %+v %v", id, xs, err)
	}
	stored, err := bus.DecodeEntry(xs[0].ID, xs[0].FieldValues)
	if err != nil || stored.TS != int64(id.Ms) {
		t.Fatalf("stored %+v (%v), want ts %d", stored, err, id.Ms)
	}
	var f bus.EventFrame
	if err := json.Unmarshal([]byte(receive(t, live)), &f); err != nil || f.ID != id.String() || f.TS != int64(id.Ms) {
		t.Errorf("frame %+v (%v), want id %s ts %d", f, err, id, id.Ms)
	}
}

// TestAppendEventRefuses: an entry ingest would refuse is neither stored
// nor published.
func TestAppendEventRefuses(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	good, _ := bus.NewEvent("dev", "u1", "alice", bus.RoomEvent{Event: bus.EventMemberLeft})
	for name, mod := range map[string]func(*bus.Entry){
		"a message":     func(e *bus.Entry) { e.Type = "" },
		"bad room":      func(e *bus.Entry) { e.RoomID = "Dev!" },
		"no actor":      func(e *bus.Entry) { e.UserID = "" },
		"not JSON":      func(e *bus.Entry) { e.Event = "{" },
		"unknown event": func(e *bus.Entry) { e.Event = `{"event":"member_exploded"}` },
	} {
		e := good
		mod(&e)
		if id, err := bus.AppendEvent(context.Background(), rc, 1, e); !errors.Is(err, bus.ErrBadEvent) {
			t.Errorf("%s: %s, %v; want ErrBadEvent", name, id, err)
		}
	}
	if n := apptest.StreamLen(t, rc, bus.Stream); n != 0 {
		t.Errorf("stream length %d after refusals", n)
	}
}
