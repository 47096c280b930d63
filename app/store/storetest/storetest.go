// Package storetest is the contract every store.Store implementation meets:
// Run is one suite of behaviours both backends must share, and MongoURL gives
// tests a MongoDB (a real one from AURORA_TEST_MONGO_URL, or an embedded
// FerretDB).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// Store is what the contract suite tests: the whole store.Store plus two
// lookups no role needs but both backends keep, so the suite can check what
// a write left behind by id and by newest message.
type Store interface {
	store.Store
	// UserByID finds a user by id; ErrNotFound, also for a malformed id.
	UserByID(ctx context.Context, id string) (store.User, error)
	// LatestMessage returns the newest stored message of a room; ErrNotFound.
	LatestMessage(ctx context.Context, room string) (store.Message, error)
}

// Run runs the contract suite. open returns a new, empty, open (not
// migrated) store for the subtest t and closes it when t ends; every subtest
// gets its own.
func Run(t *testing.T, open func(t *testing.T) Store) {
	migrated := func(t *testing.T) Store {
		t.Helper()
		s := open(t)
		if err := s.Migrate(withDeadline(t)); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	}
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, open(t)) })
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, open(t)) })
	t.Run("ConcurrentMigrate", func(t *testing.T) { testConcurrentMigrate(t, open(t)) })
	t.Run("Users", func(t *testing.T) { testUsers(t, migrated(t)) })
	t.Run("ConcurrentCreateUser", func(t *testing.T) { testConcurrentCreateUser(t, migrated(t)) })
	t.Run("UpdateUser", func(t *testing.T) { testUpdateUser(t, migrated(t)) })
	t.Run("ListUsers", func(t *testing.T) { testListUsers(t, migrated(t)) })
	t.Run("InsertMessages", func(t *testing.T) { testInsertMessages(t, migrated(t)) })
	t.Run("InsertMessagesIdempotent", func(t *testing.T) { testInsertIdempotent(t, migrated(t)) })
	t.Run("InsertMessagesConcurrentRedelivery", func(t *testing.T) { testConcurrentRedelivery(t, migrated(t)) })
	t.Run("InsertMessagesRejected", func(t *testing.T) { testInsertRejected(t, migrated(t)) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, migrated(t)) })
	t.Run("PagingDefaultLimit", func(t *testing.T) { testPagingDefaultLimit(t, migrated(t)) })
	t.Run("LatestMessage", func(t *testing.T) { testLatestMessage(t, migrated(t)) })
	t.Run("Rooms", func(t *testing.T) { testRooms(t, migrated(t)) })
	t.Run("RoomFields", func(t *testing.T) { testRoomFields(t, migrated(t)) })
	t.Run("CreateRoomOwner", func(t *testing.T) { testCreateRoomOwner(t, migrated(t)) })
	t.Run("Members", func(t *testing.T) { testMembers(t, migrated(t)) })
	t.Run("MemberRooms", func(t *testing.T) { testMemberRooms(t, migrated(t)) })
	t.Run("DeleteRoomCascade", func(t *testing.T) { testDeleteRoomCascade(t, migrated(t)) })
	t.Run("Bans", func(t *testing.T) { testBans(t, migrated(t)) })
	t.Run("Invites", func(t *testing.T) { testInvites(t, migrated(t)) })
	t.Run("UseInvite", func(t *testing.T) { testUseInvite(t, migrated(t)) })
	t.Run("UseInviteConcurrent", func(t *testing.T) { testUseInviteConcurrent(t, migrated(t)) })
	t.Run("Directory", func(t *testing.T) { testDirectory(t, migrated(t)) })
	t.Run("SearchUsers", func(t *testing.T) { testSearchUsers(t, migrated(t)) })
	t.Run("UsersChangedSince", func(t *testing.T) { testUsersChangedSince(t, migrated(t)) })
	t.Run("FlaggedUsers", func(t *testing.T) { testFlaggedUsers(t, migrated(t)) })
	t.Run("MessageTypeEvent", func(t *testing.T) { testMessageTypeEvent(t, migrated(t)) })
	runLife(t, migrated)
}

var objectIDHex = regexp.MustCompile(`^[0-9a-f]{24}$`)

