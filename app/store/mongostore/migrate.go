package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// apply is a MongoDB migration step's code. It must be idempotent, also
// when two processes run it at once: a step is recorded only after it
// completed, so one interrupted, or raced by another process, runs again.
type apply func(s *Store, ctx context.Context) error

// migrator is this database's side of store.Migrator. Its steps are the
// database's history, in version order: append new steps; never change or
// renumber an applied one.
func (s *Store) migrator() store.Migrator[apply] {
	return store.Migrator[apply]{
		Store: "mongodb",
		Steps: []store.Step[apply]{
			{Migration: store.Migration{Version: 1, Name: "initial schema"}, Apply: (*Store).createIndexes},
			{Migration: store.Migration{Version: 2, Name: "aurorachat-users"}, Apply: (*Store).upgradeUsers},
			{Migration: store.Migration{Version: 3, Name: "aurorachat-messages"}, Apply: (*Store).upgradeMessages},
			{Migration: store.Migration{Version: 4, Name: "rooms-and-people schema"}, Apply: (*Store).roomsSchema},
			{Migration: store.Migration{Version: 5, Name: "rooms-from-messages"}, Apply: (*Store).roomsFromMessages},
			{Migration: store.Migration{Version: 6, Name: "message-life schema"}, Apply: (*Store).lifeSchema},
		},
		Applied: s.applied,
		Apply:   s.applyStep,
	}
}

// migrationDoc is a migrations document. _id is the version, so recording
// a version twice is a duplicate key, never a second record.
type migrationDoc struct {
	ID        int64     `bson:"_id"`
	Version   int64     `bson:"version"`
	Name      string    `bson:"name"`
	AppliedAt time.Time `bson:"appliedAt"`
}

// Migrate applies every step not recorded in the migrations collection, in
// order, recording each after it completed. Two processes starting at once
// may both apply a step (each step is idempotent); the second record is a
// duplicate key and ignored.
func (s *Store) Migrate(ctx context.Context) error { return s.migrator().Migrate(ctx) }

// Migrations reports every known step and whether it is applied; it only
// reads.
func (s *Store) Migrations(ctx context.Context) ([]store.MigrationStatus, error) {
	return s.migrator().Statuses(ctx)
}

// applyStep runs a step, then records it; a record another process wrote
// meanwhile is a duplicate key, which is success.
func (s *Store) applyStep(ctx context.Context, st store.Step[apply]) error {
	if err := st.Apply(s, ctx); err != nil {
		return err
	}
	_, err := s.migrations.InsertOne(ctx, migrationDoc{
		ID: int64(st.Version), Version: int64(st.Version), Name: st.Name, AppliedAt: now(),
	})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// applied reads the migrations collection (empty when never migrated).
func (s *Store) applied(ctx context.Context) ([]store.AppliedMigration, error) {
	out, err := findAll(ctx, s.migrations, bson.D{}, sortBy("_id"), func(d migrationDoc) (store.AppliedMigration, error) {
		return store.AppliedMigration{Version: int(d.Version), Name: d.Name, AppliedAt: d.AppliedAt.UTC()}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return out, nil
}

// missing is the filter that a document lacks field.
func missing(field string) bson.E {
	return bson.E{Key: field, Value: bson.D{{Key: "$exists", Value: false}}}
}

// upgradeUsers is migration 2: AuroraChat's users get disabled: false and
// usernameKey, so they are found case-insensitively and their names are
// unique case-insensitively like Aurora's. The key is set in Go, not with
// $toLower, which folds ASCII only. Two users whose names differ only in
// case (AuroraChat's unique index is case-sensitive) cannot both have the
// key: the step then fails naming them, after keying every other user, for
// the operator to rename one and run it again.
func (s *Store) upgradeUsers(ctx context.Context) error {
	if _, err := s.users.UpdateMany(ctx, bson.D{missing("disabled")},
		bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: false}}}}); err != nil {
		return fmt.Errorf("set disabled: %w", err)
	}
	cur, err := s.users.Find(ctx, bson.D{missing("usernameKey")}, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "username", Value: 1}}))
	if err != nil {
		return fmt.Errorf("find users without usernameKey: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	type userKey struct {
		ID       bson.RawValue `bson:"_id"`
		Username string        `bson:"username"`
	}
	var conflicts []string
	for cur.Next(ctx) {
		var d userKey
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("read user: %w", err)
		}
		key := store.UsernameKey(d.Username)
		// Look for the key's holder first rather than only catching the
		// duplicate key error: FerretDB reports that one on an update as an
		// internal error.
		var holder userKey
		err := s.users.FindOne(ctx, bson.D{{Key: "usernameKey", Value: key}},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "username", Value: 1}})).Decode(&holder)
		switch {
		case err == nil && holder.ID.Equal(d.ID):
			continue // keyed meanwhile by another process
		case err == nil:
			conflicts = append(conflicts, fmt.Sprintf("%q (kept) and %q", holder.Username, d.Username))
			continue
		case !errors.Is(err, mongo.ErrNoDocuments):
			return fmt.Errorf("find usernameKey %q: %w", key, err)
		}
		_, err = s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, missing("usernameKey")},
			bson.D{{Key: "$set", Value: bson.D{{Key: "usernameKey", Value: key}}}})
		if mongo.IsDuplicateKeyError(err) {
			// Another process keyed a user of the same name in between.
			conflicts = append(conflicts, fmt.Sprintf("%q and another user of the same name but for case", d.Username))
			continue
		}
		if err != nil {
			return fmt.Errorf("set usernameKey of %q: %w", d.Username, err)
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read users: %w", err)
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%d usernames equal another but for case, which Aurora treats as one user: %s; "+
			"rename or remove the second of each in the users collection, then run 'aurora migrate up' again",
			len(conflicts), strings.Join(conflicts, ", "))
	}
	return nil
}

