package cmd_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/store/storetest"
)

type migrationsOut struct {
	Store      string `json:"store"`
	Migrations []struct {
		Version   int        `json:"version"`
		Name      string     `json:"name"`
		Applied   bool       `json:"applied"`
		AppliedAt *time.Time `json:"appliedAt"`
	} `json:"migrations"`
	Pending int    `json:"pending"`
	Applied *[]int `json:"applied"`
}

// states summarizes the migrations as "1 initial schema applied" lines.
func (m migrationsOut) states() string {
	var lines []string
	for _, x := range m.Migrations {
		state := "pending"
		if x.Applied {
			state = "applied"
		}
		lines = append(lines, fmt.Sprintf("%d %s %s", x.Version, x.Name, state))
	}
	return strings.Join(lines, ", ")
}

func TestMigrateCommands(t *testing.T) {
	clearConfigEnv(t)
	names := map[string][]string{
		"sqlite":  {"initial schema", "rooms-and-people schema", "rooms-from-messages", "message-life schema"},
		"mongodb": {"initial schema", "aurorachat-users", "aurorachat-messages", "rooms-and-people schema", "rooms-from-messages", "message-life schema"},
	}
	for kind, base := range operatorBackends(t) {
		t.Run(kind, func(t *testing.T) {
			want := func(state string) string {
				var lines []string
				for i, n := range names[kind] {
					lines = append(lines, fmt.Sprintf("%d %s %s", i+1, n, state))
				}
				return strings.Join(lines, ", ")
			}
			var before migrationsOut
			runJSON(t, &before, append([]string{"migrate", "status"}, base...)...)
			if before.Store != kind || before.states() != want("pending") || before.Pending != len(names[kind]) || before.Applied != nil {
				t.Fatalf("status before: %+v, want %s and %d pending", before, want("pending"), len(names[kind]))
			}
			// status changes nothing.
			var again migrationsOut
			runJSON(t, &again, append([]string{"migrate", "status"}, base...)...)
			if again.states() != want("pending") {
				t.Fatalf("status after status: %s", again.states())
			}
			code, out, errOut := runAurora(t, append([]string{"migrate", "status"}, base...)...)
			if code != 0 || !strings.Contains(out, "VERSION") || !strings.Contains(out, "initial schema") ||
				!strings.Contains(out, "pending") || !strings.Contains(out, "migrate up") {
				t.Errorf("status for people: exit %d, %q, %s", code, out, errOut)
			}

			started := time.Now().Add(-time.Second)
			var up migrationsOut
			runJSON(t, &up, append([]string{"migrate", "up"}, base...)...)
			if up.Store != kind || up.states() != want("applied") || up.Pending != 0 ||
				up.Applied == nil || len(*up.Applied) != len(names[kind]) {
				t.Fatalf("up: %+v, want every migration applied now", up)
			}
			for _, m := range up.Migrations {
				if m.AppliedAt == nil || m.AppliedAt.Before(started) || m.AppliedAt.After(time.Now().Add(time.Second)) {
					t.Errorf("migration %d appliedAt %v, want now", m.Version, m.AppliedAt)
				}
			}

			var after migrationsOut
			runJSON(t, &after, append([]string{"migrate", "status"}, base...)...)
			if after.states() != want("applied") || after.Pending != 0 {
				t.Fatalf("status after up: %+v", after)
			}
			for i, m := range after.Migrations {
				if m.AppliedAt == nil || !m.AppliedAt.Equal(*up.Migrations[i].AppliedAt) {
					t.Errorf("status: migration %d appliedAt %v, up said %v", m.Version, m.AppliedAt, up.Migrations[i].AppliedAt)
				}
			}
			code, out, errOut = runAurora(t, append([]string{"migrate", "status"}, base...)...)
			if code != 0 || !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
				t.Errorf("status for people after up: exit %d, %q, %s", code, out, errOut)
			}

			// Again: nothing to apply; plain 'migrate' is 'migrate up'.
			var noop migrationsOut
			runJSON(t, &noop, append([]string{"migrate"}, base...)...)
			if noop.Applied == nil || len(*noop.Applied) != 0 || noop.states() != want("applied") {
				t.Errorf("second up: %+v, want nothing applied", noop)
			}
			for _, args := range [][]string{{"migrate", "up"}, {"migrate"}} {
				code, out, errOut := runAurora(t, append(args, base...)...)
				if code != 0 || strings.TrimSpace(out) != kind+" store migrated" {
					t.Errorf("aurora %s: exit %d, %q, %s", strings.Join(args, " "), code, out, errOut)
				}
			}
		})
	}
}

