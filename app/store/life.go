package store

import (
	"fmt"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// This file holds what both backends share of a message's life, so the
// two store it alike: how a room's retention is kept (milliseconds, -1
// forever) and how reaction rows become a message's Reactions.

// RetentionMillis is how both backends store d: milliseconds, -1 for
// RetainForever, a positive duration under a millisecond rounded up to one
// (0 would mean the server's default). CheckRetention has accepted d.
func RetentionMillis(d time.Duration) int64 {
	switch {
	case d == RetainForever:
		return -1
	case d <= 0:
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// RetentionFromMillis reads what RetentionMillis stored (any negative
// value is forever, so a value written by hand still means something).
func RetentionFromMillis(ms int64) time.Duration {
	if ms < 0 {
		return RetainForever
	}
	return time.Duration(ms) * time.Millisecond
}

// CheckRetention refuses a duration SetRetention cannot store: a negative
// one other than RetainForever.
func CheckRetention(d time.Duration) error {
	if d < 0 && d != RetainForever {
		return fmt.Errorf("retention %v: must be 0 (the server's default), positive, or forever", d)
	}
	return nil
}

// ReactionRow is one user's current reaction with one emoji on a message,
// as both backends read them: rows that are on, in the order of their
// event ids.
type ReactionRow struct {
	MessageID string
	UserID    string
	Emoji     string
}

// AggregateReactions turns the on rows of a page's messages (ordered by
// event id) into each message's Reactions keyed by message id: one per
// emoji, in the order of each emoji's oldest current reaction, with Me
// set when viewer is among the users.
func AggregateReactions(rows []ReactionRow, viewer string) map[string][]bus.Reaction {
	out := map[string][]bus.Reaction{}
	for _, r := range rows {
		list := out[r.MessageID]
		i := 0
		for i < len(list) && list[i].Emoji != r.Emoji {
			i++
		}
		if i == len(list) {
			list = append(list, bus.Reaction{Emoji: r.Emoji})
		}
		list[i].Count++
		if viewer != "" && r.UserID == viewer {
			list[i].Me = true
		}
		out[r.MessageID] = list
	}
	return out
}

// CutoffMillis is the first millisecond not before t: a row created at
// millisecond ms was created before t exactly when ms < CutoffMillis(t).
func CutoffMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// EachRoom calls fill once per room among msgs with that room's messages
// (in their order in msgs) and writes what fill left in them back in
// place: a search page spans rooms, but a backend completes a message's
// state (reactions, "me") one room at a time.
func EachRoom(msgs []Message, fill func(room string, part []Message) error) error {
	byRoom := map[string][]int{}
	var rooms []string
	for i, m := range msgs {
		if _, ok := byRoom[m.RoomID]; !ok {
			rooms = append(rooms, m.RoomID)
		}
		byRoom[m.RoomID] = append(byRoom[m.RoomID], i)
	}
	for _, room := range rooms {
		idx := byRoom[room]
		part := make([]Message, len(idx))
		for j, i := range idx {
			part[j] = msgs[i]
		}
		if err := fill(room, part); err != nil {
			return err
		}
		for j, i := range idx {
			msgs[i] = part[j]
		}
	}
	return nil
}