// upgradeMessages is migration 3: AuroraChat's messages get status "sent"
// and attachments [] where missing, and the ones without msgId get msgId,
// msgSeq and, when their userId is a known user, username.
func (s *Store) upgradeMessages(ctx context.Context) error {
	for _, def := range []bson.E{{Key: "status", Value: "sent"}, {Key: "attachments", Value: bson.A{}}} {
		if _, err := s.messages.UpdateMany(ctx, bson.D{missing(def.Key)},
			bson.D{{Key: "$set", Value: bson.D{def}}}); err != nil {
			return fmt.Errorf("default %s: %w", def.Key, err)
		}
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := s.assignMsgIDs(ctx)
		// A duplicate key means another process gave a message of the same
		// room and millisecond its id meanwhile: read again and continue.
		if err == nil || !mongo.IsDuplicateKeyError(err) || attempt == attempts {
			return err
		}
	}
}

// pageSize is how many messages without msgId assignMsgIDs reads at a time;
// it writes their ids before reading on, so no cursor stays open while it
// writes.
const pageSize = 500

// assignMsgIDs gives every message without msgId (and with a Date
// createdAt, which places it in time) the id "<createdAt ms>-<n>", n
// counting the messages of its room and millisecond in _id order (AuroraChat
// inserts a batch in one millisecond, in order), skipping the n of ids Aurora
// already stored in that room and millisecond, so the unique (roomId, msgId)
// index holds. The ids depend only on the stored messages, so a run that
// stopped half-way, or another process doing the same, assigns the same
// ones; each update also requires msgId still missing.
func (s *Store) assignMsgIDs(ctx context.Context) error {
	type group struct {
		room string
		at   bson.DateTime
	}
	var last group
	names := map[string]string{} // userId → username ("" when unknown)
	var after bson.RawValue      // the last _id read; zero before the first page
	for {
		filter := bson.D{missing("msgId"), {Key: "createdAt", Value: bson.D{{Key: "$gte", Value: bson.DateTime(0)}}}}
		if !after.IsZero() {
			filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
		}
		cur, err := s.messages.Find(ctx, filter, options.Find().
			SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetLimit(pageSize).
			SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "roomId", Value: 1}, {Key: "createdAt", Value: 1}}))
		if err != nil {
			return fmt.Errorf("find messages without msgId: %w", err)
		}
		var page []struct {
			ID        bson.RawValue `bson:"_id"`
			RoomID    bson.RawValue `bson:"roomId"`
			CreatedAt bson.DateTime `bson:"createdAt"`
		}
		if err := cur.All(ctx, &page); err != nil {
			return fmt.Errorf("read messages without msgId: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].ID
		var writes []mongo.WriteModel
		for _, d := range page {
			room, ok := d.RoomID.StringValueOK()
			if !ok {
				continue // not a room Aurora pages; nothing orders it
			}
			// A batch's messages are adjacent in _id order: its group was
			// just done. (Done again when not adjacent: same ids, no change.)
			g := group{room, d.CreatedAt}
			if g == last {
				continue
			}
			last = g
			models, err := s.groupIDs(ctx, room, d.CreatedAt, names)
			if err != nil {
				return err
			}
			writes = append(writes, models...)
		}
		if len(writes) > 0 {
			if _, err := s.messages.BulkWrite(ctx, writes, options.BulkWrite().SetOrdered(false)); err != nil {
				return fmt.Errorf("set msgId of %d messages: %w", len(writes), err)
			}
		}
	}
}

