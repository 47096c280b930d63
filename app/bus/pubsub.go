package bus

import (
	"strings"

	"github.com/redis/rueidis"
)

// PubSub is the one choice of how the roles publish and subscribe a
// room's channels, made from the Redis client in use:
//
//   - classic (a single Redis, Sentinel, the embedded Redis): PUBLISH and
//     SUBSCRIBE on AuroraChat's names, chat.<room>, presence.<room>,
//     typing.<room>;
//   - sharded (a Redis Cluster client): SPUBLISH and SSUBSCRIBE (Redis 7),
//     so a message travels only through the node that owns its channel's
//     slot, not to every node of the cluster as a classic PUBLISH does
//     (redis/redis#2672). The channels carry the stream's hash tag,
//     {chat:messages}chat.<room> and so on, which puts them in the
//     stream's slot: the send script XADDs and SPUBLISHes in ONE call,
//     which Redis allows only within the slot of the script's keys (on
//     7.0 a channel of another node's slot fails the script with "Script
//     attempted to access a non local key"). So stored and broadcast stay
//     one step, never one without the other, on a cluster as on one Redis.
//
// With stream shards (Shards, bus.shards), a room's message channel
// carries the hash tag of the room's stream ({chat:messages:2}chat.<room>),
// for the same reason; its presence and typing channels, published outside
// any script, keep the tag of shard 0's stream whatever the shard count, so
// that code publishing them needs no shard count. A room's channels are
// then in two slots when its shard is not 0 (ChannelsBySlot).
//
// Everything that publishes or subscribes (the send script, typing,
// presence, room events, the subscriber) asks a PubSub for the channel
// names, the command, and the command's name inside a script. The zero
// value is classic, with one shard.
type PubSub struct {
	sharded bool
	shards  Shards
}

// WithShards is p for n stream shards: what names a room's message channel
// (in the slot of its shard's stream).
func (p PubSub) WithShards(n Shards) PubSub {
	p.shards = n
	return p
}

// Shards is the shard count p names channels for.
func (p PubSub) Shards() Shards { return p.shards }

// PubSubOf is the PubSub for client c: sharded on a Redis Cluster client,
// classic otherwise.
func PubSubOf(c rueidis.Client) PubSub {
	return PubSub{sharded: c.Mode() == rueidis.ClientModeCluster}
}

// ShardedPubSub is the sharded PubSub whatever the client, for tests of
// the names and commands.
func ShardedPubSub() PubSub { return PubSub{sharded: true} }

// Sharded reports whether this is sharded Pub/Sub (SPUBLISH/SSUBSCRIBE).
func (p PubSub) Sharded() bool { return p.sharded }

// StreamSlotTag is the hash tag that puts a key (or a shard channel) in
// the slot of Stream, whose own name has no tag: a Redis Cluster hashes
// "{chat:messages}x" on "chat:messages", so such a key shares the
// stream's slot, which a script touching both requires.
const StreamSlotTag = "{" + Stream + "}" // SlotTag(Stream)

// tag is the prefix of the presence and typing channel names: none on
// classic Pub/Sub (AuroraChat's names), shard 0's hash tag on sharded.
func (p PubSub) tag() string {
	if p.sharded {
		return StreamSlotTag
	}
	return ""
}

// Channel is the channel of a room's messages: chat.<room> (AuroraChat's),
// {<the room's stream>}chat.<room> when sharded ({chat:messages}chat.<room>
// with one shard). Its payload is exactly the MessageFrame clients receive.
func (p PubSub) Channel(room string) string {
	if p.sharded {
		return SlotTag(p.shards.StreamOf(room)) + ChannelPrefix + room
	}
	return ChannelPrefix + room
}

// PresenceChannel carries a room's presence events: a JSON array of
// presence frames, coalesced by the publishing replica over a short
// interval.
func (p PubSub) PresenceChannel(room string) string {
	return p.tag() + PresenceChannelPrefix + room
}

// TypingChannel carries a room's typing frames.
func (p PubSub) TypingChannel(room string) string { return p.tag() + TypingChannelPrefix + room }

// Channels are the three channels of a room a replica with members there
// subscribes. When sharded they are in one slot only when the room is on
// shard 0: see ChannelsBySlot.
func (p PubSub) Channels(room string) []string {
	return []string{p.Channel(room), p.PresenceChannel(room), p.TypingChannel(room)}
}

// ChannelsBySlot are room's channels grouped by the shard whose stream's
// slot they are in: the message channel under the room's shard, presence
// and typing under shard 0 (one group when the room is on shard 0). One
// SSUBSCRIBE takes a group (Redis refuses one across slots); on classic
// Pub/Sub everything is under shard 0.
func (p PubSub) ChannelsBySlot(room string) map[int][]string {
	shard := 0
	if p.sharded {
		shard = p.shards.Of(room)
	}
	if shard == 0 {
		return map[int][]string{0: p.Channels(room)}
	}
	return map[int][]string{shard: {p.Channel(room)}, 0: {p.PresenceChannel(room), p.TypingChannel(room)}}
}

// ChannelKind says which of a room's channels a name is.
type ChannelKind int

// The channels of a room.
const (
	MessageChannel ChannelKind = iota + 1
	PresenceChannelKind
	TypingChannelKind
)

// ParseChannel returns the kind and room of a channel name, of either
// form (classic or sharded), or ok false. Room names hold no '{'
// (ValidRoom), so a leading hash tag is never part of a room.
func ParseChannel(ch string) (kind ChannelKind, room string, ok bool) {
	if strings.HasPrefix(ch, "{") {
		i := strings.IndexByte(ch, '}')
		if i < 0 {
			return 0, "", false
		}
		ch = ch[i+1:]
	}
	for _, k := range []struct {
		prefix string
		kind   ChannelKind
	}{{ChannelPrefix, MessageChannel}, {PresenceChannelPrefix, PresenceChannelKind}, {TypingChannelPrefix, TypingChannelKind}} {
		if strings.HasPrefix(ch, k.prefix) {
			return k.kind, ch[len(k.prefix):], true
		}
	}
	return 0, "", false
}

// Publish is the command that publishes message on channel: PUBLISH, or
// SPUBLISH (sent by a cluster client to the channel slot's primary).
func (p PubSub) Publish(b rueidis.Builder, channel, message string) rueidis.Completed {
	if p.sharded {
		return b.Spublish().Channel(channel).Message(message).Build()
	}
	return b.Publish().Channel(channel).Message(message).Build()
}

// Subscribe is the command that subscribes channels (of one room when
// sharded: one slot).
func (p PubSub) Subscribe(b rueidis.Builder, channels ...string) rueidis.Completed {
	if p.sharded {
		return b.Ssubscribe().Channel(channels...).Build()
	}
	return b.Subscribe().Channel(channels...).Build()
}

// Unsubscribe is the command that unsubscribes channels.
func (p PubSub) Unsubscribe(b rueidis.Builder, channels ...string) rueidis.Completed {
	if p.sharded {
		return b.Sunsubscribe().Channel(channels...).Build()
	}
	return b.Unsubscribe().Channel(channels...).Build()
}

// ScriptPublish is the command a Lua script calls to publish, passed to
// it as an argument (redis.call(ARGV[n], channel, payload)). A script
// that publishes on a sharded channel must declare a key of the channel's
// slot (the room's stream, or a key with its SlotTag).
func (p PubSub) ScriptPublish() string {
	if p.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}
