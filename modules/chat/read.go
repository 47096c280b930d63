package chat

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// The read script: a user's read marker of a room, moved only forward, in
// one round trip (the Redis side of a read frame, life.go).

// readRate is how many read markers a user may move per window
// (rateWindowMs) in the rooms of one stream shard.
const readRate = 10

// readRateKey is the per-user rate key of read markers.
func readRateKey(tag, userID string) string { return "chat:rlr:" + tag + ":" + userID }

// readScript moves a read marker forward, in ONE round trip:
//  0. a resend (the clientId's dedupe key, KEYS[4], is set: ARGV[13] is
//     chat.dedupe_window in ms, "0" without a clientId) answers {5, the
//     original event's id}, like a message's resend;
//  1. when the marker (KEYS[1], bus.ReadMarkerKey) is at or past the id
//     already, answers {1, marker}, appending nothing (so a resend is
//     never stored twice, and an older id never moves it back);
//  2. enforces readRate per user (KEYS[2], readRateKey): {2, ms until the
//     window opens};
//  3. XADDs the read entry to the room's stream (KEYS[3]) with Redis'
//     clock as ts, as the send script does, sets the marker with PX
//     bus.ReadMarkerTTL (and the dedupe key with PX ARGV[13]) and
//     publishes the read frame assembled around the id and ts: {0, eventId}.
//
// The marker key expires (bus.ReadMarkerTTL after its last move) while the
// store keeps the marker for good: without the key the script answers
// {4, ""}, and is run again with the store's marker as the floor (ARGV[12];
// "0-0" for none), so an older id never moves a marker back after a week
// away.
//
// ARGV: the id read, readRate, windowMs, the marker's PX, channel, prefix,
// middle, suffix, the ts field's name, the publish command, "1" to rewrite
// the marker a not-moved answer comes from (chat.ack_replicas: see
// scriptArgs) else "0", the floor ("" unknown: ask), the dedupe window,
// then the entry's field-value pairs.
var readScript = rueidis.NewLuaScript(readLua)

//go:embed read.lua
var readLua string

var readSHA = scriptSHA(readLua)

// readResult is a read script's outcome: ID is the read event's id when the
// marker moved (or a resend of a read that moved it: the same answer),
// else (Duplicate) the marker it stays at.
type readResult struct{ sendResult }

// read runs the read script for m (a read entry); with chat.ack_replicas,
// also WAIT. floor reads the store's marker of the room (the zero id for
// none) when Redis no longer has one.
func (s *sender) read(ctx context.Context, m outgoing, floor func(ctx context.Context, room, userID string) (bus.ID, error)) (readResult, error) {
	ps := bus.PubSubOf(s.redis).WithShards(s.shards)
	e := m.entry()
	prefix, middle, suffix, err := e.LifeFrameParts()
	if err != nil {
		return readResult{}, fmt.Errorf("read marker of room %s: %w", m.Room, err)
	}
	tag := keyTag(s.shards, m.Room)
	touch := "0"
	if s.cfg.AckReplicas > 0 {
		touch = "1"
	}
	dedupeMs := "0"
	if m.ClientID != "" {
		dedupeMs = strconv.FormatInt(s.cfg.DedupeWindow.Milliseconds(), 10)
	}
	keys := []string{bus.ReadMarkerKey(s.shards, m.Room, m.UserID), readRateKey(tag, m.UserID), s.shards.StreamOf(m.Room),
		lifeDedupeKey(tag, bus.TypeRead, m.UserID, m.Room, m.ClientID)}
	args := append([]string{
		m.MessageID.String(), strconv.Itoa(readRate), strconv.Itoa(rateWindowMs), strconv.FormatInt(bus.ReadMarkerTTL.Milliseconds(), 10),
		ps.Channel(m.Room), prefix, middle, suffix, bus.FieldTS, ps.ScriptPublish(), touch, "", dedupeMs,
	}, e.Fields()...)
	const floorArg = 11 // ARGV[12]
	run := func() ([]rueidis.RedisMessage, waited, error) {
		res, w, err := s.execScript(ctx, readScript, readLua, readSHA, keys, args)
		if retryable(err, w.err) && ctx.Err() == nil {
			// The script is idempotent for the same id (a second run
			// finds the marker moved), so one retry after a broken
			// connection is safe.
			res, w, err = s.execScript(ctx, readScript, readLua, readSHA, keys, args)
		}
		return res, w, err
	}
	res, w, err := run()
	if err == nil && len(res) == 2 {
		if status, _ := res[0].AsInt64(); status == 4 {
			floor, ferr := floor(ctx, m.Room, m.UserID)
			if ferr != nil {
				return readResult{}, fmt.Errorf("move read marker of room %s: %w", m.Room, ferr)
			}
			args[floorArg] = floor.String()
			res, w, err = run()
		}
	}
	if err != nil {
		return readResult{}, fmt.Errorf("move read marker of room %s: %w", m.Room, err)
	}
	out, err := decodeRead(res)
	if err != nil {
		return readResult{}, fmt.Errorf("move read marker of room %s: %w", m.Room, err)
	}
	if s.cfg.AckReplicas > 0 && out.RetryAfterMs == 0 {
		out.Replicas = w.replicas
		out.WaitErr = w.err
		out.Unreplicated = w.err != nil || w.replicas < int64(s.cfg.AckReplicas)
	}
	return readResult{out}, nil
}

// decodeRead reads the read script's answer: a resend's {5, id} is the
// original's {0, id}; the rest are the send script's (decodeSend).
func decodeRead(res []rueidis.RedisMessage) (sendResult, error) {
	if len(res) == 2 {
		if status, _ := res[0].AsInt64(); status == 5 {
			s, err := res[1].ToString()
			if err != nil {
				return sendResult{}, fmt.Errorf("bad id: %w", err)
			}
			id, err := bus.ParseID(s)
			if err != nil {
				return sendResult{}, err
			}
			return sendResult{ID: id}, nil
		}
	}
	return decodeSend(res)
}
