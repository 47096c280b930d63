// Package sqlitestore is the embedded store: one SQLite file (pure Go,
// modernc.org/sqlite) with tables named like the MongoDB collections (users,
// messages, rooms, members, bans, invites) and columns named like the
// document fields, so an operator queries either backend the same way. An
// unset optional time (mutedUntil, expiresAt, validAfter) is the empty
// string.
//
// Several aurora processes on one host may share the file: it runs in WAL
// mode (readers never block the writer), every connection waits up to
// busyTimeout for a lock instead of failing with SQLITE_BUSY, and
// transactions begin IMMEDIATE so a transaction that reads and then writes
// cannot fail half-way when another process wrote in between.
//
// Times are TEXT in RFC 3339 UTC with milliseconds ("2024-01-11T00:00:00.000Z",
// AuroraChat's JSON date format): readable in the sqlite3 shell and ordered
// as text. A message's id is kept whole (msgId) and as its two numeric parts
// (msgMs, msgSeq), which give the numeric order paging needs ("999-0" comes
// before "1000-0").
//
// The schema is versioned: the migrations table records each applied step of
// the migrator (see Migrate and docs/migrations.md).
//
// The file holds the users' password hashes, so it and its -wal and -shm
// are kept at FileMode (0600) whatever the umask: Open creates the file
// with that mode before SQLite sees it (SQLite gives the -wal and -shm it
// creates the mode of the database file, regardless of the umask) and
// tightens any of the three that an earlier Aurora left more open.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// busyTimeout is how long a statement waits for another connection's or
// process's write lock before failing.
const busyTimeout = 5 * time.Second

// timeFormat is how times are stored: RFC 3339, UTC, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z"

// schema is migration 1: the tables and indexes. Every statement is
// idempotent, so it also completes a file an earlier Aurora created before
// migrations were recorded.
const schema = `
CREATE TABLE IF NOT EXISTS users (
	_id          TEXT PRIMARY KEY,
	username     TEXT NOT NULL,
	usernameKey  TEXT NOT NULL UNIQUE,
	passwordHash TEXT NOT NULL,
	disabled     INTEGER NOT NULL DEFAULT 0,
	createdAt    TEXT NOT NULL,
	updatedAt    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
	_id         TEXT PRIMARY KEY,
	roomId      TEXT NOT NULL,
	msgId       TEXT NOT NULL,
	msgMs       INTEGER NOT NULL,
	msgSeq      INTEGER NOT NULL,
	userId      TEXT NOT NULL,
	username    TEXT NOT NULL DEFAULT '',
	text        TEXT NOT NULL,
	clientId    TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL DEFAULT 'sent',
	attachments TEXT NOT NULL DEFAULT '[]',
	createdAt   TEXT NOT NULL,
	updatedAt   TEXT NOT NULL,
	UNIQUE (roomId, msgId)
);
CREATE INDEX IF NOT EXISTS messages_roomId_createdAt ON messages (roomId, createdAt);
CREATE INDEX IF NOT EXISTS messages_roomId_msgMs_msgSeq ON messages (roomId, msgMs, msgSeq);
CREATE INDEX IF NOT EXISTS messages_userId ON messages (userId);
CREATE TABLE IF NOT EXISTS rooms (
	name      TEXT PRIMARY KEY,
	createdBy TEXT NOT NULL DEFAULT '',
	createdAt TEXT NOT NULL
);
`

// migrationsTable records the applied migrations; the version primary key
// makes recording one twice impossible.
const migrationsTable = `
CREATE TABLE IF NOT EXISTS migrations (
	version   INTEGER PRIMARY KEY,
	name      TEXT NOT NULL,
	appliedAt TEXT NOT NULL
);
`

// step is a SQLite migration step's code, run in the transaction that
// records it (so a step that fails or is interrupted leaves nothing behind).
type step func(ctx context.Context, tx *sql.Tx) error

// execSQL is the step that runs one script.
func execSQL(script string) step {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, script)
		return err
	}
}

// migrator is this file's side of store.Migrator: each step runs in the
// transaction that records it. Its steps are the schema's history, in
// version order: append new steps; never change or renumber an applied one.
func (s *Store) migrator() store.Migrator[step] {
	return store.Migrator[step]{
		Store: "sqlite " + s.path,
		Steps: []store.Step[step]{
			{Migration: store.Migration{Version: 1, Name: "initial schema"}, Apply: execSQL(schema)},
			{Migration: store.Migration{Version: 2, Name: migRoomsSchema}, Apply: roomsSchema},
			{Migration: store.Migration{Version: 3, Name: migRoomsFromMessages}, Apply: roomsFromMessages},
			{Migration: store.Migration{Version: 4, Name: migLifeSchema}, Apply: lifeSchema},
		},
		Applied: s.applied,
		Apply:   s.apply,
	}
}

