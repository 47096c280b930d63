package bus

import (
	"hash/fnv"
	"strconv"
)

// This file holds the stream shards (bus.shards): which stream a room's
// messages and room events go to.

// MaxShards bounds bus.shards: each shard is a stream, a consumer group
// and a reading loop in every ingest process.
const MaxShards = 64

// Shards is the number of message streams (bus.shards). Shard 0 is Stream
// itself, AuroraChat's name, so with one shard (the default, and what the
// zero value means) nothing differs from a single stream; shard i > 0 is
// the stream "chat:messages:<i>" (ShardStream). On a Redis Cluster each
// stream has its own slot, so N shards spread the message traffic over up
// to N primaries.
//
// A room's shard is FNV-1a (32 bit) of its name modulo the shard count
// (Of): every message and room event of a room goes through one stream, so
// ids stay ordered, and comparable, within a room. Ids of two rooms on two
// shards come from two streams and are not ordered against each other.
//
// The count is a deployment-time choice, the same in every process:
// changing it moves rooms to other streams. What is already in a stream
// stays there and is ingested all the same (ingest reads every stream up to
// the count), but the since-replay and history's not-yet-stored tail of a
// moved room read its new stream only, so change the count with the chat
// role stopped and ingest drained (docs/deploy.md).
type Shards int

// N is the shard count: 1 for the zero value.
func (n Shards) N() int {
	if n < 1 {
		return 1
	}
	return int(n)
}

// Of is room's shard: FNV-1a 32 of the name, modulo N.
func (n Shards) Of(room string) int {
	if n.N() == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(room)) // a hash.Hash never fails to write
	return int(h.Sum32() % uint32(n.N()))
}

// StreamOf is the stream of room's messages and room events.
func (n Shards) StreamOf(room string) string { return ShardStream(n.Of(room)) }

// Streams are the shards' streams, shard 0 (Stream) first.
func (n Shards) Streams() []string {
	out := make([]string, n.N())
	for i := range out {
		out[i] = ShardStream(i)
	}
	return out
}

// ShardStream is the stream of shard i: Stream for 0, "chat:messages:<i>"
// after. (The dead stream, "chat:messages:dead", is one for all shards.)
func ShardStream(i int) string {
	if i == 0 {
		return Stream
	}
	return Stream + ":" + strconv.Itoa(i)
}

// SlotTag is the hash tag that puts a key or a shard channel in the slot
// of stream, whose own name has no tag: a Redis Cluster hashes
// "{chat:messages:2}x" on "chat:messages:2", the stream's whole name, so a
// script may touch both.
func SlotTag(stream string) string { return "{" + stream + "}" }
