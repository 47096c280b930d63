package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/storetest"
)

func open(t *testing.T, uri string) *mongostore.Store {
	t.Helper()
	s, err := mongostore.Open(context.Background(), uri, storetest.DatabaseName(t, uri))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, storetest.MongoURL(t)) })
}

// TestAuroraChatUser: a user as AuroraChat's user-service writes it (no
// usernameKey, no disabled, a $2b$ hash, Mongoose's __v) logs in through
// Aurora, and its exact name cannot be registered again.
func TestAuroraChatUser(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := storetest.MongoDatabase(t, uri)
	oid := bson.NewObjectID()
	created := time.Date(2024, 1, 11, 0, 0, 0, 0, time.UTC)
	const hash = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{
		{Key: "_id", Value: oid},
		{Key: "username", Value: "Legacy"},
		{Key: "passwordHash", Value: hash},
		{Key: "createdAt", Value: created},
		{Key: "updatedAt", Value: created},
		{Key: "__v", Value: int32(0)},
	}); err != nil {
		t.Fatalf("insert AuroraChat user: %v", err)
	}
	s := open(t, uri)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over an AuroraChat user: %v", err)
	}
	u, err := s.UserByName(ctx, "Legacy")
	if err != nil {
		t.Fatalf("UserByName: %v", err)
	}
	if u.ID != oid.Hex() || u.Username != "Legacy" || u.PasswordHash != hash || u.Disabled || !u.CreatedAt.Equal(created) {
		t.Errorf("UserByName = %+v", u)
	}
	if byID, err := s.UserByID(ctx, oid.Hex()); err != nil || byID.Username != "Legacy" {
		t.Errorf("UserByID = %+v, %v", byID, err)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "Legacy", PasswordHash: "x"}); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("CreateUser of an AuroraChat user's name: %v, want ErrUserExists", err)
	}
	// Aurora's own users (with usernameKey) do not collide with it on the
	// sparse usernameKey index, and are listed alongside it.
	if _, err := s.CreateUser(ctx, store.User{Username: "newbie", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 {
		t.Errorf("ListUsers = %+v, %v; want 2 users", users, err)
	}
	// Disabling writes the field AuroraChat's document lacked.
	u.Disabled = true
	if err := s.UpdateUser(ctx, u); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got, err := s.UserByName(ctx, "Legacy"); err != nil || !got.Disabled {
		t.Errorf("after disabling: %+v, %v", got, err)
	}
}

// TestAuroraChatMessages: messages AuroraChat's ingestion wrote (no msgId,
// several in one room) do not break the unique (roomId, msgId) index, and
// read back by time next to Aurora's.
func TestAuroraChatMessages(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := storetest.MongoDatabase(t, uri)
	user := bson.NewObjectID()
	var old []any
	for i := range 3 {
		at := time.UnixMilli(1_704_931_200_000 + int64(i)*1000).UTC()
		old = append(old, bson.D{
			{Key: "roomId", Value: "general"},
			{Key: "userId", Value: user},
			{Key: "text", Value: "old " + string(rune('a'+i))},
			{Key: "status", Value: "sent"},
			{Key: "attachments", Value: bson.A{}},
			{Key: "createdAt", Value: at},
			{Key: "updatedAt", Value: at},
			{Key: "__v", Value: int32(0)},
		})
	}
	if _, err := db.Collection("messages").InsertMany(ctx, old); err != nil {
		t.Fatalf("insert AuroraChat messages: %v", err)
	}
	s := open(t, uri)
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d over AuroraChat messages: %v", i+1, err)
		}
	}
	// The unique index is in force for Aurora's messages.
	m := store.Message{ID: bus.ID{Ms: 1_704_931_300_000, Seq: 3}, RoomID: "general", UserID: user.Hex(), Username: "alice", Text: "new"}
	for i, want := range []store.InsertResult{{Inserted: 1}, {Duplicates: 1}} {
		res, err := s.InsertMessages(ctx, []store.Message{m})
		if err != nil || res.Inserted != want.Inserted || res.Duplicates != want.Duplicates {
			t.Fatalf("InsertMessages #%d = %+v, %v; want %+v", i+1, res, err, want)
		}
	}
	msgs, more, err := s.Messages(ctx, "general", store.Page{Limit: 10})
	if err != nil || more {
		t.Fatalf("Messages: more=%v, %v", more, err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.ID.String()+" "+m.Text)
		if m.UserID != user.Hex() {
			t.Errorf("message %s userId = %q, want %s", m.ID, m.UserID, user.Hex())
		}
	}
	want := "[1704931300000-3 new 1704931202000-0 old c 1704931201000-0 old b 1704931200000-0 old a]"
	if fmtList(got) != want {
		t.Errorf("Messages = %s, want %s", fmtList(got), want)
	}
}

