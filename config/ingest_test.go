package config

import (
	"strings"
	"testing"
	"time"
)

func TestIngestRetention(t *testing.T) {
	c := mustLoad(t, "", nil, env())
	if c.Ingest.Retention != 0 || c.Ingest.RetentionInterval != time.Minute {
		t.Fatalf("defaults: retention %s, interval %s; want 0 (forever) and 1m", c.Ingest.Retention, c.Ingest.RetentionInterval)
	}
	c = mustLoad(t, "", nil, env("AURORA_INGEST_RETENTION", "720h", "AURORA_INGEST_RETENTION_INTERVAL", "5m"))
	if c.Ingest.Retention != 720*time.Hour || c.Ingest.RetentionInterval != 5*time.Minute {
		t.Fatalf("from env: %s, %s", c.Ingest.Retention, c.Ingest.RetentionInterval)
	}
	for _, bad := range []struct{ key, value, want string }{
		{"AURORA_INGEST_RETENTION", "-1h", "ingest.retention"},
		{"AURORA_INGEST_RETENTION_INTERVAL", "0s", "ingest.retention_interval"},
	} {
		_, err := load("", nil, registryRoles, env(bad.key, bad.value))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s=%s: %v, want an error naming %s", bad.key, bad.value, err, bad.want)
		}
	}
}
