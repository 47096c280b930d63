package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/store/storetest"
)

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "aurora.db"))
	})
}

// TestSharedFile is two aurora processes on one host sharing the file: each
// sees the other's writes, and concurrent writers wait for the lock rather
// than fail.
func TestSharedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aurora.db")
	a, b := open(t, path), open(t, path)
	for _, s := range []*sqlitestore.Store{a, b} {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	u, err := a.CreateUser(ctx, store.User{Username: "Alice", PasswordHash: "h"})
	if err != nil {
		t.Fatalf("CreateUser on a: %v", err)
	}
	if got, err := b.UserByName(ctx, "alice"); err != nil || got.ID != u.ID {
		t.Fatalf("b.UserByName = %+v, %v; want a's user %s", got, err, u.ID)
	}
	if _, err := b.CreateUser(ctx, store.User{Username: "ALICE", PasswordHash: "h"}); !errors.Is(err, store.ErrUserExists) {
		t.Fatalf("b.CreateUser of a's name: %v, want ErrUserExists", err)
	}

	// Both write batches at once, many times over.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w, s := range []*sqlitestore.Store{a, b} {
		wg.Go(func() {
			for i := range 20 {
				var batch []store.Message
				for j := range 10 {
					batch = append(batch, store.Message{
						ID:     bus.ID{Ms: uint64(1000 + i), Seq: uint64(w*100 + j)},
						RoomID: "shared", UserID: u.ID, Text: fmt.Sprint(w, i, j),
					})
				}
				res, err := s.InsertMessages(ctx, batch)
				if err != nil || res.Inserted != len(batch) {
					errs <- fmt.Errorf("store %d batch %d: %+v, %v", w, i, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for name, s := range map[string]*sqlitestore.Store{"a": a, "b": b} {
		msgs, more, err := s.Messages(ctx, "shared", store.Page{Limit: 1000})
		if err != nil || more || len(msgs) != 400 {
			t.Errorf("%s sees %d messages (more=%v, err=%v), want 400", name, len(msgs), more, err)
		}
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no write-ahead log beside the file (WAL mode off?): %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte("this is not an SQLite database, just text that is long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(dir, "a?b.db"), filepath.Join(dir, "missing", "aurora.db"), notDB} {
		if s, err := sqlitestore.Open(ctx, path); err == nil {
			_ = s.Close(ctx)
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// TestConcurrentMigrateSharedFile is aurora processes starting at once on a
// new file: each migrates without error, and each migration is recorded
// once (the second process waits for the first's transaction, then finds
// the record).
func TestConcurrentMigrateSharedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aurora.db")
	stores := []*sqlitestore.Store{open(t, path), open(t, path), open(t, path)}
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: Migrate: %v", i, err)
		}
	}
	for i, s := range stores {
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatalf("process %d: Migrations: %v", i, err)
		}
		if len(ms) == 0 {
			t.Fatalf("process %d: no migrations listed", i)
		}
		for _, m := range ms {
			if !m.Applied {
				t.Errorf("process %d: migration %d %q not applied", i, m.Version, m.Name)
			}
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var records, versions int
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version) FROM migrations`).Scan(&records, &versions); err != nil {
		t.Fatalf("read migrations table: %v", err)
	}
	if records != versions || records == 0 {
		t.Errorf("migrations table holds %d records of %d versions, want one each", records, versions)
	}
}

// TestNewerMigrationRecorded: a version a newer aurora recorded is listed
// after the known ones, and this build's Migrate leaves it alone.
func TestNewerMigrationRecorded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aurora.db")
	s := open(t, path)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO migrations (version, name, appliedAt) VALUES (99, 'from the future', '2030-01-02T03:04:05.000Z')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate with a newer version recorded: %v", err)
	}
	ms, err := s.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if len(ms) < 2 || ms[0].Version != 1 || last.Version != 99 || last.Name != "from the future" || !last.Applied ||
		!last.AppliedAt.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("Migrations = %+v, want the known ones, then 99 applied", ms)
	}
}