func testMigrate(t *testing.T, s Store) {
	ctx := context.Background()
	if s.Kind() == "" {
		t.Error("Kind() is empty")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping before Migrate: %v", err)
	}
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	// Data written after the first migration survives a later one.
	if _, err := s.CreateUser(ctx, store.User{Username: "keep", PasswordHash: "h"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate #3: %v", err)
	}
	if _, err := s.UserByName(ctx, "keep"); err != nil {
		t.Fatalf("UserByName after re-Migrate: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// migrations returns s.Migrations(), checking the list is well formed:
// versions 1, 2, ... in order, each named.
func migrations(t *testing.T, s Store) []store.MigrationStatus {
	t.Helper()
	ms, err := s.Migrations(context.Background())
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("Migrations lists no migration")
	}
	for i, m := range ms {
		if m.Version != i+1 || m.Name == "" {
			t.Errorf("Migrations()[%d] = %+v, want version %d with a name", i, m, i+1)
		}
		if m.Applied == m.AppliedAt.IsZero() {
			t.Errorf("migration %d: applied=%v but appliedAt %v", m.Version, m.Applied, m.AppliedAt)
		}
	}
	return ms
}

// testMigrations: a new store has every migration pending (and listing
// them creates nothing); Migrate applies each once, recording when; running
// it again changes no record.
func testMigrations(t *testing.T, s Store) {
	ctx := context.Background()
	pending := migrations(t, s)
	for _, m := range pending {
		if m.Applied {
			t.Errorf("new store: migration %d %q already applied", m.Version, m.Name)
		}
	}
	if again := migrations(t, s); fmt.Sprint(again) != fmt.Sprint(pending) {
		t.Errorf("listing migrations changed them: %+v, then %+v", pending, again)
	}

	before := time.Now().Add(-time.Second)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	after := time.Now().Add(time.Second)
	applied := migrations(t, s)
	if len(applied) != len(pending) {
		t.Fatalf("after Migrate %d migrations listed, before %d", len(applied), len(pending))
	}
	for i, m := range applied {
		if m.Version != pending[i].Version || m.Name != pending[i].Name {
			t.Errorf("migration %d is %+v after Migrate, %+v before", i, m, pending[i])
		}
		if !m.Applied || m.AppliedAt.Before(before) || m.AppliedAt.After(after) {
			t.Errorf("after Migrate: %+v, want applied between %v and %v", m, before, after)
		}
		if m.AppliedAt.Location() != time.UTC {
			t.Errorf("migration %d appliedAt %v is not UTC", m.Version, m.AppliedAt)
		}
	}

	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again #%d: %v", i+1, err)
		}
		if again := migrations(t, s); fmt.Sprint(again) != fmt.Sprint(applied) {
			t.Errorf("Migrate again #%d changed the records: %+v, want %+v", i+1, again, applied)
		}
	}
}

// testConcurrentMigrate is several replicas starting at once on a new
// store: every Migrate succeeds, each migration is recorded, and the schema
// works.
func testConcurrentMigrate(t *testing.T, s Store) {
	ctx := context.Background()
	MigrateAtOnce(t, "concurrent migration", s, s, s, s)
	for _, m := range migrations(t, s) {
		if !m.Applied {
			t.Errorf("after concurrent Migrate: migration %d %q not applied", m.Version, m.Name)
		}
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "Once", PasswordHash: "h"}); err != nil {
		t.Fatalf("CreateUser after concurrent Migrate: %v", err)
	}
	_, err := s.CreateUser(ctx, store.User{Username: "ONCE", PasswordHash: "h"})
	wantErr(t, "CreateUser ONCE (unique index in force)", err, store.ErrUserExists)
}

