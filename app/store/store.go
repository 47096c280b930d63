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
)

// User is a row of users. ID is a 24-hex ObjectId on both backends.
type User struct {
	ID           string
	Username     string // as registered (case kept)
	PasswordHash string // bcrypt
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// UsernameKey is the case-folded form under which usernames are unique and
// looked up (the usernameKey field / column).
func UsernameKey(username string) string { return strings.ToLower(username) }

// Message is a row of messages. ID is the chat contract's message id (the
// Redis stream entry id, field msgId); CreatedAt is its millisecond part.
type Message struct {
	ID        bus.ID
	RoomID    string
	UserID    string
	Username  string
	Text      string
	ClientID  string
	Status    string // "sent"
	CreatedAt time.Time
	UpdatedAt time.Time
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

// Room is a row of rooms (created explicitly by operators or users; rooms
// that only exist because someone joined them need no row).
type Room struct {
	Name      string
	CreatedBy string
	CreatedAt time.Time
}

// Page selects messages of one room. Both bounds are exclusive. Before (or
// neither) returns newest first, After returns oldest first; with both, the
// messages strictly between, oldest first. Limit is clamped by the caller;
// zero or less means DefaultPageLimit.
type Page struct {
	Before *bus.ID
	After  *bus.ID
	Limit  int
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
	// UpdateUser sets PasswordHash and Disabled of the user with u.ID; ErrNotFound.
	UpdateUser(ctx context.Context, u User) error
}

// MessageReader pages through the stored messages of a room.
type MessageReader interface {
	Backend
	// Messages returns one page of a room and whether more lie beyond it.
	Messages(ctx context.Context, room string, p Page) ([]Message, bool, error)
}

// MessageWriter stores messages.
type MessageWriter interface {
	Backend
	// InsertMessages stores a batch, skipping messages already stored (same
	// RoomID and ID) so a redelivered batch is stored exactly once. An error
	// means nothing can be assumed stored; retrying the batch is safe.
	InsertMessages(ctx context.Context, msgs []Message) (InsertResult, error)
}

// Rooms is the rooms created explicitly.
type Rooms interface {
	Backend
	// CreateRoom stores a room, CreatedAt set to now when zero; ErrRoomExists.
	CreateRoom(ctx context.Context, r Room) (Room, error)
	// ListRooms returns every room ordered by name.
	ListRooms(ctx context.Context) ([]Room, error)
	DeleteRoom(ctx context.Context, name string) error // ErrNotFound
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
