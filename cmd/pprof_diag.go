//go:build pprof

package cmd

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the diagnostic build's profiles, on their own listener
	"os"
	"time"
)

// A diagnostic build (go build -tags pprof) serves net/http/pprof on
// AURORA_PPROF_ADDR, for the heap and goroutine profiles in
// docs/performance.md. The shipped binary has no profiling endpoint; this
// one is never on the server's own listener.
func init() {
	addr := os.Getenv("AURORA_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
		slog.Warn("diagnostic build: pprof listening", "addr", addr, "err", srv.ListenAndServe())
	}()
}