// MigrateAtOnce runs Migrate on every store at the same time, as replicas
// starting together do, and fails t for each that returns an error; who
// names one in the failure ("replica" gives "replica 1: Migrate: ...").
func MigrateAtOnce[S store.Admin](t testing.TB, who string, stores ...S) {
	t.Helper()
	ctx := context.Background()
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %d: Migrate: %v", who, i, err)
		}
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func sameUser(t *testing.T, what string, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || got.PasswordHash != want.PasswordHash ||
		got.Disabled != want.Disabled || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testUsers(t *testing.T, s Store) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	alice, err := s.CreateUser(ctx, store.User{Username: "Alice", PasswordHash: "$2a$04$alice"})
	if err != nil {
		t.Fatalf("CreateUser Alice: %v", err)
	}
	if !objectIDHex.MatchString(alice.ID) {
		t.Errorf("user id %q is not a 24-hex ObjectId", alice.ID)
	}
	if alice.Username != "Alice" || alice.PasswordHash != "$2a$04$alice" || alice.Disabled {
		t.Errorf("CreateUser returned %+v", alice)
	}
	if alice.CreatedAt.Before(before) || alice.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt %v is not now", alice.CreatedAt)
	}
	if !alice.UpdatedAt.Equal(alice.CreatedAt) {
		t.Errorf("UpdatedAt %v != CreatedAt %v on creation", alice.UpdatedAt, alice.CreatedAt)
	}

	for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
		_, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "x"})
		wantErr(t, "CreateUser "+name, err, store.ErrUserExists)
	}
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		got, err := s.UserByName(ctx, name)
		if err != nil {
			t.Fatalf("UserByName(%q): %v", name, err)
		}
		sameUser(t, fmt.Sprintf("UserByName(%q)", name), got, alice)
	}
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	sameUser(t, "UserByID", got, alice)

	// Case folding is Unicode-aware.
	if _, err := s.CreateUser(ctx, store.User{Username: "Ärger", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser Ärger: %v", err)
	}
	_, err = s.CreateUser(ctx, store.User{Username: "äRGER", PasswordHash: "x"})
	wantErr(t, "CreateUser äRGER", err, store.ErrUserExists)
	if u, err := s.UserByName(ctx, "ÄRGER"); err != nil || u.Username != "Ärger" {
		t.Errorf("UserByName(ÄRGER) = %+v, %v", u, err)
	}

	_, err = s.UserByName(ctx, "bob")
	wantErr(t, "UserByName unknown", err, store.ErrNotFound)
	_, err = s.UserByName(ctx, "")
	wantErr(t, "UserByName empty", err, store.ErrNotFound)
	for _, id := range []string{"0123456789abcdef01234567", "not-an-id", "", strings.ToUpper(alice.ID) + "00"} {
		_, err = s.UserByID(ctx, id)
		wantErr(t, fmt.Sprintf("UserByID(%q)", id), err, store.ErrNotFound)
	}
}

