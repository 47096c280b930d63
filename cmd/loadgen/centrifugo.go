package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// Centrifugo's JSON client protocol (v6), as far as a run needs it: a
// command is {"id":N,"connect"|"subscribe"|"publish":{...}}, its reply
// {"id":N,...} or {"id":N,"error":{...}}; publications arrive as
// {"push":{"channel":...,"pub":{"data":...}}}; the server's ping is {} and
// the client answers {}. The server may put several of these in one
// WebSocket frame, one per line.

// centrifugoChannel is the channel of room: namespace "chat" (the one the
// comparison's configuration opens to client subscribe and publish).
func centrifugoChannel(room string) string { return "chat:" + room }

// centrifugoRoom is the room a connection of role r subscribes to: every
// Aurora connection is in general, and fan-out clients join the run's
// room as well; a Centrifugo client subscribes to the one it uses.
func (w *worker) centrifugoRoom(r role) string {
	if r == roleIdle || w.job.Room == "" {
		return "general"
	}
	return w.job.Room
}

// centrifugoSetup connects with tok and subscribes, reading both replies.
func (w *worker) centrifugoSetup(ctx context.Context, ws *websocket.Conn, tok string, r role) error {
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"connect":{"token":"`+tok+`"}}`)); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	if err := centrifugoReply(ctx, ws, 1); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	sub := `{"id":2,"subscribe":{"channel":"` + centrifugoChannel(w.centrifugoRoom(r)) + `"}}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		return fmt.Errorf("send subscribe: %w", err)
	}
	if err := centrifugoReply(ctx, ws, 2); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// centrifugoReply reads until the reply to command id.
func centrifugoReply(ctx context.Context, ws *websocket.Conn, id int) error {
	want := []byte(`{"id":` + strconv.Itoa(id) + `,`)
	for {
		_, f, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(f, []byte("\n")) {
			if !bytes.HasPrefix(line, want) {
				continue
			}
			if bytes.Contains(line, []byte(`"error":`)) {
				return fmt.Errorf("refused: %.200s", line)
			}
			return nil
		}
	}
}

var (
	centrifugoPush    = []byte(`{"push":`)
	centrifugoPub     = []byte(`"pub":`)
	centrifugoPing    = []byte(`{}`)
	centrifugoIDReply = []byte(`{"id":`)
	centrifugoError   = []byte(`"error":{"code":`)
)

// onCentrifugoFrame accounts for each line of a frame: a publication is a
// message (its data is the Aurora message frame the sender built, text
// and all), a publish reply is an ack, a ping is answered.
func (c *client) onCentrifugoFrame(f []byte, now time.Time) {
	for len(f) > 0 {
		line := f
		if i := bytes.IndexByte(f, '\n'); i >= 0 {
			line, f = f[:i], f[i+1:]
		} else {
			f = nil
		}
		switch {
		case bytes.Equal(line, centrifugoPing):
			if c.lean != nil {
				_ = c.lean.writeText(centrifugoPing)
			} else {
				_ = c.ws.Write(context.Background(), websocket.MessageText, centrifugoPing)
			}
		case bytes.HasPrefix(line, centrifugoPush):
			c.onMessageOr(line, now, bytes.Contains(line, centrifugoPub))
		case bytes.HasPrefix(line, centrifugoIDReply) && c.role == roleSender:
			s := c.shard
			s.mu.Lock()
			s.answered++
			if i := bytes.Index(line, centrifugoError); i >= 0 {
				s.errs["centrifugo_"+string(leadingDigits(line[i+len(centrifugoError):]))]++
			} else {
				s.accepted++
			}
			s.mu.Unlock()
		}
	}
}

func leadingDigits(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return b[:i]
}

// centrifugoPublish builds a sender's publish command: its data is the
// message frame Aurora's sender writes, so receivers find the send time in
// the same "text" field. (Centrifugo's reply carries no clientId: ack
// latency is not measured for it.)
func (w *worker) centrifugoPublish(buf []byte, sender int, seq int64, now time.Time) []byte {
	msg := w.message(nil, sender, seq, now)
	buf = append(buf[:0], `{"id":`...)
	buf = strconv.AppendInt(buf, seq+10, 10)
	buf = append(buf, `,"publish":{"channel":"`...)
	buf = append(buf, centrifugoChannel(w.job.Room)...)
	buf = append(buf, `","data":`...)
	buf = append(buf, msg...)
	return append(buf, `}}`...)
}
