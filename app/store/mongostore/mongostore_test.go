package mongostore_test

import (
	"context"
	"errors"
	"net"
	"net/url"
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

// database returns the database named by a MongoURL.
func database(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func open(t *testing.T, uri string) *mongostore.Store {
	t.Helper()
	s, err := mongostore.Open(context.Background(), uri, database(t, uri))
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

// raw connects a plain driver client to the test database, to write and
// inspect documents the way AuroraChat does.
func raw(t *testing.T, uri string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(database(t, uri))
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, storetest.MongoURL(t)) })
}

// TestAuroraChatUser: a user as AuroraChat's user-service writes it (no
// usernameKey, no disabled, a $2b$ hash, Mongoose's __v) logs in through
// Aurora, and its exact name cannot be registered again.
func TestAuroraChatUser(t *testing.T) {
	ctx := context.Background()
	uri := storetest.MongoURL(t)
	db := raw(t, uri)
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
	db := raw(t, uri)
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
	coll := raw(t, uri).Collection("messages")
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
