package apptest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// RedisProxy forwards TCP to a Redis, so a test can make Redis unreachable
// and bring it back without touching the server: Down cuts every
// connection and, until Up, accepts and closes new ones, signalling each on
// Refused (a client trying to reach Redis during the outage).
type RedisProxy struct {
	ln      net.Listener
	target  string
	refused chan struct{}
	mu      sync.Mutex
	isDown  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// NewRedisProxy proxies the Redis of rawURL and returns the proxy and the
// URL (same credentials and options) that reaches Redis through it. It
// stops when the test ends.
func NewRedisProxy(t testing.TB, rawURL string) (*RedisProxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RedisProxy{ln: ln, target: u.Host, refused: make(chan struct{}, 1), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Down()
		p.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Refused receives (without blocking the proxy) when a connection was
// refused while the proxy is down.
func (p *RedisProxy) Refused() <-chan struct{} { return p.refused }

func (p *RedisProxy) serve() {
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

// Down cuts every proxied connection and refuses new ones until Up.
func (p *RedisProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Up lets connections through again.
func (p *RedisProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}
