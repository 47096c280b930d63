package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app"
)

// TestHTTPMetrics: requests are counted by route pattern and status code,
// so a dashboard can show the API's error rate without unbounded labels.
func TestHTTPMetrics(t *testing.T) {
	role := uniq("metrics")
	app.Register(app.Registration{
		Name: role, Role: true,
		New: func(_ context.Context, h *app.Host) (app.Module, error) {
			h.Mux.HandleFunc("GET /api/test/private", func(w http.ResponseWriter, r *http.Request) {
				app.WriteError(w, http.StatusUnauthorized, "no")
			})
			return &fake{rec: &recorder{}}, nil
		},
	})
	srv := startApp(t, testConfig(t, role))
	for _, path := range []string{"/healthz", "/healthz", "/api/test/private", "/no/such/page"} {
		resp, err := http.Get(srv.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`aurora_http_requests_total{code="200",route="GET /healthz"} 2`,
		`aurora_http_requests_total{code="401",route="GET /api/test/private"} 1`,
		`aurora_http_requests_total{code="404",route="/"} 1`,
		`aurora_http_request_duration_seconds_count{route="GET /healthz"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestUnservedRoutesAnswerJSON: a process without a role answers that
// role's API with a JSON 404 naming its roles, and a wrong method on a page
// path with a JSON 405, never the mux's plain text.
func TestUnservedRoutesAnswerJSON(t *testing.T) {
	role := uniq("routes")
	registerFake(role, true, nil, &fake{rec: &recorder{}})
	srv := startApp(t, testConfig(t, role))
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"POST", "/api/auth/login", http.StatusNotFound, "roles: " + role},
		{"GET", "/api/rooms/general/messages", http.StatusNotFound, "no API route"},
		{"POST", "/", http.StatusMethodNotAllowed, "method POST not allowed"},
		{"DELETE", "/index.html", http.StatusMethodNotAllowed, "not allowed"},
	} {
		req, _ := http.NewRequest(tc.method, srv.url+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(resp.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(string(body), `"error"`) || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}