func testConcurrentCreateUser(t *testing.T, s Store) {
	ctx := context.Background()
	const n = 12
	names := []string{"Zed", "zed", "ZED", "zEd"}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateUser(ctx, store.User{Username: names[i%len(names)], PasswordHash: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrUserExists):
			t.Errorf("CreateUser #%d: %v, want nil or ErrUserExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent CreateUser of one name succeeded, want exactly 1", won)
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(users) != 1 {
		t.Fatalf("ListUsers has %d users, want 1: %+v", len(users), users)
	}
}

func testUpdateUser(t *testing.T, s Store) {
	ctx := context.Background()
	u, err := s.CreateUser(ctx, store.User{Username: "bob", PasswordHash: "old"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	other, err := s.CreateUser(ctx, store.User{Username: "carol", PasswordHash: "carol"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	u.PasswordHash, u.Disabled = "new", true
	u.Username = "ignored" // UpdateUser sets the hash and the flag only
	if err := s.UpdateUser(ctx, u); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	if got.Username != "bob" || got.PasswordHash != "new" || !got.Disabled {
		t.Errorf("after UpdateUser: %+v", got)
	}
	if !got.CreatedAt.Equal(u.CreatedAt) || got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("after UpdateUser: createdAt %v (was %v), updatedAt %v", got.CreatedAt, u.CreatedAt, got.UpdatedAt)
	}
	if byName, err := s.UserByName(ctx, "BOB"); err != nil || byName.PasswordHash != "new" || !byName.Disabled {
		t.Errorf("UserByName after UpdateUser = %+v, %v", byName, err)
	}
	// Re-enabling works (false is written, not skipped).
	got.Disabled = false
	if err := s.UpdateUser(ctx, got); err != nil {
		t.Fatalf("UpdateUser enable: %v", err)
	}
	if again, err := s.UserByID(ctx, u.ID); err != nil || again.Disabled {
		t.Errorf("after enabling: %+v, %v", again, err)
	}
	// The other user is untouched.
	if o, err := s.UserByID(ctx, other.ID); err != nil || o.PasswordHash != "carol" || o.Disabled {
		t.Errorf("other user after UpdateUser: %+v, %v", o, err)
	}
	for _, id := range []string{"0123456789abcdef01234567", "bad"} {
		err := s.UpdateUser(ctx, store.User{ID: id, PasswordHash: "x"})
		wantErr(t, fmt.Sprintf("UpdateUser(%q)", id), err, store.ErrNotFound)
	}
}

func testListUsers(t *testing.T, s Store) {
	ctx := context.Background()
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 0 {
		t.Fatalf("ListUsers on empty store = %v, %v", users, err)
	}
	var want []store.User
	for _, name := range []string{"zoe", "Adam", "mike"} {
		u, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "h-" + name})
		if err != nil {
			t.Fatalf("CreateUser %s: %v", name, err)
		}
		want = append(want, u)
	}
	users, err = s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(users) != len(want) {
		t.Fatalf("ListUsers has %d users, want %d", len(users), len(want))
	}
	for i := range want {
		sameUser(t, fmt.Sprintf("ListUsers[%d] (creation order)", i), users[i], want[i])
	}
}

// msg is a message of room with id ms-seq.
func msg(room string, ms, seq uint64) store.Message {
	return store.Message{
		ID:       bus.ID{Ms: ms, Seq: seq},
		RoomID:   room,
		UserID:   "0123456789abcdef01234567",
		Username: "alice",
		Text:     fmt.Sprintf("%s %d-%d", room, ms, seq),
	}
}

// all returns every message of room, oldest first.
func all(t *testing.T, s Store, room string) []store.Message {
	t.Helper()
	msgs, more, err := s.Messages(context.Background(), room, store.Page{After: &bus.ID{}, Limit: 10000})
	if err != nil {
		t.Fatalf("Messages(%q): %v", room, err)
	}
	if more {
		t.Fatalf("Messages(%q): more than 10000", room)
	}
	return msgs
}

func ids(msgs []store.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID.String()
	}
	return out
}

func wantResult(t *testing.T, what string, got store.InsertResult, err error, inserted, dups int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got.Inserted != inserted || got.Duplicates != dups || len(got.Rejected) != 0 {
		t.Fatalf("%s = %+v, want %d inserted, %d duplicates, none rejected", what, got, inserted, dups)
	}
}

func testInsertMessages(t *testing.T, s Store) {
	ctx := context.Background()
	res, err := s.InsertMessages(ctx, nil)
	wantResult(t, "InsertMessages(nil)", res, err, 0, 0)

	stamp := time.Now().UnixMilli()
	full := store.Message{
		ID:       bus.ID{Ms: uint64(stamp), Seq: 7},
		RoomID:   "general",
		UserID:   "65a1b2c3d4e5f60718293a4b",
		Username: "Alice",
		Text:     "héllo, wörld ✓ \"quoted\" 'single' <b>",
		ClientID: "c-1",
	}
	legacyUser := store.Message{ // a user id that is not an ObjectId, as AuroraChat allows
		ID:     bus.ID{Ms: uint64(stamp), Seq: 8},
		RoomID: "general",
		UserID: "guest-42",
		Text:   "",
	}
	sameIDOtherRoom := full
	sameIDOtherRoom.RoomID = "random"
	res, err = s.InsertMessages(ctx, []store.Message{full, legacyUser, sameIDOtherRoom})
	wantResult(t, "InsertMessages", res, err, 3, 0)

	got := all(t, s, "general")
	if len(got) != 2 {
		t.Fatalf("general has %v, want 2 messages", ids(got))
	}
	m := got[0]
	if m.ID != full.ID || m.RoomID != "general" || m.UserID != full.UserID || m.Username != "Alice" ||
		m.Text != full.Text || m.ClientID != "c-1" || m.Status != "sent" {
		t.Errorf("stored message = %+v, want %+v with status sent", m, full)
	}
	if want := time.UnixMilli(stamp); !m.CreatedAt.Equal(want) {
		t.Errorf("CreatedAt = %v, want the id's millisecond %v", m.CreatedAt, want)
	}
	if m.UpdatedAt.IsZero() {
		t.Error("UpdatedAt is zero")
	}
	l := got[1]
	if l.UserID != "guest-42" || l.Text != "" || l.Username != "" || l.ClientID != "" {
		t.Errorf("stored message = %+v, want %+v", l, legacyUser)
	}
	if other := all(t, s, "random"); len(other) != 1 || other[0].ID != full.ID || other[0].RoomID != "random" {
		t.Errorf("random has %+v, want the one message with the same id", other)
	}
}

func testInsertIdempotent(t *testing.T, s Store) {
	ctx := context.Background()
	batch := []store.Message{msg("r", 10, 0), msg("r", 10, 1), msg("r", 11, 0), msg("s", 10, 0)}
	res, err := s.InsertMessages(ctx, batch)
	wantResult(t, "first delivery", res, err, 4, 0)
	res, err = s.InsertMessages(ctx, batch)
	wantResult(t, "redelivery", res, err, 0, 4)

	// A batch mixing stored and new messages stores the new ones.
	mixed := []store.Message{msg("r", 9, 0), msg("r", 10, 1), msg("r", 12, 0), msg("r", 11, 0)}
	res, err = s.InsertMessages(ctx, mixed)
	wantResult(t, "mixed batch", res, err, 2, 2)

	// A message twice in one batch is stored once.
	res, err = s.InsertMessages(ctx, []store.Message{msg("r", 13, 0), msg("r", 13, 0)})
	wantResult(t, "batch with a repeat", res, err, 1, 1)

	want := []string{"9-0", "10-0", "10-1", "11-0", "12-0", "13-0"}
	if got := ids(all(t, s, "r")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("room r holds %v, want %v (each once)", got, want)
	}
	if got := ids(all(t, s, "s")); fmt.Sprint(got) != "[10-0]" {
		t.Errorf("room s holds %v, want [10-0]", got)
	}
}

// testConcurrentRedelivery is two ingest workers storing the same batch at
// once (a claimed entry redelivered while the first worker still writes).
func testConcurrentRedelivery(t *testing.T, s Store) {
	ctx := context.Background()
	var batch []store.Message
	for i := range 40 {
		batch = append(batch, msg("busy", 5000+uint64(i/3), uint64(i%3)))
	}
	const workers = 4
	results := make([]store.InsertResult, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { results[w], errs[w] = s.InsertMessages(ctx, batch) })
	}
	wg.Wait()
	inserted, dups := 0, 0
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		inserted += results[w].Inserted
		dups += results[w].Duplicates
	}
	if inserted != len(batch) || dups != (workers-1)*len(batch) {
		t.Errorf("workers inserted %d and saw %d duplicates, want %d and %d", inserted, dups, len(batch), (workers-1)*len(batch))
	}
	if got := all(t, s, "busy"); len(got) != len(batch) {
		t.Errorf("room holds %d messages, want %d", len(got), len(batch))
	}
}

