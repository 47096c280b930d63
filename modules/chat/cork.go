package chat

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// maxCork bounds what a corked connection holds before it writes anyway;
// keepCork is the most buffer a connection keeps between batches, so idle
// connections stay small.
const (
	maxCork  = 64 << 10
	keepCork = 4 << 10
)

// corkConn lets a connection's writer put several WebSocket frames into
// one write syscall. coder/websocket flushes its buffer after every frame;
// while the writer drains a backlog it corks the socket, those flushes
// collect here, and uncork writes them at once. Frames written while not
// corked (pings, pongs, a lone frame) go straight through.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > maxCork {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what collected while corked.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > keepCork {
		c.buf = nil // a large batch: don't keep its memory per connection
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// corkingWriter hands coder/websocket a hijacked connection whose writes
// go through a corkConn.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack for websocket: %w", err)
	}
	w.conn = &corkConn{Conn: nc}
	// net/http flushed the response and reset this writer at Hijack, so it
	// is empty: point it at the corkable connection.
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}

func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
