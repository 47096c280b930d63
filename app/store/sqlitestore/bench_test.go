package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/store/storetest"
)

// The benchmarks of docs/performance.md: search latency at 100k and 1M
// stored messages, unread counts at 100k. go test runs no benchmark; run
// them with e.g. `go test ./app/store/sqlitestore -run '^$' -bench
// 'Search/100k|Unread' -benchtime 20x` (1M takes minutes to seed: select
// it with -bench Search/1M).

// seeded is a migrated store in a temporary file holding n messages
// (storetest.Seed).
func seeded(b *testing.B, n int) *sqlitestore.Store {
	b.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	storetest.Seed(b, s, n)
	return s
}

func label(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(label(n), func(b *testing.B) { storetest.BenchSearch(b, seeded(b, n)) })
	}
}

func BenchmarkUnread(b *testing.B) {
	const n = 100_000
	b.Run(label(n), func(b *testing.B) { storetest.BenchUnread(b, seeded(b, n), n) })
}

// BenchmarkInsert is ingest's write: batches of 500 chat messages (as
// storetest.Seed makes them) into a store already holding 100k, reported
// as messages per second. It is what the per-message work of
// InsertMessages (the FTS5 entry, the mentions, the look-up of life
// entries stored before the message) costs ingest.
func BenchmarkInsert(b *testing.B) {
	s := seeded(b, 100_000)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		storetest.SeedFrom(b, s, 100_000+n, 500)
		n += 500
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
