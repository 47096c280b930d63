package e2e_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/web"
)

// TestClientRules runs the checks of testdata/rules.js against the page's
// rooms.js in Chromium: who may act on whom for every role and room type,
// the words of room events and refusals, invite links. It needs no Aurora
// server: the embedded files are served as the server serves them, under
// its Content-Security-Policy, with the checks' page beside them.
func TestClientRules(t *testing.T) {
	chromium := findChromium(t)
	mux := http.NewServeMux()
	mux.Handle("/test/", http.StripPrefix("/test/", http.FileServerFS(os.DirFS("testdata"))))
	mux.Handle("/", http.FileServerFS(web.Files))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", app.ContentSecurityPolicy)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	browser := startBrowser(ctx, t, chromium)
	u := openUser(t, browser, "rules", t.TempDir())
	u.do(chromedp.Navigate(srv.URL + "/test/rules.html"))
	u.waitFor("the checks to run", `window.done === true`)
	checks := evaluate[float64](u, `window.checks`)
	failures := evaluate[[]string](u, `window.failures`)
	for _, f := range failures {
		t.Errorf("rooms.js: %s", f)
	}
	// The matrix alone is several hundred checks: fewer means the page
	// stopped early.
	if checks < 500 {
		t.Errorf("rules.js ran %v checks, want the whole matrix (500 or more)", checks)
	}
	t.Logf("%v checks of rooms.js, %d failed", checks, len(failures))
	u.assertClean()
	if t.Failed() {
		t.Logf("page: %s", strings.TrimSpace(evaluate[string](u, `document.getElementById('results').textContent`)))
	}
}
