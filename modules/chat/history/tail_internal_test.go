package history

import (
	"context"
	"log/slog"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// TestTail checks the ingest group's progress is read right from the replies
// of the Redis in use (RESP2 maps as flat arrays from the embedded one, RESP3
// maps from a real one): a misread would not show in the API tests, since
// falling back to scanning the whole stream is also correct, only slower.
func TestTail(t *testing.T) {
	ctx := context.Background()
	rc := apptest.RedisClient(t, apptest.RedisURL(t))
	s := New(nil, rc, slog.New(slog.DiscardHandler))
	do := func(args ...string) {
		t.Helper()
		if err := rc.Do(ctx, rc.B().Arbitrary(args...).Build()).Error(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	check := func(what string, wantFrom bus.ID, wantOldest string) {
		t.Helper()
		ti, err := s.tail(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ti.from != wantFrom {
			t.Errorf("%s: from %s, want %s", what, ti.from, wantFrom)
		}
		oldest := ""
		if ti.oldestOK {
			oldest = ti.oldest.String()
		}
		if oldest != wantOldest {
			t.Errorf("%s: oldest %q, want %q", what, oldest, wantOldest)
		}
	}

	check("no stream", bus.ID{}, "")
	for _, id := range []string{"5-1", "5-2", "6-0", "7-0", "8-0"} {
		do("XADD", bus.Stream, id, bus.FieldRoomID, "r", bus.FieldUserID, "u", bus.FieldText, "t")
	}
	check("no group", bus.ID{}, "5-1")
	do("XGROUP", "CREATE", bus.Stream, "some_other_group", "$")
	check("only a foreign group", bus.ID{}, "5-1")
	do("XGROUP", "CREATE", bus.Stream, bus.Group, "0")
	check("nothing delivered", bus.ID{Ms: 0, Seq: 1}, "5-1")
	do("XREADGROUP", "GROUP", bus.Group, "w1", "COUNT", "4", "STREAMS", bus.Stream, ">")
	check("four pending", bus.ID{Ms: 5, Seq: 1}, "5-1")
	do("XACK", bus.Stream, bus.Group, "5-1", "6-0")
	check("5-2 and 7-0 pending", bus.ID{Ms: 5, Seq: 2}, "5-1")
	do("XACK", bus.Stream, bus.Group, "5-2", "7-0")
	check("all delivered acked", bus.ID{Ms: 7, Seq: 1}, "5-1")
	do("XTRIM", bus.Stream, "MINID", "7-0")
	check("trimmed", bus.ID{Ms: 7, Seq: 1}, "7-0")
}
