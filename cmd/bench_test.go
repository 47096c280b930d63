package cmd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/cmd"
	"github.com/auroradev/aurora/cmd/loadgen"
)

// init makes this test binary usable as a bench worker process: `bench
// --procs N` re-executes its own binary with "bench worker", which here is
// the test binary, before the testing package parses any flag.
func init() {
	if os.Getenv(loadgen.WorkerEnv) == "1" && len(os.Args) == 3 && os.Args[1] == "bench" && os.Args[2] == "worker" {
		os.Exit(cmd.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
}

// benchServer starts a real server (every role, in-process miniredis or
// the test Redis) and returns its URL and JWT secret.
func benchServer(t *testing.T) (string, string) {
	t.Helper()
	clearConfigEnv(t)
	cfg := apptest.Config(t)
	s := apptest.Start(t, cfg)
	return s.URL, cfg.Auth.JWTSecret
}

// runBenchJSON runs a bench command and decodes its --json result.
func runBenchJSON(t *testing.T, args ...string) loadgen.Result {
	t.Helper()
	code, out, errOut := runAurora(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("aurora %s exited %d:\n%s", strings.Join(args, " "), code, errOut)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench --json printed no JSON result: %v\n%s", err, out)
	}
	return res
}

func TestBenchFanout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"in process", nil},
		// Two worker processes (this test binary re-executed), each
		// connecting from two loopback addresses.
		{"two worker processes", []string{"--procs", "2", "--source-ips", "127.0.0.2-127.0.0.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, secret := benchServer(t)
			args := append([]string{"bench", "fanout", "--url", url, "--jwt-secret", secret,
				"--receivers", "20", "--senders", "2", "--rate", "2", "--duration", "1s", "--room", "benchroom",
				"--settle", "0s", "--server-pid", fmt.Sprint(os.Getpid())}, tc.extra...)
			res := runBenchJSON(t, args...)

			if res.Mode != "fanout" || res.Receivers != 20 || res.Senders != 2 || res.Room != "benchroom" {
				t.Errorf("result describes another run: %+v", res)
			}
			if res.Connected != 22 || res.DialErrors != 0 {
				t.Errorf("connected %d with %d dial errors %v, want 22 and 0", res.Connected, res.DialErrors, res.DialSample)
			}
			// Two senders at 2/s phased over 500ms send 2 messages each in 1s.
			if res.Sent != 4 || res.Accepted != 4 {
				t.Errorf("sent %d, accepted %d; want 4 and 4", res.Sent, res.Accepted)
			}
			if res.RateLimited != 0 || res.Unanswered != 0 || len(res.ErrorFrames) != 0 || res.Disconnects != 0 {
				t.Errorf("errors: rate limited %d, unanswered %d, error frames %v, disconnects %d %v",
					res.RateLimited, res.Unanswered, res.ErrorFrames, res.Disconnects, res.DisconnectSample)
			}
			if want := res.Accepted * 20; res.Deliveries != want || res.Expected != want || res.Lost != 0 || res.Extra != 0 {
				t.Errorf("deliveries %d, expected %d (lost %d, extra %d); want %d", res.Deliveries, res.Expected, res.Lost, res.Extra, want)
			}
			if res.SenderEchoes != res.Accepted*2 || res.Foreign != 0 {
				t.Errorf("sender echoes %d (want %d), foreign messages %d", res.SenderEchoes, res.Accepted*2, res.Foreign)
			}
			l := res.Latency
			if l.Count != uint64(res.Deliveries) || l.P50Ms > l.P99Ms || l.P99Ms > l.MaxMs || l.MaxMs <= 0 {
				t.Errorf("latency summary is inconsistent: %+v", l)
			}
			var perSecond int64
			for _, sec := range res.Timeline {
				perSecond += sec.Deliveries
			}
			if perSecond != res.Deliveries {
				t.Errorf("the timeline counts %d deliveries, the total is %d", perSecond, res.Deliveries)
			}
			if res.AckLatency.Count != uint64(res.Accepted) {
				t.Errorf("ack latency has %d samples, want %d", res.AckLatency.Count, res.Accepted)
			}
			if res.DeliveriesPerSec < 0 || res.DeliveriesPerSec > float64(res.Deliveries) {
				t.Errorf("deliveries/s = %g for %d deliveries in 1s", res.DeliveriesPerSec, res.Deliveries)
			}
			srv := res.Server
			if srv == nil {
				t.Fatal("no server report although /metrics and /proc were reachable")
			}
			if len(srv.Errors) != 0 {
				t.Errorf("server probe errors: %v", srv.Errors)
			}
			if srv.Delivered < 0 || srv.CPU < 0 {
				t.Errorf("server report: %d frames delivered, %.1f%% cpu over the window", srv.Delivered, srv.CPU)
			}
			if srv.Conns[0] != 22 || srv.RSS[0] <= 0 {
				t.Errorf("server report: connections %v, rss %v", srv.Conns, srv.RSS)
			}
		})
	}
}

