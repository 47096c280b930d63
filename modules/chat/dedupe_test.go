package chat

import (
	"fmt"
	"testing"

	"github.com/auroradev/aurora/app/bus"
)

// TestDedupeIsPerRoom: a clientId names a message of one room. The same
// clientId reused in another room is a new message, stored and delivered
// there, not answered with the first room's id (issue #11, item 2).
func TestDedupeIsPerRoom(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice, bob := s.aliceAndBobIn("dev")

	inGeneral := alice.msg("general", "in general", "same")
	if f := bob.next("message"); f["id"] != inGeneral["id"] || f["room"] != "general" {
		t.Fatalf("bob got %v, want alice's general message", f)
	}

	alice.send(map[string]any{"type": "message", "room": "dev", "text": "in dev", "clientId": "same"})
	ack := alice.next("ack", "message")
	if ack["id"] == inGeneral["id"] {
		t.Fatalf("the dev message was acked with the general message's id %v: neither stored nor delivered", ack["id"])
	}
	if ack["room"] != "dev" || ack["clientId"] != "same" {
		t.Errorf("ack = %v", ack)
	}
	if f := bob.next("message"); f["id"] != ack["id"] || f["room"] != "dev" || f["text"] != "in dev" {
		t.Errorf("bob got %v, want the dev message %v", f, ack["id"])
	}

	// Within each room a resend is still answered with that room's id.
	if again := alice.resend("dev", "in dev", "same"); again["id"] != ack["id"] {
		t.Errorf("dev resend acked %v, want %v", again["id"], ack["id"])
	}
	if again := alice.resend("general", "in general", "same"); again["id"] != inGeneral["id"] {
		t.Errorf("general resend acked %v, want %v", again["id"], inGeneral["id"])
	}
	// Both stored once each (the messages: joining dev appended room
	// events too).
	var got []string
	for _, e := range messageEntries(t, s.redis) {
		got = append(got, e.FieldValues[bus.FieldRoomID]+"/"+e.ID)
	}
	if want := fmt.Sprint([]string{"general/" + inGeneral["id"].(string), "dev/" + ack["id"].(string)}); fmt.Sprint(got) != want {
		t.Errorf("stream = %v, want %v", got, want)
	}
	for _, room := range []string{"general", "dev"} {
		if ttl, err := do(t, s.redis, "PTTL", dedupeKey(streamSlotTag, "u1", room, "same")).AsInt64(); err != nil || ttl <= 0 {
			t.Errorf("dedupe key of %s: PTTL %d, %v", room, ttl, err)
		}
	}
}

// TestDedupeHonoursLegacyKeys: replicas before the per-room key wrote
// chat:dedupe:{chat:messages}:<userId>:<clientId>. Until those expire (one
// dedupe window after the upgrade), a resend to a new replica of a message
// an old one accepted is answered with the original id when the stream
// entry it names is of the same room, and sent as new when it is of another.
func TestDedupeHonoursLegacyKeys(t *testing.T) {
	s := startChat(t, chatConfig(t))
	alice, bob := s.aliceAndBobIn("dev")

	// What an old replica left: the entry and its key.
	old, err := do(t, s.redis, append([]string{"XADD", bus.Stream, "*"},
		bus.Entry{RoomID: "general", UserID: "u1", Username: "alice", Text: "old", ClientID: "c-old"}.Fields()...)...).ToString()
	if err != nil {
		t.Fatal(err)
	}
	do(t, s.redis, "SET", legacyDedupeKey(streamSlotTag, "u1", "c-old"), old, "PX", "60000")

	if ack := alice.resend("general", "old", "c-old"); ack["id"] != old {
		t.Errorf("resend of the old replica's message acked %v, want %v", ack["id"], old)
	}
	// The same clientId in dev is a new message.
	inDev := alice.msg("dev", "new", "c-old")
	if inDev["id"] == old {
		t.Fatalf("dev message acked with the general message's id")
	}
	if f := bob.next("message"); f["id"] != inDev["id"] {
		t.Errorf("bob got %v, want %v", f, inDev["id"])
	}

	// A legacy key whose entry is no longer in the stream (trimmed after
	// ingest stored it) is trusted, as the old replicas did: better than
	// storing the message twice.
	do(t, s.redis, "SET", legacyDedupeKey(streamSlotTag, "u1", "c-gone"), "1-1", "PX", "60000")
	if ack := alice.resend("dev", "gone", "c-gone"); ack["id"] != "1-1" {
		t.Errorf("resend with a trimmed legacy entry acked %v, want 1-1", ack["id"])
	}
	if n := len(messageEntries(t, s.redis)); n != 2 {
		t.Errorf("the stream holds %d messages, want 2 (the old entry and the dev message)", n)
	}
}
