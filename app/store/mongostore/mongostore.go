// Package mongostore is the production store on MongoDB (mongo-driver v2),
// in AuroraChat's collections and document shapes, so Aurora and AuroraChat
// services can share one database.
//
// users: {_id ObjectId, username, usernameKey, passwordHash, disabled,
// createdAt, updatedAt}. AuroraChat writes users without usernameKey and
// disabled; migration 2 adds them. A user AuroraChat writes after that is
// found by its exact username, as AuroraChat itself finds it.
//
// messages: AuroraChat's {_id, roomId, userId (ObjectId when 24-hex), text,
// status, attachments, createdAt, updatedAt} plus msgId ("<ms>-<seq>"),
// msgSeq, username and clientId (omitted when empty). createdAt is the
// msgId's millisecond part, so (createdAt, msgSeq) is numeric id order.
// AuroraChat writes messages without msgId; migration 3 gives them one. One
// written after that reads back with the id "<createdAt ms>-0".
//
// rooms: {_id ObjectId, name, type, title, topic, createdBy, createdAt};
// members: {_id, room, userId, username, role, joinedAt, mutedUntil?};
// bans: {_id, room, userId, reason, by, at, expiresAt?}; invites: {_id,
// token, room, userId, by, createdAt, expiresAt?, maxUses, uses, revoked};
// inviteUses: {_id, token, room, at}, one per accepted use (an invitation's
// uses are its uses field, the uses it was created with, plus these).
// An optional time (mutedUntil, expiresAt, a user's validAfter) is absent
// when unset. Users gain admin and validAfter, messages type and event,
// each absent when unset (false, none, "").
//
// migrations: {_id version, version, name, appliedAt}, one per applied
// migration (see Migrate and docs/migrations.md).
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// Collection names, AuroraChat's (Mongoose's plural model names).
const (
	Users    = "users"
	Messages = "messages"
	Rooms    = "rooms"
	Members  = "members"
	Bans     = "bans"
	Invites  = "invites"
	// InviteUses holds one document per use of an invitation (see
	// UseInvite for why uses are documents rather than a counter update).
	InviteUses = "inviteUses"
	// MigrationsColl records the applied migrations (see Migrate).
	MigrationsColl = "migrations"
)

// serverSelectionTimeout bounds how long an operation waits for a usable
// server, so a wrong URL fails Open clearly instead of hanging (the driver's
// default is 30s). A serverSelectionTimeoutMS in the URL wins.
const serverSelectionTimeout = 5 * time.Second

// Server error codes the store tells apart.
const (
	codeDuplicateKey   = 11000
	codeNotImplemented = 238 // FerretDB's answer to an index option it lacks
)

// Store is a store.Store over one MongoDB database.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	users    *mongo.Collection
	messages *mongo.Collection
	rooms    *mongo.Collection
	members  *mongo.Collection
	bans     *mongo.Collection
	invites  *mongo.Collection
	// inviteUses holds {_id, token, room, at}, one per use.
	inviteUses *mongo.Collection
	// migrations holds {_id: version, version, name, appliedAt}.
	migrations *mongo.Collection
}

var _ store.Store = (*Store)(nil)

// Open connects to uri, uses database and pings the server. It does not
// migrate.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	if database == "" {
		return nil, errors.New("open mongodb: no database name")
	}
	opts := options.Client().SetServerSelectionTimeout(serverSelectionTimeout).ApplyURI(uri)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	db := client.Database(database)
	s := &Store{
		client:   client,
		db:       db,
		users:    db.Collection(Users),
		messages: db.Collection(Messages),
		rooms:    db.Collection(Rooms),
		members:  db.Collection(Members),
		bans:     db.Collection(Bans),
		invites:  db.Collection(Invites),

		inviteUses: db.Collection(InviteUses),

		migrations: db.Collection(MigrationsColl),
	}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// Kind is "mongodb".
func (s *Store) Kind() string { return "mongodb" }