func fmtList(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// TestDocumentShape: Aurora's message documents are AuroraChat's: userId an
// ObjectId when it is one (else the string), attachments [], createdAt a
// Date of the id's millisecond, msgSeq an int64, clientId only when set.
func TestDocumentShape(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	s := open(t, uri)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	user := bson.NewObjectID()
	res, err := s.InsertMessages(ctx, []store.Message{
		{ID: bus.ID{Ms: 1_704_931_200_123, Seq: 4}, RoomID: "general", UserID: user.Hex(), Username: "alice", Text: "hi", ClientID: "c1"},
		{ID: bus.ID{Ms: 1_704_931_200_124, Seq: 0}, RoomID: "general", UserID: "guest", Text: "yo"},
	})
	if err != nil || res.Inserted != 2 {
		t.Fatalf("InsertMessages = %+v, %v", res, err)
	}
	coll := storetest.MongoDatabase(t, uri).Collection("messages")
	var doc bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "msgId", Value: "1704931200123-4"}}).Decode(&doc); err != nil {
		t.Fatalf("find: %v", err)
	}
	if doc["userId"] != user || doc["roomId"] != "general" || doc["text"] != "hi" || doc["status"] != "sent" ||
		doc["username"] != "alice" || doc["clientId"] != "c1" || doc["msgSeq"] != int64(4) ||
		doc["createdAt"] != bson.DateTime(1_704_931_200_123) {
		t.Errorf("document = %#v", doc)
	}
	if a, ok := doc["attachments"].(bson.A); !ok || len(a) != 0 {
		t.Errorf("attachments = %#v, want []", doc["attachments"])
	}
	if _, ok := doc["_id"].(bson.ObjectID); !ok {
		t.Errorf("_id = %#v, want an ObjectId", doc["_id"])
	}
	doc = nil
	if err := coll.FindOne(ctx, bson.D{{Key: "msgId", Value: "1704931200124-0"}}).Decode(&doc); err != nil {
		t.Fatalf("find: %v", err)
	}
	if _, has := doc["clientId"]; has || doc["userId"] != "guest" {
		t.Errorf("document = %#v, want userId \"guest\" and no clientId", doc)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	// A port nothing listens on: Open fails (after the short server
	// selection timeout) instead of hanging.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	if s, err := mongostore.Open(ctx, "mongodb://"+addr+"/?serverSelectionTimeoutMS=500", "x"); err == nil {
		_ = s.Close(ctx)
		t.Error("Open of a closed port succeeded")
	}
	if s, err := mongostore.Open(ctx, "http://example.com", "x"); err == nil {
		_ = s.Close(ctx)
		t.Error("Open of a non-mongodb URL succeeded")
	}
	if s, err := mongostore.Open(ctx, storetest.MongoURL(t), ""); err == nil {
		_ = s.Close(ctx)
		t.Error("Open without a database name succeeded")
	}
}

