package chat

import (
	"strings"
	"testing"

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
// stream's slot, or a Redis Cluster refuses the script (CROSSSLOT).
func TestSendScriptKeysShareASlot(t *testing.T) {
	if slot("123456789") != 12739 {
		t.Fatalf("CRC16 check value: got %d", slot("123456789")) // the spec's test vector
	}
	want := slot(bus.Stream)
	for _, k := range []string{
		roomRateKey("507f1f77bcf86cd799439011", "general"),
		userRateKey("507f1f77bcf86cd799439011"),
		dedupeKey("507f1f77bcf86cd799439011", "general", "c-1"),
		dedupeKey("u", "dev", "{weird}client"),
		legacyDedupeKey("507f1f77bcf86cd799439011", "c-1"),
	} {
		if got := slot(k); got != want {
			t.Errorf("key %s is in slot %d, the stream in %d", k, got, want)
		}
	}
}

// TestShardedChannelsShareTheStreamSlot: on a Redis Cluster the send
// script SPUBLISHes inside the script, which Redis allows only on a
// channel of the script's slot: the sharded channels of every room (and
// presence and typing, subscribed with them in one SSUBSCRIBE) are in the
// stream's slot; the script's arguments name that channel and SPUBLISH.
func TestShardedChannelsShareTheStreamSlot(t *testing.T) {
	want := slot(bus.Stream)
	ps := bus.ShardedPubSub()
	for _, room := range []string{"general", "dev", "a", "x-1_2"} {
		for _, ch := range ps.Channels(room) {
			if got := slot(ch); got != want {
				t.Errorf("sharded channel %s is in slot %d, the stream in %d", ch, got, want)
			}
		}
	}
	// The classic names are AuroraChat's, unchanged.
	if got := (bus.PubSub{}).Channels("general"); strings.Join(got, " ") != "chat.general presence.general typing.general" {
		t.Errorf("classic channels = %v", got)
	}
}
