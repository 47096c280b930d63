package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// This file is the rooms, members, bans and invites tables (store.Rooms).

// affected is the error of a statement that must change a row: its own,
// or ErrNotFound when it changed none.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// clearRoom deletes the members, bans and invitations of a room name.
func clearRoom(ctx context.Context, db execer, name string) error {
	for _, table := range []string{"members", "bans", "invites"} {
		if _, err := db.ExecContext(ctx, `DELETE FROM `+table+` WHERE room = ?`, name); err != nil {
			return fmt.Errorf("delete %s: %w", table, err)
		}
	}
	return nil
}

// CreateRoom inserts the room and its owner's member row in one
// transaction.
func (s *Store) CreateRoom(ctx context.Context, r store.Room, owner *store.Member) (store.Room, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Millisecond)
	if r.Type == "" {
		r.Type = store.RoomPublic
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Room{}, fmt.Errorf("create room %q: begin: %w", r.Name, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	_, err = tx.ExecContext(ctx,
		`INSERT INTO rooms (name, type, title, topic, createdBy, createdAt) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Name, r.Type, r.Title, r.Topic, r.CreatedBy, formatTime(r.CreatedAt))
	if isUnique(err) {
		return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, store.ErrRoomExists)
	}
	if err != nil {
		return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, err)
	}
	if owner != nil {
		m := *owner
		m.Room = r.Name
		if err := putMember(ctx, tx, m); err != nil {
			return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return store.Room{}, fmt.Errorf("create room %q: commit: %w", r.Name, err)
	}
	return r, nil
}

const roomColumns = `name, type, title, topic, createdBy, createdAt, retention`

func scanRoom(row scanner) (store.Room, error) {
	var r store.Room
	var created string
	var retention int64
	if err := row.Scan(&r.Name, &r.Type, &r.Title, &r.Topic, &r.CreatedBy, &created, &retention); err != nil {
		return r, err
	}
	r.Retention = retentionOf(retention)
	var err error
	r.CreatedAt, err = parseTime(created)
	return r, err
}

// Room finds a room by name.
func (s *Store) Room(ctx context.Context, name string) (store.Room, error) {
	r, err := scanRoom(s.db.QueryRowContext(ctx, `SELECT `+roomColumns+` FROM rooms WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Room{}, fmt.Errorf("room %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Room{}, fmt.Errorf("find room %q: %w", name, err)
	}
	return r, nil
}

// UpdateRoom sets a room's title and topic.
func (s *Store) UpdateRoom(ctx context.Context, r store.Room) error {
	res, err := s.db.ExecContext(ctx, `UPDATE rooms SET title = ?, topic = ? WHERE name = ?`, r.Title, r.Topic, r.Name)
	return affected(res, err, fmt.Sprintf("update room %q", r.Name))
}

// ListRooms returns every room ordered by name.
func (s *Store) ListRooms(ctx context.Context) ([]store.Room, error) {
	rooms, err := queryAll(ctx, s.db, scanRoom, `SELECT `+roomColumns+` FROM rooms ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	return rooms, nil
}

// Directory pages through the public rooms by name (the rooms_type_name
// index). q is matched with LIKE, its wildcards escaped; SQLite's LIKE
// folds the case of ASCII letters only, so a non-ASCII letter of a title
// matches in its own case.
func (s *Store) Directory(ctx context.Context, q, after string, limit int) ([]store.Room, error) {
	if limit <= 0 {
		return nil, nil
	}
	query := `SELECT ` + roomColumns + ` FROM rooms WHERE type = ? AND name > ?`
	args := []any{store.RoomPublic, after}
	if q != "" {
		pat := "%" + likeEscape(q) + "%"
		query += ` AND (name LIKE ? ESCAPE '\' OR title LIKE ? ESCAPE '\' OR topic LIKE ? ESCAPE '\')`
		args = append(args, pat, pat, pat)
	}
	query += ` ORDER BY name LIMIT ?`
	args = append(args, limit)
	rooms, err := queryAll(ctx, s.db, scanRoom, query, args...)
	if err != nil {
		return nil, fmt.Errorf("room directory q=%q after %q: %w", q, after, err)
	}
	return rooms, nil
}

// DeleteRoom deletes the room with its members, bans and invitations in one
// transaction.
func (s *Store) DeleteRoom(ctx context.Context, name string) error {
	what := fmt.Sprintf("delete room %q", name)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	res, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE name = ?`, name)
	if err := affected(res, err, what); err != nil {
		return err
	}
	if err := clearRoom(ctx, tx, name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// putMember inserts or replaces a member row.
func putMember(ctx context.Context, db execer, m store.Member) error {
	if m.JoinedAt.IsZero() {
		m.JoinedAt = now()
	}
	_, err := db.ExecContext(ctx,
		`INSERT INTO members (room, userId, username, role, joinedAt, mutedUntil) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (room, userId) DO UPDATE SET
		   username = excluded.username, role = excluded.role, joinedAt = excluded.joinedAt, mutedUntil = excluded.mutedUntil`,
		m.Room, m.UserID, m.Username, m.Role, formatTime(m.JoinedAt), formatOptTime(m.MutedUntil))
	if err != nil {
		return fmt.Errorf("put member %s of room %q: %w", m.UserID, m.Room, err)
	}
	return nil
}

// PutMember inserts or replaces the member row of (m.Room, m.UserID).
func (s *Store) PutMember(ctx context.Context, m store.Member) error { return putMember(ctx, s.db, m) }

const memberColumns = `room, userId, username, role, joinedAt, mutedUntil`

func scanMember(row scanner) (store.Member, error) {
	var m store.Member
	var joined, muted string
	if err := row.Scan(&m.Room, &m.UserID, &m.Username, &m.Role, &joined, &muted); err != nil {
		return m, err
	}
	var err error
	if m.JoinedAt, err = parseTime(joined); err != nil {
		return m, err
	}
	m.MutedUntil, err = parseOptTime(muted)
	return m, err
}

// Member finds one membership.
func (s *Store) Member(ctx context.Context, room, userID string) (store.Member, error) {
	m, err := scanMember(s.db.QueryRowContext(ctx,
		`SELECT `+memberColumns+` FROM members WHERE room = ? AND userId = ?`, room, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Member{}, fmt.Errorf("member %s of room %q: %w", userID, room, store.ErrNotFound)
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("find member %s of room %q: %w", userID, room, err)
	}
	return m, nil
}

// Members returns a room's members by joinedAt, then userId.
func (s *Store) Members(ctx context.Context, room string) ([]store.Member, error) {
	ms, err := queryAll(ctx, s.db, scanMember,
		`SELECT `+memberColumns+` FROM members WHERE room = ? ORDER BY joinedAt, userId`, room)
	if err != nil {
		return nil, fmt.Errorf("members of room %q: %w", room, err)
	}
	return ms, nil
}

// RemoveMember deletes one membership.
func (s *Store) RemoveMember(ctx context.Context, room, userID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM members WHERE room = ? AND userId = ?`, room, userID)
	return affected(res, err, fmt.Sprintf("remove member %s of room %q", userID, room))
}

// MemberRooms joins the user's member rows (members_userId) with their
// rooms; a member row whose room is gone is not listed.
func (s *Store) MemberRooms(ctx context.Context, userID string) ([]store.MemberRoom, error) {
	out, err := queryAll(ctx, s.db, func(row scanner) (store.MemberRoom, error) {
		var mr store.MemberRoom
		var created, joined, muted string
		var retention int64
		if err := row.Scan(&mr.Room.Name, &mr.Room.Type, &mr.Room.Title, &mr.Room.Topic, &mr.Room.CreatedBy, &created, &retention,
			&mr.Member.Room, &mr.Member.UserID, &mr.Member.Username, &mr.Member.Role, &joined, &muted); err != nil {
			return mr, err
		}
		mr.Room.Retention = retentionOf(retention)
		var err error
		if mr.Room.CreatedAt, err = parseTime(created); err != nil {
			return mr, err
		}
		if mr.Member.JoinedAt, err = parseTime(joined); err != nil {
			return mr, err
		}
		mr.Member.MutedUntil, err = parseOptTime(muted)
		return mr, err
	}, `SELECT r.name, r.type, r.title, r.topic, r.createdBy, r.createdAt, r.retention,
	           m.room, m.userId, m.username, m.role, m.joinedAt, m.mutedUntil
	    FROM members m JOIN rooms r ON r.name = m.room
	    WHERE m.userId = ? ORDER BY r.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms of member %s: %w", userID, err)
	}
	return out, nil
}

// PutBan inserts or replaces the ban of (b.Room, b.UserID).
func (s *Store) PutBan(ctx context.Context, b store.Ban) error {
	if b.At.IsZero() {
		b.At = now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO bans (room, userId, reason, "by", at, expiresAt) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (room, userId) DO UPDATE SET
		   reason = excluded.reason, "by" = excluded."by", at = excluded.at, expiresAt = excluded.expiresAt`,
		b.Room, b.UserID, b.Reason, b.By, formatTime(b.At), formatOptTime(b.ExpiresAt))
	if err != nil {
		return fmt.Errorf("ban %s from room %q: %w", b.UserID, b.Room, err)
	}
	return nil
}

const banColumns = `room, userId, reason, "by", at, expiresAt`

func scanBan(row scanner) (store.Ban, error) {
	var b store.Ban
	var at, expires string
	if err := row.Scan(&b.Room, &b.UserID, &b.Reason, &b.By, &at, &expires); err != nil {
		return b, err
	}
	var err error
	if b.At, err = parseTime(at); err != nil {
		return b, err
	}
	b.ExpiresAt, err = parseOptTime(expires)
	return b, err
}

// Ban finds a ban, expired or not.
func (s *Store) Ban(ctx context.Context, room, userID string) (store.Ban, error) {
	b, err := scanBan(s.db.QueryRowContext(ctx, `SELECT `+banColumns+` FROM bans WHERE room = ? AND userId = ?`, room, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Ban{}, fmt.Errorf("ban of %s from room %q: %w", userID, room, store.ErrNotFound)
	}
	if err != nil {
		return store.Ban{}, fmt.Errorf("find ban of %s from room %q: %w", userID, room, err)
	}
	return b, nil
}

// Bans returns a room's bans by at, then userId.
func (s *Store) Bans(ctx context.Context, room string) ([]store.Ban, error) {
	bans, err := queryAll(ctx, s.db, scanBan, `SELECT `+banColumns+` FROM bans WHERE room = ? ORDER BY at, userId`, room)
	if err != nil {
		return nil, fmt.Errorf("bans of room %q: %w", room, err)
	}
	return bans, nil
}

// RemoveBan deletes a ban.
func (s *Store) RemoveBan(ctx context.Context, room, userID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM bans WHERE room = ? AND userId = ?`, room, userID)
	return affected(res, err, fmt.Sprintf("unban %s from room %q", userID, room))
}

// CreateInvite inserts an invitation; the token is the primary key.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = now()
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO invites (token, room, userId, "by", createdAt, expiresAt, maxUses, uses, revoked)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.Token, inv.Room, inv.UserID, inv.By, formatTime(inv.CreatedAt), formatOptTime(inv.ExpiresAt),
		inv.MaxUses, inv.Uses, inv.Revoked)
	if isUnique(err) {
		return fmt.Errorf("create invitation to room %q: token taken", inv.Room)
	}
	if err != nil {
		return fmt.Errorf("create invitation to room %q: %w", inv.Room, err)
	}
	return nil
}

const inviteColumns = `token, room, userId, "by", createdAt, expiresAt, maxUses, uses, revoked`

func scanInvite(row scanner) (store.Invite, error) {
	var inv store.Invite
	var created, expires string
	if err := row.Scan(&inv.Token, &inv.Room, &inv.UserID, &inv.By, &created, &expires,
		&inv.MaxUses, &inv.Uses, &inv.Revoked); err != nil {
		return inv, err
	}
	var err error
	if inv.CreatedAt, err = parseTime(created); err != nil {
		return inv, err
	}
	inv.ExpiresAt, err = parseOptTime(expires)
	return inv, err
}

// Invite finds an invitation by token. The token is not in the error: it
// is the invitation's secret, and errors end up in logs.
func (s *Store) Invite(ctx context.Context, token string) (store.Invite, error) {
	inv, err := scanInvite(s.db.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE token = ?`, token))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Invite{}, fmt.Errorf("invitation: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("find invitation: %w", err)
	}
	return inv, nil
}

// usable is the condition that an invitation row is store.Invite.Usable
// at the time bound to its one parameter.
const usable = `revoked = 0 AND (expiresAt = '' OR expiresAt > ?) AND (maxUses = 0 OR uses < maxUses)`

// UseInvite counts a use with one UPDATE whose WHERE is the usability
// condition: SQLite runs it under the write lock, so of two concurrent
// uses of the last use, one finds the row usable and the other does not.
func (s *Store) UseInvite(ctx context.Context, token string, at time.Time) (store.Invite, error) {
	inv, err := scanInvite(s.db.QueryRowContext(ctx,
		`UPDATE invites SET uses = uses + 1 WHERE token = ? AND `+usable+` RETURNING `+inviteColumns,
		token, formatTime(at)))
	if err == nil {
		return inv, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Invite{}, fmt.Errorf("use invitation: %w", err)
	}
	if _, err := s.Invite(ctx, token); err != nil {
		return store.Invite{}, fmt.Errorf("use %w", err)
	}
	return store.Invite{}, fmt.Errorf("use invitation: %w", store.ErrInviteSpent)
}

// RevokeInvite marks an invitation revoked.
func (s *Store) RevokeInvite(ctx context.Context, token string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE invites SET revoked = 1 WHERE token = ?`, token)
	return affected(res, err, "revoke invitation")
}

// Invites returns a room's invitations by createdAt, then token.
func (s *Store) Invites(ctx context.Context, room string) ([]store.Invite, error) {
	invs, err := queryAll(ctx, s.db, scanInvite,
		`SELECT `+inviteColumns+` FROM invites WHERE room = ? ORDER BY createdAt, token`, room)
	if err != nil {
		return nil, fmt.Errorf("invitations of room %q: %w", room, err)
	}
	return invs, nil
}

// UserInvites returns the usable direct invitations of a user.
func (s *Store) UserInvites(ctx context.Context, userID string, at time.Time) ([]store.Invite, error) {
	if userID == "" {
		return nil, nil // links have no userId; they are nobody's invitations
	}
	invs, err := queryAll(ctx, s.db, scanInvite,
		`SELECT `+inviteColumns+` FROM invites WHERE userId = ? AND `+usable+` ORDER BY createdAt, token`,
		userID, formatTime(at))
	if err != nil {
		return nil, fmt.Errorf("invitations of user %s: %w", userID, err)
	}
	return invs, nil
}
