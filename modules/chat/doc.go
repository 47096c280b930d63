// Package chat is the chat role: Aurora's WebSocket gateway, wire-compatible
// with AuroraChat's chat-service.
//
// A client connects to GET /ws (or GET / with an Upgrade header, where
// AuroraChat clients connect) with a JWT, is joined to room "general" and
// then sends and receives JSON frames (docs/protocol.md). An accepted message
// costs exactly one Redis round trip: a Lua script that checks the resend
// dedupe key and the rate limits, appends the message to its room's
// stream (bus.Shards.StreamOf: bus.Stream with the default one shard) for
// the ingest role, and publishes the finished message frame
// on the room's channel (bus.Channel). Every replica forwards what arrives on
// the channels of the rooms its local connections are in, encoded once per
// replica, through a bounded per-connection queue drained by a writer
// goroutine that runs only while something is queued (an idle connection
// has one goroutine, its reader), so one slow client never holds up the
// others.
//
// The replica subscribes to a room's channels only while it has local members
// in it, on one dedicated Redis connection that is re-established (and every
// room re-subscribed) after a failure. Presence (package presence) and
// history (package history) are separate packages this one calls.
//
// # Layers
//
// The package's files form layers; a file refers only to files of its own
// layer or of layers below it, never up. Files of one layer that share a
// type (queue*.go, rooms.go and fanout.go, conn.go and handle.go, chat.go
// and upgrade.go) refer to each other freely.
//
//  5. gateway, the module: chat.go (registration, Start/Stop/Check, the
//     presence API), upgrade.go (admission and the WebSocket upgrade).
//  4. connection: conn.go (a connection's lifecycle, writer, abuse limits),
//     handle.go (client frames), life.go (a message's life: edit,
//     delete, react, read, and a message's replyTo, attachments and
//     mentions), access.go (the membership rules asked for a join, a
//     message, typing). A conn gets a connDeps, not the
//     gateway, and joins or leaves a room with one call to rooms.
//  3. membership: rooms.go (rooms, the one owner of membership: join and
//     leave), fanout.go (delivery of what Pub/Sub brings, gap recovery),
//     pubsub.go (the subscriber following the hub), hub.go (member, the
//     connection as membership sees it, and the hub of local members),
//     removal.go (a membership change announced by any replica: removed
//     connections, disabled users).
//  2. Redis operations of a message or a connection: hotpath.go (the send
//     script, also of edits, deletes and reactions), read.go (the read
//     marker script), slots.go (the per-user connection cap), typing.go.
//  1. send queue: queue.go (the bounded queue), queue_slow.go (the
//     slow-consumer timer), queue_recovery.go (the replay budget and the
//     per-room buffers of a recovering join).
//  0. wire and basics: frames.go (frames, error and close codes, protocol
//     limits), emoji.go (the reactions' allow-list), metrics.go, policy.go (the Redis timeout, rooms_allowed),
//     cork.go (batched socket writes).
//
// The Lua scripts are in *.lua beside the file that runs them (send.lua:
// hotpath.go, read.lua: read.go, admit.lua: slots.go), embedded and built once.
package chat