// Ping checks the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

// Close disconnects, letting in-flight operations finish until ctx ends.
func (s *Store) Close(ctx context.Context) error {
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from mongodb: %w", err)
	}
	return nil
}

// hasMsgID selects the messages Aurora wrote (AuroraChat's have no msgId).
var hasMsgID = bson.D{{Key: "msgId", Value: bson.D{{Key: "$exists", Value: true}}}}

// index is one index Migrate creates.
type index struct {
	coll   *mongo.Collection
	name   string
	keys   bson.D
	unique bool
	sparse bool
	// partial is the partialFilterExpression, applied where supported.
	partial bson.D
}

func (ix index) model(withPartial bool) mongo.IndexModel {
	o := options.Index().SetName(ix.name)
	if ix.unique {
		o.SetUnique(true)
	}
	if ix.sparse {
		o.SetSparse(true)
	}
	if withPartial && ix.partial != nil {
		o.SetPartialFilterExpression(ix.partial)
	}
	return mongo.IndexModel{Keys: ix.keys, Options: o}
}

// keys is an index's key document from field, direction pairs.
func keys(kv ...any) bson.D {
	d := bson.D{}
	for i := 0; i < len(kv); i += 2 {
		d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

// createIndexes is migration 1: creating an existing identical index is a
// no-op, so it is idempotent and safe on AuroraChat's database (username_1
// and userId_1 are the very indexes Mongoose created there).
func (s *Store) createIndexes(ctx context.Context) error {
	return ensureIndexes(ctx, []index{
		// Sparse: AuroraChat's users have no usernameKey and must not collide.
		{coll: s.users, name: "usernameKey_1", keys: keys("usernameKey", 1), unique: true, sparse: true},
		{coll: s.users, name: "username_1", keys: keys("username", 1), unique: true},
		{coll: s.messages, name: "roomId_1_createdAt_-1", keys: keys("roomId", 1, "createdAt", -1)},
		{coll: s.messages, name: "userId_1", keys: keys("userId", 1)},
		// Partial, not sparse: a compound sparse index still holds every
		// document with a roomId, so AuroraChat's messages (no msgId) would
		// collide as {roomId, null}.
		{coll: s.messages, name: "roomId_1_msgId_1", keys: keys("roomId", 1, "msgId", 1), unique: true, partial: hasMsgID},
		{coll: s.messages, name: "roomId_1_createdAt_-1_msgSeq_-1", keys: keys("roomId", 1, "createdAt", -1, "msgSeq", -1)},
		{coll: s.rooms, name: "name_1", keys: keys("name", 1), unique: true},
	})
}

// ensureIndexes creates every index that does not exist yet.
func ensureIndexes(ctx context.Context, indexes []index) error {
	for _, ix := range indexes {
		_, err := ix.coll.Indexes().CreateOne(ctx, ix.model(true))
		if ix.partial != nil && isCode(err, codeNotImplemented) {
			// FerretDB v1 rejects partialFilterExpression (and ignores
			// sparse). Its SQLite and PostgreSQL backends index a missing
			// field as NULL, and NULLs never collide in their unique
			// indexes, so there the plain unique index means what the
			// partial one means on MongoDB.
			_, err = ix.coll.Indexes().CreateOne(ctx, ix.model(false))
		}
		if err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll.Name(), ix.name, err)
		}
	}
	return nil
}

// isCode reports whether err is a server error with code.
func isCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// userDoc is a users document. UsernameKey is omitted when empty only to
// decode AuroraChat's documents; Aurora always writes it.
type userDoc struct {
	ID           bson.ObjectID `bson:"_id"`
	Username     string        `bson:"username"`
	UsernameKey  string        `bson:"usernameKey,omitempty"`
	PasswordHash string        `bson:"passwordHash"`
	Disabled     bool          `bson:"disabled"`
	// Admin and ValidAfter are omitted when unset (AuroraChat's users have
	// neither); validAfter is then absent, never a zero Date.
	Admin      bool       `bson:"admin,omitempty"`
	ValidAfter *time.Time `bson:"validAfter,omitempty"`
	CreatedAt  time.Time  `bson:"createdAt"`
	UpdatedAt  time.Time  `bson:"updatedAt"`
}

