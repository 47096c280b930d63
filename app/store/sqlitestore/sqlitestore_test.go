package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestMigrateFromVersion1 is a file an Aurora before rooms were records
// left behind (migration 1 only, rooms known only as message roomIds but
// one made with 'aurora rooms create'): Migrate adds the new columns and
// tables without touching the rows, makes each valid roomId a public room
// created at its first message, keeps the existing room, adds general,
// and running the steps again (records deleted) changes nothing.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "aurora.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const userID = "65a000000000000000000001"
	for _, q := range []string{
		sqlitestore.SchemaV1,
		`CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, appliedAt TEXT NOT NULL)`,
		`INSERT INTO migrations VALUES (1, 'initial schema', '2024-01-01T00:00:00.000Z')`,
		`INSERT INTO users (_id, username, usernameKey, passwordHash, disabled, createdAt, updatedAt)
		 VALUES ('` + userID + `', 'Alice', 'alice', '$2a$04$h', 1, '2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z')`,
		`INSERT INTO rooms (name, createdBy, createdAt) VALUES ('dev', 'aurora-cli', '2023-06-01T12:00:00.000Z')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("build a version 1 file: %v", err)
		}
	}
	for i, m := range []struct{ room, at string }{
		{"random", "2024-01-11T00:00:02.000Z"},
		{"random", "2024-01-11T00:00:01.000Z"},
		{"dev", "2020-01-01T00:00:00.000Z"},
		{"Bad Room!", "2024-01-11T00:00:00.000Z"},
		{"general", "2024-01-10T00:00:00.000Z"},
	} {
		ms, err := time.Parse(time.RFC3339, m.at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx,
			`INSERT INTO messages (_id, roomId, msgId, msgMs, msgSeq, userId, text, createdAt, updatedAt) VALUES (?, ?, ?, ?, 0, ?, 'hi', ?, ?)`,
			fmt.Sprint(i), m.room, fmt.Sprintf("%d-0", ms.UnixMilli()), ms.UnixMilli(), userID, m.at, m.at); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, path)
	ms, err := s.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 || !ms[0].Applied || ms[1].Applied || ms[2].Applied || ms[3].Applied {
		t.Fatalf("Migrations of a version 1 file = %+v, want 1 applied, 2 to 4 pending", ms)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	u, err := s.UserByName(ctx, "alice")
	if err != nil || u.ID != userID || !u.Disabled || u.Admin || !u.ValidAfter.IsZero() ||
		u.UpdatedAt != time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC) {
		t.Errorf("user after Migrate = %+v, %v", u, err)
	}
	if flagged, err := s.FlaggedUsers(ctx); err != nil || len(flagged) != 1 {
		t.Errorf("FlaggedUsers = %+v, %v; want the disabled user", flagged, err)
	}
	if m, err := s.LatestMessage(ctx, "random"); err != nil || m.Type != "" || m.Event != "" || m.Text != "hi" {
		t.Errorf("message after Migrate = %+v, %v", m, err)
	}
	// Migration 4 indexed the stored messages for search.
	if found, _, err := s.Search(ctx, store.SearchQuery{Terms: []string{"hi"}, Rooms: []string{"random", "dev"}}); err != nil || len(found) != 3 {
		t.Errorf("Search of the migrated messages = %d found, %v; want 3", len(found), err)
	}
	rooms, err := s.ListRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rooms {
		got = append(got, fmt.Sprintf("%s %s %q %s", r.Name, r.Type, r.CreatedBy, r.CreatedAt.Format(time.RFC3339)))
	}
	want := `[dev public "aurora-cli" 2023-06-01T12:00:00Z, general public "" 2024-01-10T00:00:00Z, random public "" 2024-01-11T00:00:01Z]`
	if g := "[" + strings.Join(got, ", ") + "]"; g != want {
		t.Errorf("rooms after Migrate = %s, want %s", g, want)
	}
	// The new tables work.
	if err := s.PutMember(ctx, store.Member{Room: "dev", UserID: userID, Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if mr, err := s.MemberRooms(ctx, userID); err != nil || len(mr) != 1 || mr[0].Room.Name != "dev" {
		t.Errorf("MemberRooms after Migrate = %+v, %v", mr, err)
	}

	dump := func() string {
		var b strings.Builder
		for _, q := range []string{
			`SELECT name || ' ' || type || ' ' || title || ' ' || topic || ' ' || createdBy || ' ' || createdAt FROM rooms ORDER BY name`,
			`SELECT _id || ' ' || admin || ' ' || validAfter || ' ' || updatedAt FROM users ORDER BY _id`,
			`SELECT _id || ' ' || type || ' ' || event FROM messages ORDER BY _id`,
			`SELECT room || ' ' || userId || ' ' || role FROM members ORDER BY room, userId`,
		} {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				b.WriteString(line + "\n")
			}
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	before := dump()
	if _, err := db.ExecContext(ctx, `DELETE FROM migrations WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate with the records of 2 and 3 deleted: %v", err)
	}
	if after := dump(); after != before {
		t.Errorf("running the steps again changed the file:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestEarlyLifeUsesItsIndex: the look-up ingest runs for every batch it
// stores (the life entries stored before its messages) searches the
// partial index messages_roomId_messageId for each (room, id) pair, never
// a walk of a room (a plan that walked the room's (roomId, msgMs, msgSeq)
// index once made seeding 100k messages take many minutes).
func TestEarlyLifeUsesItsIndex(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := s.DB().QueryContext(ctx, "EXPLAIN QUERY PLAN "+sqlitestore.EarlyLife(2), "room", "1-0", "room", "2-0")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) == 0 || !strings.Contains(plan[0], "SEARCH messages USING INDEX messages_roomId_messageId (roomId=? AND messageId=?)") {
		t.Fatalf("plan %q, want a search of messages_roomId_messageId per pair", plan)
	}
	for _, p := range plan {
		if strings.HasPrefix(p, "SCAN messages") {
			t.Fatalf("plan %q scans messages", plan)
		}
	}
}
