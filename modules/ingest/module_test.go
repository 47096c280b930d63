package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The ingest role in a real server: it stores what reaches the stream,
// reports ready, and exports its metrics.
func TestIngestRoleInAServer(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Roles = []string{"ingest"}
	cfg.Ingest.FlushInterval = 20 * time.Millisecond
	s := apptest.Start(t, cfg)
	rc := apptest.RedisClient(t, cfg.Redis.URL)
	st := s.App.Host().Store

	ids := addEntries(t, rc, "lobby", 25)
	eventually(t, "25 stored", func() bool { return countStored(t, st, "lobby") == 25 })
	assertStoredOnce(t, st, "lobby", ids)

	code, body := get(t, s.URL+"/readyz")
	var ready struct{ Checks map[string]string }
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Checks["ingest"] != "ok" {
		t.Errorf("/readyz = %d %s", code, body)
	}
	eventually(t, "metrics", func() bool {
		_, m := get(t, s.URL+"/metrics")
		return strings.Contains(m, "aurora_ingest_inserted_total 25") && strings.Contains(m, "aurora_ingest_pending 0")
	})
}

// With the embedded Redis (no redis.url), stopping the server stores every
// entry of the stream before the Redis goes away with the process.
func TestServerStopDrainsTheEmbeddedRedis(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Redis.URL = ""
	cfg.Roles = []string{"ingest"}
	cfg.Ingest.FlushInterval = 20 * time.Millisecond
	s := apptest.Start(t, cfg)
	if !s.App.Host().RedisEmbedded {
		t.Fatal("not on the embedded Redis")
	}
	rc := s.App.Host().Redis
	ids := addEntries(t, rc, "lobby", 500)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// The next process finds every message in the store.
	st, err := sqlitestore.Open(context.Background(), cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	assertStoredOnce(t, st, "lobby", ids)
}

// A store that cannot be written turns /readyz to 503 with the ingest
// check's reason, and nothing is acknowledged meanwhile.
func TestServerNotReadyWhileTheStoreFails(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Roles = []string{"ingest"}
	cfg.Ingest.FlushInterval = 20 * time.Millisecond
	cfg.HTTP.DrainTimeout = time.Second
	s := apptest.Start(t, cfg)
	rc := apptest.RedisClient(t, cfg.Redis.URL)
	if err := s.App.Host().Store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	addEntries(t, rc, "lobby", 30)

	var body string
	eventually(t, "/readyz 503 with the ingest check failing", func() bool {
		var code int
		code, body = get(t, s.URL+"/readyz")
		var ready struct{ Checks map[string]string }
		_ = json.Unmarshal([]byte(body), &ready)
		return code == http.StatusServiceUnavailable && strings.Contains(ready.Checks["ingest"], "cannot write to the sqlite store")
	})
	if p, lag := groupState(t, rc); p+lag != 30 {
		t.Errorf("%d pending + %d undelivered: want all 30 unacknowledged", p, lag)
	}
	_ = s.Stop() // the closed store's second Close may fail; the point is above
	if p, lag := groupState(t, rc); p+lag != 30 {
		t.Errorf("after stop, %d pending + %d undelivered: want all 30 unacknowledged", p, lag)
	}
}
