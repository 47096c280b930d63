package chat

import (
	"strconv"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// slot is Redis Cluster's hash slot of a key: CRC16 (XMODEM) of the key,
// or of the first non-empty {tag} in it, modulo 16384.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// TestSendScriptKeysShareASlot: the send script's keys must all live in the
// room's stream's slot, or a Redis Cluster refuses the script (CROSSSLOT):
// with one shard the names are the ones before shards existed, all in
// chat:messages's slot; with 3 each room's keys are in its shard stream's.
func TestSendScriptKeysShareASlot(t *testing.T) {
	if slot("123456789") != 12739 {
		t.Fatalf("CRC16 check value: got %d", slot("123456789")) // the spec's test vector
	}
	// One shard: AuroraChat's names, unchanged.
	c := apptest.RedisClient(t, apptest.RedisURL(t))
	one := &sender{redis: c}
	keys, args := one.scriptArgs(outgoing{Room: "general", UserID: "u", Text: "x", ClientID: "c-1"})
	wantKeys := []string{"chat:dedupe:{chat:messages}:u:general:c-1", "chat:rl:{chat:messages}:u:general",
		"chat:rlu:{chat:messages}:u", "chat:messages", "chat:dedupe:{chat:messages}:u:c-1"}
	if strings.Join(keys, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("one shard: keys %v, want %v", keys, wantKeys)
	}
	if args[4] != "chat.general" { // a single Redis: classic PUBLISH on AuroraChat's channel
		t.Errorf("one shard: channel %q", args[4])
	}
	for _, shards := range []bus.Shards{1, 3} {
		for _, room := range []string{"general", "dev", "a", "x-1_2", "room-42"} {
			stream := shards.StreamOf(room)
			want := slot(stream)
			tag := keyTag(shards, room)
			for _, k := range []string{
				roomRateKey(tag, "507f1f77bcf86cd799439011", room),
				userRateKey(tag, "507f1f77bcf86cd799439011"),
				dedupeKey(tag, "507f1f77bcf86cd799439011", room, "c-1"),
				dedupeKey(tag, "u", room, "{weird}client"),
				legacyDedupeKey(tag, "507f1f77bcf86cd799439011", "c-1"),
				lifeDedupeKey(tag, bus.TypeEdit, "u", room, "c-1"),
				lifeDedupeKey(tag, bus.TypeRead, "u", room, "c-1"),
				tombKey(tag, room, bus.ID{Ms: 1732670000000, Seq: 3}),
				bus.ReadMarkerKey(shards, room, "u"),
				readRateKey(tag, "u"),
			} {
				if got := slot(k); got != want {
					t.Errorf("shards %d: key %s is in slot %d, the stream %s in %d", shards, k, got, stream, want)
				}
			}
			s := &sender{redis: c, shards: shards}
			target := bus.ID{Ms: 1732670000000}
			for _, m := range []outgoing{
				{Room: room, UserID: "u", Text: "x", ClientID: "c"},
				{Room: room, UserID: "u", Text: "x", ClientID: "c", ReplyTo: target.String()},
				{Room: room, UserID: "u", Text: "x", ClientID: "c", Type: bus.TypeEdit, MessageID: target},
				{Room: room, UserID: "u", ClientID: "c", Type: bus.TypeDelete, MessageID: target},
				{Room: room, UserID: "u", ClientID: "c", Type: bus.TypeReact, MessageID: target, Emoji: "👍", On: true},
			} {
				keys, _ := s.scriptArgs(m)
				if keys[3] != stream {
					t.Errorf("shards %d: room %s's script key is %s, its stream %s", shards, room, keys[3], stream)
				}
				if m.Type != "" && keys[0] == dedupeKey(tag, "u", room, "c") {
					t.Errorf("a %s shares a message's dedupe key %s", m.Type, keys[0])
				}
				for _, k := range keys {
					if got := slot(k); got != want {
						t.Errorf("shards %d: script key %s is in slot %d, the stream %s in %d", shards, k, got, stream, want)
					}
				}
			}
		}
	}
}

// TestRoomShards: a room's shard is FNV-1a 32 of its name modulo the
// count (the documented rule, which every process and version must apply
// alike), shard 0's stream is chat:messages, and 3 shards spread rooms
// over three streams in three different slots.
func TestRoomShards(t *testing.T) {
	for _, room := range []string{"general", "dev", "a"} {
		if got := bus.Shards(1).Of(room); got != 0 {
			t.Errorf("one shard: room %s on shard %d", room, got)
		}
		if got := bus.Shards(0).StreamOf(room); got != bus.Stream {
			t.Errorf("zero value: room %s on stream %s", room, got)
		}
	}
	// FNV-1a 32 written out from the published algorithm, checked on its
	// test value for "a", independently of hash/fnv.
	fnv := func(s string) uint32 {
		h := uint32(2166136261)
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		return h
	}
	if fnv("a") != 0xe40c292c {
		t.Fatalf("FNV-1a of a = %#x", fnv("a"))
	}
	seen := map[int]int{}
	for i := range 300 {
		room := "room-" + strconv.Itoa(i)
		got := bus.Shards(3).Of(room)
		if want := int(fnv(room) % 3); got != want {
			t.Fatalf("room %s on shard %d, FNV-1a says %d", room, got, want)
		}
		seen[got]++
	}
	for k := range 3 {
		if seen[k] < 60 {
			t.Errorf("shard %d holds %d of 300 rooms: %v", k, seen[k], seen)
		}
	}
	if got := strings.Join(bus.Shards(3).Streams(), " "); got != "chat:messages chat:messages:1 chat:messages:2" {
		t.Errorf("streams of 3 shards: %s", got)
	}
	slots := map[uint16]bool{}
	for _, st := range bus.Shards(3).Streams() {
		slots[slot(st)] = true
	}
	if len(slots) != 3 {
		t.Errorf("the 3 shard streams share slots: %v", slots)
	}
}

// TestShardedChannelsShareTheStreamSlot: on a Redis Cluster the send
// script SPUBLISHes inside the script, which Redis allows only on a
// channel of the script's slot: a room's sharded message channel is in its
// stream's slot; its presence and typing channels are in shard 0's, and
// ChannelsBySlot groups them so that each SSUBSCRIBE is of one slot.
func TestShardedChannelsShareTheStreamSlot(t *testing.T) {
	for _, shards := range []bus.Shards{1, 3} {
		ps := bus.ShardedPubSub().WithShards(shards)
		for _, room := range []string{"general", "dev", "a", "x-1_2", "room-42"} {
			if got, want := slot(ps.Channel(room)), slot(shards.StreamOf(room)); got != want {
				t.Errorf("shards %d: channel %s in slot %d, its stream in %d", shards, ps.Channel(room), got, want)
			}
			for _, ch := range []string{ps.PresenceChannel(room), ps.TypingChannel(room)} {
				if got, want := slot(ch), slot(bus.Stream); got != want {
					t.Errorf("shards %d: channel %s in slot %d, shard 0's stream in %d", shards, ch, got, want)
				}
			}
			n := 0
			for shard, chs := range ps.ChannelsBySlot(room) {
				for _, ch := range chs {
					n++
					if got, want := slot(ch), slot(bus.ShardStream(shard)); got != want {
						t.Errorf("shards %d: channel %s grouped under shard %d, in slot %d not %d", shards, ch, shard, got, want)
					}
				}
			}
			if n != 3 {
				t.Errorf("shards %d: room %s has %d channels by slot", shards, room, n)
			}
		}
	}
	if got := bus.ShardedPubSub().Channel("general"); got != "{chat:messages}chat.general" {
		t.Errorf("one shard's sharded channel = %s", got)
	}
	// The classic names are AuroraChat's, unchanged, whatever the shards.
	if got := (bus.PubSub{}).WithShards(3).Channels("general"); strings.Join(got, " ") != "chat.general presence.general typing.general" {
		t.Errorf("classic channels = %v", got)
	}
}
