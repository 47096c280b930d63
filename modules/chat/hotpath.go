package chat

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
)

// Redis keys private to the chat role. Rate-limit windows are fixed one
// second windows, as AuroraChat's (section 5.3). The send script touches
// these keys and the stream in one call, so on a Redis Cluster they must
// share the stream's hash slot: the {chat:messages} hash tag puts them there
// (the stream's own name has no tag, so its slot is that of the whole name).
const streamSlotTag = "{" + bus.Stream + "}"

func roomRateKey(userID, room string) string {
	return "chat:rl:" + streamSlotTag + ":" + userID + ":" + room
}
func userRateKey(userID string) string { return "chat:rlu:" + streamSlotTag + ":" + userID }

// dedupeKey holds the id of the message a user sent to room with clientID:
// a clientId names a message of one room, so the same clientId in another
// room is another message. Room names have no ':' (bus.ValidRoom), so the
// room ends at the first ':' after the user id and the clientId, which may
// hold anything, comes last.
func dedupeKey(userID, room, clientID string) string {
	return "chat:dedupe:" + streamSlotTag + ":" + userID + ":" + room + ":" + clientID
}

// legacyDedupeKey is the key replicas before the per-room dedupe key wrote,
// for any room. The send script still honours one for a message of the same
// room (it reads the room off the stream entry the key names), so a resend
// reaching a new replica of a message an old one accepted is not stored
// twice during a rolling upgrade. Such keys are gone one chat.dedupe_window
// after the last old replica stopped; then this can go.
func legacyDedupeKey(userID, clientID string) string {
	return "chat:dedupe:" + streamSlotTag + ":" + userID + ":" + clientID
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
//     around the id and ts, so the payload is encoded once and carries the id.
//
// KEYS: dedupe, room rate, user rate, stream, legacy dedupe.
// ARGV: roomRate, userRate, windowMs, dedupeMs ("0": no clientId), channel,
// prefix, middle, suffix, the ts field's name, the room field's name and the
// room (to check a legacy key's entry), then the entry's other field-value
// pairs (bus.Entry.Fields: the stream layout is app/bus's).
// Returns {0, id} accepted, {1, id} duplicate, {2, retryAfterMs} limited.
var sendScript = rueidis.NewLuaScript(sendLua)

//go:embed send.lua
var sendLua string

// sendResult is the outcome of the hot path.
type sendResult struct {
	ID           bus.ID
	Duplicate    bool
	RetryAfterMs int64 // > 0: rate limited, nothing stored
}

// outgoing is a validated message to send.
type outgoing struct {
	Room, UserID, Username, Text, ClientID string
}

// sender runs the hot path: it is all a connection needs to send a message.
type sender struct {
	redis rueidis.Client
	cfg   config.Chat
	// scriptCalls counts the send script's calls (what a message costs
	// Redis); tests read it.
	scriptCalls atomic.Int64
}

// send runs the hot-path script for m.
func (s *sender) send(ctx context.Context, m outgoing) (sendResult, error) {
	dedupeMs := "0"
	if m.ClientID != "" {
		dedupeMs = strconv.FormatInt(s.cfg.DedupeWindow.Milliseconds(), 10)
	}
	prefix, middle, suffix := bus.Entry{RoomID: m.Room, UserID: m.UserID, Username: m.Username, Text: m.Text, ClientID: m.ClientID}.FrameParts()
	keys := []string{dedupeKey(m.UserID, m.Room, m.ClientID), roomRateKey(m.UserID, m.Room), userRateKey(m.UserID), bus.Stream,
		legacyDedupeKey(m.UserID, m.ClientID)}
	args := append([]string{
		strconv.Itoa(s.cfg.RoomRate), strconv.Itoa(s.cfg.UserRate), strconv.Itoa(rateWindowMs), dedupeMs,
		bus.Channel(m.Room), prefix, middle, suffix, bus.FieldTS, bus.FieldRoomID, m.Room,
	}, bus.Entry{RoomID: m.Room, UserID: m.UserID, Username: m.Username, Text: m.Text, ClientID: m.ClientID}.Fields()...)
	s.scriptCalls.Add(1)
	res, err := sendScript.Exec(ctx, s.redis, keys, args).ToArray()
	if _, isRedisErr := rueidis.IsRedisErr(err); err != nil && !isRedisErr && m.ClientID != "" && ctx.Err() == nil {
		// A connection that broke while Redis was away fails its next
		// command once (EOF) before the client dials again. With a
		// clientId the script is idempotent (a resend is answered with the
		// original id), so one retry is safe.
		s.scriptCalls.Add(1)
		res, err = sendScript.Exec(ctx, s.redis, keys, args).ToArray()
	}
	if err != nil {
		return sendResult{}, fmt.Errorf("send message to room %s: %w", m.Room, err)
	}
	if len(res) != 2 {
		return sendResult{}, fmt.Errorf("send message to room %s: script answered %d values", m.Room, len(res))
	}
	status, err := res[0].AsInt64()
	if err != nil {
		return sendResult{}, fmt.Errorf("send message to room %s: bad script status: %w", m.Room, err)
	}
	switch status {
	case 0, 1:
		s, err := res[1].ToString()
		if err != nil {
			return sendResult{}, fmt.Errorf("send message to room %s: bad id: %w", m.Room, err)
		}
		id, err := bus.ParseID(s)
		if err != nil {
			return sendResult{}, fmt.Errorf("send message to room %s: %w", m.Room, err)
		}
		return sendResult{ID: id, Duplicate: status == 1}, nil
	case 2:
		wait, err := res[1].AsInt64()
		if err != nil {
			return sendResult{}, fmt.Errorf("send message to room %s: bad retry-after: %w", m.Room, err)
		}
		// PTTL counts whole milliseconds, rounded down, and the window is
		// still closed at its last instant: one more millisecond (within the
		// window's length) lets a client that waits exactly retryAfterMs in
		// on its first retry.
		return sendResult{RetryAfterMs: min(max(wait, 0)+1, rateWindowMs)}, nil
	}
	return sendResult{}, fmt.Errorf("send message to room %s: unknown script status %d", m.Room, status)
}
