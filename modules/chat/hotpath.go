package chat

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

// Redis keys private to the chat role. Rate-limit windows are fixed one
// second windows, as AuroraChat's (section 5.3). The send script touches
// these keys and the room's stream in one call, so on a Redis Cluster they
// must share that stream's hash slot: each key carries the stream's hash
// tag (tag, bus.SlotTag of the room's shard stream: {chat:messages} with
// one shard, as before shards existed; the stream's own name has no tag, so
// its slot is that of the whole name), and so does bus.PubSub put the
// sharded channel the script SPUBLISHes on.
//
// The per-user limit's key is therefore per shard as well: with bus.shards
// N a user may send chat.user_rate messages per window to the rooms of
// each shard, up to N times that in all (docs/configuration.md). The
// per-room limit and the dedupe key, of one room, are unaffected.

// streamSlotTag is shard 0's tag: every room's with one shard.
const streamSlotTag = bus.StreamSlotTag

// keyTag is the hash tag of room's keys with shards: its stream's.
func keyTag(shards bus.Shards, room string) string { return bus.SlotTag(shards.StreamOf(room)) }

func roomRateKey(tag, userID, room string) string {
	return "chat:rl:" + tag + ":" + userID + ":" + room
}
func userRateKey(tag, userID string) string { return "chat:rlu:" + tag + ":" + userID }

// dedupeKey holds the id of the message a user sent to room with clientID:
// a clientId names a message of one room, so the same clientId in another
// room is another message. Room names have no ':' (bus.ValidRoom), so the
// room ends at the first ':' after the user id and the clientId, which may
// hold anything, comes last.
func dedupeKey(tag, userID, room, clientID string) string {
	return "chat:dedupe:" + tag + ":" + userID + ":" + room + ":" + clientID
}

// legacyDedupeKey is the key replicas before the per-room dedupe key wrote,
// for any room. The send script still honours one for a message of the same
// room (it reads the room off the stream entry the key names), so a resend
// reaching a new replica of a message an old one accepted is not stored
// twice during a rolling upgrade. Such keys are gone one chat.dedupe_window
// after the last old replica stopped; then this can go. (Old replicas knew
// one stream only: with shards the key is looked up in the room's shard's
// slot, where only a room of shard 0 can find one.)
func legacyDedupeKey(tag, userID, clientID string) string {
	return "chat:dedupe:" + tag + ":" + userID + ":" + clientID
}

const rateWindowMs = 1000

// sendScript is the hot path of an accepted message: ONE round trip that
//  1. answers a resend (same user, same room, same clientId within the
//     dedupe window) with the original id, storing and publishing nothing
//     (also for a legacy key naming a stream entry of this room, or one no
//     longer in the stream, as the replicas that wrote it did);
//  2. enforces the per-user-per-room and per-user limits, answering the ms
//     until the window resets when over (the counters get their expiry in
//     the same script that creates them, so none is left without one);
//  3. XADDs the entry (no MAXLEN: the ingest role trims only what it has
//     acknowledged). The id's ms is taken from Redis' clock and also
//     written as the ts field, so the frame's ts is exactly the id's ms;
//     "<ms>-*" fails when the stream's last id is ahead of the clock (a
//     clock step back), then a plain "*" continues after it;
//  4. remembers the id under the dedupe key for the window;
//  5. PUBLISHes the finished frame, assembled from the parts Go encoded
//     around the id and ts, so the payload is encoded once and carries the id:
//     with the command bus.PubSub chose (SPUBLISH on a Redis Cluster, on the
//     room's channel in the stream's slot, so the script stays in one slot;
//     PUBLISH elsewhere).
//
// KEYS: dedupe, room rate, user rate, the room's stream (its shard's),
// legacy dedupe.
// ARGV: roomRate, userRate, windowMs, dedupeMs ("0": no clientId), channel,
// prefix, middle, suffix, the ts field's name, the room field's name and the
// room (to check a legacy key's entry), "1" to rewrite the dedupe key a
// resend is answered from (chat.ack_replicas: see send) else "0", the
// publish command (bus.PubSub.ScriptPublish), then the
// entry's other field-value pairs (bus.Entry.Fields: the stream layout is
// app/bus's).
// Then the tombstone mode (tombNone, tombCheck: refuse when KEYS[6]
// exists, tombSet: refuse when it exists, else set it with the given
// PX once the entry is appended) and its PX in ms, before the fields;
// KEYS[6] is the tombstone key (tombKey) unless the mode is tombNone.
// Returns {0, id} accepted, {1, id} duplicate, {2, retryAfterMs} limited,
// {3, ""} the target is deleted.
var sendScript = rueidis.NewLuaScript(sendLua)

