// Package store is Aurora's persistence: the narrow set of user, message and
// room operations the roles need, behind interfaces narrowed per consumer
// (Users, MessageReader, MessageWriter, Rooms, Admin; Store is all of them)
// with two implementations, MongoDB (mongostore) and an embedded SQLite file
// (sqlitestore). Collections and tables share names (users, messages, rooms)
// and fields/columns share names, so operators query either the same way.
// One contract suite (storetest) runs against both.
package store

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// Errors every implementation returns (wrapped or not) so callers can use errors.Is.
var (
	ErrNotFound   = errors.New("not found")
	ErrUserExists = errors.New("user exists")
	ErrRoomExists = errors.New("room exists")
	// ErrInviteSpent is UseInvite's answer for an invitation that exists
	// but is revoked, expired or used up.
	ErrInviteSpent = errors.New("invitation revoked, expired or used up")
)

// User is a row of users. ID is a 24-hex ObjectId on both backends.
type User struct {
	ID           string
	Username     string // as registered (case kept)
	PasswordHash string // bcrypt
	Disabled     bool
	// Admin: a server-wide administrator (aurora users promote|demote),
	// who may moderate every room.
	Admin bool
	// ValidAfter: tokens issued before it are refused (set when the user
	// is disabled, so tokens issued until then stop working). Zero: none.
	ValidAfter time.Time
	CreatedAt  time.Time
	// UpdatedAt is set to now by CreateUser and UpdateUser (a store sets
	// it, whatever the caller passes): UsersChangedSince reads it.
	UpdatedAt time.Time
}

// UsernameKey is the case-folded form under which usernames are unique and
// looked up (the usernameKey field / column).
func UsernameKey(username string) string { return strings.ToLower(username) }

// Message is a row of messages. ID is the chat contract's message id (the
// Redis stream entry id, field msgId); CreatedAt is its millisecond part.
type Message struct {
	ID       bus.ID
	RoomID   string
	UserID   string
	Username string
	Text     string
	ClientID string
	Status   string // "sent"
	// Type is "" for a chat message or bus.TypeEvent for a room event (the
	// stream entry's type field); Event is then the event's JSON object
	// (bus.RoomEvent), stored as the text it arrived as.
	Type      string
	Event     string
	CreatedAt time.Time
	UpdatedAt time.Time

	// A message's life (bus/life.go), as the stream entry carries it:
	// MessageID is the message an edit, delete, react or read acts on;
	// Emoji and On a reaction's; ReplyTo, Mentions and Attachments a
	// message's options.
	MessageID   bus.ID
	Emoji       string
	On          bool
	ReplyTo     string
	Mentions    []string
	Attachments []bus.Attachment

	// A message's state, which InsertMessages keeps from the life entries
	// it stores: Edited is the time of the edit applied last (zero: never
	// edited), Deleted says a delete was applied (Text, Attachments and
	// Mentions are then empty). Reactions are read, never written: the
	// counts per emoji (ordered by each emoji's first reaction) and
	// whether Page.Viewer reacted.
	Edited    time.Time
	Deleted   bool
	Reactions []bus.Reaction
}

// CheckMessage returns why every store refuses m (the reason InsertMessages
// reports in InsertResult.Rejected), or "" when m can be stored. Both
// backends keep the id parts as signed 64-bit integers (SQLite INTEGER, BSON
// int64 and Date), so ids beyond that range are refused rather than stored
// out of order.
func CheckMessage(m Message) string {
	switch {
	case m.RoomID == "":
		return "no roomId"
	case m.UserID == "":
		return "no userId"
	case m.ID.Ms > math.MaxInt64 || m.ID.Seq > math.MaxInt64:
		return "msgId " + m.ID.String() + " out of range"
	}
	return ""
}

// Room types (Room.Type).
const (
	RoomPublic  = "public"  // in the directory; anyone may join
	RoomPrivate = "private" // invisible to non-members; joined by invitation
	RoomDirect  = "direct"  // exactly two members, one room per pair
)

// Member roles (Member.Role), highest first.
const (
	RoleOwner    = "owner"
	RoleAdmin    = "admin"
	RoleMember   = "member"
	RoleReadonly = "readonly"
)

// Room is a row of rooms. Name is the room's address on the wire (stream
// roomId, channel, URL) and never changes; Title is the changeable display
// name ("" shows Name).
type Room struct {
	Name  string
	Type  string // RoomPublic, RoomPrivate or RoomDirect; CreateRoom stores "" as RoomPublic
	Title string
	// Retention is how long the room's messages are kept: 0 the server's
	// default (ingest.retention), RetainForever for good whatever that is.
	// Only SetRetention writes it.
	Retention time.Duration
	Topic     string
	CreatedBy string // user id; "" for rooms made by an operator or a migration
	CreatedAt time.Time
}

