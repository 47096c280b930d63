// Package bus is the contract the roles share on Redis: the names of the
// stream, consumer group and channels, the fields of a stream entry, the
// message id and its arithmetic, the shapes of a message on the wire (stream
// entry, client frame), and every operation on the stream: append's fields,
// group reads, claims, acknowledgements, the trim point and trim, pending
// entries, dead letters, and the classification of Redis's errors. The chat
// role writes what the ingest role reads, the history API and `aurora
// streams` read both, so all of them call this package and none imports
// another. The names are AuroraChat's, so an AuroraChat service and an
// Aurora role can share one Redis.
//
// Files: bus.go names, shard.go the stream shards (a room's stream),
// pubsub.go the Pub/Sub mode (classic or sharded),
// cluster.go the Redis Cluster's view (state, slot owners), id.go ids, entry.go the entry and its frame,
// group.go the consumer group's side (read, claim, ack, leave),
// progress.go what may not be stored yet (ReadBacklog, TrimPoint),
// trim.go, dead.go, inspect.go (the operator's view), errors.go, and
// scripts.go with the Lua scripts of lua/.
package bus

// Stream names and the consumer group, as in AuroraChat.
const (
	// Stream receives every accepted message; its entry id is the message id.
	Stream = "chat:messages"
	// Group is the consumer group of the ingest workers.
	Group = "mongo_workers"
	// DeadStream holds entries that could not be stored after the allowed
	// deliveries, with the reason.
	DeadStream = "chat:messages:dead"
)

// Fields of a stream entry. AuroraChat writes the first four only.
const (
	FieldRoomID   = "roomId"
	FieldUserID   = "userId"
	FieldText     = "text"
	FieldUsername = "username"
	FieldTS       = "ts"
	FieldClientID = "clientId"
	// Fields of a dead-letter entry besides the original ones.
	FieldDeadID     = "deadId"
	FieldDeadReason = "reason"
)

// Pub/Sub channel prefixes. A replica subscribes to the three channels of a
// room while it has local members in it. chat.<room> is AuroraChat's; the
// presence and typing names are the ones its design planned (section 18.1).
const (
	ChannelPrefix         = "chat."
	PresenceChannelPrefix = "presence."
	TypingChannelPrefix   = "typing."
)

// RoomsChangedChannel announces a membership change (membership.Change
// as JSON) to every chat replica: each drops what it cached of it and
// removes the connections a removal concerns (app/membership).
const RoomsChangedChannel = "rooms.changed"

// Channel is the classic Pub/Sub channel of a room's messages
// ("chat.<room>"), as in AuroraChat: PubSub{}.Channel. Code that publishes
// or subscribes asks the PubSub of its client (PubSubOf), which names the
// sharded channels on a cluster.
func Channel(room string) string { return PubSub{}.Channel(room) }

// PresenceChannel is the classic channel of a room's presence events
// (PubSub{}.PresenceChannel).
func PresenceChannel(room string) string { return PubSub{}.PresenceChannel(room) }

// TypingChannel is the classic channel of a room's typing frames
// (PubSub{}.TypingChannel).
func TypingChannel(room string) string { return PubSub{}.TypingChannel(room) }

// RoomOfChannel returns the room of a message channel name (classic or
// sharded), or false.
func RoomOfChannel(ch string) (string, bool) {
	kind, room, ok := ParseChannel(ch)
	if !ok || kind != MessageChannel {
		return "", false
	}
	return room, true
}

// RoomRule says what ValidRoom accepts, in the words of every refusal of a
// room name (API errors, error frames, config and command-line messages).
const RoomRule = "room names are 1-64 characters of a-z 0-9 _ -"

// ValidRoom reports whether name is a room name: 1-64 of [a-z0-9_-]
// (RoomRule). Room names become channel names and keys, so every role
// checks them here.
func ValidRoom(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
