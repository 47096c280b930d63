package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	// A real role with an authenticated route.
	_ "github.com/auroradev/aurora/modules/auth"
)

// TestHTTPMetrics: requests are counted by route pattern and status code,
// so a dashboard can show the API's error rate without unbounded labels.
func TestHTTPMetrics(t *testing.T) {
	cfg := apptest.Config(t)
	cfg.Roles = []string{"auth"}
	srv := apptest.Start(t, cfg)
	for _, path := range []string{"/healthz", "/healthz", "/api/auth/me", "/no/such/page"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`aurora_http_requests_total{code="200",route="GET /healthz"} 2`,
		`aurora_http_requests_total{code="401",route="GET /api/auth/me"} 1`,
		`aurora_http_requests_total{code="404",route="GET /"} 1`,
		`aurora_http_request_duration_seconds_count{route="GET /healthz"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