//go:embed send.lua
var sendLua string

// sendResult is the outcome of the hot path.
type sendResult struct {
	ID           bus.ID
	Duplicate    bool
	RetryAfterMs int64 // > 0: rate limited, nothing stored
	// Unreplicated is set, with chat.ack_replicas, when the message is in
	// the stream (ID) but fewer than that many replicas confirmed it within
	// chat.ack_timeout: it must not be acked. Replicas is how many did.
	Unreplicated bool
	Replicas     int64
	// Deleted: the message the event acts on was deleted (its tombstone
	// key is set); nothing was stored.
	Deleted bool
	// WaitErr is why WAIT gave no count, when it failed (Unreplicated).
	WaitErr error
}

// outgoing is a validated message, or edit, delete or reaction, to send.
type outgoing struct {
	Room, UserID, Username, Text, ClientID string

	// Type is "" for a message, else bus.TypeEdit, bus.TypeDelete or
	// bus.TypeReact: a life event of the message MessageID, whose entry
	// and live frame are the bus.Entry's of that type. Emoji and On are a
	// reaction's; ReplyTo, Mentions and Attachments a message's.
	Type        string
	MessageID   bus.ID
	Emoji       string
	On          bool
	ReplyTo     string
	Mentions    []string
	Attachments []bus.Attachment
}

// entry is the stream entry of m (its id and ts are Redis').
func (m outgoing) entry() bus.Entry {
	return bus.Entry{RoomID: m.Room, UserID: m.UserID, Username: m.Username, Text: m.Text, ClientID: m.ClientID,
		Type: m.Type, MessageID: m.MessageID, Emoji: m.Emoji, On: m.On,
		ReplyTo: m.ReplyTo, Mentions: m.Mentions, Attachments: m.Attachments}
}

// tombstone is what the send script does with the tombstone key of the
// message m acts on (tombKey): a delete refuses a message deleted already
// and marks it deleted; an edit, a reaction and a reply refuse a message
// deleted; a plain message has none.
func (m outgoing) tombstone() (mode string, target bus.ID) {
	switch {
	case m.Type == bus.TypeDelete:
		return tombSet, m.MessageID
	case m.Type != "":
		return tombCheck, m.MessageID
	case m.ReplyTo != "":
		if id, err := bus.ParseID(m.ReplyTo); err == nil {
			return tombCheck, id
		}
	}
	return tombNone, bus.ID{}
}

// The send script's tombstone modes (ARGV[14]).
const (
	tombNone  = "0"
	tombCheck = "1"
	tombSet   = "2"
)

// tombTTL is how long a deleted message's tombstone key outlives the
// delete: long after ingest stored the delete, when the store's copy says
// it is deleted.
const tombTTL = bus.ReadMarkerTTL

// tombKey marks the message id of room deleted, from the delete's send
// until long after the store knows (tombTTL): a message still in the
// stream tail reads as sent (history.Lookup does not apply the life events
// after it), so the send script refuses an edit, reaction or reply of a
// deleted message by this key, in the same call that would append it.
func tombKey(tag, room string, id bus.ID) string {
	return "chat:deleted:" + tag + ":" + room + ":" + id.String()
}

// lifeDedupeKey is dedupeKey for a life event of type typ: a clientId
// names one frame of each type, so an edit's clientId never answers a
// message's or a reaction's resend. Its prefix cannot begin a message's
// key (a tag begins with '{').
func lifeDedupeKey(tag, typ, userID, room, clientID string) string {
	return "chat:dedupe:" + typ + ":" + tag + ":" + userID + ":" + room + ":" + clientID
}

// sender runs the hot path: it is all a connection needs to send a message.
type sender struct {
	redis rueidis.Client
	cfg   config.Chat
	// shards is bus.shards: which stream, keys and channel a room's
	// messages use (the zero value: one stream).
	shards bus.Shards
	// scriptCalls counts the send script's calls (what a message costs
	// Redis); tests read it.
	scriptCalls atomic.Int64
	// warned is when (unix ns) a shortfall of replicas was last logged.
	warned atomic.Int64
}

// replicaWarnEvery spaces the WARN lines of messages the replicas did not
// confirm.
const replicaWarnEvery = 10 * time.Second