// FileMode is the mode of the database file and of its -wal and -shm.
const FileMode fs.FileMode = 0o600

// Store is a store.Store over one SQLite file.
type Store struct {
	db    *sql.DB
	path  string
	fixes []PermFix
}

// PermFix is a file Open found readable or writable by group or others: it
// was tightened to FileMode, or Err says why it could not be.
type PermFix struct {
	Path string
	Was  fs.FileMode // permission bits before
	Err  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite file at path and checks it can
// be read. It does not migrate.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("sqlite path %q: must be non-empty and contain no '?'", path)
	}
	var fixes []PermFix
	fix, err := createPrivate(path)
	if err != nil {
		return nil, err
	}
	if fix != nil {
		fixes = append(fixes, *fix)
	}
	dsn := fmt.Sprintf("%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate",
		path, busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Writers serialize on the file lock anyway; a few connections let reads
	// proceed alongside a write without opening a file handle per goroutine.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &Store{db: db, path: path}
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	// A -wal or -shm left by a process that did not close cleanly (an
	// older Aurora's at 0644, say) keeps its mode: SQLite sets the mode only
	// of the ones it creates.
	for _, suffix := range []string{"-wal", "-shm"} {
		if fix := tighten(path + suffix); fix != nil {
			fixes = append(fixes, *fix)
		}
	}
	s.fixes = fixes
	return s, nil
}

// PermFixes lists the files Open found open to group or others.
func (s *Store) PermFixes() []PermFix { return append([]PermFix(nil), s.fixes...) }

// createPrivate creates the database file at FileMode, or tightens an
// existing one that group or others can access (and reports it).
func createPrivate(path string) (*PermFix, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err == nil {
		// New: only the umask can have taken bits away.
		defer f.Close()
		if err := f.Chmod(FileMode); err != nil {
			return nil, fmt.Errorf("open sqlite %s: set mode %v: %w", path, FileMode, err)
		}
		return nil, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return tighten(path), nil
}

// tighten gives the file at path FileMode when group or others have any
// access to it, and returns what it did; a missing or private file is left
// alone (nil).
func tighten(path string) *PermFix {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // gone, or unreadable: SQLite reports what matters
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	return &PermFix{Path: path, Was: was, Err: os.Chmod(path, FileMode)}
}

// Kind is "sqlite".
func (s *Store) Kind() string { return "sqlite" }

// Ping reads the schema table, which fails when the file is unreadable or
// not a database.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		return fmt.Errorf("ping sqlite %s: %w", s.path, err)
	}
	return nil
}

// Migrate applies the pending steps, each in its own transaction together
// with its record. Transactions begin IMMEDIATE, taking the file's write
// lock, so a second process migrating the same file waits, then finds the
// step recorded and skips it.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, migrationsTable); err != nil {
		return fmt.Errorf("migrate sqlite %s: create migrations table: %w", s.path, err)
	}
	return s.migrator().Migrate(ctx)
}

// apply runs one step and records it, unless another process recorded it
// since Migrate read the table.
func (s *Store) apply(ctx context.Context, st store.Step[step]) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE version = ?`, st.Version).Scan(&n); err != nil {
		return fmt.Errorf("read record: %w", err)
	}
	if n > 0 {
		return nil
	}
	if err := st.Apply(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO migrations (version, name, appliedAt) VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING`,
		st.Version, st.Name, formatTime(now())); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// applied reads the migrations table; a file never migrated has none.