// snapshot returns every document of the collections, in _id order, as
// extended JSON, to tell whether a migration changed anything.
func snapshot(t *testing.T, db *mongo.Database, colls ...string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range colls {
		cur, err := db.Collection(name).Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		var docs []bson.Raw
		if err := cur.All(context.Background(), &docs); err != nil {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		for _, d := range docs {
			b.WriteString(name + " " + d.String() + "\n")
		}
	}
	return b.String()
}

// oid returns an ObjectId whose order is n's, so tests can insert documents
// out of _id order.
func oid(t *testing.T, n int) bson.ObjectID {
	t.Helper()
	id, err := bson.ObjectIDFromHex(fmt.Sprintf("65a0000000000000%08x", n))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wantApplied(t *testing.T, s *mongostore.Store, want ...bool) {
	t.Helper()
	ms, err := s.Migrations(context.Background())
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	var got []bool
	for _, m := range ms {
		got = append(got, m.Applied)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("applied migrations = %v (%+v), want %v", got, ms, want)
	}
}

// TestAuroraChatUpgrade: a database as AuroraChat wrote it (users without
// usernameKey and disabled; messages without msgId, msgSeq and username,
// two of a room in one millisecond, one without status and attachments) is
// upgraded by Migrate: the user is found and unique case-insensitively, the
// messages get distinct ids in _id order and page by them, and migrating
// again, even with the records deleted, changes nothing.
func TestAuroraChatUpgrade(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := storetest.MongoDatabase(t, uri)
	created := time.Date(2024, 1, 11, 0, 0, 0, 0, time.UTC)
	const hash = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	alice, bob := oid(t, 1), oid(t, 2)
	var users []any
	for _, u := range []struct {
		id   bson.ObjectID
		name string
	}{{alice, "Alice"}, {bob, "bob"}} {
		users = append(users, bson.D{
			{Key: "_id", Value: u.id}, {Key: "username", Value: u.name}, {Key: "passwordHash", Value: hash},
			{Key: "createdAt", Value: created}, {Key: "updatedAt", Value: created}, {Key: "__v", Value: int32(0)},
		})
	}
	if _, err := db.Collection("users").InsertMany(ctx, users); err != nil {
		t.Fatalf("insert AuroraChat users: %v", err)
	}

	const at = 1_704_931_200_123 // one insertMany batch's millisecond
	message := func(n int, room string, user any, ms int64, text string, defaults bool) bson.D {
		d := bson.D{
			{Key: "_id", Value: oid(t, 100+n)}, {Key: "roomId", Value: room}, {Key: "userId", Value: user},
			{Key: "text", Value: text},
			{Key: "createdAt", Value: bson.DateTime(ms)}, {Key: "updatedAt", Value: bson.DateTime(ms)}, {Key: "__v", Value: int32(0)},
		}
		if defaults {
			d = append(d, bson.E{Key: "status", Value: "sent"}, bson.E{Key: "attachments", Value: bson.A{}})
		}
		return d
	}
	// Inserted out of _id order: the ids must follow _id, not insertion.
	legacy := []any{
		message(3, "general", alice, at+1000, "third", true),
		message(2, "general", bob, at, "second", false),
		message(1, "general", alice, at, "first", true),
		message(4, "random", "guest-7", at, "elsewhere", true),
		message(5, "mixed", alice, at, "legacy", true),
	}
	if _, err := db.Collection("messages").InsertMany(ctx, legacy); err != nil {
		t.Fatalf("insert AuroraChat messages: %v", err)
	}
	// An Aurora message already holds <at>-0 in room mixed: the AuroraChat
	// one of that millisecond must take another id.
	aurora := message(6, "mixed", bob, at, "aurora", true)
	aurora = append(aurora, bson.E{Key: "msgId", Value: fmt.Sprintf("%d-0", at)},
		bson.E{Key: "msgSeq", Value: int64(0)}, bson.E{Key: "username", Value: "bob"})
	if _, err := db.Collection("messages").InsertOne(ctx, aurora); err != nil {
		t.Fatalf("insert Aurora message: %v", err)
	}

	// A roomId that is no room name (AuroraChat accepted any) stays a
	// roomId: no client can address it.
	if _, err := db.Collection("messages").InsertOne(ctx, message(7, "Bad Room!", alice, at, "odd", true)); err != nil {
		t.Fatal(err)
	}
	// Rooms an earlier Aurora created ({name, createdBy, createdAt}, no
	// type): one with messages, one without. Neither is rewritten but for
	// the new fields' defaults.
	oldRoom := time.Date(2023, 6, 1, 12, 0, 0, 0, time.UTC)
	if _, err := db.Collection("rooms").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: oid(t, 200)}, {Key: "name", Value: "mixed"}, {Key: "createdBy", Value: "aurora-cli"}, {Key: "createdAt", Value: oldRoom}},
		bson.D{{Key: "_id", Value: oid(t, 201)}, {Key: "name", Value: "dev"}, {Key: "createdBy", Value: "aurora-cli"}, {Key: "createdAt", Value: oldRoom}},
	}); err != nil {
		t.Fatal(err)
	}

	s := open(t, uri)
	wantApplied(t, s, false, false, false, false, false, false)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate AuroraChat database: %v", err)
	}
	wantApplied(t, s, true, true, true, true, true, true)

	// Rooms: every roomId with a valid name is a public room created by
	// nobody at its first message; the rooms that existed keep theirs.
	rooms, err := s.ListRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var roomLines []string
	for _, r := range rooms {
		roomLines = append(roomLines, fmt.Sprintf("%s %s %q %d", r.Name, r.Type, r.CreatedBy, r.CreatedAt.UnixMilli()))
	}
	wantRooms := fmt.Sprintf(`[dev public "aurora-cli" %[1]d, general public "" %[2]d, mixed public "aurora-cli" %[1]d, random public "" %[2]d]`,
		oldRoom.UnixMilli(), int64(at))
	if got := "[" + strings.Join(roomLines, ", ") + "]"; got != wantRooms {
		t.Errorf("rooms after Migrate = %s, want %s", got, wantRooms)
	}
	if dir, err := s.Directory(ctx, "", "", 10); err != nil || len(dir) != 4 {
		t.Errorf("Directory after Migrate = %+v, %v; want the 4 public rooms", dir, err)
	}

	// Users: found and unique case-insensitively.
	for _, name := range []string{"ALICE", "alice", "Alice"} {
		u, err := s.UserByName(ctx, name)
		if err != nil || u.ID != alice.Hex() || u.Username != "Alice" || u.PasswordHash != hash || u.Disabled {
			t.Errorf("UserByName(%q) = %+v, %v; want the AuroraChat user", name, u, err)
		}
	}
	for _, name := range []string{"aLiCe", "BOB"} {
		if _, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "x"}); !errors.Is(err, store.ErrUserExists) {
			t.Errorf("CreateUser(%q): %v, want ErrUserExists", name, err)
		}
	}
	var doc bson.M
	if err := db.Collection("users").FindOne(ctx, bson.D{{Key: "_id", Value: alice}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["usernameKey"] != "alice" || doc["disabled"] != false || doc["username"] != "Alice" {
		t.Errorf("upgraded user document = %v", doc)
	}

	// Messages: ids from the millisecond and _id order, usernames looked up.
	msgs, more, err := s.Messages(ctx, "general", store.Page{Limit: 10})
	if err != nil || more {
		t.Fatalf("Messages: more=%v, %v", more, err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%s %s %s %s", m.ID, m.Text, m.Username, m.Status))
	}
	want := fmt.Sprintf("[%d-0 third Alice sent, %d-1 second bob sent, %d-0 first Alice sent]", at+1000, at, at)
	if g := "[" + strings.Join(got, ", ") + "]"; g != want {
		t.Errorf("Messages = %s, want %s", g, want)
	}
	first := bus.ID{Ms: at, Seq: 0}
	if page, _, err := s.Messages(ctx, "general", store.Page{After: &first, Limit: 1}); err != nil || len(page) != 1 || page[0].Text != "second" {
		t.Errorf("page after %s = %+v, %v; want the second message", first, page, err)
	}
	second := bus.ID{Ms: at, Seq: 1}
	if page, _, err := s.Messages(ctx, "general", store.Page{Before: &second, Limit: 5}); err != nil || len(page) != 1 || page[0].Text != "first" {
		t.Errorf("page before %s = %+v, %v; want the first message", second, page, err)
	}
	if m, err := s.LatestMessage(ctx, "random"); err != nil || m.ID != first || m.Username != "" || m.UserID != "guest-7" {
		t.Errorf("random: %+v, %v; want %s by the unknown guest-7 without username", m, err, first)
	}
	if mixed, _, err := s.Messages(ctx, "mixed", store.Page{Limit: 5}); err != nil || len(mixed) != 2 ||
		mixed[0].Text != "legacy" || mixed[0].ID != second || mixed[1].Text != "aurora" || mixed[1].ID != first {
		t.Errorf("mixed = %+v, %v; want aurora %s and legacy %s", mixed, err, first, second)
	}
	doc = nil
	if err := db.Collection("messages").FindOne(ctx, bson.D{{Key: "_id", Value: oid(t, 102)}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if a, ok := doc["attachments"].(bson.A); !ok || len(a) != 0 || doc["status"] != "sent" || doc["msgSeq"] != int64(1) {
		t.Errorf("upgraded message without defaults = %v", doc)
	}
	// The unique (roomId, msgId) index covers the upgraded messages.
	res, err := s.InsertMessages(ctx, []store.Message{{ID: first, RoomID: "general", UserID: alice.Hex(), Text: "again"}})
	if err != nil || res.Duplicates != 1 || res.Inserted != 0 {
		t.Errorf("InsertMessages of an upgraded message's id = %+v, %v; want a duplicate", res, err)
	}
	// Upgraded messages are searched and take part in a message's life
	// like Aurora's: Alice's "first" is edited and reacted to.
	if found, _, err := s.Search(ctx, store.SearchQuery{Terms: []string{"first"}, Rooms: []string{"general"}}); err != nil ||
		len(found) != 1 || found[0].ID != first {
		t.Errorf("Search of an upgraded message = %+v, %v", found, err)
	}
	life := []store.Message{
		{ID: bus.ID{Ms: at + 5000}, RoomID: "general", UserID: alice.Hex(), Type: bus.TypeEdit, MessageID: first, Text: "first, edited"},
		{ID: bus.ID{Ms: at + 5001}, RoomID: "general", UserID: bob.Hex(), Type: bus.TypeReact, MessageID: first, Emoji: "👍", On: true},
	}
	if _, err := s.InsertMessages(ctx, life); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Message(ctx, "general", first); err != nil || m.Text != "first, edited" || len(m.Reactions) != 1 {
		t.Errorf("upgraded message after an edit and a reaction = %+v, %v", m, err)
	}

	// Migrating again changes nothing, also when every step reruns (records
	// deleted, as after a crash before recording).
	before := snapshot(t, db, "users", "messages", "rooms")
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if _, err := db.Collection("migrations").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if err := open(t, uri).Migrate(ctx); err != nil {
		t.Fatalf("Migrate with the records deleted: %v", err)
	}
	wantApplied(t, s, true, true, true, true, true, true)
	if after := snapshot(t, db, "users", "messages", "rooms"); after != before {
		t.Errorf("migrating again changed documents:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestAuroraChatUsersDifferingInCase: AuroraChat allowed "Carol" and
// "carol", which Aurora treats as one name. The users migration keys the
// first, refuses to finish naming both, and finishes once one is renamed.
func TestAuroraChatUsersDifferingInCase(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := storetest.MongoDatabase(t, uri)
	if _, err := db.Collection("users").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: oid(t, 1)}, {Key: "username", Value: "Carol"}, {Key: "passwordHash", Value: "h1"}},
		bson.D{{Key: "_id", Value: oid(t, 2)}, {Key: "username", Value: "carol"}, {Key: "passwordHash", Value: "h2"}},
		bson.D{{Key: "_id", Value: oid(t, 3)}, {Key: "username", Value: "dave"}, {Key: "passwordHash", Value: "h3"}},
	}); err != nil {
		t.Fatal(err)
	}
	s := open(t, uri)
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), `"Carol" (kept) and "carol"`) || !strings.Contains(err.Error(), "aurora migrate up") {
		t.Fatalf("Migrate = %v; want an error naming Carol and carol and how to go on", err)
	}
	wantApplied(t, s, true, false, false, false, false, false)
	if u, err := s.UserByName(ctx, "DAVE"); err != nil || u.PasswordHash != "h3" {
		t.Errorf("the other users are keyed: UserByName(DAVE) = %+v, %v", u, err)
	}
	if _, err := db.Collection("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid(t, 2)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "username", Value: "carol2"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after the rename: %v", err)
	}
	wantApplied(t, s, true, true, true, true, true, true)
	for name, hash := range map[string]string{"CAROL": "h1", "Carol2": "h2"} {
		if u, err := s.UserByName(ctx, name); err != nil || u.PasswordHash != hash {
			t.Errorf("UserByName(%q) = %+v, %v; want hash %s", name, u, err, hash)
		}
	}
}

