package ingest

import (
	"context"
	"testing"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/config"
)

// The MongoDB store (FerretDB, or the real MongoDB of AURORA_TEST_MONGO_URL):
// a redelivered backlog whose batches mix stored and new messages is stored
// once each; the new ones of a batch are inserted beside the duplicates.
func TestExactlyOnceIntoMongoDB(t *testing.T) {
	url := storetest.MongoURL(t)
	ctx := context.Background()
	cfg := config.Config{Mongo: config.Mongo{URL: url}}
	st, err := mongostore.Open(ctx, url, cfg.MongoDatabase())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rc := testRedis(t)
	if err := bus.EnsureGroup(ctx, rc, bus.Stream); err != nil {
		t.Fatal(err)
	}
	ids := addEntries(t, rc, "r", 120)
	// AuroraChat's shape too: no ts, no clientId.
	ids = append(ids, xadd(t, rc, bus.FieldRoomID, "r", bus.FieldUserID, "507f1f77bcf86cd799439011", bus.FieldText, "legacy", bus.FieldUsername, "bob"))

	// A worker read everything, stored the first 70 and crashed before XACK.
	const name = "host-1"
	crashedRead(t, rc, st, name, 121, 70)

	c := testConfig()
	c.BatchSize = 50
	w := startWorker(t, Options{Redis: rc, Store: st, Config: c, Consumer: name})
	eventually(t, "pending list empty", func() bool { p, _ := groupState(t, rc); return p == 0 })
	assertStoredOnce(t, st, "r", ids)
	if d, i := value(w.m.duplicates), value(w.m.inserted); d != 70 || i != 51 {
		t.Errorf("duplicates %v inserted %v, want 70 and 51", d, i)
	}
	got, err := st.LatestMessage(ctx, "r")
	if err != nil || got.ID.String() != ids[120] || got.Username != "bob" || got.Text != "legacy" {
		t.Errorf("latest message %+v %v", got, err)
	}
}