func (s *Store) applied(ctx context.Context) ([]store.AppliedMigration, error) {
	var n int
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	out, err := queryAll(ctx, s.db, func(r scanner) (store.AppliedMigration, error) {
		var a store.AppliedMigration
		var at string
		if err := r.Scan(&a.Version, &a.Name, &at); err != nil {
			return a, err
		}
		var err error
		if a.AppliedAt, err = parseTime(at); err != nil {
			return a, fmt.Errorf("migration %d: %w", a.Version, err)
		}
		return a, nil
	}, `SELECT version, name, appliedAt FROM migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return out, nil
}

// Migrations reports every known step and whether it is applied; it only
// reads, so it does not create the migrations table.
func (s *Store) Migrations(ctx context.Context) ([]store.MigrationStatus, error) {
	return s.migrator().Statuses(ctx)
}

// Close closes the database.
func (s *Store) Close(context.Context) error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite %s: %w", s.path, err)
	}
	return nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// formatOptTime stores an optional time: "" for the zero time (none).
func formatOptTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

// parseOptTime reads what formatOptTime stored.
func parseOptTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return parseTime(s)
}

// truncOpt is an optional time as the store keeps it: UTC milliseconds,
// zero kept zero.
func truncOpt(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// CreateUser inserts u with a new ObjectId; the UNIQUE usernameKey column
// makes concurrent registrations of one name (in any case) fail but one.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	u.ID = bson.NewObjectID().Hex()
	u.ValidAfter = truncOpt(u.ValidAfter)
	u.CreatedAt = now()
	u.UpdatedAt = u.CreatedAt
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO users (_id, username, usernameKey, passwordHash, disabled, admin, validAfter, createdAt, updatedAt)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, store.UsernameKey(u.Username), u.PasswordHash, u.Disabled, u.Admin, formatOptTime(u.ValidAfter),
		formatTime(u.CreatedAt), formatTime(u.UpdatedAt))
	if isUnique(err) {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, store.ErrUserExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return u, nil
}

const userColumns = `_id, username, passwordHash, disabled, admin, validAfter, createdAt, updatedAt`

type scanner interface{ Scan(dest ...any) error }

// queryAll runs q and scans every row it returns with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, scan)
}

// scanAll scans every row of rows with scan and closes them.
func scanAll[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanUser(r scanner) (store.User, error) {
	var u store.User
	var validAfter, created, updated string
	if err := r.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Disabled, &u.Admin, &validAfter, &created, &updated); err != nil {
		return store.User{}, err
	}
	var err error
	if u.ValidAfter, err = parseOptTime(validAfter); err != nil {
		return store.User{}, err
	}
	if u.CreatedAt, err = parseTime(created); err != nil {
		return store.User{}, err
	}
	if u.UpdatedAt, err = parseTime(updated); err != nil {
		return store.User{}, err
	}
	return u, nil
}

func (s *Store) userWhere(ctx context.Context, what, where string, arg any) (store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("find user %s: %w", what, err)
	}
	return u, nil
}

// UserByName finds a user by the case-folded username.
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	return s.userWhere(ctx, fmt.Sprintf("%q", username), "usernameKey = ?", store.UsernameKey(username))
}

// UserByID finds a user by id; a malformed id simply matches nothing. No
// role looks users up by id: it is here for the contract suite
// (storetest.Store) and tests.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	return s.userWhere(ctx, "id "+id, "_id = ?", id)
}

// ListUsers returns every user in creation order (ObjectIds sort by time).
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	users, err := queryAll(ctx, s.db, scanUser, `SELECT `+userColumns+` FROM users ORDER BY _id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// UpdateUser sets the password hash, the disabled and admin flags and
// validAfter, and updatedAt to now.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE users SET passwordHash = ?, disabled = ?, admin = ?, validAfter = ?, updatedAt = ? WHERE _id = ?`,
		u.PasswordHash, u.Disabled, u.Admin, formatOptTime(u.ValidAfter), formatTime(now()), u.ID)
	if err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update user %s: %w", u.ID, store.ErrNotFound)
	}
	return nil
}

