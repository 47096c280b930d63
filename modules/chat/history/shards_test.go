package history_test

import (
	"context"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// TestShardsReadTheRoomsStream: with bus.shards 3 (Service.Shards) the
// not-yet-stored tail of a page and of Since is read from the room's
// shard stream (general is on shard 1): the 10 messages only that stream
// holds are served after the 20 the store holds, and a message of the
// room in another shard's stream is not the room's (it would be one
// written under another shard count, see docs/deploy.md#stream-shards).
func TestShardsReadTheRoomsStream(t *testing.T) {
	shards := bus.Shards(3)
	stream := shards.StreamOf(room)
	if stream == bus.Stream {
		t.Fatalf("room %s is on shard 0; the test wants another", room)
	}
	e := newEnv(t, openSQLite)
	e.svc.Shards = shards
	var all []bus.Entry
	for i := 1; i <= 30; i++ {
		all = append(all, entry(room, i))
	}
	e.store(all[:20]...)
	for _, en := range all[10:] { // 11-20 in both, 21-30 in the stream only
		apptest.XAdd(t, e.rc, stream, en.ID.String(), en.Fields()...)
	}
	stray := entry(room, 31)
	apptest.XAdd(t, e.rc, bus.Stream, stray.ID.String(), stray.Fields()...)

	frames, more := e.page("?after=0-0&limit=100")
	checkIDs(t, "page", frames, seq(1, 30))
	if more {
		t.Error("hasMore true")
	}
	got, complete, err := e.svc.Since(context.Background(), room, id(25), "u1", false, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, f := range got {
		nums = append(nums, num(f.ID))
	}
	if !equal(nums, seq(26, 30)) || !complete {
		t.Errorf("since %s: %v complete %v, want %v", id(25), nums, complete, seq(26, 30))
	}
}
