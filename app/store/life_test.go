package store

import (
	"reflect"
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
