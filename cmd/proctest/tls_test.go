package proctest_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
)

// TestServeTLS runs `aurora serve` as an operator configures HTTPS, from
// the environment: the composition root hands the certificate files to the
// runtime, the page and API answer over HTTPS only, the redirect listener
// sends plain HTTP there, and SIGINT still drains and exits 0.
func TestServeTLS(t *testing.T) {
	bin := apptest.Binary(t)
	ca := apptest.NewTestCA(t, 24*time.Hour, "localhost")
	port, redirectPort := freePort(t), freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := execAurora(bin, "serve", "--http-addr", addr, "--data-dir", filepath.Join(t.TempDir(), "data"))
	cmd.Env = append(cmd.Env,
		"AURORA_HTTP_TLS_CERT_FILE="+ca.CertFile,
		"AURORA_HTTP_TLS_KEY_FILE="+ca.KeyFile,
		"AURORA_HTTP_REDIRECT_ADDR=127.0.0.1:"+strconv.Itoa(redirectPort))
	p := runProc(t, cmd)

	client := apptest.TLSClient(ca.Roots, addr)
	base := "https://localhost:" + strconv.Itoa(port)
	status := func(url string) int {
		resp, err := client.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if !apptest.Poll(60*time.Second, func() bool {
		select {
		case <-p.done:
			t.Fatalf("aurora serve exited before it was ready: %v\n%s", p.err, p.stderr.String())
		default:
		}
		return status(base+"/readyz") == http.StatusOK
	}) {
		t.Fatalf("aurora serve not ready over HTTPS in 60s\n%s", p.stderr.String())
	}
	if code := status(base + "/"); code != http.StatusOK {
		t.Fatalf("GET / over HTTPS: %d, want the page", code)
	}

	plain := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(redirectPort)+"/api/auth/me?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost:" + strconv.Itoa(redirectPort)
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := base + "/api/auth/me?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("redirect listener: %d %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	p.interrupt(t)
}
