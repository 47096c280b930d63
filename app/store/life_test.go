package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

func TestRetentionMillis(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 0}, {RetainForever, -1}, {time.Hour, 3_600_000}, {time.Microsecond, 1}, {1500 * time.Microsecond, 1},
	} {
		if got := RetentionMillis(tc.d); got != tc.want {
			t.Errorf("RetentionMillis(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ms   int64
		want time.Duration
	}{{0, 0}, {-1, RetainForever}, {-7, RetainForever}, {1500, 1500 * time.Millisecond}} {
		if got := RetentionFromMillis(tc.ms); got != tc.want {
			t.Errorf("RetentionFromMillis(%d) = %v, want %v", tc.ms, got, tc.want)
		}
	}
	if CheckRetention(-time.Hour) == nil || CheckRetention(RetainForever) != nil || CheckRetention(0) != nil || CheckRetention(time.Hour) != nil {
		t.Error("CheckRetention accepts only 0, RetainForever and positive durations")
	}
}

func TestCutoffMillis(t *testing.T) {
	at := time.UnixMilli(1000)
	if got := CutoffMillis(at); got != 1000 {
		t.Errorf("CutoffMillis(1000 ms) = %d, want 1000 (a row at 1000 is not before it)", got)
	}
	if got := CutoffMillis(at.Add(time.Microsecond)); got != 1001 {
		t.Errorf("CutoffMillis(1000 ms + 1 µs) = %d, want 1001 (a row at 1000 is before it)", got)
	}
}

func TestAggregateReactions(t *testing.T) {
	rows := []ReactionRow{
		{"m1", "a", "👍"}, {"m1", "b", "❤️"}, {"m2", "a", "🎉"}, {"m1", "c", "👍"},
	}
	got := AggregateReactions(rows, "c")
	want := map[string][]bus.Reaction{
		"m1": {{Emoji: "👍", Count: 2, Me: true}, {Emoji: "❤️", Count: 1}},
		"m2": {{Emoji: "🎉", Count: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AggregateReactions = %+v, want %+v", got, want)
	}
	if got := AggregateReactions(rows, ""); got["m1"][0].Me {
		t.Error("no viewer: Me must be false")
	}
}

func TestEachRoom(t *testing.T) {
	msgs := []Message{{ID: bus.ID{Ms: 1}, RoomID: "a"}, {ID: bus.ID{Ms: 2}, RoomID: "b"}, {ID: bus.ID{Ms: 3}, RoomID: "a"}}
	var calls []string
	err := EachRoom(msgs, func(room string, part []Message) error {
		var ids []string
		for i := range part {
			ids = append(ids, part[i].ID.String())
			part[i].Text = room + part[i].ID.String()
		}
		calls = append(calls, room+":"+strings.Join(ids, ","))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:1-0,3-0", "b:2-0"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %v, want %v (rooms in first-seen order, messages in page order)", calls, want)
	}
	for _, m := range msgs {
		if m.Text != m.RoomID+m.ID.String() {
			t.Errorf("message %s: text %q, want what fill wrote back in place", m.ID, m.Text)
		}
	}
	boom := errors.New("boom")
	if err := EachRoom(msgs, func(string, []Message) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("EachRoom's error = %v, want fill's", err)
	}
}
