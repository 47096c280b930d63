package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is a message's life on SQLite: migration 4's schema, applying
// edits, deletes, reactions and read markers in InsertMessages' transaction,
// the state a page shows, search (FTS5), unread counts and retention.
//
// Search: messages_fts is a contentless FTS5 table (the text lives in
// messages only) whose rowid is the INTEGER PRIMARY KEY of
// messages_search, a row per indexed message naming it by (roomId,
// msgMs, msgSeq). The messages table has no integer key of its own to use
// (its rowid may change on VACUUM), hence the mapping. Only chat messages
// with text are indexed: an edit reindexes, a delete or expiry removes.
//
// The search key (that rowid) follows message id order: msgMs in the top
// bits, then msgSeq, then a slot telling apart messages of several rooms
// with the same id (searchKey). FTS5 hands out matches in rowid order,
// so "newest first, LIMIT n" reads the newest n matches and stops, rather
// than sorting every match: a common word costs as little as a rare one.

const migLifeSchema = "message-life schema"

// lifeColumns are the columns migration 4 adds, each with a default so
// existing rows read as before: no life, no options, not edited or
// deleted, the rooms on the server's retention. "on" is quoted: ON is a
// keyword.
var lifeColumns = []struct{ table, column, decl string }{
	{"messages", "messageId", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "emoji", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "on", "INTEGER NOT NULL DEFAULT 0"},
	{"messages", "replyTo", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "mentions", "TEXT NOT NULL DEFAULT '[]'"},
	{"messages", "edited", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "editId", "TEXT NOT NULL DEFAULT ''"},
	{"messages", "deleted", "INTEGER NOT NULL DEFAULT 0"},
	{"rooms", "retention", "INTEGER NOT NULL DEFAULT 0"},
}

// lifeTables is the rest of migration 4. reactions keeps one row per
// (message, user, emoji) with the id of the reaction event applied last
// (eventMs, eventSeq: its numeric order); reads one marker per (room,
// user); mentions one row per mentioned user of a message, by the
// message's id, so Unread counts a range of it. The partial indexes serve
// history (no life entries: messageId ”) and unread counts (chat
// messages not deleted).
const lifeTables = `
CREATE TABLE IF NOT EXISTS reactions (
	room      TEXT NOT NULL,
	messageId TEXT NOT NULL,
	userId    TEXT NOT NULL,
	emoji     TEXT NOT NULL,
	"on"      INTEGER NOT NULL,
	eventId   TEXT NOT NULL,
	eventMs   INTEGER NOT NULL,
	eventSeq  INTEGER NOT NULL,
	PRIMARY KEY (room, messageId, userId, emoji)
);
CREATE TABLE IF NOT EXISTS reads (
	room   TEXT NOT NULL,
	userId TEXT NOT NULL,
	msgId  TEXT NOT NULL,
	msgMs  INTEGER NOT NULL,
	msgSeq INTEGER NOT NULL,
	PRIMARY KEY (room, userId)
);
CREATE INDEX IF NOT EXISTS reads_userId ON reads (userId);
CREATE TABLE IF NOT EXISTS mentions (
	room   TEXT NOT NULL,
	userId TEXT NOT NULL,
	msgId  TEXT NOT NULL,
	msgMs  INTEGER NOT NULL,
	msgSeq INTEGER NOT NULL,
	PRIMARY KEY (room, userId, msgMs, msgSeq)
);
CREATE INDEX IF NOT EXISTS mentions_room_msgMs_msgSeq ON mentions (room, msgMs, msgSeq);
CREATE INDEX IF NOT EXISTS messages_history ON messages (roomId, msgMs, msgSeq) WHERE messageId = '';
CREATE INDEX IF NOT EXISTS messages_unread ON messages (roomId, msgMs, msgSeq) WHERE type = '' AND deleted = 0;
CREATE INDEX IF NOT EXISTS messages_roomId_messageId ON messages (roomId, messageId) WHERE messageId != '';
CREATE TABLE IF NOT EXISTS messages_search (
	rowid  INTEGER PRIMARY KEY,
	roomId TEXT NOT NULL,
	msgMs  INTEGER NOT NULL,
	msgSeq INTEGER NOT NULL,
	UNIQUE (roomId, msgMs, msgSeq)
);
`

// ftsTable is the search index; remove_diacritics 0 so a term matches
// what it spells, as on MongoDB.
const ftsTable = `CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0')`

