// Package presence tracks which users are online in which rooms across all chat replicas, in Redis.
//
// Each room has, in Redis, a sorted set of entries "<userId>\x00<replicaID>"
// scored by their expiry time (ms since epoch). A replica writes an entry
// when the first of its connections of a user joins a room, refreshes the
// scores of all its entries every Refresh and removes an entry when its last
// connection of the user leaves; entries of a replica that died stop being
// refreshed, so readers ignore them once expired and writers purge them.
// Beside the set, a hash counts the live entries of each user: it is what
// decides, atomically in a Lua script, that a user came online (first entry
// across replicas) or went offline (last entry gone).
//
// Those transitions are appended to a per-room pending list in Redis, so
// that they are ordered and coalesced across replicas: the replica that
// appended the first event of a window flushes the room Interval later,
// taking the list atomically, cancelling a user's online/offline pairs and
// publishing what is left as ONE JSON array on bus.PresenceChannel(room).
// A batch whose publish fails is kept by the replica that took it (one
// event per user, the latest) and retried with the room's next flush, ahead
// of the newer events; an event of it whose user has no newer event and no
// longer has that state (another replica published a newer change) is
// dropped as stale, so the latest state wins.
// Rooms with more than MaxMembers users publish nothing; clients then poll
// the members (Members).
//
// The keys share a hash tag ("chat:presence:{<room>}...") so the scripts
// work on a Redis Cluster too. Only this package knows them.
//
// Files: tracker.go is the local count of connections per room and user
// and the Redis writes it decides (Join, Leave, Members, Run's refresh);
// flush.go coalesces and publishes a room's pending events; scripts.go
// holds the Lua scripts (*.lua, embedded) and the Redis keys and arguments
// they take.
package presence