// groupIDs returns the updates giving the messages of room at the
// millisecond at that lack a msgId theirs.
func (s *Store) groupIDs(ctx context.Context, room string, at bson.DateTime, names map[string]string) ([]mongo.WriteModel, error) {
	cur, err := s.messages.Find(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "createdAt", Value: at}},
		options.Find().
			SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "msgId", Value: 1}, {Key: "userId", Value: 1}, {Key: "username", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("messages of room %q at %d: %w", room, int64(at), err)
	}
	var docs []struct {
		ID       bson.RawValue `bson:"_id"`
		MsgID    bson.RawValue `bson:"msgId"`
		UserID   bson.RawValue `bson:"userId"`
		Username bson.RawValue `bson:"username"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("messages of room %q at %d: %w", room, int64(at), err)
	}
	ms := uint64(at)
	taken := map[uint64]bool{}
	for _, d := range docs {
		if str, ok := d.MsgID.StringValueOK(); ok {
			if id, err := bus.ParseID(str); err == nil && id.Ms == ms {
				taken[id.Seq] = true
			}
		}
	}
	var models []mongo.WriteModel
	seq := uint64(0)
	for _, d := range docs {
		if !d.MsgID.IsZero() {
			continue // has a msgId (Aurora's, or assigned already)
		}
		for taken[seq] {
			seq++
		}
		set := bson.D{
			{Key: "msgId", Value: bus.ID{Ms: ms, Seq: seq}.String()},
			{Key: "msgSeq", Value: int64(seq)},
		}
		seq++
		if d.Username.IsZero() {
			name, err := s.usernameOf(ctx, d.UserID, names)
			if err != nil {
				return nil, err
			}
			if name != "" {
				set = append(set, bson.E{Key: "username", Value: name})
			}
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: d.ID}, missing("msgId")}).
			SetUpdate(bson.D{{Key: "$set", Value: set}}))
	}
	return models, nil
}

// usernameOf returns the username of the user a message's userId (an
// ObjectId, or its hex string) names, "" when there is none, remembering
// answers in names.
func (s *Store) usernameOf(ctx context.Context, userID bson.RawValue, names map[string]string) (string, error) {
	oid, ok := userID.ObjectIDOK()
	if !ok {
		str, isStr := userID.StringValueOK()
		if !isStr {
			return "", nil
		}
		var err error
		if oid, err = bson.ObjectIDFromHex(str); err != nil {
			return "", nil //nolint:nilerr // a userId that is no ObjectId names no user: no username to fill in
		}
	}
	key := oid.Hex()
	if name, ok := names[key]; ok {
		return name, nil
	}
	var d struct {
		Username string `bson:"username"`
	}
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: oid}},
		options.FindOne().SetProjection(bson.D{{Key: "username", Value: 1}})).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return "", fmt.Errorf("find user %s: %w", key, err)
	}
	names[key] = d.Username
	return d.Username, nil
}

// roomsSchema is migration 4: the indexes of the members, bans and invites
// collections and users' updatedAt_1 (UsersChangedSince), and rooms written
// before it get type "public", title and topic "". Users and messages need
// no rewrite: their new fields are absent when unset.
func (s *Store) roomsSchema(ctx context.Context) error {
	if err := ensureIndexes(ctx, []index{
		{coll: s.users, name: "updatedAt_1", keys: keys("updatedAt", 1)},
		{coll: s.rooms, name: "type_1_name_1", keys: keys("type", 1, "name", 1)},
		{coll: s.members, name: "room_1_userId_1", keys: keys("room", 1, "userId", 1), unique: true},
		{coll: s.members, name: "userId_1", keys: keys("userId", 1)},
		{coll: s.bans, name: "room_1_userId_1", keys: keys("room", 1, "userId", 1), unique: true},
		{coll: s.invites, name: "token_1", keys: keys("token", 1), unique: true},
		{coll: s.invites, name: "room_1", keys: keys("room", 1)},
		{coll: s.invites, name: "userId_1", keys: keys("userId", 1)},
		{coll: s.inviteUses, name: "token_1", keys: keys("token", 1)},
		{coll: s.inviteUses, name: "room_1", keys: keys("room", 1)},
	}); err != nil {
		return err
	}
	for _, def := range []bson.E{{Key: "type", Value: store.RoomPublic}, {Key: "title", Value: ""}, {Key: "topic", Value: ""}} {
		if _, err := s.rooms.UpdateMany(ctx, bson.D{missing(def.Key)},
			bson.D{{Key: "$set", Value: bson.D{def}}}); err != nil {
			return fmt.Errorf("default rooms.%s: %w", def.Key, err)
		}
	}
	return nil
}

// roomsFromMessages is migration 5: every room that exists only as the
// roomId of messages (AuroraChat's rooms) becomes a public room created by
// nobody at its first message, and general exists as a public room. A
// roomId that is no valid room name (AuroraChat accepted any) is skipped:
// no client can address it. The unique name_1 index makes a room another
// process created meanwhile a duplicate key, which is success.
func (s *Store) roomsFromMessages(ctx context.Context) error {
	// $group, not distinct: FerretDB refuses the maxTimeMS the driver adds
	// to distinct under a context deadline. Its $group has no $min either,
	// so firstMessageAt finds each room's first message.
	cur, err := s.messages.Aggregate(ctx, bson.A{bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$roomId"}}}}})
	if err != nil {
		return fmt.Errorf("rooms of messages: %w", err)
	}
	var groups []struct {
		ID bson.RawValue `bson:"_id"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return fmt.Errorf("rooms of messages: %w", err)
	}
	create := func(name string, at time.Time) error {
		n, err := s.rooms.CountDocuments(ctx, bson.D{{Key: "name", Value: name}})
		if err != nil || n > 0 {
			return err
		}
		if at.IsZero() {
			if at, err = s.firstMessageAt(ctx, name); err != nil {
				return err
			}
		}
		_, err = s.rooms.InsertOne(ctx, roomDoc{ID: bson.NewObjectID(), Name: name, Type: store.RoomPublic, CreatedAt: at})
		if mongo.IsDuplicateKeyError(err) {
			return nil
		}
		return err
	}
	for _, g := range groups {
		name, ok := g.ID.StringValueOK()
		if !ok || !bus.ValidRoom(name) {
			continue
		}
		if err := create(name, time.Time{}); err != nil {
			return fmt.Errorf("create room %q: %w", name, err)
		}
	}
	if err := create("general", now()); err != nil {
		return fmt.Errorf("create room general: %w", err)
	}
	return nil
}

// firstMessageAt is the createdAt of the oldest message of room (index
// roomId_1_createdAt_-1), or now when none has a Date createdAt.
func (s *Store) firstMessageAt(ctx context.Context, room string) (time.Time, error) {
	var d struct {
		CreatedAt time.Time `bson:"createdAt"`
	}
	err := s.messages.FindOne(ctx,
		bson.D{{Key: "roomId", Value: room}, {Key: "createdAt", Value: bson.D{{Key: "$gte", Value: bson.DateTime(0)}}}},
		options.FindOne().SetSort(bson.D{{Key: "createdAt", Value: 1}}).SetProjection(bson.D{{Key: "createdAt", Value: 1}}),
	).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return now(), nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("first message: %w", err)
	}
	return d.CreatedAt.UTC(), nil
}
