package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// nextDue returns the earliest time a room is due for a flush.
func (t *Tracker) nextDue() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	for _, d := range t.due {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next, !next.IsZero()
}

// schedule makes this replica flush room after Interval, unless it already
// will.
func (t *Tracker) schedule(roomName string) {
	t.mu.Lock()
	if _, ok := t.due[roomName]; !ok {
		t.due[roomName] = time.Now().Add(t.opt.Interval)
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// flushDue flushes the rooms due by now.
func (t *Tracker) flushDue(ctx context.Context, now time.Time) error {
	t.mu.Lock()
	var rooms []string
	for r, d := range t.due {
		if !d.After(now) {
			rooms = append(rooms, r)
			delete(t.due, r)
		}
	}
	t.mu.Unlock()
	var errs []error
	for _, r := range rooms {
		if err := t.flush(ctx, r, true); err != nil {
			errs = append(errs, err)
			t.retryFlush(r)
		}
	}
	return errors.Join(errs...)
}

// retryFlush schedules another flush of room, after a failed one, an
// Interval later (the events stay pending in Redis).
func (t *Tracker) retryFlush(roomName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.due[roomName]; !ok {
		t.due[roomName] = time.Now().Add(t.opt.Interval)
	}
}

// flushAll flushes every room this replica is due to flush, now.
func (t *Tracker) flushAll(ctx context.Context) error {
	t.mu.Lock()
	rooms := make([]string, 0, len(t.due))
	for r := range t.due {
		rooms = append(rooms, r)
	}
	clear(t.due)
	t.mu.Unlock()
	var errs []error
	for _, r := range rooms {
		if err := t.flush(ctx, r, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flush takes the room's pending events and publishes them, coalesced, as
// one message, after the events of an earlier batch of the room whose
// publish failed. Unless force is set it leaves them to the replica due to
// flush them, if that one is alive. When the publish fails, the coalesced
// events (at most one per user) are kept for the room's next flush, which
// the caller schedules on the error.
func (t *Tracker) flush(ctx context.Context, roomName string, force bool) error {
	f := "0"
	if force {
		f = "1"
	}
	t.mu.Lock()
	unsent := t.unsent[roomName]
	t.mu.Unlock()
	args := append([]string{
		ms(t.now()), strconv.FormatInt(max(t.opt.Interval.Milliseconds(), 1), 10), strconv.Itoa(t.opt.MaxMembers), f,
	}, unsent...)
	res, err := flushScript.Exec(ctx, t.r, keysOf(roomName), args).AsStrSlice()
	if err != nil {
		return fmt.Errorf("take presence events of room %s: %w", roomName, err)
	}
	if len(res) == 0 || res[0] != "1" {
		return nil // another replica is due to flush; unsent stays for ours
	}
	// The script has taken (or dropped as stale) what was unsent.
	t.mu.Lock()
	delete(t.unsent, roomName)
	t.mu.Unlock()
	frames := coalesce(roomName, res[1:])
	if len(frames) == 0 {
		return nil
	}
	payload, err := json.Marshal(frames)
	if err != nil {
		return fmt.Errorf("encode %d presence frames: %w", len(frames), err)
	}
	if t.beforePublish != nil {
		t.beforePublish()
	}
	ps := bus.PubSubOf(t.r) // SPUBLISH on a cluster, PUBLISH elsewhere
	ch := ps.PresenceChannel(roomName)
	if err := t.r.Do(ctx, ps.Publish(t.r.B(), ch, string(payload))).Error(); err != nil {
		t.keepUnsent(roomName, frames)
		return fmt.Errorf("publish %d presence frames on %s (kept for the next flush): %w", len(frames), ch, err)
	}
	return nil
}

// keepUnsent keeps frames, whose publish failed, for room's next flush, as
// pending items: coalesced, they are one per user already.
func (t *Tracker) keepUnsent(roomName string, frames []Frame) {
	items := make([]string, len(frames))
	for i, f := range frames {
		sign := "+"
		if f.Status == StatusOffline {
			sign = "-"
		}
		items[i] = sign + f.UserID + "\x00" + f.User
	}
	t.mu.Lock()
	t.unsent[roomName] = items
	t.mu.Unlock()
}

// coalesce turns pending events ("+" or "-", user id, NUL, username) into
// frames: a user's events alternate online/offline, so an online and an
// offline of one user cancel out, and what is left of each user is one
// frame, in the order of the users' last events.
func coalesce(roomName string, items []string) []Frame {
	type state struct {
		frame Frame
		seq   int
	}
	last := map[string]*state{}
	for i, it := range items {
		if len(it) < 2 || (it[0] != '+' && it[0] != '-') {
			continue // not ours
		}
		id, name, _ := strings.Cut(it[1:], "\x00")
		status := StatusOnline
		if it[0] == '-' {
			status = StatusOffline
		}
		if s, ok := last[id]; ok && s.frame.Status != status {
			delete(last, id)
			continue
		}
		last[id] = &state{seq: i, frame: Frame{Type: "presence", Room: roomName, User: name, UserID: id, Status: status}}
	}
	states := make([]*state, 0, len(last))
	for _, s := range last {
		states = append(states, s)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].seq < states[j].seq })
	frames := make([]Frame, len(states))
	for i, s := range states {
		frames[i] = s.frame
	}
	return frames
}
