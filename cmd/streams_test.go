package cmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/cmd"
)

// streams runs `aurora streams ARGS --redis-url URL` in process.
func streams(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = cmd.Run(ctx, append(append([]string{"streams"}, args...), "--redis-url", url), &out, &errOut)
	return code, out.String(), errOut.String()
}

// streamsJSON runs a streams command with --json and decodes its output.
func streamsJSON(t *testing.T, url string, v any, args ...string) {
	t.Helper()
	code, out, errOut := streams(t, url, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("streams %v exited %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("streams %v: output is not JSON: %v\n%s", args, err, out)
	}
}

func message(room, text string) []string {
	return bus.Entry{RoomID: room, UserID: "u1", Username: "ann", Text: text, TS: 1}.Fields()
}

func TestStreamsCommands(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	ctx := context.Background()

	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, apptest.XAdd(t, rc, bus.Stream, "*", message("lobby", "m"+string(rune('a'+i)))...))
	}
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	apptest.ReadGroupIDs(t, rc, bus.Group, "worker-a", 4)
	apptest.ReadGroupIDs(t, rc, bus.Group, "worker-b", 2)
	apptest.Ack(t, rc, bus.Group, ids[0])

	t.Run("info", func(t *testing.T) {
		var info bus.StreamInfo
		streamsJSON(t, url, &info, "info")
		if info.Length != 10 || info.FirstID != ids[0] || info.LastID != ids[9] || len(info.Groups) != 1 {
			t.Fatalf("info: %+v", info)
		}
		g := info.Groups[0]
		if g.Name != bus.Group || g.Pending != 5 || g.Lag != 4 || g.LastDeliveredID != ids[5] || len(g.Consumers) != 2 {
			t.Errorf("group: %+v", g)
		}
		code, out, errOut := streams(t, url, "info")
		if code != 0 || !strings.Contains(out, bus.Stream) || !strings.Contains(out, bus.Group) || !strings.Contains(out, "worker-a") {
			t.Errorf("info table (%d): %s %s", code, out, errOut)
		}
	})

	t.Run("pending", func(t *testing.T) {
		var pend []bus.PendingEntry
		streamsJSON(t, url, &pend, "pending", "--consumer", "worker-a")
		if len(pend) != 3 || pend[0].ID != ids[1] || pend[0].Consumer != "worker-a" || pend[0].Deliveries != 1 {
			t.Errorf("pending of worker-a: %+v", pend)
		}
		streamsJSON(t, url, &pend, "pending", "--min-idle", "1h")
		if len(pend) != 0 {
			t.Errorf("pending idle for an hour: %+v", pend)
		}
		if code, _, errOut := streams(t, url, "pending", "--count", "0"); code == 0 || !strings.Contains(errOut, "--count") {
			t.Errorf("--count 0: exit %d, %s", code, errOut)
		}
	})

	t.Run("claim", func(t *testing.T) {
		var res struct {
			To      string   `json:"to"`
			Claimed []string `json:"claimed"`
		}
		streamsJSON(t, url, &res, "claim", "--min-idle", "0s", "--from", "worker-a", "--to", "worker-b")
		if res.To != "worker-b" || strings.Join(res.Claimed, " ") != strings.Join(ids[1:4], " ") {
			t.Errorf("claim: %+v, want %v", res, ids[1:4])
		}
		var pend []bus.PendingEntry
		streamsJSON(t, url, &pend, "pending", "--consumer", "worker-b")
		if len(pend) != 5 {
			t.Errorf("worker-b holds %d entries after the claim, want 5", len(pend))
		}
	})

	t.Run("tail from the start", func(t *testing.T) {
		code, out, errOut := streams(t, url, "tail", "--from", "0", "--count", "3", "--json")
		if code != 0 {
			t.Fatalf("tail exited %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("tail printed %d lines: %s", len(lines), out)
		}
		for i, l := range lines {
			var e struct {
				ID     string            `json:"id"`
				Fields map[string]string `json:"fields"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID != ids[i] || e.Fields[bus.FieldRoomID] != "lobby" {
				t.Errorf("tail line %d: %s (%v)", i, l, err)
			}
		}
	})

	t.Run("trim", func(t *testing.T) {
		// ids[0] is acknowledged; ids[1] is the oldest pending entry.
		var res bus.TrimResult
		streamsJSON(t, url, &res, "trim", "--keep", "2", "--dry-run")
		if res.Trimmed != 1 || !res.DryRun || apptest.StreamLen(t, rc, bus.Stream) != 10 {
			t.Errorf("dry run: %+v", res)
		}
		streamsJSON(t, url, &res, "trim", "--keep", "2")
		if res.Trimmed != 1 || res.SafeID != ids[1] || apptest.StreamLen(t, rc, bus.Stream) != 9 {
			t.Errorf("trim: %+v, length %d", res, apptest.StreamLen(t, rc, bus.Stream))
		}
	})

	t.Run("dead and requeue", func(t *testing.T) {
		d1 := apptest.XAdd(t, rc, bus.DeadStream, "*", bus.FieldRoomID, "lobby", bus.FieldUserID, "u1", bus.FieldText, "bad",
			bus.FieldUsername, "ann", bus.FieldDeadID, "1700000000000-0", bus.FieldDeadReason, "rejected by the store: test")
		var dead []bus.DeadEntry
		streamsJSON(t, url, &dead, "dead")
		if len(dead) != 1 || dead[0].ID != d1 || dead[0].DeadID != "1700000000000-0" || dead[0].Fields[bus.FieldText] != "bad" ||
			!strings.Contains(dead[0].Reason, "rejected") {
			t.Fatalf("dead: %+v", dead)
		}
		if code, _, errOut := streams(t, url, "dead", "--id", d1); code == 0 || !strings.Contains(errOut, "--requeue") {
			t.Errorf("--id without --requeue: exit %d, %s", code, errOut)
		}
		var res struct {
			Requeued []bus.Requeued `json:"requeued"`
		}
		streamsJSON(t, url, &res, "dead", "--requeue")
		if len(res.Requeued) != 1 || res.Requeued[0].NewID == "" || apptest.StreamLen(t, rc, bus.DeadStream) != 0 {
			t.Fatalf("requeue: %+v", res)
		}
		back, err := rc.Do(ctx, rc.B().Xrange().Key(bus.Stream).Start(res.Requeued[0].NewID).End("+").Build()).AsXRangeSlices()
		if err != nil || len(back) != 1 {
			t.Fatalf("requeued entry: %v %v", back, err)
		}
		got := map[string]string{}
		for _, fv := range back[0].FieldValues {
			got[fv.Field] = fv.Value
		}
		if got[bus.FieldText] != "bad" || got[bus.FieldDeadID] != "1700000000000-0" || got[bus.FieldTS] != "1700000000000" || got[bus.FieldDeadReason] != "" {
			t.Errorf("requeued fields: %v", got)
		}
	})
}

// tail follows entries appended after it started and exits after --count.
func TestStreamsTailFollows(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	before := apptest.XAdd(t, rc, bus.Stream, "*", message("lobby", "old")...)

	var out, errOut apptest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cmd.Run(context.Background(), []string{"streams", "tail", "--count", "2", "--redis-url", url}, &out, &errOut)
	}()
	// tail starts after the newest entry at its start; keep appending until
	// it has printed two (it may start after some of these).
	var added []string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var code int
	deadline := time.After(20 * time.Second)
loop:
	for {
		select {
		case code = <-done:
			break loop
		case <-tick.C:
			added = append(added, apptest.XAdd(t, rc, bus.Stream, "*", message("lobby", "new")...))
		case <-deadline:
			t.Fatal("tail did not exit after --count 2")
		}
	}
	if code != 0 {
		t.Fatalf("tail exited %d: %s", code, errOut.String())
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	var printed []string
	for sc.Scan() {
		id, rest, _ := strings.Cut(sc.Text(), "  ")
		if !strings.Contains(rest, "lobby") || !strings.Contains(rest, "ann: new") {
			t.Errorf("tail line %q", sc.Text())
		}
		printed = append(printed, id)
	}
	if len(printed) != 2 || printed[0] == before {
		t.Fatalf("tail printed %v (old entry %s)", printed, before)
	}
	// Two consecutive entries of those appended.
	for i := range added {
		if added[i] == printed[0] {
			if i+1 >= len(added) || added[i+1] != printed[1] {
				t.Errorf("tail printed %v, not consecutive entries of %v", printed, added)
			}
			return
		}
	}
	t.Errorf("tail printed %v, not among the entries appended %v", printed, added)
}

func TestStreamsNeedARedisURL(t *testing.T) {
	for _, k := range []string{"AURORA_REDIS_URL", "REDIS_HOST", "REDIS_PORT"} {
		t.Setenv(k, "")
	}
	var out, errOut bytes.Buffer
	code := cmd.Run(context.Background(), []string{"streams", "info", "--data-dir", t.TempDir()}, &out, io.Writer(&errOut))
	if code == 0 || !strings.Contains(errOut.String(), "no `aurora serve` with an embedded Redis is running") ||
		!strings.Contains(errOut.String(), "--redis-url") {
		t.Errorf("streams info without redis.url: exit %d, %q", code, errOut.String())
	}
}

// TestStreamsShard: with bus.shards 3, --shard picks a shard's stream
// (info, tail, trim read chat:messages:<k>), refuses a shard beyond the
// count with a clear error, and dead --requeue appends an entry back to
// its room's shard stream.
func TestStreamsShard(t *testing.T) {
	url := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, url)
	ctx := context.Background()
	shards := bus.Shards(3)
	room := ""
	for i := 0; room == ""; i++ {
		if r := "room-" + string(rune('a'+i)); shards.Of(r) == 2 {
			room = r
		}
	}
	stream := shards.StreamOf(room)
	if stream != bus.ShardStream(2) {
		t.Fatalf("room %s on %s", room, stream)
	}
	first := apptest.XAdd(t, rc, stream, "*", message(room, "one")...)

	t.Setenv("AURORA_BUS_SHARDS", "3")
	var info bus.StreamInfo
	streamsJSON(t, url, &info, "info", "--shard", "2")
	if info.Stream != stream || info.Length != 1 || info.FirstID != first {
		t.Errorf("info --shard 2: %+v", info)
	}
	streamsJSON(t, url, &info, "info")
	if info.Stream != bus.Stream || info.Exists {
		t.Errorf("info without --shard is shard 0's, empty: %+v", info)
	}
	for _, bad := range []string{"3", "-1"} {
		code, _, errOut := streams(t, url, "info", "--shard", bad)
		if code == 0 || !strings.Contains(errOut, "--shard "+bad+": bus.shards is 3, so shards are 0 to 2") {
			t.Errorf("info --shard %s: exit %d, %q", bad, code, errOut)
		}
	}

	// A dead entry of the room goes back to the room's shard stream.
	x := rueidis.XRangeSlice{ID: first, FieldValues: []rueidis.XRangeFieldValue{}}
	f := message(room, "one")
	for i := 0; i+1 < len(f); i += 2 {
		x.FieldValues = append(x.FieldValues, rueidis.XRangeFieldValue{Field: f[i], Value: f[i+1]})
	}
	if err := bus.AddDead(ctx, rc, x, first, "test"); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := streams(t, url, "dead", "--requeue"); code != 0 {
		t.Fatalf("dead --requeue: exit %d: %s", code, errOut)
	}
	if n := apptest.StreamLen(t, rc, stream); n != 2 {
		t.Errorf("%s holds %d entries after the requeue, want 2", stream, n)
	}
	if n := apptest.StreamLen(t, rc, bus.Stream); n != 0 {
		t.Errorf("%s holds %d entries after the requeue of another shard's entry", bus.Stream, n)
	}

	t.Setenv("AURORA_BUS_SHARDS", "1")
	if code, _, errOut := streams(t, url, "info", "--shard", "1"); code == 0 || !strings.Contains(errOut, "bus.shards is 1") {
		t.Errorf("info --shard 1 with one shard: exit %d, %q", code, errOut)
	}
}