// Member is a row of members: one user's membership of one room.
type Member struct {
	Room       string
	UserID     string
	Username   string
	Role       string
	JoinedAt   time.Time // PutMember sets now when zero
	MutedUntil time.Time // zero: not muted
}

// MemberRoom is a room with the caller's membership of it (MemberRooms).
type MemberRoom struct {
	Room   Room
	Member Member
}

// Ban is a row of bans: a user kept out of a room (they cannot rejoin or be
// re-invited) until ExpiresAt, or until lifted when it is zero.
type Ban struct {
	Room      string
	UserID    string
	Reason    string
	By        string    // user id of the moderator ("" an operator)
	At        time.Time // PutBan sets now when zero
	ExpiresAt time.Time
}

// Active reports whether the ban holds at now.
func (b Ban) Active(now time.Time) bool { return b.ExpiresAt.IsZero() || now.Before(b.ExpiresAt) }

// Invite is a row of invites: a direct invitation of one user (UserID set,
// MaxUses 1) or an invite link anyone holding Token may accept (UserID "").
type Invite struct {
	Token     string // random and unguessable: the invitation's id
	Room      string
	UserID    string
	By        string    // user id of the inviter
	CreatedAt time.Time // CreateInvite sets now when zero
	ExpiresAt time.Time // zero: never
	MaxUses   int       // 0: unlimited
	Uses      int
	Revoked   bool
}

// Usable reports whether the invitation can be accepted at now.
func (i Invite) Usable(now time.Time) bool {
	return !i.Revoked && (i.ExpiresAt.IsZero() || now.Before(i.ExpiresAt)) && (i.MaxUses == 0 || i.Uses < i.MaxUses)
}

// Page selects messages of one room. Both bounds are exclusive. Before (or
// neither) returns newest first, After returns oldest first; with both, the
// messages strictly between, oldest first. Limit is clamped by the caller;
// zero or less means DefaultPageLimit.
type Page struct {
	Before *bus.ID
	After  *bus.ID
	Limit  int
	// Life includes the life entries (edits, deletes, reactions, read
	// markers: bus.IsLife) in id order among the messages, as a `since`
	// replay needs them; without it (history) a page holds messages and
	// room events only, each message in its current state.
	Life bool
	// Viewer is the reader's user id: Reaction.Me of each message says
	// whether they reacted. "": Me is false throughout.
	Viewer string
}

// RetainForever is Room.Retention of a room whose messages are kept for
// good, whatever the server's default.
const RetainForever time.Duration = -1

// SearchQuery selects messages for full-text search. Terms come from
// ParseSearch; a message matches when its text contains every term
// (case-insensitively; SQLite FTS5 matches whole tokens and prefixes of
// the last, MongoDB substrings: docs/protocol.md#search). Only messages
// (not room events or life entries) that are not deleted match.
type SearchQuery struct {
	Terms []string
	// Rooms are the rooms searched (those the reader may read); none: no result.
	Rooms []string
	// UserID, when set, keeps messages sent by that user only.
	UserID string
	// Before and After are exclusive id bounds; results run newest first.
	Before, After *bus.ID
	// Limit is the page size (DefaultPageLimit when not positive).
	Limit int
	// Viewer is the reader, for Reaction.Me.
	Viewer string
}

// UnreadCount is one room's unread state for one user.
type UnreadCount struct {
	Unread   int // messages by others after the marker, not deleted
	Mentions int // of those, the ones mentioning the user
}

// DefaultPageLimit is the page size when Page.Limit is not positive.
const DefaultPageLimit = 50

// Ascending reports whether the page runs oldest first.
func (p Page) Ascending() bool { return p.After != nil }

// Size is the number of messages the page holds at most.
func (p Page) Size() int {
	if p.Limit <= 0 {
		return DefaultPageLimit
	}
	return p.Limit
}

// InsertResult counts what InsertMessages did.
type InsertResult struct {
	Inserted   int
	Duplicates int // already stored (same room and msgId): not an error
	// Rejected maps the index in the batch of each message the store refused
	// (validation) to the reason; the others were stored or were duplicates.
	Rejected map[int]string
	// Removed are the attachments of the messages deletes in the batch
	// deleted (their objects are the caller's to delete). A redelivered
	// delete may name them again; deleting an object twice is harmless.
	Removed []bus.Attachment
}

// The store is used through narrow interfaces, one per kind of consumer, so
// each module and command names only what it calls: auth and `aurora users`
// take Users, the history reader MessageReader, the ingest writer
// MessageWriter, `aurora rooms` Rooms, the runtime and `aurora migrate`
// Admin. Store composes them; both backends implement it whole. Every
// interface carries Kind, so a consumer can name the backend in its logs.