// InsertMessages inserts the batch in one transaction; ON CONFLICT DO NOTHING
// on (roomId, msgId) turns an already stored message into a duplicate
// instead of an error, so a redelivered batch is stored once. In the same
// transaction a new message is indexed for search and its mentions
// recorded, and every life entry, new or duplicate, is applied to its
// message (applyLife), so the batch and its effects commit together.
func (s *Store) InsertMessages(ctx context.Context, msgs []store.Message) (store.InsertResult, error) {
	var res store.InsertResult
	if len(msgs) == 0 {
		return res, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert batch of %d: begin: %w", len(msgs), err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO messages (_id, roomId, msgId, msgMs, msgSeq, userId, username, text, clientId, status, type, event,
		   messageId, emoji, "on", replyTo, mentions, attachments, createdAt, updatedAt)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (roomId, msgId) DO NOTHING`)
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert batch of %d: prepare: %w", len(msgs), err)
	}
	defer stmt.Close()
	updated := formatTime(now())
	var fresh []store.Message // chat messages inserted now
	for i, m := range msgs {
		if reason := store.CheckMessage(m); reason != "" {
			if res.Rejected == nil {
				res.Rejected = map[int]string{}
			}
			res.Rejected[i] = reason
			continue
		}
		status := m.Status
		if status == "" {
			status = "sent"
		}
		created := formatTime(time.UnixMilli(int64(m.ID.Ms)))
		var target string
		if bus.IsLife(m.Type) {
			target = m.MessageID.String()
		}
		r, err := stmt.ExecContext(ctx, bson.NewObjectID().Hex(), m.RoomID, m.ID.String(),
			int64(m.ID.Ms), int64(m.ID.Seq), m.UserID, m.Username, m.Text, m.ClientID, status, m.Type, m.Event,
			target, m.Emoji, m.On, m.ReplyTo, jsonList(m.Mentions), jsonList(m.Attachments), created, updated)
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: message %s of room %q: %w", len(msgs), m.ID, m.RoomID, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: %w", len(msgs), err)
		}
		if n == 0 {
			res.Duplicates++
		} else {
			res.Inserted++
		}
		// The transaction stores a message and its effects together, so a
		// duplicate message had them already; a life entry is applied
		// again either way (applying one twice changes nothing).
		if m.Type == "" && n > 0 {
			if err := addMessage(ctx, tx, m); err != nil {
				return store.InsertResult{}, fmt.Errorf("insert batch of %d: message %s of room %q: %w", len(msgs), m.ID, m.RoomID, err)
			}
			fresh = append(fresh, m)
		}
		if bus.IsLife(m.Type) {
			removed, err := applyLife(ctx, tx, m)
			if err != nil {
				return store.InsertResult{}, fmt.Errorf("insert batch of %d: apply %s %s of room %q: %w", len(msgs), m.Type, m.ID, m.RoomID, err)
			}
			res.Removed = append(res.Removed, removed...)
		}
	}
	removed, err := applyEarly(ctx, tx, fresh)
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert batch of %d: %w", len(msgs), err)
	}
	res.Removed = append(res.Removed, removed...)
	if err := tx.Commit(); err != nil {
		return store.InsertResult{}, fmt.Errorf("insert batch of %d: commit: %w", len(msgs), err)
	}
	return res, nil
}

// messageColumns are the columns scanMessage reads, in its order.
const messageColumns = `roomId, msgMs, msgSeq, userId, username, text, clientId, status, type, event, createdAt, updatedAt,
	messageId, emoji, "on", replyTo, mentions, attachments, edited, deleted`

// prefixed is cols (a comma-separated list) with each column qualified
// by table alias a.
func prefixed(a, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = a + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func scanMessage(r scanner) (store.Message, error) {
	var m store.Message
	var ms, seq int64
	var created, updated, target, mentions, attachments, edited string
	if err := r.Scan(&m.RoomID, &ms, &seq, &m.UserID, &m.Username, &m.Text, &m.ClientID, &m.Status, &m.Type, &m.Event, &created, &updated,
		&target, &m.Emoji, &m.On, &m.ReplyTo, &mentions, &attachments, &edited, &m.Deleted); err != nil {
		return store.Message{}, err
	}
	m.ID = bus.ID{Ms: uint64(ms), Seq: uint64(seq)}
	var err error
	if m.CreatedAt, err = parseTime(created); err != nil {
		return store.Message{}, err
	}
	if m.UpdatedAt, err = parseTime(updated); err != nil {
		return store.Message{}, err
	}
	if m.Edited, err = parseOptTime(edited); err != nil {
		return store.Message{}, err
	}
	if target != "" {
		if m.MessageID, err = bus.ParseID(target); err != nil {
			return store.Message{}, fmt.Errorf("stored messageId: %w", err)
		}
	}
	if err := fromJSONList(mentions, &m.Mentions); err != nil {
		return store.Message{}, fmt.Errorf("stored mentions: %w", err)
	}
	if err := fromJSONList(attachments, &m.Attachments); err != nil {
		return store.Message{}, fmt.Errorf("stored attachments: %w", err)
	}
	return m, nil
}

// Messages returns one page of a room, fetching one row more than the page
// to learn whether more lie beyond it. Bounds compare (msgMs, msgSeq) as a
// row value, which the (roomId, msgMs, msgSeq) index serves; a history
// page (no life entries) reads the partial index messages_history, which
// holds no life entry, so skipping them costs nothing and the page is
// full whenever more messages exist.
func (s *Store) Messages(ctx context.Context, room string, p store.Page) ([]store.Message, bool, error) {
	q := `SELECT ` + messageColumns + ` FROM messages WHERE roomId = ? AND messageId = ''`
	if p.Life {
		q = `SELECT ` + messageColumns + ` FROM messages WHERE roomId = ?`
	}
	args := []any{room}
	if p.Before != nil {
		cond, bargs := bound("<", *p.Before)
		q += cond
		args = append(args, bargs...)
	}
	if p.After != nil {
		cond, bargs := bound(">", *p.After)
		q += cond
		args = append(args, bargs...)
	}
	if p.Ascending() {
		q += ` ORDER BY msgMs, msgSeq`
	} else {
		q += ` ORDER BY msgMs DESC, msgSeq DESC`
	}
	size := p.Size()
	q += ` LIMIT ?`
	args = append(args, size+1)

	msgs, err := queryAll(ctx, s.db, scanMessage, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("messages of room %q: %w", room, err)
	}
	more := len(msgs) > size
	if more {
		msgs = msgs[:size]
	}
	if err := s.withState(ctx, room, msgs, p.Viewer); err != nil {
		return nil, false, fmt.Errorf("messages of room %q: %w", room, err)
	}
	return msgs, more, nil
}

// bound is the condition that a row's id is op ("<" or ">") id. Parts beyond
// int64 cannot be bound as parameters, and no stored id reaches them
// (store.CheckMessage), so they are decided here instead.
func bound(op string, id bus.ID) (string, []any) { return boundOn("", op, id) }

// boundOn is bound over the columns of table alias a ("" unqualified).
func boundOn(a, op string, id bus.ID) (string, []any) {
	msCol, seqCol := "msgMs", "msgSeq"
	if a != "" {
		msCol, seqCol = a+".msgMs", a+".msgSeq"
	}
	const maxPart = 1<<63 - 1
	switch {
	case id.Ms > maxPart && op == "<":
		return "", nil // every stored id is before it
	case id.Ms > maxPart:
		return " AND 0", nil // none is after it
	case id.Seq > maxPart && op == "<":
		return " AND " + msCol + " <= ?", []any{int64(id.Ms)}
	case id.Seq > maxPart:
		return " AND " + msCol + " > ?", []any{int64(id.Ms)}
	}
	return " AND (" + msCol + ", " + seqCol + ") " + op + " (?, ?)", []any{int64(id.Ms), int64(id.Seq)}
}

// LatestMessage returns the newest message of a room, for the contract
// suite (storetest.Store) and tests; no role needs it.
func (s *Store) LatestMessage(ctx context.Context, room string) (store.Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE roomId = ? ORDER BY msgMs DESC, msgSeq DESC LIMIT 1`, room))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, fmt.Errorf("latest message of room %q: %w", room, store.ErrNotFound)
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("latest message of room %q: %w", room, err)
	}
	return m, nil
}

