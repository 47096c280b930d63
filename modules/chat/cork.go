package chat

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// maxCork bounds what a corked connection holds before it writes anyway;
// keepCork is the most buffer a connection keeps between batches: none,
// the buffer goes back to corkPool, so an idle connection holds no write
// buffer at all.
const (
	maxCork  = 64 << 10
	keepCork = 0
)

// corkPool holds the write buffers of the connections that are writing
// now; every other connection holds none.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// The bufio sizes coder/websocket gets after the hijack, instead of
// net/http's 4 KiB each. Every frame the server writes goes through the
// corkConn (writeText), so the writer only ever holds coder/websocket's
// control frames (ping, pong, close: at most 125 bytes of payload and a
// 4-byte header), each flushed as one write. The reader holds the start of
// a client frame; a larger frame's rest is read straight into its buffer.
const (
	wsReadBuf  = 512
	wsWriteBuf = 256
)

// corkConn lets a connection's writer put several WebSocket frames into
// one write syscall. The gateway writes its text frames itself
// (writeText: a server frame is a 2-10 byte header and the payload,
// unmasked), so a frame shared by a thousand members is never copied into
// a per-connection buffer and a batch of them leaves in one write, not one
// per frame; coder/websocket writes only control frames through Write.
// While the writer drains a backlog it corks the socket: frames collect in
// a buffer from corkPool, and uncork writes them at once. Frames written
// while not corked (pings, pongs) go straight through.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
	pooled *[]byte // buf's pool entry while corked
	// closeSent: coder/websocket wrote a close frame; no data frame may
	// follow it.
	closeSent bool
	// pending is what the client sent after its request that net/http
	// had read already (the start of its first frame): Read returns it
	// before reading the socket. Only coder/websocket's reader goroutine
	// reads, so it needs no lock.
	pending []byte
}

// Read returns the bytes net/http had buffered first, then the socket's.
func (c *corkConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// coder/websocket writes one whole control frame per Write (its writer
	// flushes at the end of every frame and holds wsWriteBuf bytes, more
	// than the largest control frame).
	if len(p) > 0 && p[0]&0x0f == wsOpClose {
		c.closeSent = true
	}
	if !c.corked {
		if len(c.buf) == 0 {
			return c.Conn.Write(p)
		}
		// The held upgrade response goes first, in the same write.
		err := c.appendLocked(p)
		if err == nil {
			err = c.flushLocked()
		}
		c.putBuf()
		return len(p), err
	}
	return len(p), c.appendLocked(p)
}

// switchingProtocols is the status line of the upgrade response.
const switchingProtocols = "HTTP/1.1 101 Switching Protocols\r\n"

// holdResponse puts the upgrade response (the 101 and h, coder/websocket's
// Upgrade, Connection, Sec-WebSocket-Accept and Sec-WebSocket-Protocol)
// into the write buffer: the first write sends it ahead of its frames.
// http.Header.Write serializes h as net/http would, newlines in values
// made spaces.
func (c *corkConn) holdResponse(h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.takeBuf()
	b := bytes.NewBuffer(append(c.buf, switchingProtocols...))
	_ = h.Write(b) // a bytes.Buffer's writes do not fail
	b.WriteString("\r\n")
	c.buf = b.Bytes()
}

// WebSocket framing of the frames the server writes itself (RFC 6455 5.2).
const (
	wsFinText = 0x81 // FIN, opcode text
	wsOpClose = 0x8
)

// errCloseSent: a data frame after the close frame.
var errCloseSent = fmt.Errorf("write text frame: %w", net.ErrClosed)

// writeText writes p as one text frame: into the cork buffer while corked,
// else straight to the socket.
func (c *corkConn) writeText(p []byte) error {
	var hdr [10]byte
	h := textHeader(hdr[:0], len(p))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return errCloseSent
	}
	if !c.corked {
		c.takeBuf()
		defer c.putBuf()
	}
	if err := c.appendLocked(h); err != nil {
		return err
	}
	if err := c.appendLocked(p); err != nil {
		return err
	}
	if !c.corked {
		return c.flushLocked()
	}
	return nil
}

// textHeader appends the header of an unmasked, final text frame of n
// bytes.
func textHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, wsFinText, byte(n))
	case n <= 0xffff:
		return append(b, wsFinText, 126, byte(n>>8), byte(n))
	default:
		return append(b, wsFinText, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendLocked adds p to the buffer, writing the buffer first when p would
// take it over maxCork (a payload larger than maxCork is written on its
// own).
func (c *corkConn) appendLocked(p []byte) error {
	if c.pooled == nil {
		c.takeBuf()
	}
	if len(c.buf)+len(p) > maxCork {
		if err := c.flushLocked(); err != nil {
			return err
		}
		if len(p) > maxCork {
			_, err := c.Conn.Write(p)
			return err
		}
	}
	c.buf = append(c.buf, p...)
	return nil
}

func (c *corkConn) takeBuf() {
	if c.pooled != nil {
		return
	}
	c.pooled = corkPool.Get().(*[]byte)
	c.buf = (*c.pooled)[:0]
}

// putBuf gives the buffer back to the pool (a grown one too, up to
// maxCork: the pool's entries are write-sized, not message-sized).
func (c *corkConn) putBuf() {
	if c.pooled == nil {
		return
	}
	if cap(c.buf) <= maxCork {
		*c.pooled = c.buf[:0]
		corkPool.Put(c.pooled)
	}
	c.pooled, c.buf = nil, nil
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what collected while corked and releases the buffer.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	if cap(c.buf) > keepCork {
		c.putBuf()
	}
	return err
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// corkingWriter hands coder/websocket a hijacked connection whose writes
// go through a corkConn, with small bufio buffers of its own: net/http's
// two 4 KiB buffers would otherwise stay with every connection for its
// whole life.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn
	// switching: the 101 was held back (WriteHeader) for Hijack to put
	// into the connection's write buffer.
	switching bool
}

// WriteHeader holds a 101 back instead of handing it to net/http, which
// would flush it on its own at Hijack: Hijack puts it into the
// connection's write buffer, where the first frames (the welcome, or a
// close) join it, so the upgrade response and the welcome leave in one
// write syscall instead of two. A client cannot send before it has the
// 101, so holding it until the welcome is ready costs no round trip.
func (w *corkingWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		w.switching = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack for websocket: %w", err)
	}
	w.conn = &corkConn{Conn: nc}
	if w.switching {
		w.conn.holdResponse(w.Header())
	}
	// What the client sent after its request (the start of its first
	// frame, at most) is still in net/http's reader: the connection
	// itself hands it out first. Not a reader in front of the connection:
	// coder/websocket's Accept resets the reader it is given onto the
	// connection (keeping only what that reader has buffered, here
	// nothing), so such a reader's bytes would be dropped and the first
	// frame read from its middle (a client sending right after the 101
	// was refused with "unexpected rsv bits").
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ := brw.Peek(n)
		w.conn.pending = bytes.Clone(pending)
	}
	// net/http wrote nothing (the 101 is held), so its writer is empty.
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, wsReadBuf), bufio.NewWriterSize(w.conn, wsWriteBuf)), nil
}

func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