func testInsertRejected(t *testing.T, s Store) {
	ctx := context.Background()
	noRoom := msg("", 2, 0)
	noUser := msg("r", 3, 0)
	noUser.UserID = ""
	tooBig := msg("r", math.MaxUint64, 0)
	batch := []store.Message{msg("r", 1, 0), noRoom, noUser, msg("r", 4, 0), tooBig}
	res, err := s.InsertMessages(ctx, batch)
	if err != nil {
		t.Fatalf("InsertMessages: %v", err)
	}
	if res.Inserted != 2 || res.Duplicates != 0 || len(res.Rejected) != 3 {
		t.Fatalf("result = %+v, want 2 inserted and 3 rejected", res)
	}
	for _, i := range []int{1, 2, 4} {
		if res.Rejected[i] == "" {
			t.Errorf("message %d not rejected with a reason: %+v", i, res.Rejected)
		}
	}
	if got := ids(all(t, s, "r")); fmt.Sprint(got) != "[1-0 4-0]" {
		t.Errorf("room holds %v, want [1-0 4-0]", got)
	}
	// A batch of only refused messages stores nothing and is no error.
	res, err = s.InsertMessages(ctx, []store.Message{noRoom})
	if err != nil || res.Inserted != 0 || len(res.Rejected) != 1 {
		t.Errorf("all-refused batch = %+v, %v", res, err)
	}
}

func id(ms, seq uint64) *bus.ID { return &bus.ID{Ms: ms, Seq: seq} }