func (d userDoc) user() store.User {
	return store.User{
		ID:           d.ID.Hex(),
		Username:     d.Username,
		PasswordHash: d.PasswordHash,
		Disabled:     d.Disabled,
		Admin:        d.Admin,
		ValidAfter:   fromOpt(d.ValidAfter),
		CreatedAt:    d.CreatedAt.UTC(),
		UpdatedAt:    d.UpdatedAt.UTC(),
	}
}

// opt is an optional time as stored: nil (the field omitted) for zero,
// else UTC milliseconds.
func opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Millisecond)
	return &t
}

// fromOpt reads what opt stored.
func fromOpt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// CreateUser inserts u; the unique usernameKey index makes concurrent
// registrations of one name (in any case) fail but one, and the unique
// username index refuses the exact name of an AuroraChat user.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	d := userDoc{
		ID:           bson.NewObjectID(),
		Username:     u.Username,
		UsernameKey:  store.UsernameKey(u.Username),
		PasswordHash: u.PasswordHash,
		Disabled:     u.Disabled,
		Admin:        u.Admin,
		ValidAfter:   opt(u.ValidAfter),
		CreatedAt:    now(),
	}
	d.UpdatedAt = d.CreatedAt
	_, err := s.users.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, store.ErrUserExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return d.user(), nil
}

func (s *Store) findUser(ctx context.Context, what string, filter bson.D) (store.User, error) {
	var d userDoc
	err := s.users.FindOne(ctx, filter).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.User{}, fmt.Errorf("user %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("find user %s: %w", what, err)
	}
	return d.user(), nil
}

// UserByName finds a user by usernameKey, then an AuroraChat user (no
// usernameKey) by exact username. Two indexed lookups rather than one $or,
// so an Aurora user always wins over an AuroraChat one differing in case.
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	what := fmt.Sprintf("%q", username)
	u, err := s.findUser(ctx, what, bson.D{{Key: "usernameKey", Value: store.UsernameKey(username)}})
	if !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	return s.findUser(ctx, what, bson.D{
		{Key: "username", Value: username},
		{Key: "usernameKey", Value: bson.D{{Key: "$exists", Value: false}}},
	})
}

// UserByID finds a user by ObjectId hex; a malformed id matches nothing. No
// role looks users up by id: it is here for the contract suite
// (storetest.Store) and tests.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return store.User{}, fmt.Errorf("user id %q: %w", id, store.ErrNotFound)
	}
	return s.findUser(ctx, "id "+id, bson.D{{Key: "_id", Value: oid}})
}

// findAll decodes every document of coll that filter selects as a D and
// converts each with conv.
func findAll[D, T any](ctx context.Context, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder, conv func(D) (T, error)) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]T, len(docs))
	for i, d := range docs {
		if out[i], err = conv(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sortBy is the find options sorting on key, ascending.
func sortBy(key string) *options.FindOptionsBuilder {
	return options.Find().SetSort(bson.D{{Key: key, Value: 1}})
}

// ListUsers returns every user in creation order (ObjectIds sort by time).
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	users, err := findAll(ctx, s.users, bson.D{}, sortBy("_id"), func(d userDoc) (store.User, error) { return d.user(), nil })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// UpdateUser sets the password hash, the disabled and admin flags and
// validAfter (unset when zero), and updatedAt to now.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	oid, err := bson.ObjectIDFromHex(u.ID)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.ID, store.ErrNotFound)
	}
	set := bson.D{
		{Key: "passwordHash", Value: u.PasswordHash},
		{Key: "disabled", Value: u.Disabled},
		{Key: "admin", Value: u.Admin},
		{Key: "updatedAt", Value: now()},
	}
	update := bson.D{}
	if va := opt(u.ValidAfter); va != nil {
		set = append(set, bson.E{Key: "validAfter", Value: *va})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "validAfter", Value: ""}}})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, update)
	if err != nil {
		return fmt.Errorf("update user %s: %w", u.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update user %s: %w", u.ID, store.ErrNotFound)
	}
	return nil
}