// TestConcurrentUpgrade is two replicas starting at once on an AuroraChat
// database with many messages per millisecond: both migrations succeed and
// every message gets the id its room, millisecond and _id order give it.
func TestConcurrentUpgrade(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := storetest.MongoDatabase(t, uri)
	const perGroup, groups = 8, 4
	var docs []any
	want := map[string]string{} // text → msgId
	n := 0
	for g := range groups {
		room := fmt.Sprintf("room%d", g%2)
		ms := int64(1_704_931_200_000 + g)
		for i := range perGroup {
			n++
			text := fmt.Sprintf("%s-%d-%d", room, ms, i)
			want[text] = fmt.Sprintf("%d-%d", ms, i)
			docs = append(docs, bson.D{
				{Key: "_id", Value: oid(t, n)}, {Key: "roomId", Value: room}, {Key: "userId", Value: oid(t, 9999)},
				{Key: "text", Value: text}, {Key: "createdAt", Value: bson.DateTime(ms)},
			})
		}
	}
	if _, err := db.Collection("messages").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	stores := []*mongostore.Store{open(t, uri), open(t, uri)}
	storetest.MigrateAtOnce(t, "replica", stores...)
	wantApplied(t, stores[0], true, true, true, true, true, true)
	cur, err := db.Collection("messages").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Text  string `bson:"text"`
		MsgID string `bson:"msgId"`
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for _, m := range got {
		if m.MsgID != want[m.Text] {
			t.Errorf("message %q has msgId %q, want %q", m.Text, m.MsgID, want[m.Text])
		}
	}
}