// warnUnreplicated reports whether to log this shortfall: the first in
// replicaWarnEvery.
func (s *sender) warnUnreplicated() bool {
	now := time.Now().UnixNano()
	last := s.warned.Load()
	return now-last >= int64(replicaWarnEvery) && s.warned.CompareAndSwap(last, now)
}

// sendSHA is the send script's SHA-1, for EVALSHA in the same pipeline as
// WAIT (rueidis.Lua.Exec runs one command and cannot be pipelined).
var sendSHA = scriptSHA(sendLua)

// scriptSHA is the SHA-1 naming src in Redis' script cache.
func scriptSHA(src string) string {
	sum := sha1.Sum([]byte(src)) //nolint:gosec // the script's name in Redis' script cache, not a security use
	return hex.EncodeToString(sum[:])
}

// send runs the hot-path script for m; with chat.ack_replicas, also WAIT.
func (s *sender) send(ctx context.Context, m outgoing) (sendResult, error) {
	keys, args := s.scriptArgs(m)
	res, w, err := s.exec(ctx, keys, args)
	if retryable(err, w.err) && m.ClientID != "" && ctx.Err() == nil {
		// A connection that broke while Redis was away fails its next
		// command once (EOF) before the client dials again. With a
		// clientId the script is idempotent (a resend is answered with the
		// original id), so one retry is safe; so is one after the script
		// ran and the connection broke before WAIT answered.
		res, w, err = s.exec(ctx, keys, args)
	}
	if err != nil {
		return sendResult{}, fmt.Errorf("send message to room %s: %w", m.Room, err)
	}
	out, err := decodeSend(res)
	if err != nil {
		return sendResult{}, fmt.Errorf("send message to room %s: %w", m.Room, err)
	}
	if s.cfg.AckReplicas > 0 && out.RetryAfterMs == 0 {
		out.Replicas = w.replicas
		out.WaitErr = w.err
		out.Unreplicated = w.err != nil || w.replicas < int64(s.cfg.AckReplicas)
	}
	return out, nil
}

// scriptArgs are the send script's KEYS and ARGV for m.
func (s *sender) scriptArgs(m outgoing) (keys, args []string) {
	dedupeMs := "0"
	if m.ClientID != "" {
		dedupeMs = strconv.FormatInt(s.cfg.DedupeWindow.Milliseconds(), 10)
	}
	// With WAIT after the script, a resend answered from the dedupe key
	// rewrites that key (same value, same TTL). WAIT covers "the previous
	// write commands sent in the context of the current connection" (its
	// docs), and a resend may run on a pool connection that last wrote
	// before the original message did (on another connection): without a
	// write of its own, WAIT could count a replica that lacks the message.
	// (Redis 7.0 records a connection's offset after any command, so there
	// it is belt and braces; the docs promise only writes.)
	touch := "0"
	if s.cfg.AckReplicas > 0 {
		touch = "1"
	}
	// The channel and the publish command are the Pub/Sub mode's of the
	// client (sharded on a cluster).
	ps := bus.PubSubOf(s.redis).WithShards(s.shards)
	e := m.entry()
	var prefix, middle, suffix string
	if m.Type == "" {
		prefix, middle, suffix = e.FrameParts()
	} else {
		var err error
		if prefix, middle, suffix, err = e.LifeFrameParts(); err != nil {
			// The handlers send only edits, deletes and reactions here.
			panic(fmt.Sprintf("send script for an entry of type %q: %v", m.Type, err))
		}
	}
	tag := keyTag(s.shards, m.Room)
	dedupe, legacy := dedupeKey(tag, m.UserID, m.Room, m.ClientID), legacyDedupeKey(tag, m.UserID, m.ClientID)
	if m.Type != "" {
		// No legacy key for a life event: old replicas sent none. The
		// dedupe key stands in (the script reads it once already).
		dedupe = lifeDedupeKey(tag, m.Type, m.UserID, m.Room, m.ClientID)
		legacy = dedupe
	}
	keys = []string{dedupe, roomRateKey(tag, m.UserID, m.Room), userRateKey(tag, m.UserID), s.shards.StreamOf(m.Room), legacy}
	mode, target := m.tombstone()
	if mode != tombNone {
		keys = append(keys, tombKey(tag, m.Room, target))
	}
	args = append([]string{
		strconv.Itoa(s.cfg.RoomRate), strconv.Itoa(s.cfg.UserRate), strconv.Itoa(rateWindowMs), dedupeMs,
		ps.Channel(m.Room), prefix, middle, suffix, bus.FieldTS, bus.FieldRoomID, m.Room, touch, ps.ScriptPublish(),
		mode, strconv.FormatInt(tombTTL.Milliseconds(), 10),
	}, e.Fields()...)
	return keys, args
}

