package storetest

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestMongoURL checks the URL reaches a server that stores and returns a
// document in the database named by its path.
func TestMongoURL(t *testing.T) {
	raw := MongoURL(t)
	if db := DatabaseName(t, raw); !strings.HasPrefix(db, "aurora_test_") {
		t.Fatalf("database in %q = %q, want aurora_test_...", raw, db)
	}
	ctx := context.Background()
	coll := MongoDatabase(t, raw).Collection("probe")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "k", Value: "v"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var got struct{ K string }
	if err := coll.FindOne(ctx, bson.D{}).Decode(&got); err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.K != "v" {
		t.Fatalf("read back k=%q, want v", got.K)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"mongodb://h:27017", "mongodb://h:27017/d"},
		{"mongodb://h:27017/other?replicaSet=rs", "mongodb://h:27017/d?replicaSet=rs"},
		{"mongodb://u:p@h/other", "mongodb://u:p@h/d?authSource=other"},
		{"mongodb://u:p@h", "mongodb://u:p@h/d?authSource=admin"},
		{"mongodb://u:p@h/x?authSource=y", "mongodb://u:p@h/d?authSource=y"},
	} {
		got, err := withDatabase(c.in, "d")
		if err != nil || got != c.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := withDatabase("redis://h", "d"); err == nil {
		t.Error("withDatabase accepted a redis:// URL")
	}
}