// userIDValue is how AuroraChat stores a message's userId: an ObjectId
// (Mongoose casts the 24-hex string), else the string as given.
func userIDValue(id string) any {
	if oid, err := bson.ObjectIDFromHex(id); err == nil {
		return oid
	}
	return id
}

// messageDoc encodes m as AuroraChat's message document plus Aurora's fields.
func messageDoc(m store.Message, updated time.Time) bson.D {
	status := m.Status
	if status == "" {
		status = "sent"
	}
	d := bson.D{
		{Key: "_id", Value: bson.NewObjectID()},
		{Key: "roomId", Value: m.RoomID},
		{Key: "userId", Value: userIDValue(m.UserID)},
		{Key: "text", Value: m.Text},
		{Key: "status", Value: status},
		{Key: "attachments", Value: bson.A{}},
		// DateTime, not time.Time: ms straight from the id, no rounding.
		{Key: "createdAt", Value: bson.DateTime(int64(m.ID.Ms))},
		{Key: "updatedAt", Value: updated},
		{Key: "msgId", Value: m.ID.String()},
		{Key: "msgSeq", Value: int64(m.ID.Seq)},
		{Key: "username", Value: m.Username},
	}
	if len(m.Attachments) > 0 {
		d[5].Value = attachmentsValue(m.Attachments)
	}
	// Omitted when empty, like clientId: a chat message keeps AuroraChat's
	// shape, and reads back with type and event "".
	for _, f := range []bson.E{{Key: "clientId", Value: m.ClientID}, {Key: "type", Value: m.Type}, {Key: "event", Value: m.Event},
		{Key: "replyTo", Value: m.ReplyTo}} {
		if f.Value != "" {
			d = append(d, f)
		}
	}
	if bus.IsLife(m.Type) {
		d = append(d, bson.E{Key: "messageId", Value: m.MessageID.String()})
	}
	if m.Type == bus.TypeReact {
		d = append(d, bson.E{Key: "emoji", Value: m.Emoji}, bson.E{Key: "on", Value: m.On})
	}
	if len(m.Mentions) > 0 {
		d = append(d, bson.E{Key: "mentions", Value: m.Mentions})
	}
	return d
}

