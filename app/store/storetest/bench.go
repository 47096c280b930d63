package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is the workload of the search and unread benchmarks
// (docs/performance.md), shared by both backends' _test files so they
// measure the same data and queries.

// BenchRooms is how many rooms Seed spreads messages over.
const BenchRooms = 10

// BenchReader is the user whose unread counts and searches are measured;
// Seed's messages mention them now and then.
const BenchReader = "0123456789abcdef0123eeee"

// benchWords is Seed's vocabulary: common words most messages use, and
// the rare words the benchmarks search for. Each message is 8 common
// words; one in 100 also holds "deployment", one in 10,000 "kubernetes".
var benchWords = strings.Fields(`the a to and of is in it you that we for on this with be are have
not at can will just so do what but if about there get one all like up out my was me time now
when know good see think they how work day new more make go back need want today team review
build test ship merge fix issue change branch release update server client room message chat`)

// Seed stores n messages, in batches of 500 like ingest, over BenchRooms
// rooms (bench-0 …), one a millisecond from a fixed start, by four users
// other than BenchReader, 1 in 50 (all in bench-0) mentioning BenchReader. It reports
// how long the seeding took.
func Seed(tb testing.TB, s store.MessageWriter, n int) {
	tb.Helper()
	start := time.Now()
	SeedFrom(tb, s, 0, n)
	tb.Logf("seeded %d messages in %v (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
}

// SeedFrom is Seed of the messages from, from+1, ... from+n-1 of the same
// sequence (a benchmark adds to a seeded store with it).
func SeedFrom(tb testing.TB, s store.MessageWriter, from, n int) {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"0123456789abcdef01230001", "0123456789abcdef01230002", "0123456789abcdef01230003", "0123456789abcdef01230004"}
	batch := make([]store.Message, 0, 500)
	flush := func() {
		res, err := s.InsertMessages(ctx, batch)
		if err != nil || len(res.Rejected) > 0 {
			tb.Fatalf("seed: InsertMessages: %+v, %v", res, err)
		}
		batch = batch[:0]
	}
	var words [9]string
	for i := from; i < from+n; i++ {
		for w := range 8 {
			words[w] = benchWords[rng.IntN(len(benchWords))]
		}
		text := strings.Join(words[:8], " ")
		switch {
		case i%10_000 == 5_000:
			text += " kubernetes"
		case i%100 == 50:
			text += " deployment"
		}
		m := store.Message{
			ID:       bus.ID{Ms: uint64(1_600_000_000_000 + i)},
			RoomID:   fmt.Sprintf("bench-%d", i%BenchRooms),
			UserID:   users[i%len(users)],
			Username: fmt.Sprintf("user%d", i%len(users)),
			Text:     text,
		}
		if i%50 == 10 { // in bench-0, the room BenchUnread reads
			m.Mentions = []string{BenchReader}
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// BenchSearch measures Search over every seeded room (a page of 20, as
// the API's default) for a rare word, a common prefix, and two words.
func BenchSearch(b *testing.B, s store.MessageReader) {
	rooms := make([]string, BenchRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("bench-%d", i)
	}
	for _, q := range []string{"kubernetes", "deployment", "deploym", "review merge", "the"} {
		terms, err := store.ParseSearch(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.ReplaceAll(q, " ", "_"), func(b *testing.B) {
			ctx := context.Background()
			found := 0
			for b.Loop() {
				msgs, _, err := s.Search(ctx, store.SearchQuery{Terms: terms, Rooms: rooms, Limit: 20, Viewer: BenchReader})
				if err != nil {
					b.Fatal(err)
				}
				found = len(msgs)
			}
			b.ReportMetric(float64(found), "results")
		})
	}
}

// BenchUnread measures Unread of one seeded room (n/BenchRooms messages)
// capped at 1000 as GET /api/rooms asks, with the marker at the start (the
// count stops at the cap), 100 messages from the end, and at the end.
func BenchUnread(b *testing.B, s store.MessageReader, n int) {
	last := uint64(1_600_000_000_000 + n - BenchRooms) // bench-0's last message
	for _, tc := range []struct {
		name   string
		marker bus.ID
	}{
		{"marker_at_start", bus.ID{}},
		{"100_unread", bus.ID{Ms: last - 100*BenchRooms}},
		{"none_unread", bus.ID{Ms: last}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			var c store.UnreadCount
			for b.Loop() {
				var err error
				if c, err = s.Unread(ctx, BenchReader, "bench-0", tc.marker, 1000); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Unread), "unread")
			b.ReportMetric(float64(c.Mentions), "mentions")
		})
	}
}