// likeEscape escapes LIKE's wildcards (% and _) and its escape character
// (\) in s, for a pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SearchUsers returns the users whose usernameKey starts with q folded,
// by usernameKey. The range condition lets the usernameKey index serve
// the search (LIKE alone would not use it); LIKE then checks the prefix.
func (s *Store) SearchUsers(ctx context.Context, q string, limit int) ([]store.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	key := store.UsernameKey(q)
	users, err := queryAll(ctx, s.db, scanUser,
		`SELECT `+userColumns+` FROM users WHERE usernameKey >= ? AND usernameKey LIKE ? ESCAPE '\'
		 ORDER BY usernameKey LIMIT ?`, key, likeEscape(key)+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("search users %q: %w", q, err)
	}
	return users, nil
}

// UsersChangedSince returns the users updated at or after since, oldest
// change first (the users_updatedAt index serves it).
func (s *Store) UsersChangedSince(ctx context.Context, since time.Time) ([]store.User, error) {
	users, err := queryAll(ctx, s.db, scanUser,
		`SELECT `+userColumns+` FROM users WHERE updatedAt >= ? ORDER BY updatedAt, _id`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("users changed since %v: %w", since, err)
	}
	return users, nil
}

// FlaggedUsers returns the disabled users, the admins and those with a
// validAfter, in creation order.
func (s *Store) FlaggedUsers(ctx context.Context) ([]store.User, error) {
	users, err := queryAll(ctx, s.db, scanUser,
		`SELECT `+userColumns+` FROM users WHERE disabled != 0 OR admin != 0 OR validAfter != '' ORDER BY _id`)
	if err != nil {
		return nil, fmt.Errorf("flagged users: %w", err)
	}
	return users, nil
}
