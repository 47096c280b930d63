package backoff

import (
	"context"
	"testing"
	"time"
)

func TestStepsDoubleUpToMaxAndStayInUpperHalf(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	steps := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, s := range steps {
		s *= time.Millisecond
		d := b.Next()
		if d < s/2 || d > s {
			t.Fatalf("attempt %d: waited %v, want within [%v, %v]", i, d, s/2, s)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: waited %v, want at most Min", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full wait on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported an interrupted wait on a live context")
	}
}