func TestMigrateUsage(t *testing.T) {
	clearConfigEnv(t)
	if msg := runFail(t, "migrate", "sideways", "--data-dir", t.TempDir()); !strings.Contains(msg, "sideways") {
		t.Errorf("unknown subcommand: %q", msg)
	}
	for _, args := range [][]string{{"migrate", "--help"}, {"migrate", "up", "--help"}, {"migrate", "status", "--help"}} {
		code, out, _ := runAurora(t, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--json") {
			t.Errorf("aurora %s: exit %d, %q", strings.Join(args, " "), code, out)
		}
	}
}

// TestMigrateAuroraChatDatabase is the documented upgrade path: aurora
// pointed at AuroraChat's database with MONGO_URL, 'migrate up', then the
// AuroraChat user is managed case-insensitively.
func TestMigrateAuroraChatDatabase(t *testing.T) {
	clearConfigEnv(t)
	uri := storetest.MongoURL(t)
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	users := client.Database(strings.TrimPrefix(u.Path, "/")).Collection("users")
	id := bson.NewObjectID()
	if _, err := users.InsertOne(ctx, bson.D{
		{Key: "_id", Value: id}, {Key: "username", Value: "Alice"},
		{Key: "passwordHash", Value: "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{Key: "createdAt", Value: time.Now()}, {Key: "updatedAt", Value: time.Now()}, {Key: "__v", Value: int32(0)},
	}); err != nil {
		t.Fatal(err)
	}
	// AuroraChat's rooms are only the roomIds of its messages.
	if _, err := client.Database(strings.TrimPrefix(u.Path, "/")).Collection("messages").InsertOne(ctx, bson.D{
		{Key: "_id", Value: bson.NewObjectID()}, {Key: "roomId", Value: "random"}, {Key: "userId", Value: id},
		{Key: "text", Value: "hi"}, {Key: "status", Value: "sent"}, {Key: "attachments", Value: bson.A{}},
		{Key: "createdAt", Value: time.Date(2024, 1, 11, 0, 0, 0, 0, time.UTC)}, {Key: "__v", Value: int32(0)},
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MONGO_URL", uri)
	dataDir := []string{"--data-dir", t.TempDir()}

	var up migrationsOut
	runJSON(t, &up, append([]string{"migrate", "up"}, dataDir...)...)
	if up.Store != "mongodb" || up.Pending != 0 || up.Applied == nil || len(*up.Applied) != 6 {
		t.Fatalf("migrate up on AuroraChat's database: %+v", up)
	}
	var doc bson.M
	if err := users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["usernameKey"] != "alice" || doc["disabled"] != false {
		t.Errorf("user after migrate up: %v", doc)
	}
	// ... and are public rooms after it, with general.
	var rooms []struct {
		Name      string    `json:"name"`
		CreatedAt time.Time `json:"createdAt"`
	}
	runJSON(t, &rooms, append([]string{"rooms", "list"}, dataDir...)...)
	if len(rooms) != 2 || rooms[0].Name != "general" || rooms[1].Name != "random" ||
		!rooms[1].CreatedAt.Equal(time.Date(2024, 1, 11, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("rooms list after migrate up: %+v, want general and random (at its first message)", rooms)
	}
	var disabled userJSON
	runJSON(t, &disabled, append([]string{"users", "disable", "ALICE"}, dataDir...)...)
	if !disabled.Disabled || disabled.ID != id.Hex() {
		t.Errorf("users disable ALICE: %+v", disabled)
	}
	if msg := runFail(t, append([]string{"users", "create", "alice", "--password", "whatever123"}, dataDir...)...); !strings.Contains(msg, "already exists") {
		t.Errorf("create of the AuroraChat user's name in another case: %q", msg)
	}
}