// InsertMessages stores the batch with ONE unordered InsertMany: the server
// inserts every document it can, and the unique (roomId, msgId) index turns
// an already stored message into a duplicate-key write error, counted as a
// duplicate. Other write errors reject that message only. Anything else
// (network, timeout, write concern) is an error: nothing can be assumed.
// Then every life entry stored or found stored is applied to its message,
// in batch order (applyLife): MongoDB here has no transaction to make the
// two one step, so a crash in between leaves entries unapplied until the
// batch is redelivered, and applying them again is harmless.
func (s *Store) InsertMessages(ctx context.Context, msgs []store.Message) (store.InsertResult, error) {
	var res store.InsertResult
	reject := func(i int, reason string) {
		if res.Rejected == nil {
			res.Rejected = map[int]string{}
		}
		res.Rejected[i] = reason
	}
	updated := now()
	docs := make([]any, 0, len(msgs))
	batchIndex := make([]int, 0, len(msgs)) // docs[j] is msgs[batchIndex[j]]
	for i, m := range msgs {
		if reason := store.CheckMessage(m); reason != "" {
			reject(i, reason)
			continue
		}
		docs = append(docs, messageDoc(m, updated))
		batchIndex = append(batchIndex, i)
	}
	if len(docs) == 0 {
		return res, nil
	}
	r, err := s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		res.Inserted = len(r.InsertedIDs)
	} else {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: %w", len(docs), err)
		}
		failed := 0
		for _, we := range bwe.WriteErrors {
			if we.Index < 0 || we.Index >= len(batchIndex) {
				return store.InsertResult{}, fmt.Errorf("insert batch of %d: write error for index %d: %w", len(docs), we.Index, err)
			}
			failed++
			if we.Code == codeDuplicateKey {
				res.Duplicates++
				continue
			}
			reject(batchIndex[we.Index], fmt.Sprintf("mongodb error %d: %s", we.Code, we.Message))
		}
		res.Inserted = len(docs) - failed
	}
	// Every message of the batch is stored now; its life entries, and
	// those stored earlier that waited for one of its messages, apply in
	// id order (the stream's), whatever order they were delivered in. A
	// duplicate message is asked too: a crash may have come between its
	// insert and this.
	var life, chat []store.Message
	for _, i := range batchIndex {
		m := msgs[i]
		if _, rejected := res.Rejected[i]; rejected {
			continue
		}
		switch {
		case bus.IsLife(m.Type):
			life = append(life, m)
		case m.Type == "":
			chat = append(chat, m)
		}
	}
	var applied []string
	if len(chat) > 0 {
		early, done, err := s.waitingFor(ctx, chat)
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: %w", len(docs), err)
		}
		life, applied = append(life, early...), done
	}
	slices.SortStableFunc(life, func(a, b store.Message) int { return a.ID.Compare(b.ID) })
	for _, m := range life {
		removed, err := s.applyLife(ctx, m)
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: apply %s %s of room %q: %w", len(docs), m.Type, m.ID, m.RoomID, err)
		}
		res.Removed = append(res.Removed, removed...)
	}
	if len(applied) > 0 {
		ids := make(bson.A, len(applied))
		for i, id := range applied {
			ids[i] = id
		}
		if _, err := s.waiting().DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
			return store.InsertResult{}, fmt.Errorf("insert batch of %d: remove applied waiting entries: %w", len(docs), err)
		}
	}
	return res, nil
}

// messageRead is a messages document as read back. userId is raw because
// it is an ObjectId or a string.
type messageRead struct {
	RoomID    string        `bson:"roomId"`
	UserID    bson.RawValue `bson:"userId"`
	Username  string        `bson:"username"`
	Text      string        `bson:"text"`
	ClientID  string        `bson:"clientId"`
	Status    string        `bson:"status"`
	Type      string        `bson:"type"`
	Event     string        `bson:"event"`
	MsgID     string        `bson:"msgId"`
	CreatedAt bson.DateTime `bson:"createdAt"`
	UpdatedAt bson.DateTime `bson:"updatedAt"`

	MessageID   string         `bson:"messageId"`
	Emoji       string         `bson:"emoji"`
	On          bool           `bson:"on"`
	ReplyTo     string         `bson:"replyTo"`
	Mentions    []string       `bson:"mentions"`
	Attachments bson.RawValue  `bson:"attachments"`
	Edited      *bson.DateTime `bson:"edited"`
	Deleted     bool           `bson:"deleted"`
}

