package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// The idle connections of `aurora bench idle` are opened with gobwas/ws,
// not coder/websocket: its dialer writes the upgrade request and reads the
// response itself, where coder/websocket goes through net/http's client
// (a transport connection with two goroutines and 4 KiB buffers per dial).
// The generator shares the 2 cores with the server it measures; with the
// heavier client it spent more CPU per connect than the server did, and
// the connect rate measured the generator. Fan-out runs keep
// coder/websocket for their messages.

// leanReadBuf is each lean connection's read buffer: the welcome and the
// frames of an idle connection are small.
const leanReadBuf = 1024

// leanConn is an idle connection opened by the lean dialer.
type leanConn struct {
	nc net.Conn
	rd io.Reader // reads nc through what the dialer had buffered
	mu sync.Mutex
}

// leanDial opens connection i with token tok and reads its welcome (or,
// for Centrifugo, connects and subscribes).
func (w *worker) leanDial(ctx context.Context, i int, tok string, r role) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, w.job.DialTimeout)
	defer cancel()
	d := w.leanDialers[i%len(w.leanDialers)]
	if w.job.Protocol != ProtocolCentrifugo {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + tok}})
	}
	nc, br, _, err := d.Dial(ctx, w.job.WSURL)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	lc := &leanConn{nc: nc, rd: nc}
	if br != nil {
		lc.rd = br // what came with the 101 (the welcome), then the socket
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	fail := func(err error) (*client, error) {
		nc.Close()
		return nil, err
	}
	buf := make([]byte, 0, leanReadBuf)
	if w.job.Protocol == ProtocolCentrifugo {
		if err := w.leanCentrifugoSetup(lc, &buf, tok, r); err != nil {
			return fail(err)
		}
	} else {
		f, err := lc.readText(&buf)
		if err != nil {
			return fail(fmt.Errorf("read welcome: %w", err))
		}
		if !bytes.HasPrefix(f, []byte(`{"type":"welcome"`)) {
			return fail(fmt.Errorf("first frame is not welcome: %.200s", f))
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return &client{w: w, lean: lc, role: r, shard: &w.shards[i%nShards], done: make(chan struct{})}, nil
}

// leanCentrifugoSetup is centrifugoSetup on a lean connection.
func (w *worker) leanCentrifugoSetup(lc *leanConn, buf *[]byte, tok string, r role) error {
	for id, cmd := range []string{
		`{"id":1,"connect":{"token":"` + tok + `"}}`,
		`{"id":2,"subscribe":{"channel":"` + centrifugoChannel(w.centrifugoRoom(r)) + `"}}`,
	} {
		if err := lc.writeText([]byte(cmd)); err != nil {
			return fmt.Errorf("send command %d: %w", id+1, err)
		}
		want := []byte(fmt.Sprintf(`{"id":%d,`, id+1))
		for done := false; !done; {
			f, err := lc.readText(buf)
			if err != nil {
				return fmt.Errorf("reply %d: %w", id+1, err)
			}
			for _, line := range bytes.Split(f, []byte("\n")) {
				if bytes.HasPrefix(line, want) {
					if bytes.Contains(line, []byte(`"error":`)) {
						return fmt.Errorf("refused: %.200s", line)
					}
					done = true
				}
			}
		}
	}
	return nil
}

// errLeanClosed: the server closed the connection with a close frame.
var errLeanClosed = errors.New("closed by the server")

// readText returns the next text frame's payload (in *buf, reused),
// answering pings and returning errLeanClosed, with the close frame
// answered, when the server closes.
func (lc *leanConn) readText(buf *[]byte) ([]byte, error) {
	for {
		h, err := ws.ReadHeader(lc.rd)
		if err != nil {
			return nil, err
		}
		if h.Length > 1<<20 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := int(h.Length)
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		p := (*buf)[:n]
		if _, err := io.ReadFull(lc.rd, p); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpText, ws.OpContinuation, ws.OpBinary:
			if !h.Fin {
				return nil, errors.New("fragmented frame: not sent by the servers measured")
			}
			return p, nil
		case ws.OpPing:
			if err := lc.write(ws.NewPongFrame(p)); err != nil {
				return nil, err
			}
		case ws.OpClose:
			_ = lc.write(ws.NewCloseFrame(p))
			return nil, errLeanClosed
		}
	}
}

// writeText writes p as one masked text frame.
func (lc *leanConn) writeText(p []byte) error {
	return lc.write(ws.NewTextFrame(bytes.Clone(p)))
}

func (lc *leanConn) write(f ws.Frame) error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return ws.WriteFrame(lc.nc, ws.MaskFrameInPlace(f))
}

// readLoop is client.readLoop for a lean connection.
func (c *client) leanReadLoop() {
	defer close(c.done)
	buf := make([]byte, 0, leanReadBuf)
	for {
		f, err := c.lean.readText(&buf)
		if err != nil {
			if !c.w.closing.Load() {
				c.w.disconnected(err)
			}
			c.lean.nc.Close()
			return
		}
		c.onFrame(f, time.Now())
	}
}

// close starts the close handshake; the read loop ends when the server's
// close frame (or the end of the connection) arrives.
func (lc *leanConn) close() {
	if err := lc.write(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))); err != nil {
		lc.nc.Close()
		return
	}
	// The server answers and closes; a server that does not is cut after 5 s.
	_ = lc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
}
