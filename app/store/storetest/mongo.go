package storetest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoEnv names the environment variable holding the URL of a real MongoDB
// for tests. When it is unset, tests run against an embedded FerretDB.
const MongoEnv = "AURORA_TEST_MONGO_URL"

// ferretMu serializes ferretdb.New: it writes a package-level version record
// of FerretDB's, which parallel tests would otherwise race on.
var ferretMu sync.Mutex

// MongoURL returns the mongodb:// URL of a MongoDB for this test, whose path
// names a database of the test's own (config.MongoDatabase reads it from
// there). With AURORA_TEST_MONGO_URL set it is that server, and the database
// is dropped when the test ends; otherwise it is an embedded FerretDB v1 on a
// free local port with a temporary SQLite directory, stopped when the test
// ends (after the test's own cleanups, so close clients in t.Cleanup or
// before returning).
func MongoURL(t testing.TB) string {
	t.Helper()
	db := "aurora_test_" + bson.NewObjectID().Hex()
	if raw := os.Getenv(MongoEnv); raw != "" {
		u, err := withDatabase(raw, db)
		if err != nil {
			t.Fatalf("%s: %v", MongoEnv, err)
		}
		dropAtCleanup(t, u, db)
		return u
	}
	return startFerretDB(t) + db
}

// DatabaseName returns the database a MongoURL names (its path, which
// config.MongoDatabase reads too).
func DatabaseName(t testing.TB, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("parse %q: %v", uri, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// MongoDatabase connects a plain driver client to the database a MongoURL
// names, for tests that write and inspect documents directly (the way
// AuroraChat does). It is disconnected when t ends.
func MongoDatabase(t testing.TB, uri string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(DatabaseName(t, uri))
}

// withDatabase returns raw with its path set to db. When the URL carries
// credentials, the database they authenticate against (the path's, or
// "admin") is kept as authSource so changing the path does not change it.
func withDatabase(raw, db string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", raw, err)
	}
	if u.Scheme != "mongodb" && u.Scheme != "mongodb+srv" {
		return "", fmt.Errorf("%q is not a mongodb:// URL", u.Redacted())
	}
	q := u.Query()
	if u.User != nil && q.Get("authSource") == "" {
		src := "admin"
		if p := u.Path; len(p) > 1 {
			src = p[1:]
		}
		q.Set("authSource", src)
		u.RawQuery = q.Encode()
	}
	u.Path = "/" + db
	return u.String(), nil
}

// dropAtCleanup checks the server answers now (a test must not pass on an
// unreachable server) and drops db when the test ends.
func dropAtCleanup(t testing.TB, uri, db string) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatalf("%s: connect: %v", MongoEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(ctx)
		t.Fatalf("%s: ping: %v", MongoEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Database(db).Drop(ctx); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
		if err := client.Disconnect(ctx); err != nil {
			t.Errorf("disconnect from %s: %v", MongoEnv, err)
		}
	})
}

// startFerretDB runs an embedded FerretDB for the test and returns its URL
// ending in "/".
func startFerretDB(t testing.TB) string {
	t.Helper()
	return StartFerretDB(t).URL()
}