// Backend names the store behind any of the interfaces.
type Backend interface {
	// Kind names the backend ("mongodb" or "sqlite") for logs and checks.
	Kind() string
}

// Users is the user accounts.
type Users interface {
	Backend
	// CreateUser stores a new user and returns it with ID and timestamps set.
	// A username equal case-insensitively to an existing one: ErrUserExists.
	CreateUser(ctx context.Context, u User) (User, error)
	// UserByName finds a user by username, case-insensitively; ErrNotFound.
	UserByName(ctx context.Context, username string) (User, error)
	// ListUsers returns every user in creation order (by id).
	ListUsers(ctx context.Context) ([]User, error)
	// UserByID finds a user by id; ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UpdateUser sets PasswordHash, Disabled, Admin and ValidAfter of the
	// user with u.ID, and UpdatedAt to now; ErrNotFound.
	UpdateUser(ctx context.Context, u User) error
	// SearchUsers returns up to limit users whose username starts with q
	// case-insensitively (by usernameKey), ordered by usernameKey: the
	// invite picker. q is literal (no wildcards); limit <= 0 returns none.
	SearchUsers(ctx context.Context, q string, limit int) ([]User, error)
	// UsersChangedSince returns the users whose UpdatedAt is at or after
	// since (an index serves it: the chat role polls it every second).
	UsersChangedSince(ctx context.Context, since time.Time) ([]User, error)
	// FlaggedUsers returns the users that are disabled, admins, or have a
	// ValidAfter: what a replica loads at start to check tokens and rights
	// without a store round trip per connection.
	FlaggedUsers(ctx context.Context) ([]User, error)
}

// MessageReader pages through the stored messages of a room.
type MessageReader interface {
	Backend
	// Messages returns one page of a room and whether more lie beyond it.
	Messages(ctx context.Context, room string, p Page) ([]Message, bool, error)
	// Message finds one message (or room event, or life entry) of room by
	// id, in its current state; ErrNotFound.
	Message(ctx context.Context, room string, id bus.ID) (Message, error)
	// Search returns up to q.Limit matching messages newest first, and
	// whether more match.
	Search(ctx context.Context, q SearchQuery) ([]Message, bool, error)
	// ReadMarkers returns userID's read marker (the last message id read)
	// per room, for the rooms that have one.
	ReadMarkers(ctx context.Context, userID string) (map[string]bus.ID, error)
	// Unread counts room's messages after marker for userID, each count
	// stopping at limit (an index serves it: the work is bounded by limit,
	// never the room's size).
	Unread(ctx context.Context, userID, room string, marker bus.ID, limit int) (UnreadCount, error)
}

// MessageWriter stores messages.
type MessageWriter interface {
	Backend
	// InsertMessages stores a batch, skipping messages already stored (same
	// RoomID and ID) so a redelivered batch is stored exactly once. An error
	// means nothing can be assumed stored; retrying the batch is safe.
	//
	// Life entries are stored as rows too (a `since` replay reads them)
	// and applied to their message idempotently, whether the row was new
	// or a duplicate (a crash between the two leaves nothing undone): an
	// edit sets Text and Edited unless a later edit (by id) was applied or
	// the message is deleted; a delete sets Deleted and removes the text
	// (the message's and its edits'), its attachments (InsertResult.Removed)
	// and mentions; a reaction sets (message, user, emoji) on or off unless
	// a later reaction of the same key was applied, and is ignored on a
	// deleted or unknown message; a read moves the user's marker of the
	// room forward, never back. A message's Mentions are kept for Unread.
	// The search index follows every change.
	InsertMessages(ctx context.Context, msgs []Message) (InsertResult, error)
	// ExpireMessages deletes up to limit of room's rows (messages, room
	// events, life entries) created before before, oldest first, with
	// their reactions, mentions and search entries, and returns the
	// deleted messages (their Attachments are the caller's to delete).
	ExpireMessages(ctx context.Context, room string, before time.Time, limit int) ([]Message, error)
}