func (d messageRead) message() (store.Message, error) {
	m := store.Message{
		RoomID:    d.RoomID,
		Username:  d.Username,
		Text:      d.Text,
		ClientID:  d.ClientID,
		Status:    d.Status,
		Type:      d.Type,
		Event:     d.Event,
		CreatedAt: time.UnixMilli(int64(d.CreatedAt)).UTC(),
		UpdatedAt: time.UnixMilli(int64(d.UpdatedAt)).UTC(),

		Emoji:       d.Emoji,
		On:          d.On,
		ReplyTo:     d.ReplyTo,
		Mentions:    d.Mentions,
		Attachments: attachmentsOf(d.Attachments),
		Deleted:     d.Deleted,
	}
	if len(m.Mentions) == 0 {
		m.Mentions = nil
	}
	if d.Edited != nil {
		m.Edited = time.UnixMilli(int64(*d.Edited)).UTC()
	}
	if d.MessageID != "" {
		id, err := bus.ParseID(d.MessageID)
		if err != nil {
			return store.Message{}, fmt.Errorf("stored messageId: %w", err)
		}
		m.MessageID = id
	}
	if d.MsgID == "" {
		// An AuroraChat message: its time is its id.
		m.ID = bus.ID{Ms: uint64(max(int64(d.CreatedAt), 0))}
	} else {
		id, err := bus.ParseID(d.MsgID)
		if err != nil {
			return store.Message{}, fmt.Errorf("stored message: %w", err)
		}
		m.ID = id
	}
	if oid, ok := d.UserID.ObjectIDOK(); ok {
		m.UserID = oid.Hex()
	} else if str, ok := d.UserID.StringValueOK(); ok {
		m.UserID = str
	}
	return m, nil
}

// bound is the filter that a message's id is before (op "$lt") or after
// (op "$gt") id, over (createdAt, msgSeq). Parts beyond int64 cannot be
// stored (store.CheckMessage), so they are decided here.
func bound(op string, id bus.ID) bson.D {
	const maxPart = 1<<63 - 1
	switch {
	case id.Ms > maxPart && op == "$lt":
		return bson.D{} // every stored id is before it
	case id.Ms > maxPart:
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: false}}}} // none is after it
	case id.Seq > maxPart && op == "$lt":
		// Every stored id of its millisecond is before it.
		return bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lte", Value: bson.DateTime(int64(id.Ms))}}}}
	case id.Seq > maxPart:
		return bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: bson.DateTime(int64(id.Ms))}}}}
	}
	at := bson.DateTime(int64(id.Ms))
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: op, Value: at}}}},
		bson.D{{Key: "createdAt", Value: at}, {Key: "msgSeq", Value: bson.D{{Key: op, Value: int64(id.Seq)}}}},
	}}}
}

// Messages returns one page of a room sorted on (createdAt, msgSeq), which
// the roomId_1_createdAt_-1_msgSeq_-1 index serves in both directions,
// fetching one more than the page to learn whether more lie beyond it.
func (s *Store) Messages(ctx context.Context, room string, p store.Page) ([]store.Message, bool, error) {
	// roomId at the top level, not in $and: FerretDB v1 pushes only
	// top-level equalities down to its backend.
	conds := bson.A{bson.D{}}
	if !p.Life {
		// History: no life entries (they alone have a messageId).
		conds = append(conds, bson.D{missing("messageId")})
	}
	if p.Before != nil {
		if b := bound("$lt", *p.Before); len(b) > 0 {
			conds = append(conds, b)
		}
	}
	if p.After != nil {
		conds = append(conds, bound("$gt", *p.After))
	}
	dir := -1
	if p.Ascending() {
		dir = 1
	}
	size := p.Size()
	opts := options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: dir}, {Key: "msgSeq", Value: dir}}).
		SetLimit(int64(size) + 1)
	msgs, err := s.findMessages(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "$and", Value: conds}}, opts)
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

func (s *Store) findMessages(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]store.Message, error) {
	return findAll(ctx, s.messages, filter, opts, messageRead.message)
}

// LatestMessage returns the newest message of a room, for the contract
// suite (storetest.Store) and tests; no role needs it.
func (s *Store) LatestMessage(ctx context.Context, room string) (store.Message, error) {
	msgs, _, err := s.Messages(ctx, room, store.Page{Limit: 1})
	if err != nil {
		return store.Message{}, fmt.Errorf("latest message: %w", err)
	}
	if len(msgs) == 0 {
		return store.Message{}, fmt.Errorf("latest message of room %q: %w", room, store.ErrNotFound)
	}
	return msgs[0], nil
}
