package app

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClientIP is the address r came from: the connection's peer, or, when that
// peer is one of the trusted proxies, the right-most X-Forwarded-For address
// that is not itself a trusted proxy (the left part of the header is
// whatever the client wrote and proves nothing). It is the invalid Addr when
// RemoteAddr cannot be parsed.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !inPrefixes(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A malformed hop: stop at the last address we could vouch for.
				return client
			}
			client = a.Unmap()
			if !inPrefixes(client, trusted) {
				return client
			}
		}
	}
	return client
}

func remoteAddr(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// connLimitListener caps the open connections per remote address. A
// connection over the cap is answered 429 in JSON and closed before any of
// its request is read, and counted in refused.
type connLimitListener struct {
	net.Listener
	max     int
	trusted []netip.Prefix
	refused prometheus.Counter
	silent  bool

	mu   sync.Mutex
	open map[netip.Addr]int
}

// newConnLimitListener caps ln. With silent (the listener serves TLS) a
// connection over the cap is closed without an answer: a 429 would have to
// be sent inside a TLS session, so refusing would cost the handshake the
// cap is there to save.
func newConnLimitListener(ln net.Listener, max int, trusted []netip.Prefix, refused prometheus.Counter, silent bool) net.Listener {
	if max <= 0 {
		return ln
	}
	return &connLimitListener{Listener: ln, max: max, trusted: trusted, refused: refused, silent: silent, open: map[netip.Addr]int{}}
}

// tooManyConns is the whole response to a connection over the cap.
var tooManyConns = func() []byte {
	body := `{"error":"too many connections from this address"}` + "\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\n" +
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteAddr(c.RemoteAddr().String())
		if !ip.IsValid() || inPrefixes(ip, l.trusted) {
			return c, nil
		}
		l.mu.Lock()
		n := l.open[ip]
		if n >= l.max {
			l.mu.Unlock()
			l.refused.Inc()
			// Answer without blocking Accept on a client that does not read.
			if l.silent {
				_ = c.Close()
				continue
			}
			go func() {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(tooManyConns)
				_ = c.Close()
			}()
			continue
		}
		l.open[ip] = n + 1
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *connLimitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] <= 1 {
		delete(l.open, ip)
		return
	}
	l.open[ip]--
}

// limitedConn gives its slot back once, when closed (a hijacked WebSocket
// connection included: it is closed through this same net.Conn).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// upgradeLimiter is a token bucket of WebSocket handshakes per client
// address, in this process.
type upgradeLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newUpgradeLimiter(rate float64, burst int) *upgradeLimiter {
	if rate <= 0 {
		return nil
	}
	return &upgradeLimiter{rate: rate, burst: float64(burst), buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token for ip, or says how long until one is there.
func (u *upgradeLimiter) allow(ip netip.Addr) (bool, time.Duration) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	// Drop the buckets that have refilled (they are as good as new), at
	// most once per the time a bucket takes to refill, so the map stays
	// as small as the set of recent clients.
	full := time.Duration(u.burst / u.rate * float64(time.Second))
	if now.Sub(u.swept) > full {
		for a, b := range u.buckets {
			if now.Sub(b.last) > full {
				delete(u.buckets, a)
			}
		}
		u.swept = now
	}
	b, ok := u.buckets[ip]
	if !ok {
		b = &bucket{tokens: u.burst, last: now}
		u.buckets[ip] = b
	}
	b.tokens = math.Min(u.burst, b.tokens+now.Sub(b.last).Seconds()*u.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / u.rate * float64(time.Second))
}