// waited is WAIT's answer: the replicas that confirmed, or why none could.
type waited struct {
	replicas int64
	err      error
}

// retryable reports whether a send failed on the connection (not with a
// Redis error) before the script answered or before WAIT did.
func retryable(scriptErr, waitErr error) bool {
	for _, err := range []error{scriptErr, waitErr} {
		if _, isRedisErr := rueidis.IsRedisErr(err); err != nil && !isRedisErr {
			return true
		}
	}
	return false
}

// exec runs the script once; with chat.ack_replicas, pipelined with WAIT on
// the same connection: WAIT counts the replicas that reached the
// connection's last write, so it must follow the script on that
// connection. rueidis sends a DoMulti holding a blocking command (WAIT is
// one) over one connection of its blocking pool, taken for the pipeline
// alone, so the wait holds up no other command; on a Redis Cluster the
// keyless WAIT goes with the script to the primary of its slot. One round
// trip, as without WAIT, plus the replication time.
func (s *sender) exec(ctx context.Context, keys, args []string) ([]rueidis.RedisMessage, waited, error) {
	return s.execScript(ctx, sendScript, sendLua, sendSHA, keys, args)
}

// execScript is exec for any script of the hot path (send.lua, read.lua):
// script is src, whose SHA-1 is sha.
func (s *sender) execScript(ctx context.Context, script *rueidis.Lua, src, sha string, keys, args []string) ([]rueidis.RedisMessage, waited, error) {
	s.scriptCalls.Add(1)
	if s.cfg.AckReplicas == 0 {
		res, err := script.Exec(ctx, s.redis, keys, args).ToArray()
		return res, waited{}, err
	}
	wait := func() rueidis.Completed {
		return s.redis.B().Wait().Numreplicas(int64(s.cfg.AckReplicas)).Timeout(s.cfg.AckTimeout.Milliseconds()).Build()
	}
	rs := s.redis.DoMulti(ctx,
		s.redis.B().Evalsha().Sha1(sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait())
	if e, ok := rueidis.IsRedisErr(rs[0].Error()); ok && e.IsNoScript() {
		// Redis restarted or flushed its scripts: send the script itself
		// (the WAIT of the failed pipeline waited for nothing new).
		rs = s.redis.DoMulti(ctx,
			s.redis.B().Eval().Script(src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build(), wait())
	}
	res, err := rs[0].ToArray()
	if err != nil {
		return nil, waited{}, err
	}
	n, err := rs[1].AsInt64()
	if err != nil {
		return res, waited{err: fmt.Errorf("wait for %d replicas: %w", s.cfg.AckReplicas, err)}, nil
	}
	return res, waited{replicas: n}, nil
}

// decodeSend reads the script's answer.
func decodeSend(res []rueidis.RedisMessage) (sendResult, error) {
	if len(res) != 2 {
		return sendResult{}, fmt.Errorf("script answered %d values", len(res))
	}
	status, err := res[0].AsInt64()
	if err != nil {
		return sendResult{}, fmt.Errorf("bad script status: %w", err)
	}
	switch status {
	case 0, 1:
		s, err := res[1].ToString()
		if err != nil {
			return sendResult{}, fmt.Errorf("bad id: %w", err)
		}
		id, err := bus.ParseID(s)
		if err != nil {
			return sendResult{}, err
		}
		return sendResult{ID: id, Duplicate: status == 1}, nil
	case 3:
		return sendResult{Deleted: true}, nil
	case 2:
		wait, err := res[1].AsInt64()
		if err != nil {
			return sendResult{}, fmt.Errorf("bad retry-after: %w", err)
		}
		// PTTL counts whole milliseconds, rounded down, and the window is
		// still closed at its last instant: one more millisecond (within the
		// window's length) lets a client that waits exactly retryAfterMs in
		// on its first retry.
		return sendResult{RetryAfterMs: min(max(wait, 0)+1, rateWindowMs)}, nil
	}
	return sendResult{}, fmt.Errorf("unknown script status %d", status)
}