func testPaging(t *testing.T, s Store) {
	ctx := context.Background()
	// Ids sharing a millisecond (ordered by seq) and crossing digit counts
	// (999 < 1000 < 10000 numerically, not as text), stored shuffled among
	// another room's.
	room := []store.Message{
		msg("p", 999, 0), msg("p", 999, 1), msg("p", 999, 2), msg("p", 999, 10),
		msg("p", 1000, 0), msg("p", 1000, 1), msg("p", 1001, 0), msg("p", 10000, 0),
	}
	batch := append([]store.Message{}, room...)
	for _, m := range room {
		batch = append(batch, msg("q", m.ID.Ms, m.ID.Seq+1))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	res, err := s.InsertMessages(ctx, batch)
	wantResult(t, "InsertMessages", res, err, len(batch), 0)

	for _, c := range []struct {
		name string
		page store.Page
		want string
		more bool
	}{
		{"newest", store.Page{Limit: 3}, "[10000-0 1001-0 1000-1]", true},
		{"all newest first", store.Page{Limit: 8}, "[10000-0 1001-0 1000-1 1000-0 999-10 999-2 999-1 999-0]", false},
		{"before mid", store.Page{Before: id(1000, 1), Limit: 3}, "[1000-0 999-10 999-2]", true},
		{"before within ms", store.Page{Before: id(999, 10), Limit: 3}, "[999-2 999-1 999-0]", false},
		{"before seq 2 exact fit", store.Page{Before: id(999, 2), Limit: 2}, "[999-1 999-0]", false},
		{"before oldest", store.Page{Before: id(999, 0), Limit: 3}, "[]", false},
		{"before unstored id", store.Page{Before: id(1000, 5), Limit: 2}, "[1000-1 1000-0]", true},
		{"before beyond int64", store.Page{Before: id(math.MaxUint64, 0), Limit: 1}, "[10000-0]", true},
		{"before seq beyond int64", store.Page{Before: id(1000, math.MaxUint64), Limit: 3}, "[1000-1 1000-0 999-10]", true},
		{"after seq beyond int64", store.Page{After: id(999, math.MaxUint64), Limit: 2}, "[1000-0 1000-1]", true},
		{"after oldest", store.Page{After: id(999, 0), Limit: 3}, "[999-1 999-2 999-10]", true},
		{"after across ms", store.Page{After: id(999, 10), Limit: 3}, "[1000-0 1000-1 1001-0]", true},
		{"after exact fit", store.Page{After: id(1000, 1), Limit: 2}, "[1001-0 10000-0]", false},
		{"after zero", store.Page{After: id(0, 0), Limit: 2}, "[999-0 999-1]", true},
		{"after newest", store.Page{After: id(10000, 0), Limit: 3}, "[]", false},
		{"after beyond int64", store.Page{After: id(math.MaxUint64, 0), Limit: 3}, "[]", false},
		{"between", store.Page{After: id(999, 2), Before: id(1001, 0), Limit: 10}, "[999-10 1000-0 1000-1]", false},
		{"between limited", store.Page{After: id(999, 2), Before: id(1001, 0), Limit: 2}, "[999-10 1000-0]", true},
	} {
		got, more, err := s.Messages(ctx, "p", c.page)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if fmt.Sprint(ids(got)) != c.want || more != c.more {
			t.Errorf("%s: got %v more=%v, want %s more=%v", c.name, ids(got), more, c.want, c.more)
		}
		for _, m := range got {
			if m.RoomID != "p" {
				t.Errorf("%s: message %s of room %q in room p's page", c.name, m.ID, m.RoomID)
			}
		}
	}
	got, more, err := s.Messages(ctx, "nobody-here", store.Page{Limit: 5})
	if err != nil || len(got) != 0 || more {
		t.Errorf("Messages of an empty room = %v, %v, %v", ids(got), more, err)
	}
}

func testPagingDefaultLimit(t *testing.T, s Store) {
	ctx := context.Background()
	var batch []store.Message
	for i := range store.DefaultPageLimit + 5 {
		batch = append(batch, msg("big", 100+uint64(i), 0))
	}
	res, err := s.InsertMessages(ctx, batch)
	wantResult(t, "InsertMessages", res, err, len(batch), 0)
	for _, limit := range []int{0, -1} {
		got, more, err := s.Messages(ctx, "big", store.Page{Limit: limit})
		if err != nil {
			t.Fatalf("Messages limit %d: %v", limit, err)
		}
		if len(got) != store.DefaultPageLimit || !more || got[0].ID.Ms != 100+uint64(len(batch))-1 {
			t.Errorf("limit %d: %d messages from %v, more=%v; want the newest %d and more", limit, len(got), got[0].ID, more, store.DefaultPageLimit)
		}
	}
}

func testLatestMessage(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := s.LatestMessage(ctx, "r")
	wantErr(t, "LatestMessage of an empty room", err, store.ErrNotFound)
	res, err := s.InsertMessages(ctx, []store.Message{msg("r", 1000, 0), msg("r", 999, 5), msg("r", 1000, 2), msg("other", 2000, 0)})
	wantResult(t, "InsertMessages", res, err, 4, 0)
	m, err := s.LatestMessage(ctx, "r")
	if err != nil {
		t.Fatalf("LatestMessage: %v", err)
	}
	if m.ID.String() != "1000-2" || m.RoomID != "r" || m.Text != "r 1000-2" {
		t.Errorf("LatestMessage = %+v, want r's 1000-2", m)
	}
	_, err = s.LatestMessage(ctx, "nobody-here")
	wantErr(t, "LatestMessage of another empty room", err, store.ErrNotFound)
}

func testRooms(t *testing.T, s Store) {
	ctx := context.Background()
	// A migrated store has general, public, made by nobody (the migration).
	rooms, err := s.ListRooms(ctx)
	if err != nil || len(rooms) != 1 || rooms[0].Name != "general" || rooms[0].Type != store.RoomPublic ||
		rooms[0].CreatedBy != "" || rooms[0].CreatedAt.IsZero() {
		t.Fatalf("ListRooms on a new store = %+v, %v; want general, public, by nobody", rooms, err)
	}
	_, err = s.CreateRoom(ctx, store.Room{Name: "general", CreatedBy: "carol"}, nil)
	wantErr(t, "CreateRoom general", err, store.ErrRoomExists)
	dev, err := s.CreateRoom(ctx, store.Room{Name: "dev", CreatedBy: "alice"}, nil)
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if dev.Name != "dev" || dev.CreatedBy != "alice" || dev.CreatedAt.IsZero() || dev.Type != store.RoomPublic {
		t.Errorf("CreateRoom returned %+v", dev)
	}
	at := time.Date(2024, 1, 11, 0, 0, 0, 0, time.UTC)
	random, err := s.CreateRoom(ctx, store.Room{Name: "Random", CreatedBy: "bob", CreatedAt: at}, nil)
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if !random.CreatedAt.Equal(at) {
		t.Errorf("CreatedAt = %v, want the given %v", random.CreatedAt, at)
	}
	_, err = s.CreateRoom(ctx, store.Room{Name: "dev", CreatedBy: "carol"}, nil)
	wantErr(t, "CreateRoom again", err, store.ErrRoomExists)

	rooms, err = s.ListRooms(ctx)
	if err != nil {
		t.Fatalf("ListRooms: %v", err)
	}
	if len(rooms) != 3 || rooms[0].Name != "Random" || rooms[1].Name != "dev" || rooms[2].Name != "general" {
		t.Fatalf("ListRooms = %+v, want Random, dev, general (by name)", rooms)
	}
	if rooms[1].CreatedBy != "alice" || !rooms[1].CreatedAt.Equal(dev.CreatedAt) || !rooms[0].CreatedAt.Equal(at) {
		t.Errorf("ListRooms = %+v, want %+v and %+v", rooms, random, dev)
	}

	if err := s.DeleteRoom(ctx, "dev"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	wantErr(t, "DeleteRoom again", s.DeleteRoom(ctx, "dev"), store.ErrNotFound)
	wantErr(t, "DeleteRoom unknown", s.DeleteRoom(ctx, "never"), store.ErrNotFound)
	rooms, err = s.ListRooms(ctx)
	if err != nil || len(rooms) != 2 || rooms[0].Name != "Random" || rooms[1].Name != "general" {
		t.Errorf("ListRooms after delete = %+v, %v", rooms, err)
	}
	// A deleted room's name can be created again.
	if _, err := s.CreateRoom(ctx, store.Room{Name: "dev", CreatedBy: "carol"}, nil); err != nil {
		t.Errorf("CreateRoom after delete: %v", err)
	}
}