func TestBenchIdle(t *testing.T) {
	url, secret := benchServer(t)
	res := runBenchJSON(t, "bench", "idle", "--url", url, "--jwt-secret", secret,
		"--conns", "30", "--hold", "1ms", "--settle", "0s", "--procs", "2", "--server-pid", fmt.Sprint(os.Getpid()))
	if res.Connected != 30 || res.DialErrors != 0 || res.Disconnects != 0 {
		t.Errorf("connected %d, dial errors %d %v, disconnects %d", res.Connected, res.DialErrors, res.DialSample, res.Disconnects)
	}
	srv := res.Server
	if srv == nil {
		t.Fatal("no server report")
	}
	// Sampled before the first connection and while all 30 were open.
	if srv.Conns != [2]int64{0, 30} {
		t.Errorf("server connections before/after = %v, want [0 30]", srv.Conns)
	}
	// Each connection has at least its handler goroutine. (Heap and RSS
	// growth for 30 connections is within the GC's noise: not checked.)
	if srv.RoutinesPerConn < 1 {
		t.Errorf("per connection: %.2f goroutines", srv.RoutinesPerConn)
	}

}

func TestBenchWrongSecret(t *testing.T) {
	url, _ := benchServer(t)
	code, out, errOut := runAurora(t, "bench", "fanout", "--url", url, "--jwt-secret", "not-the-server-secret-0123456789abcdef",
		"--receivers", "2", "--senders", "1", "--duration", "100ms", "--settle", "0s", "--json")
	if code == 0 {
		t.Fatalf("bench with the wrong secret exited 0:\n%s", out)
	}
	if !strings.Contains(errOut, "no connection could be opened") || !strings.Contains(errOut, "401") {
		t.Errorf("stderr does not say the server refused the token (401):\n%s", errOut)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.DialErrors != 3 || res.Connected != 0 {
		t.Errorf("result %+v (%v), want 3 dial errors", res, err)
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	clearConfigEnv(t)
	secret := []string{"--jwt-secret", "s3cret-0123456789abcdef0123456789"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "fanout", "--senders", "0"}, "--senders"},
		{[]string{"bench", "fanout", "--rate", "0"}, "--rate"},
		{[]string{"bench", "fanout", "--duration", "0s"}, "--duration"},
		{[]string{"bench", "fanout", "--room", "Bad Room"}, "--room"},
		{[]string{"bench", "fanout", "--text-size", "5000"}, "--text-size"},
		{[]string{"bench", "idle", "--conns", "0"}, "--conns"},
		{append([]string{"bench", "idle", "--procs", "0"}, secret...), "--procs"},
		{append([]string{"bench", "idle", "--url", "ftp://example.com"}, secret...), "scheme"},
		{append([]string{"bench", "idle", "--source-ips", "127.0.0.9-127.0.0.2"}, secret...), "ends before it starts"},
		{append([]string{"bench", "idle", "--source-ips", "localhost"}, secret...), "not an IP address"},
		{[]string{"bench", "idle", "--data-dir", t.TempDir()}, "--jwt-secret"},
		{append([]string{"bench", "idle", "--conns", "100000000"}, secret...), "--procs"},
		{append([]string{"bench", "idle", "--per-user", "0"}, secret...), "--per-user"},
		{append([]string{"bench", "idle", "--protocol", "mqtt"}, secret...), "--protocol"},
		{append([]string{"bench", "idle", "--server-pid", "12,x"}, secret...), "--server-pid"},
		{append([]string{"bench", "idle", "--url", "http://127.0.0.1:1,ftp://x"}, secret...), "scheme"},
	} {
		code, _, errOut := runAurora(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("aurora %s: exit %d, stderr %q; want an error naming %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
