package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// The names of the rooms-and-people migrations (the same on MongoDB).
const (
	migRoomsSchema       = "rooms-and-people schema"
	migRoomsFromMessages = "rooms-from-messages"
)

// roomsTables is the part of migration 2 that creates: the members, bans
// and invites tables and the new indexes. Times are TEXT like everywhere
// (” is "none": never muted, a ban or invitation without expiry, no
// validAfter). "by" is quoted because BY is an SQL keyword.
const roomsTables = `
CREATE TABLE IF NOT EXISTS members (
	room       TEXT NOT NULL,
	userId     TEXT NOT NULL,
	username   TEXT NOT NULL DEFAULT '',
	role       TEXT NOT NULL,
	joinedAt   TEXT NOT NULL,
	mutedUntil TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room, userId)
);
CREATE INDEX IF NOT EXISTS members_userId ON members (userId);
CREATE TABLE IF NOT EXISTS bans (
	room      TEXT NOT NULL,
	userId    TEXT NOT NULL,
	reason    TEXT NOT NULL DEFAULT '',
	"by"      TEXT NOT NULL DEFAULT '',
	at        TEXT NOT NULL,
	expiresAt TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room, userId)
);
CREATE TABLE IF NOT EXISTS invites (
	token     TEXT PRIMARY KEY,
	room      TEXT NOT NULL,
	userId    TEXT NOT NULL DEFAULT '',
	"by"      TEXT NOT NULL DEFAULT '',
	createdAt TEXT NOT NULL,
	expiresAt TEXT NOT NULL DEFAULT '',
	maxUses   INTEGER NOT NULL DEFAULT 0,
	uses      INTEGER NOT NULL DEFAULT 0,
	revoked   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS invites_room ON invites (room);
CREATE INDEX IF NOT EXISTS invites_userId ON invites (userId);
CREATE INDEX IF NOT EXISTS users_updatedAt ON users (updatedAt);
CREATE INDEX IF NOT EXISTS rooms_type_name ON rooms (type, name);
`

// newColumns are the columns migration 2 adds to the tables of migration 1.
// Every one has a default, so existing rows read as before: rooms are
// public, users neither admins nor with a validAfter, messages chat
// messages.
var newColumns = []struct{ table, column, decl string }{
	{"rooms", "type", "TEXT NOT NULL DEFAULT 'public'"},
	{"rooms", "title", "TEXT NOT NULL DEFAULT ''"},
	{"rooms", "topic", "TEXT NOT NULL DEFAULT ''"},
	{"users", "admin", "INTEGER NOT NULL DEFAULT 0"},
	{"users", "validAfter", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "type", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "event", "TEXT NOT NULL DEFAULT ''"},
}

// roomsSchema is migration 2. SQLite has no ADD COLUMN IF NOT EXISTS, so
// each column is added only when the table lacks it: the step is then
// idempotent like every other, even on a file where some columns exist.
// Adding a column with a constant default rewrites no row, so it is quick
// on a large messages table.
func roomsSchema(ctx context.Context, tx *sql.Tx) error {
	for _, c := range newColumns {
		var n int
		if err := tx.QueryRowContext(ctx,
			`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("read columns of %s: %w", c.table, err)
		}
		if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN %q %s`, c.table, c.column, c.decl)); err != nil {
			return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
		}
	}
	if _, err := tx.ExecContext(ctx, roomsTables); err != nil {
		return fmt.Errorf("create members, bans, invites: %w", err)
	}
	return nil
}

// roomsFromMessages is migration 3: every room that exists only as the
// roomId of messages (AuroraChat's rooms, and Aurora's before rooms were
// records) becomes a public room created by nobody at its first message,
// and general exists as a public room. A roomId that is no valid room name
// (AuroraChat accepted any) is skipped: no client can address it. INSERT OR
// IGNORE keeps an existing row, so the step is idempotent.
func roomsFromMessages(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx,
		`SELECT roomId, min(createdAt) FROM messages
		 WHERE roomId NOT IN (SELECT name FROM rooms) GROUP BY roomId`)
	if err != nil {
		return fmt.Errorf("find rooms of messages: %w", err)
	}
	type first struct{ room, at string }
	var found []first
	for rows.Next() {
		var f first
		if err := rows.Scan(&f.room, &f.at); err != nil {
			_ = rows.Close()
			return fmt.Errorf("read rooms of messages: %w", err)
		}
		if bus.ValidRoom(f.room) {
			found = append(found, f)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read rooms of messages: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rooms of messages: %w", err)
	}
	found = append(found, first{room: "general", at: formatTime(now())})
	for _, f := range found {
		if _, err := tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO rooms (name, type, title, topic, createdBy, createdAt) VALUES (?, ?, '', '', '', ?)`,
			f.room, store.RoomPublic, f.at); err != nil {
			return fmt.Errorf("create room %q: %w", f.room, err)
		}
	}
	return nil
}
