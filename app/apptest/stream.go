package apptest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
)

// This file is the stream reader (and writer) of tests: what a test does to
// the message stream by hand to set up a state the roles then meet, such as
// a worker that read and crashed, or an entry of a foreign shape.

// XAdd appends an entry with the given field-value pairs to the stream key
// under id ("*" for a new one) and returns its id.
func XAdd(t testing.TB, c rueidis.Client, key, id string, fields ...string) string {
	t.Helper()
	cmd := c.B().Xadd().Key(key).Id(id).FieldValue()
	for i := 0; i+1 < len(fields); i += 2 {
		cmd = cmd.FieldValue(fields[i], fields[i+1])
	}
	got, err := c.Do(context.Background(), cmd.Build()).ToString()
	if err != nil {
		t.Fatalf("xadd %s to %s: %v", id, key, err)
	}
	return got
}

// ReadGroup reads up to n new entries of bus.Stream as consumer of group,
// as a worker would, and returns them; they are then pending for consumer.
func ReadGroup(t testing.TB, c rueidis.Client, group, consumer string, n int64) []rueidis.XRangeSlice {
	t.Helper()
	res, err := c.Do(context.Background(), c.B().Xreadgroup().Group(group, consumer).Count(n).
		Streams().Key(bus.Stream).Id(">").Build()).AsXReadSlices()
	if err != nil && !rueidis.IsRedisNil(err) {
		t.Fatalf("read %s as %s/%s: %v", bus.Stream, group, consumer, err)
	}
	return res[bus.Stream]
}

// ReadGroupIDs is ReadGroup returning the ids only.
func ReadGroupIDs(t testing.TB, c rueidis.Client, group, consumer string, n int64) []string {
	t.Helper()
	var ids []string
	for _, e := range ReadGroup(t, c, group, consumer, n) {
		ids = append(ids, e.ID)
	}
	return ids
}

// Ack acknowledges ids of bus.Stream in group.
func Ack(t testing.TB, c rueidis.Client, group string, ids ...string) {
	t.Helper()
	if err := c.Do(context.Background(), c.B().Xack().Key(bus.Stream).Group(group).Id(ids...).Build()).Error(); err != nil {
		t.Fatalf("xack %s: %v", group, err)
	}
}

// StreamLen returns the length of the stream key.
func StreamLen(t testing.TB, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(context.Background(), c.B().Xlen().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("xlen %s: %v", key, err)
	}
	return n
}

// AddEntries appends n messages of room to bus.Stream, as the chat role
// writes them (texts "<room>-<i>", clientIds "c-<text>"), and returns their
// ids.
func AddEntries(t testing.TB, c rueidis.Client, room string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		text := fmt.Sprintf("%s-%d", room, i)
		ids[i] = XAdd(t, c, bus.Stream, "*", bus.Entry{RoomID: room, UserID: "507f1f77bcf86cd799439011", Username: "ann",
			Text: text, TS: time.Now().UnixMilli(), ClientID: "c-" + text}.Fields()...)
	}
	return ids
}

// FirstID returns the id of the oldest entry of bus.Stream, "" when empty.
func FirstID(t testing.TB, c rueidis.Client) string {
	t.Helper()
	id, err := bus.FirstID(context.Background(), c, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