// lifeSchema is migration 4: the columns (each added only when missing,
// as in migration 2), the tables and indexes, and the search index,
// filled with the stored messages when it is created.
func lifeSchema(ctx context.Context, tx *sql.Tx) error {
	for _, c := range lifeColumns {
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
	if _, err := tx.ExecContext(ctx, lifeTables); err != nil {
		return fmt.Errorf("create reactions, reads, mentions: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'`).Scan(&n); err != nil {
		return fmt.Errorf("find messages_fts: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, ftsTable); err != nil {
		return fmt.Errorf("create messages_fts: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages_search`); err != nil {
		return fmt.Errorf("index messages: %w", err)
	}
	type row struct {
		room    string
		ms, seq int64
		text    string
	}
	var rows []row
	r, err := tx.QueryContext(ctx, `SELECT roomId, msgMs, msgSeq, text FROM messages WHERE type = '' AND deleted = 0 AND text != ''`)
	if err != nil {
		return fmt.Errorf("index messages: %w", err)
	}
	for r.Next() {
		var x row
		if err := r.Scan(&x.room, &x.ms, &x.seq, &x.text); err != nil {
			_ = r.Close()
			return fmt.Errorf("index messages: %w", err)
		}
		rows = append(rows, x)
	}
	if err := r.Close(); err != nil {
		return fmt.Errorf("index messages: %w", err)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("index messages: %w", err)
	}
	for _, x := range rows {
		if err := index(ctx, tx, x.room, bus.ID{Ms: uint64(x.ms), Seq: uint64(x.seq)}, x.text); err != nil {
			return fmt.Errorf("index messages: %w", err)
		}
	}
	return nil
}

// The search key's layout: msgMs above keyMsShift bits (up to 2^42 ms,
// the year 2109), msgSeq in the next keySeqBits, keySlotBits of slot.
const (
	keySlotBits = 10
	keySeqBits  = 11
	keyMsShift  = keySeqBits + keySlotBits
	keyMaxMs    = 1<<(63-keyMsShift) - 1
	keyMaxSeq   = 1<<keySeqBits - 1
)

// searchBase is the smallest search key of id: the keys of id are
// [searchBase, searchBase + 2^keySlotBits). An id beyond the layout (a
// seq of 2048 or more in one millisecond, or a far-future ms) shares the
// keys of the largest it can hold: still indexed and found, only ordered
// among those ids loosely.
func searchBase(id bus.ID) int64 {
	ms, seq := min(id.Ms, keyMaxMs), min(id.Seq, keyMaxSeq)
	return int64(ms)<<keyMsShift | int64(seq)<<keySlotBits
}

// searchBound is the key bound of an id bound: a row's id is below id
// only when its key is below searchBound(id), and above it only when its
// key is at least searchBound(id.Next()); the exact comparison follows in
// SQL, this only lets FTS5 skip.
func searchBound(id bus.ID) int64 { return searchBase(id) }

// jsonList is a list column's text: a JSON array, "[]" when empty.
func jsonList[T any](v []T) string {
	if len(v) == 0 {
		return "[]"
	}
	// Marshalling strings and Attachments cannot fail.
	b, _ := json.Marshal(v)
	return string(b)
}

// fromJSONList reads what jsonList wrote; an empty list stays nil.
func fromJSONList[T any](s string, v *[]T) error {
	if s == "" || s == "[]" {
		*v = nil
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// earlyLife is the query of the edits, deletes and reactions stored for n
// messages, given as (roomId, messageId) pairs: a VALUES list searched in
// the partial index messages_roomId_messageId (messageId != ” lets it
// serve; TestEarlyLifeUsesItsIndex holds the plan to it). One query per
// batch, not one per message: modernc's SQLite costs ~20 µs a statement,
// more than ingest spends on the message itself.
func earlyLife(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + messageColumns + ` FROM messages
	WHERE messageId != '' AND type IN ('edit', 'delete', 'react') AND (roomId, messageId) IN (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
	}
	b.WriteString(")")
	return b.String()
}

// earlyChunk bounds the messages of one earlyLife query (two variables
// each, far below SQLite's 32766).
const earlyChunk = 500

// addMessage records what a newly stored chat message brings: its
// mentions (not the sender's own: they count towards nobody's unread) and
// its search entry.
func addMessage(ctx context.Context, tx *sql.Tx, m store.Message) error {
	for _, u := range m.Mentions {
		if u == "" || u == m.UserID {
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO mentions (room, userId, msgId, msgMs, msgSeq) VALUES (?, ?, ?, ?, ?)`,
			m.RoomID, u, m.ID.String(), int64(m.ID.Ms), int64(m.ID.Seq)); err != nil {
			return fmt.Errorf("record mention of %s: %w", u, err)
		}
	}
	return index(ctx, tx, m.RoomID, m.ID, m.Text)
}

// applyEarly applies, in id order, the life entries stored before the
// messages fresh (just inserted) and returns the attachments a delete
// among them removed. Those exist when ingest workers commit out of
// stream order (two workers of one group, or a killed worker's batch
// claimed after later ones were stored): applyLife found no message then,
// and the message must still end as its whole life says. The batch's own
// entries for them were applied already and come back too: applying one
// again changes nothing, and the state is the same in any order
// (storetest LifeOutOfOrder).
func applyEarly(ctx context.Context, tx *sql.Tx, fresh []store.Message) ([]bus.Attachment, error) {
	var found []store.Message
	for len(fresh) > 0 {
		part := fresh[:min(len(fresh), earlyChunk)]
		fresh = fresh[len(part):]
		args := make([]any, 0, 2*len(part))
		for _, m := range part {
			args = append(args, m.RoomID, m.ID.String())
		}
		rows, err := tx.QueryContext(ctx, earlyLife(len(part)), args...)
		if err != nil {
			return nil, fmt.Errorf("read life entries stored before their messages: %w", err)
		}
		got, err := scanAll(rows, scanMessage)
		if err != nil {
			return nil, fmt.Errorf("read life entries stored before their messages: %w", err)
		}
		found = append(found, got...)
	}
	slices.SortFunc(found, func(a, b store.Message) int { return a.ID.Compare(b.ID) })
	var removed []bus.Attachment
	for _, e := range found {
		r, err := applyLife(ctx, tx, e)
		if err != nil {
			return nil, fmt.Errorf("apply %s %s stored before message %s: %w", e.Type, e.ID, e.MessageID, err)
		}
		removed = append(removed, r...)
	}
	return removed, nil
}

// index sets the search entry of a message to text (none for "").
func index(ctx context.Context, tx *sql.Tx, room string, id bus.ID, text string) error {
	if err := unindex(ctx, tx, room, id); err != nil {
		return err
	}
	if text == "" {
		return nil
	}
	// The first free slot of the id's keys (another room may hold the
	// same id); when every slot is taken (1024 rooms), the next free key.
	base := searchBase(id)
	var rowid int64
	if err := tx.QueryRowContext(ctx,
		`SELECT coalesce(max(rowid) + 1, ?) FROM messages_search WHERE rowid >= ? AND rowid < ?`,
		base, base, base+1<<keySlotBits).Scan(&rowid); err != nil {
		return fmt.Errorf("index for search: %w", err)
	}
	if rowid >= base+1<<keySlotBits {
		if err := tx.QueryRowContext(ctx, `SELECT max(rowid) + 1 FROM messages_search`).Scan(&rowid); err != nil {
			return fmt.Errorf("index for search: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO messages_search (rowid, roomId, msgMs, msgSeq) VALUES (?, ?, ?, ?)`,
		rowid, room, int64(id.Ms), int64(id.Seq)); err != nil {
		return fmt.Errorf("index for search: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages_fts (rowid, text) VALUES (?, ?)`, rowid, text); err != nil {
		return fmt.Errorf("index for search: %w", err)
	}
	return nil
}

// unindex removes a message's search entry, if any.
func unindex(ctx context.Context, tx *sql.Tx, room string, id bus.ID) error {
	var rowid int64
	err := tx.QueryRowContext(ctx,
		`DELETE FROM messages_search WHERE roomId = ? AND msgMs = ? AND msgSeq = ? RETURNING rowid`,
		room, int64(id.Ms), int64(id.Seq)).Scan(&rowid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove from search: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages_fts WHERE rowid = ?`, rowid); err != nil {
		return fmt.Errorf("remove from search: %w", err)
	}
	return nil
}

// target is the part of a life entry's message applyLife decides on.
type target struct {
	typ         string
	deleted     bool
	editID      string
	attachments string
}

// findTarget reads the message a life entry acts on; ok is false when
// there is none.
func findTarget(ctx context.Context, tx *sql.Tx, room string, id bus.ID) (target, bool, error) {
	var t target
	err := tx.QueryRowContext(ctx,
		`SELECT type, deleted, editId, attachments FROM messages WHERE roomId = ? AND msgId = ?`, room, id.String()).
		Scan(&t.typ, &t.deleted, &t.editID, &t.attachments)
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("find message %s: %w", id, err)
	}
	return t, true, nil
}

// applyLife applies one life entry to its message (store.MessageWriter's
// rules) and returns the attachments a delete removed. Each rule compares
// with what is stored, so applying an entry again changes nothing.
func applyLife(ctx context.Context, tx *sql.Tx, e store.Message) ([]bus.Attachment, error) {
	room, id := e.RoomID, e.MessageID
	if e.Type == bus.TypeRead {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO reads (room, userId, msgId, msgMs, msgSeq) VALUES (?, ?, ?, ?, ?)
			 ON CONFLICT (room, userId) DO UPDATE SET msgId = excluded.msgId, msgMs = excluded.msgMs, msgSeq = excluded.msgSeq
			 WHERE (excluded.msgMs, excluded.msgSeq) > (reads.msgMs, reads.msgSeq)`,
			room, e.UserID, id.String(), int64(id.Ms), int64(id.Seq))
		if err != nil {
			return nil, fmt.Errorf("move read marker: %w", err)
		}
		return nil, nil
	}
	t, ok, err := findTarget(ctx, tx, room, id)
	if err != nil {
		return nil, err
	}
	if !ok || t.typ != "" {
		return nil, nil // unknown, or no message: nothing to act on
	}
	switch e.Type {
	case bus.TypeEdit:
		if t.deleted {
			// The delete removed the message's text; this edit's goes too.
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET text = '' WHERE roomId = ? AND msgId = ?`, room, e.ID.String()); err != nil {
				return nil, fmt.Errorf("clear edit of deleted message: %w", err)
			}
			return nil, nil
		}
		if t.editID != "" {
			last, err := bus.ParseID(t.editID)
			if err != nil {
				return nil, fmt.Errorf("stored editId of %s: %w", id, err)
			}
			if last.Compare(e.ID) > 0 {
				return nil, nil // a later edit won
			}
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE messages SET text = ?, edited = ?, editId = ?, updatedAt = ? WHERE roomId = ? AND msgId = ?`,
			e.Text, formatTime(time.UnixMilli(int64(e.ID.Ms))), e.ID.String(), formatTime(now()), room, id.String()); err != nil {
			return nil, fmt.Errorf("edit: %w", err)
		}
		return nil, index(ctx, tx, room, id, e.Text)
	case bus.TypeDelete:
		var removed []bus.Attachment
		if err := fromJSONList(t.attachments, &removed); err != nil {
			return nil, fmt.Errorf("stored attachments of %s: %w", id, err)
		}
		if t.deleted {
			// Named again: a crash may have kept the caller from deleting
			// the objects after the first time.
			return removed, nil
		}
		// The attachments column is kept (reads hide it) so a redelivered
		// delete, or expiry, names the objects again.
		for _, q := range []string{
			// edited goes with the text: a tombstone is the same whether an
			// edit was applied before the delete or, out of order, not.
			`UPDATE messages SET deleted = 1, text = '', mentions = '[]', edited = '', updatedAt = ? WHERE roomId = ? AND msgId = ?`,
			`UPDATE messages SET text = '', updatedAt = ? WHERE roomId = ? AND messageId = ? AND messageId != '' AND type = 'edit'`, // != '': lets the partial index messages_roomId_messageId serve it
		} {
			if _, err := tx.ExecContext(ctx, q, formatTime(now()), room, id.String()); err != nil {
				return nil, fmt.Errorf("delete: %w", err)
			}
		}
		if err := forget(ctx, tx, room, id); err != nil {
			return nil, err
		}
		return removed, nil
	case bus.TypeReact:
		if t.deleted {
			return nil, nil
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO reactions (room, messageId, userId, emoji, "on", eventId, eventMs, eventSeq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (room, messageId, userId, emoji) DO UPDATE SET "on" = excluded."on", eventId = excluded.eventId,
			   eventMs = excluded.eventMs, eventSeq = excluded.eventSeq
			 WHERE (excluded.eventMs, excluded.eventSeq) >= (reactions.eventMs, reactions.eventSeq)`,
			room, id.String(), e.UserID, e.Emoji, e.On, e.ID.String(), int64(e.ID.Ms), int64(e.ID.Seq))
		if err != nil {
			return nil, fmt.Errorf("react: %w", err)
		}
	}
	return nil, nil
}

// forget removes what refers to a message that is deleted or expired:
// its reactions, mentions and search entry.
func forget(ctx context.Context, tx *sql.Tx, room string, id bus.ID) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM reactions WHERE room = ? AND messageId = ?`, room, id.String()); err != nil {
		return fmt.Errorf("delete reactions of %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM mentions WHERE room = ? AND msgMs = ? AND msgSeq = ?`,
		room, int64(id.Ms), int64(id.Seq)); err != nil {
		return fmt.Errorf("delete mentions of %s: %w", id, err)
	}
	return unindex(ctx, tx, room, id)
}

// withState completes msgs (of room) with their state as a reader sees
// it: a deleted message without attachments or mentions, and every
// message's reactions, read with one query for the whole page.
func (s *Store) withState(ctx context.Context, room string, msgs []store.Message, viewer string) error {
	var ids []any
	for i := range msgs {
		m := &msgs[i]
		if m.Deleted {
			m.Text, m.Attachments, m.Mentions = "", nil, nil
			continue
		}
		if m.Type == "" {
			ids = append(ids, m.ID.String())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := queryAll(ctx, s.db, func(r scanner) (store.ReactionRow, error) {
		var row store.ReactionRow
		err := r.Scan(&row.MessageID, &row.UserID, &row.Emoji)
		return row, err
	}, `SELECT messageId, userId, emoji FROM reactions WHERE room = ? AND messageId IN (`+placeholders(len(ids))+`) AND "on" = 1
	    ORDER BY eventMs, eventSeq`, append([]any{room}, ids...)...)
	if err != nil {
		return fmt.Errorf("read reactions: %w", err)
	}
	agg := store.AggregateReactions(rows, viewer)
	for i := range msgs {
		msgs[i].Reactions = agg[msgs[i].ID.String()]
	}
	return nil
}

// placeholders is n comma-separated parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Message finds one row of room by id, in its current state.
func (s *Store) Message(ctx context.Context, room string, id bus.ID) (store.Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE roomId = ? AND msgId = ?`, room, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, fmt.Errorf("message %s of room %q: %w", id, room, store.ErrNotFound)
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("find message %s of room %q: %w", id, room, err)
	}
	one := []store.Message{m}
	if err := s.withState(ctx, room, one, ""); err != nil {
		return store.Message{}, fmt.Errorf("find message %s of room %q: %w", id, room, err)
	}
	return one[0], nil
}

// matchExpr is the FTS5 query of terms: every term a string literal
// (so no term is read as an operator or column filter), the last one a
// prefix; juxtaposed strings must all match.
func matchExpr(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
	}
	if n := len(parts); n > 0 {
		parts[n-1] += "*"
	}
	return strings.Join(parts, " ")
}

// Search matches the terms in messages_fts and keeps the rooms, user and
// bounds asked for, newest first. Deleted messages, room events and life
// entries have no search entry.
func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Message, bool, error) {
	if len(q.Rooms) == 0 || len(q.Terms) == 0 {
		return nil, false, nil
	}
	size := q.Limit
	if size <= 0 {
		size = store.DefaultPageLimit
	}
	// messages_fts drives the query in rowid (search key) order, newest
	// first; the key bounds let it skip, the (msgMs, msgSeq) bounds decide.
	query := `SELECT ` + prefixed("m", messageColumns) + ` FROM messages_fts
	  JOIN messages_search s ON s.rowid = messages_fts.rowid
	  JOIN messages m ON m.roomId = s.roomId AND m.msgMs = s.msgMs AND m.msgSeq = s.msgSeq
	  WHERE messages_fts MATCH ? AND messages_fts.rowid < ? AND messages_fts.rowid >= ?
	    AND s.roomId IN (` + placeholders(len(q.Rooms)) + `) AND m.type = '' AND m.deleted = 0`
	hi, lo := int64(1<<63-1), int64(0)
	if q.Before != nil {
		hi = searchBound(*q.Before) + 1<<keySlotBits // same-key ids (clamped) are decided exactly below
	}
	if q.After != nil {
		lo = searchBound(*q.After)
	}
	args := []any{matchExpr(q.Terms), hi, lo}
	for _, r := range q.Rooms {
		args = append(args, r)
	}
	if q.UserID != "" {
		query += ` AND m.userId = ?`
		args = append(args, q.UserID)
	}
	if q.Before != nil {
		cond, bargs := boundOn("s", "<", *q.Before)
		query += cond
		args = append(args, bargs...)
	}
	if q.After != nil {
		cond, bargs := boundOn("s", ">", *q.After)
		query += cond
		args = append(args, bargs...)
	}
	query += ` ORDER BY messages_fts.rowid DESC LIMIT ?`
	args = append(args, size+1)
	msgs, err := queryAll(ctx, s.db, scanMessage, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("search %q: %w", q.Terms, err)
	}
	more := len(msgs) > size
	if more {
		msgs = msgs[:size]
	}
	err = store.EachRoom(msgs, func(room string, part []store.Message) error {
		return s.withState(ctx, room, part, q.Viewer)
	})
	if err != nil {
		return nil, false, fmt.Errorf("search %q: %w", q.Terms, err)
	}
	return msgs, more, nil
}

// ReadMarkers returns the user's marker per room.
func (s *Store) ReadMarkers(ctx context.Context, userID string) (map[string]bus.ID, error) {
	type marker struct {
		room string
		id   bus.ID
	}
	rows, err := queryAll(ctx, s.db, func(r scanner) (marker, error) {
		var m marker
		var ms, seq int64
		err := r.Scan(&m.room, &ms, &seq)
		m.id = bus.ID{Ms: uint64(ms), Seq: uint64(seq)}
		return m, err
	}, `SELECT room, msgMs, msgSeq FROM reads WHERE userId = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("read markers of %s: %w", userID, err)
	}
	out := make(map[string]bus.ID, len(rows))
	for _, r := range rows {
		out[r.room] = r.id
	}
	return out, nil
}

// Unread counts with LIMIT inside: each count walks an index range from
// the marker (messages_unread, mentions' primary key) and stops at limit.
func (s *Store) Unread(ctx context.Context, userID, room string, marker bus.ID, limit int) (store.UnreadCount, error) {
	var c store.UnreadCount
	if limit <= 0 {
		return c, nil
	}
	cond, bargs := bound(">", marker)
	args := append(append([]any{room}, bargs...), userID, limit)
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM (SELECT 1 FROM messages
		  WHERE roomId = ? AND type = '' AND deleted = 0`+cond+` AND userId != ? LIMIT ?)`, args...).Scan(&c.Unread); err != nil {
		return c, fmt.Errorf("unread of %s in room %q: %w", userID, room, err)
	}
	args = append(append([]any{room, userID}, bargs...), limit)
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM (SELECT 1 FROM mentions WHERE room = ? AND userId = ?`+cond+` LIMIT ?)`, args...).Scan(&c.Mentions); err != nil {
		return c, fmt.Errorf("mentions of %s in room %q: %w", userID, room, err)
	}
	return c, nil
}

// ExpireMessages deletes the oldest rows of room created before before,
// up to limit, in one transaction with what refers to them.
func (s *Store) ExpireMessages(ctx context.Context, room string, before time.Time, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("expire messages of room %q: begin: %w", room, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	rows, err := tx.QueryContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE roomId = ? AND msgMs < ? ORDER BY msgMs, msgSeq LIMIT ?`,
		room, store.CutoffMillis(before), limit)
	if err != nil {
		return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
	}
	var msgs []store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
	}
	for _, m := range msgs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE roomId = ? AND msgId = ?`, room, m.ID.String()); err != nil {
			return nil, fmt.Errorf("expire message %s of room %q: %w", m.ID, room, err)
		}
		if err := forget(ctx, tx, room, m.ID); err != nil {
			return nil, fmt.Errorf("expire message %s of room %q: %w", m.ID, room, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("expire messages of room %q: commit: %w", room, err)
	}
	return msgs, nil
}

// retentionOf reads rooms.retention.
func retentionOf(ms int64) time.Duration { return store.RetentionFromMillis(ms) }

// SetRetention sets rooms.retention.
func (s *Store) SetRetention(ctx context.Context, name string, d time.Duration) error {
	if err := store.CheckRetention(d); err != nil {
		return fmt.Errorf("set retention of room %q: %w", name, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE rooms SET retention = ? WHERE name = ?`, store.RetentionMillis(d), name)
	return affected(res, err, fmt.Sprintf("set retention of room %q", name))
}