// TestLifeWaiting: a life entry stored before its message waits in
// lifeWaiting until the message's insert applies it, and no longer.
func TestLifeWaiting(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	s := open(t, uri)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	waiting := storetest.MongoDatabase(t, uri).Collection(mongostore.Waiting)
	count := func() int64 {
		t.Helper()
		n, err := waiting.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const user = "0123456789abcdef0123aaaa"
	msg := store.Message{ID: bus.ID{Ms: 1_700_000_000_001}, RoomID: "r", UserID: user, Username: "a", Text: "first"}
	ed := store.Message{ID: bus.ID{Ms: 1_700_000_000_002}, RoomID: "r", UserID: user, Username: "a", Text: "second",
		Type: bus.TypeEdit, MessageID: msg.ID}
	for range 2 { // a redelivered edit waits once
		if _, err := s.InsertMessages(ctx, []store.Message{ed}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("%d waiting after the edit alone, want 1", n)
	}
	// The same id in another room is another message: the edit still waits.
	other := msg
	other.RoomID = "elsewhere"
	if _, err := s.InsertMessages(ctx, []store.Message{other}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d waiting after another room's message, want 1", n)
	}
	if _, err := s.InsertMessages(ctx, []store.Message{msg}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d waiting after the message, want 0", n)
	}
	got, err := s.Message(ctx, "r", msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "second" || got.Edited.IsZero() {
		t.Fatalf("message = %+v, want the waiting edit applied", got)
	}
	if o, err := s.Message(ctx, "elsewhere", msg.ID); err != nil || o.Text != "first" {
		t.Fatalf("the other room's message = %+v, %v: untouched", o, err)
	}
}