// Rooms is the rooms, their members, bans and invitations.
type Rooms interface {
	Backend
	// CreateRoom stores a room (CreatedAt now when zero, Type RoomPublic
	// when empty) and, when owner is not nil, its owner's member row in the
	// same step (owner.Room is set to r.Name; JoinedAt now when zero);
	// ErrRoomExists when the name is taken. (SQLite: one transaction;
	// MongoDB: two writes, see mongostore's rooms.go for what a crash
	// between them leaves.)
	CreateRoom(ctx context.Context, r Room, owner *Member) (Room, error)
	// Room finds a room by name; ErrNotFound.
	Room(ctx context.Context, name string) (Room, error)
	// UpdateRoom sets Title and Topic of the room named r.Name; ErrNotFound.
	UpdateRoom(ctx context.Context, r Room) error
	// SetRetention sets a room's Retention (0: the server's default,
	// RetainForever, or a positive duration); ErrNotFound.
	SetRetention(ctx context.Context, name string, d time.Duration) error
	// ListRooms returns every room ordered by name.
	ListRooms(ctx context.Context) ([]Room, error)
	// Directory returns up to limit public rooms with a name greater than
	// after, ordered by name, whose name, title or topic contains q
	// (case-insensitively; "" matches every room). q is literal: % _ \ and
	// regular expression metacharacters match themselves. SQLite folds the
	// case of ASCII letters only. limit <= 0 returns none.
	Directory(ctx context.Context, q, after string, limit int) ([]Room, error)
	// DeleteRoom deletes a room with its members, bans and invitations
	// (its messages stay); ErrNotFound.
	DeleteRoom(ctx context.Context, name string) error

	// PutMember inserts or replaces the member row of (m.Room, m.UserID)
	// (JoinedAt now when zero). It does not check that the room exists:
	// callers look the room up first (a row of no room is never listed by
	// MemberRooms, but a room created later under the name would have it).
	PutMember(ctx context.Context, m Member) error
	// Member finds one membership; ErrNotFound.
	Member(ctx context.Context, room, userID string) (Member, error)
	// Members returns a room's members by JoinedAt, then user id.
	Members(ctx context.Context, room string) ([]Member, error)
	// RemoveMember deletes one membership; ErrNotFound.
	RemoveMember(ctx context.Context, room, userID string) error
	// MemberRooms returns the rooms userID is a member of, ordered by name.
	MemberRooms(ctx context.Context, userID string) ([]MemberRoom, error)

	// PutBan inserts or replaces the ban of (b.Room, b.UserID).
	PutBan(ctx context.Context, b Ban) error
	// Ban finds a ban, expired or not (Ban.Active tells); ErrNotFound.
	Ban(ctx context.Context, room, userID string) (Ban, error)
	// Bans returns a room's bans by At.
	Bans(ctx context.Context, room string) ([]Ban, error)
	// RemoveBan deletes a ban; ErrNotFound.
	RemoveBan(ctx context.Context, room, userID string) error

	// CreateInvite stores an invitation (CreatedAt now when zero); a Token
	// in use is an error (no sentinel: tokens are random, a clash is a bug).
	CreateInvite(ctx context.Context, inv Invite) error
	// Invite finds an invitation by token; ErrNotFound.
	Invite(ctx context.Context, token string) (Invite, error)
	// UseInvite counts one use of the invitation atomically when it is
	// Usable at now (of concurrent uses of a link with n uses left, exactly
	// n win) and returns it after the use (Uses includes it; for a link
	// with MaxUses it is this use's number, distinct among concurrent uses);
	// ErrNotFound for an unknown token, ErrInviteSpent for a revoked,
	// expired or used-up one. Errors never contain the token.
	UseInvite(ctx context.Context, token string, now time.Time) (Invite, error)
	// RevokeInvite marks an invitation revoked; ErrNotFound.
	RevokeInvite(ctx context.Context, token string) error
	// Invites returns a room's invitations by CreatedAt.
	Invites(ctx context.Context, room string) ([]Invite, error)
	// UserInvites returns the direct invitations of userID still Usable
	// at now, by CreatedAt (none for userID "": links are nobody's).
	UserInvites(ctx context.Context, userID string, now time.Time) ([]Invite, error)
}

// Admin is the store's lifecycle: reachability, schema and shutdown.
type Admin interface {
	Backend
	// Ping checks the store answers.
	Ping(ctx context.Context) error
	// Migrate applies, in version order, every migration not yet recorded
	// in the store's migrations table or collection, recording each once
	// applied. Every step is idempotent, and recording an already recorded
	// version is a no-op, so running it again, or in two processes at once,
	// is safe. A fresh store gets its whole schema from it.
	Migrate(ctx context.Context) error
	// Migrations returns every migration this build knows, in version order,
	// with whether and when it was applied, followed by any version recorded
	// in the store that this build does not know (applied by a newer one).
	// It changes nothing: on a store never migrated, none is applied.
	Migrations(ctx context.Context) ([]MigrationStatus, error)
	Close(ctx context.Context) error
}

// Store is the whole persistence: what the runtime opens and hands out, one
// narrow interface to each consumer.
type Store interface {
	Users
	MessageReader
	MessageWriter
	Rooms
	Admin
}
