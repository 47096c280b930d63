package mongostore_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/storetest"
)

// The MongoDB side of docs/performance.md's search and unread numbers,
// against AURORA_TEST_MONGO_URL or the embedded FerretDB. go test runs no
// benchmark; run with e.g. `go test ./app/store/mongostore -run '^$'
// -bench . -benchtime 20x`. One seeding serves both measurements (seeding
// FerretDB is slow). AURORA_BENCH_MESSAGES sets the size (default 100k).

func BenchmarkSearchUnread(b *testing.B) {
	n := 100_000
	if v := os.Getenv("AURORA_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < storetest.BenchRooms*200 {
			b.Fatalf("AURORA_BENCH_MESSAGES=%q: want a count of at least %d", v, storetest.BenchRooms*200)
		}
	}
	ctx := context.Background()
	uri := storetest.MongoURL(b)
	s, err := mongostore.Open(ctx, uri, storetest.DatabaseName(b, uri))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	storetest.Seed(b, s, n)
	b.Run("Search", func(b *testing.B) { storetest.BenchSearch(b, s) })
	b.Run("Unread", func(b *testing.B) { storetest.BenchUnread(b, s, n) })
}
