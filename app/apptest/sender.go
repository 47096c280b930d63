package apptest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
)

// SendWindow is how many messages a Sender has in flight before it waits
// for answers: enough to keep the message path busy, well under
// chat.send_queue.
const SendWindow = 32

// senderWait bounds each write of a sender (its reads are bounded by the
// context it is given).
const senderWait = 30 * time.Second

// SentMessage is what a sender knows of one message.
type SentMessage struct {
	Room, ClientID, Text string
	ID                   string // from the ack; "" when not acked
}

// SendOptions describe one sending client.
type SendOptions struct {
	URL    string // the chat endpoint, token included (WSURL)
	Room   string
	Prefix string // clientIds and texts are <prefix>-<n>
	Limit  int    // send at most this many
	// PerSecond paces the sending (0: as fast as the window allows), so
	// that how long traffic flows does not depend on the machine's speed.
	PerSecond int
	// Stop ends the sending early (nil: send Limit messages).
	Stop <-chan struct{}
	// Acked counts acks across senders, for the test to watch progress.
	Acked *atomic.Int64
}

// SendMessages connects, joins the room and sends messages with a window
// of SendWindow unanswered ones, until Limit or Stop; then it waits for
// every answer. Each message gets an ack, or the run fails: a refusal
// (error or rate_limited) is an error. It returns what it sent with the
// ids the acks gave, also on error. It does not touch a testing.T, so it
// may run on any goroutine.
func SendMessages(ctx context.Context, o SendOptions) ([]SentMessage, error) {
	ws, resp, err := websocket.Dial(ctx, o.URL, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	c := &WS{Conn: ws, wait: senderWait}
	if f, err := c.ReadFrame(ctx); err != nil || f["type"] != "welcome" {
		return nil, fmt.Errorf("first frame %v, %v; want welcome", f, err)
	}
	if err := c.WriteFrame(ctx, map[string]any{"type": "join", "room": o.Room}); err != nil {
		return nil, err
	}
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			return nil, fmt.Errorf("wait for joined: %w", err)
		}
		if f["type"] == "joined" && f["room"] == o.Room {
			break
		}
	}

	var (
		mu      sync.Mutex
		sent    []SentMessage
		index   = map[string]int{}
		slots   = make(chan struct{}, SendWindow)
		readErr = make(chan error, 1)
	)
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			f, err := c.ReadFrame(rctx)
			if err != nil {
				if rctx.Err() == nil {
					readErr <- err
				}
				return
			}
			cid, _ := f["clientId"].(string)
			switch f["type"] {
			case "ack":
				id, _ := f["id"].(string)
				if _, err := bus.ParseID(id); err != nil || f["room"] != o.Room {
					readErr <- fmt.Errorf("bad ack %v", f)
					return
				}
				mu.Lock()
				i, ok := index[cid]
				if ok && sent[i].ID != "" {
					mu.Unlock()
					readErr <- fmt.Errorf("second ack for %s: %v", cid, f)
					return
				}
				if ok {
					sent[i].ID = id
				}
				mu.Unlock()
				if !ok {
					readErr <- fmt.Errorf("ack for a message never sent: %v", f)
					return
				}
				if o.Acked != nil {
					o.Acked.Add(1)
				}
				<-slots
			case "error", "rate_limited":
				readErr <- fmt.Errorf("message refused: %v", f)
				return
			}
			// message frames (own echoes, the room's others) and
			// presence are not what this sender checks.
		}
	}()

	fail := func(err error) ([]SentMessage, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sent), err
	}
	began := time.Now()
send:
	for n := 0; n < o.Limit; n++ {
		if o.PerSecond > 0 {
			due := began.Add(time.Duration(n) * time.Second / time.Duration(o.PerSecond))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-o.Stop:
					break send
				case <-ctx.Done():
					return fail(fmt.Errorf("sending message %d: %w", n, ctx.Err()))
				}
			}
		}
		select {
		case slots <- struct{}{}:
		case <-o.Stop:
			break send
		case err := <-readErr:
			return fail(err)
		case <-ctx.Done():
			return fail(fmt.Errorf("sending message %d: %w", n, ctx.Err()))
		}
		m := SentMessage{Room: o.Room, ClientID: fmt.Sprintf("%s-%d", o.Prefix, n), Text: fmt.Sprintf("%s message %d", o.Prefix, n)}
		mu.Lock()
		index[m.ClientID] = len(sent)
		sent = append(sent, m)
		mu.Unlock()
		if err := c.WriteFrame(ctx, map[string]any{"type": "message", "room": o.Room, "text": m.Text, "clientId": m.ClientID}); err != nil {
			return fail(err)
		}
	}
	// Every slot back means every message sent was answered.
	for range SendWindow {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return fail(err)
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the last acks: %w", ctx.Err()))
		}
	}
	stopReading()
	<-readDone
	ws.Close(websocket.StatusNormalClosure, "")
	return fail(nil)
}
