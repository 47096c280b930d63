package bus

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// This file holds the dead letters: entries that could not be stored go to
// DeadStream with their original fields plus deadId and reason (AddDead);
// an operator lists them (DeadEntries) and puts them back (Requeue), and
// the requeued entry is stored under its original id (DecodeForStore).

// AddDead appends x to the dead stream: its original fields (a deadId or
// reason of an earlier round replaced) plus deadId msgID and reason. The
// caller acknowledges x after: the XADD and the XACK are two commands, and
// a crash between them leaves a second dead copy on the next delivery,
// which Requeue stores once (same deadId).
func AddDead(ctx context.Context, c rueidis.Client, x rueidis.XRangeSlice, msgID, reason string) error {
	cmd := c.B().Xadd().Key(DeadStream).Id("*").FieldValue()
	for _, fv := range x.FieldValues {
		if fv.Field != FieldDeadID && fv.Field != FieldDeadReason {
			cmd = cmd.FieldValue(fv.Field, fv.Value)
		}
	}
	cmd = cmd.FieldValue(FieldDeadID, msgID).FieldValue(FieldDeadReason, reason)
	if err := c.Do(ctx, cmd.Build()).Error(); err != nil {
		return fmt.Errorf("move %s to %s: %w", x.ID, DeadStream, err)
	}
	return nil
}

// DeadID is the message id an entry that cannot be stored is filed under:
// its deadId when it was requeued already (and that is a valid id), else
// its stream id.
func DeadID(x rueidis.XRangeSlice) string {
	for _, fv := range x.FieldValues {
		if fv.Field == FieldDeadID {
			if _, err := ParseID(fv.Value); err == nil {
				return fv.Value
			}
		}
	}
	return x.ID
}

// DecodeForStore decodes a stream entry as it is to be stored: as
// DecodeEntry does, except that an entry requeued from the dead stream
// carries deadId and is stored under that original message id (so a
// requeued message keeps the id clients saw, and is stored once however
// often it was requeued).
func DecodeForStore(x rueidis.XRangeSlice) (Entry, error) {
	fields := fieldMap(x)
	e, err := DecodeEntry(x.ID, fields)
	if err != nil {
		return Entry{}, err
	}
	if d, ok := fields[FieldDeadID]; ok {
		id, err := ParseID(d)
		if err != nil {
			return Entry{}, fmt.Errorf("%w %s: %s: %v", ErrBadEntry, x.ID, FieldDeadID, err)
		}
		e.ID = id
	}
	return e, nil
}

// DeadEntry is an entry of the dead stream.
type DeadEntry struct {
	// ID is the entry's id in the dead stream.
	ID string `json:"id"`
	// DeadID is the message id of the entry that could not be stored.
	DeadID string `json:"deadId"`
	Reason string `json:"reason"`
	// Fields are the original entry's fields.
	Fields map[string]string `json:"fields"`

	original []rueidis.XRangeFieldValue
}

// DeadEntries lists up to count entries of the dead stream, oldest first.
func DeadEntries(ctx context.Context, c rueidis.Client, count int64) ([]DeadEntry, error) {
	if count <= 0 {
		count = 100
	}
	es, err := c.Do(ctx, c.B().Xrange().Key(DeadStream).Start("-").End("+").Count(count).Build()).AsXRangeSlices()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", DeadStream, err)
	}
	out := make([]DeadEntry, 0, len(es))
	for _, e := range es {
		d := DeadEntry{ID: e.ID, Fields: map[string]string{}}
		for _, fv := range e.FieldValues {
			switch fv.Field {
			case FieldDeadID:
				d.DeadID = fv.Value
			case FieldDeadReason:
				d.Reason = fv.Value
			default:
				d.Fields[fv.Field] = fv.Value
				d.original = append(d.original, fv)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Requeued tells where a dead entry went back to.
type Requeued struct {
	DeadEntryID string `json:"deadEntryId"`
	DeadID      string `json:"deadId"`
	// NewID is the id of the new entry on the stream ("" when the entry
	// repeated a dead id already requeued and was only removed).
	NewID string `json:"newId,omitempty"`
	// Error says why the entry was left in the dead stream.
	Error string `json:"error,omitempty"`
}

// Requeue appends the dead entries back to the stream of their room's
// shard (of shards: the dead stream is one for every shard) with their original
// fields and removes them from the dead stream. The new entry carries
// deadId (and ts, when it had none), and DecodeForStore files a requeued
// entry under that original message id and time: so the stored message
// keeps the id clients saw, and requeueing the same dead entry twice (after
// a crash between XADD and XDEL, or two dead copies of one entry) stores it
// once.
func Requeue(ctx context.Context, c rueidis.Client, shards Shards, entries []DeadEntry) ([]Requeued, error) {
	out := []Requeued{}
	seen := map[string]bool{}
	for _, d := range entries {
		r := Requeued{DeadEntryID: d.ID, DeadID: d.DeadID}
		if len(d.original) == 0 {
			r.Error = "no original fields to requeue"
			out = append(out, r)
			continue
		}
		if d.DeadID == "" || !seen[d.DeadID] {
			room := ""
			for _, fv := range d.original {
				if fv.Field == FieldRoomID {
					room = fv.Value
				}
			}
			cmd := c.B().Xadd().Key(shards.StreamOf(room)).Id("*").FieldValue()
			hasTS := false
			for _, fv := range d.original {
				cmd = cmd.FieldValue(fv.Field, fv.Value)
				hasTS = hasTS || fv.Field == FieldTS
			}
			if id, err := ParseID(d.DeadID); err == nil {
				cmd = cmd.FieldValue(FieldDeadID, d.DeadID)
				if !hasTS {
					cmd = cmd.FieldValue(FieldTS, strconv.FormatUint(id.Ms, 10))
				}
			}
			newID, err := c.Do(ctx, cmd.Build()).ToString()
			if err != nil {
				return out, fmt.Errorf("requeue dead entry %s (message %s): %w", d.ID, d.DeadID, err)
			}
			r.NewID = newID
			seen[d.DeadID] = true
		}
		if err := c.Do(ctx, c.B().Xdel().Key(DeadStream).Id(d.ID).Build()).Error(); err != nil {
			return out, fmt.Errorf("remove requeued entry %s from %s: %w", d.ID, DeadStream, err)
		}
		out = append(out, r)
	}
	return out, nil
}
