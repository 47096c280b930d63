package ingest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
)

// redisProxy forwards TCP to a Redis. down() cuts every connection and,
// until up(), accepts and closes new ones, signalling each on refused: that
// is a client attempting to reach Redis during the outage.
type redisProxy struct {
	ln      net.Listener
	target  string
	refused chan struct{}
	mu      sync.Mutex
	isDown  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// newRedisProxy proxies the Redis of rawURL and returns the URL to reach it
// through the proxy.
func newRedisProxy(t *testing.T, rawURL string) (*redisProxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{ln: ln, target: u.Host, refused: make(chan struct{}, 1), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.down()
		p.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *redisProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.isDown {
			p.mu.Unlock()
			c.Close()
			select {
			case p.refused <- struct{}{}:
			default:
			}
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (p *redisProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *redisProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}

// TestResumesSoonAfterARedisOutage: after Redis has been unreachable for
// several seconds, the worker's retries have backed off to their ceiling;
// Redis comes back just after a failed attempt, so the worker waits out a
// full backoff step before it reads again. A message sent once Redis is
// back must be stored within 5 s. With the old 10 s ceiling that wait was
// 5–10 s (ingest resumed up to 11 s after Redis returned); with 2 s it is
// 1–2 s. This bounds recovery, not speed: the margin is wide.
func TestResumesSoonAfterARedisOutage(t *testing.T) {
	direct := apptest.RedisURL(t)
	rc := apptest.RedisClient(t, direct)
	proxy, viaProxy := newRedisProxy(t, direct)
	fs := testStore(t)
	// No maintenance during the test: the worker's reads are its only
	// attempts to reach Redis.
	w := startWorker(t, Options{Redis: apptest.RedisClient(t, viaProxy), Store: fs, Config: testConfig(), MaintainEvery: time.Hour})
	xadd(t, rc, entry("r", "before").Fields()...)
	eventually(t, "the first message stored", func() bool { return countStored(t, fs, "r") == 1 })

	proxy.down()
	// Past 7 s the old backoff (steps doubling from 100 ms, each wait in
	// the upper half of its step: at most 6.3 s for the first six) was at
	// its 10 s step; the new one has long reached its 2 s ceiling.
	time.Sleep(7 * time.Second)
	select {
	case <-proxy.refused: // an attempt before now
	default:
	}
	select {
	case <-proxy.refused: // the worker just failed an attempt, and backs off
	case <-time.After(20 * time.Second):
		t.Fatal("the worker made no attempt to reach Redis in 20s")
	}
	proxy.up()
	back := time.Now()
	xadd(t, rc, entry("r", "after").Fields()...)
	eventually(t, "the message sent after the outage stored", func() bool { return countStored(t, fs, "r") == 2 })
	took := time.Since(back)
	t.Logf("stored %v after Redis returned", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("stored %v after Redis returned, want under 5s", took.Round(time.Millisecond))
	}
	if err := w.Check(t.Context()); err != nil {
		t.Errorf("Check after recovery: %v", err)
	}
}
