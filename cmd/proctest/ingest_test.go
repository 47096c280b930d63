package proctest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// TestProcessesSurviveAKill runs the real binary: two `aurora serve
// --roles=ingest` processes share a Redis and a SQLite data dir while 20000
// entries arrive; one is killed with SIGKILL mid-way and started again. Every
// entry must end up stored exactly once, with nothing left pending.
func TestProcessesSurviveAKill(t *testing.T) {
	url, rc := sharedRedis(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := newNodeConfig(dataDir, url)
	cfg.fastIngest()
	cfg.set("ingest.claim_idle", "2s")
	// Migrate first, so the two processes do not race on creating tables.
	cfgFile := cfg.writeMigrated(t)
	a := startNode(t, "a", cfgFile, "ingest")
	b := startNode(t, "b", cfgFile, "ingest")

	const total, rooms = 20000, 10
	ids := make([][]string, rooms)
	ctx := context.Background()
	for off := 0; off < total; off += 500 {
		cmds := make(rueidis.Commands, 0, 500)
		for i := off; i < off+500; i++ {
			text := fmt.Sprintf("message %d", i)
			e := bus.Entry{RoomID: fmt.Sprintf("room%d", i%rooms), UserID: "507f1f77bcf86cd799439011", Username: "ann", Text: text,
				TS: time.Now().UnixMilli(), ClientID: "c-" + text}
			cmd := rc.B().Xadd().Key(bus.Stream).Id("*").FieldValue()
			f := e.Fields()
			for j := 0; j < len(f); j += 2 {
				cmd = cmd.FieldValue(f[j], f[j+1])
			}
			cmds = append(cmds, cmd.Build())
		}
		for k, r := range rc.DoMulti(ctx, cmds...) {
			id, err := r.ToString()
			if err != nil {
				t.Fatal(err)
			}
			ids[(off+k)%rooms] = append(ids[(off+k)%rooms], id)
		}
		if off == 5000 {
			// Mid-way, once the workers are at it: kill one without warning.
			apptest.Eventually(t, 20*time.Second, "the workers to make progress", func() bool {
				_, lag := groupState(t, rc)
				return lag < int64(off)-1000
			})
			a.kill()
			pend, _ := groupState(t, rc)
			t.Logf("killed a with %d entries pending in the group", pend)
			a = startNode(t, "a2", cfgFile, "ingest")
		}
	}

	var p, lag int64
	if !apptest.Poll(90*time.Second, func() bool {
		p, lag = groupState(t, rc)
		return p == 0 && lag == 0
	}) {
		t.Fatalf("still %d pending and %d undelivered after 90s", p, lag)
	}
	for _, n := range []*node{a, b} {
		if err := n.stopWith(syscall.SIGTERM); err != nil {
			t.Errorf("graceful stop: %v", err)
		}
	}

	roomNames := make([]string, rooms)
	for r := range roomNames {
		roomNames[r] = fmt.Sprintf("room%d", r)
	}
	stored := sqliteMessages(t, dataDir, roomNames)
	for r, room := range roomNames {
		assertStoredOnce(t, stored, room, ids[r])
	}
	if p, lag := groupState(t, rc); p != 0 || lag != 0 {
		t.Errorf("%d pending, %d undelivered at the end", p, lag)
	}
}

// groupState returns the ingest group's pending and undelivered counts, as
// `aurora streams info` reports them.
func groupState(t *testing.T, rc rueidis.Client) (pending, lag int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procWait)
	defer cancel()
	info, err := bus.Info(ctx, rc, bus.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range info.Groups {
		if g.Name == bus.Group {
			return g.Pending, g.Lag
		}
	}
	t.Fatalf("no group %s", bus.Group)
	return 0, 0
}

// assertStoredOnce fails unless room holds exactly the messages ids, once
// each.
func assertStoredOnce(t *testing.T, stored []storedMsg, room string, ids []string) {
	t.Helper()
	seen := map[string]int{}
	held := 0
	for _, m := range stored {
		if m.room == room {
			seen[m.id]++
			held++
		}
	}
	report, reported := errorsUpTo(t, 5, " messages not stored once")
	for _, id := range ids {
		if seen[id] != 1 {
			report("message %s stored %d times, want once", id, seen[id])
		}
	}
	reported()
	if held != len(ids) {
		t.Errorf("room %s holds %d messages, want %d", room, held, len(ids))
	}
}
