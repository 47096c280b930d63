package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// FerretDB is an embedded FerretDB v1 (SQLite backend) that a test can stop
// and start again on the same port with the same data, to play a MongoDB
// outage. It is always an embedded server, also when AURORA_TEST_MONGO_URL
// is set: a real MongoDB cannot be stopped by a test.
type FerretDB struct {
	t   testing.TB
	dir string // the SQLite data directory, kept across restarts

	mu     sync.Mutex
	addr   string // 127.0.0.1:port, fixed by the first start
	cancel context.CancelFunc
	done   chan error // Run's result; nil while stopped
}

// ferretStopWait bounds a stop: FerretDB gives connected clients 3 s to
// leave, then closes their connections.
const ferretStopWait = 30 * time.Second

// StartFerretDB starts an embedded FerretDB on a free loopback port with a
// temporary data directory. It is stopped when the test ends (after the
// test's own cleanups, so close clients in t.Cleanup or before returning).
func StartFerretDB(t testing.TB) *FerretDB {
	t.Helper()
	f := &FerretDB{t: t, dir: t.TempDir()}
	if err := f.start("127.0.0.1:0"); err != nil {
		t.Fatalf("start embedded FerretDB: %v", err)
	}
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("embedded FerretDB: %v", err)
		}
	})
	return f
}

// URL is the server's mongodb:// URL, ending in "/" (append a database
// name). It stays the same across Stop and Start.
func (f *FerretDB) URL() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "mongodb://" + f.addr + "/"
}

// Stop stops the server and waits until it has closed every connection
// (clients get FerretDB's 3 s grace first). Stopping a stopped server does
// nothing.
func (f *FerretDB) Stop() {
	f.t.Helper()
	if err := f.stop(); err != nil {
		f.t.Fatalf("stop embedded FerretDB: %v", err)
	}
}

// Start starts a stopped server again on the same port and data directory.
// Starting a running server does nothing.
func (f *FerretDB) Start() {
	f.t.Helper()
	f.mu.Lock()
	addr := f.addr
	f.mu.Unlock()
	// The port was released by Stop; another process may grab it in
	// between, or the kernel may not have let go of it yet: retry a
	// little before giving up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f.start(addr)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			f.t.Fatalf("restart embedded FerretDB on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *FerretDB) start(addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done != nil {
		return nil
	}
	// ferretdb.New listens on addr, so an address in use fails here.
	// Probe first for a clear EADDRINUSE: FerretDB's own error flattens
	// the cause into text.
	if _, port, _ := net.SplitHostPort(addr); port != "0" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		_ = ln.Close()
	}
	ferretMu.Lock()
	srv, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + f.dir + "/",
		// FerretDB logs every connection at info level; tests want quiet.
		Logger: slog.New(slog.DiscardHandler),
	})
	ferretMu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	// MongoDBURI waits until Run has bound the listener.
	uri := srv.MongoDBURI()
	if f.addr == "" {
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" {
			cancel()
			<-done //nolint:errcheck // the URI is the error worth reporting
			return fmt.Errorf("FerretDB URI %q has no host: %v", uri, err)
		}
		f.addr = u.Host
	}
	f.cancel, f.done = cancel, done
	return nil
}

func (f *FerretDB) stop() error {
	f.mu.Lock()
	cancel, done := f.cancel, f.done
	f.cancel, f.done = nil, nil
	f.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	// Run returns once every client connection has closed.
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	case <-time.After(ferretStopWait):
		return fmt.Errorf("did not stop within %s: a client is still connected", ferretStopWait)
	}
}
