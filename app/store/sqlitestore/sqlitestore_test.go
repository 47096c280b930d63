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
	storetest.Run(t, func(t *testing.T) storetest.Store {
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
	storetest.MigrateAtOnce(t, "process", stores...)
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

// modes returns the permission bits of the database file and its -wal and
// -shm, failing the test when one is missing.
func modes(t *testing.T, path string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("stat %s: %v", f, err)
		}
		out[filepath.Base(f)] = fi.Mode().Perm()
	}
	return out
}

// write migrates s and stores a user, so the -wal and -shm exist.
func write(t *testing.T, s *sqlitestore.Store, name string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "$2a$04$hash"}); err != nil {
		t.Fatal(err)
	}
}

func TestFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aurora.db")
	s := open(t, path)
	write(t, s, "alice")
	for f, m := range modes(t, path) {
		if m != sqlitestore.FileMode {
			t.Errorf("%s is mode %#o, want %#o", f, m, sqlitestore.FileMode)
		}
	}
	if fixes := s.PermFixes(); len(fixes) != 0 {
		t.Errorf("a new file reported permission fixes: %+v", fixes)
	}
}

// TestTightensOpenFiles is a file an older Aurora left at 0644, with the
// -wal and -shm of a process still running (or killed): the next Open makes
// all three 0600, reports each, and reads what the other process wrote.
func TestTightensOpenFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aurora.db")
	older := open(t, path)
	write(t, older, "alice")
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, path)
	for f, m := range modes(t, path) {
		if m != sqlitestore.FileMode {
			t.Errorf("%s is mode %#o after Open, want %#o", f, m, sqlitestore.FileMode)
		}
	}
	fixes := s.PermFixes()
	if len(fixes) != 3 {
		t.Fatalf("PermFixes = %+v, want the file, -wal and -shm", fixes)
	}
	for i, suffix := range []string{"", "-wal", "-shm"} {
		if f := fixes[i]; f.Path != path+suffix || f.Was != 0o644 || f.Err != nil {
			t.Errorf("PermFixes[%d] = %+v, want %s was 0644, no error", i, f, path+suffix)
		}
	}
	if _, err := s.UserByName(context.Background(), "alice"); err != nil {
		t.Fatalf("the tightened file lost its user: %v", err)
	}
	// A private file is left alone and not reported: 0400 stays 0400.
	private := filepath.Join(t.TempDir(), "aurora.db")
	write(t, open(t, private), "bob")
	if err := os.Chmod(private, 0o400); err != nil {
		t.Fatal(err)
	}
	ro, err := sqlitestore.Open(context.Background(), private)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(context.Background())
	if fixes := ro.PermFixes(); len(fixes) != 0 {
		t.Errorf("a private file was reported: %+v", fixes)
	}
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("a private 0400 file was changed: %v %v", fi.Mode(), err)
	}
}
