//go:build faults

package proctest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// The fault suite's client: a chat user as the web client (web/static/app.js)
// behaves, recording what it is told. It keeps its connection up (on any
// running replica), rejoins each of its rooms after a reconnect with
// `since` the newest id it saw there ("0-0" before it saw any: the rooms
// start empty), pages the history API after that id when the server says
// the replay was incomplete (`recovered: false`), and resends every message
// not yet acked with its original clientId, after a reconnect, an
// `unavailable` error or a `rate_limited` answer.

// clientWindow is how many messages a client has sent and not had answered
// before it waits: a person's client has few in flight.
const clientWindow = 4

// outMsg is one message of a client's outbox.
type outMsg struct {
	apptest.SentMessage
	firstSent time.Time // when it was first written
	lastSent  time.Time // when it was last written (the write that was acked)
	inflight  bool      // written on the current connection, not answered
	retryAt   time.Time // not before this (after unavailable, rate_limited)
}

// delivery is a message frame as a client received it.
type delivery struct {
	id, clientID string
	at           time.Time
}

// clientStats count what went on at a client.
type clientStats struct {
	connects, unavailable, rateLimited, historyPages int
	closes                                           map[websocket.StatusCode]int
}

// chatClient is one simulated user.
type chatClient struct {
	name, userID, token string
	rooms               []string // joined besides general
	sendRoom            string   // "" for a receiver only
	perSecond           float64
	textLen             int // length of each text (0: short ones)
	bases               func() []string

	mu        sync.Mutex
	seen      map[string][]delivery      // room → message frames over WebSocket, in arrival order
	fetched   map[string]map[string]bool // room → ids read from the history API
	lastID    map[string]bus.ID          // room → newest id seen
	out       []*outMsg
	byCID     map[string]*outMsg
	sending   bool
	connected bool
	connAt    time.Time // when the current connection had joined every room
	lastAck   time.Time
	stats     clientStats
	problems  []string // protocol violations the test reports
	next      int      // the next node to dial (round robin)
	dueNext   time.Time
	holdUntil time.Time // no message before this (after unavailable, rate_limited)
	base      string    // the replica of the current (or last) connection
}

func newChatClient(name, userID, token string, rooms []string, bases func() []string, first int) *chatClient {
	return &chatClient{name: name, userID: userID, token: token, rooms: rooms, bases: bases, next: first,
		seen: map[string][]delivery{}, fetched: map[string]map[string]bool{}, lastID: map[string]bus.ID{},
		byCID: map[string]*outMsg{}, stats: clientStats{closes: map[websocket.StatusCode]int{}}}
}

// sender makes the client send to room at perSecond once startSending is
// called.
func (c *chatClient) sender(room string, perSecond float64) *chatClient {
	c.sendRoom, c.perSecond = room, perSecond
	return c
}

func (c *chatClient) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) < 20 {
		c.problems = append(c.problems, c.name+": "+fmt.Sprintf(format, args...))
	}
}

// setSending starts or stops the creation of new messages (resends go on).
func (c *chatClient) setSending(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sending = on
	c.dueNext = time.Now()
}

// run keeps the client connected until ctx ends.
func (c *chatClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		code := c.session(ctx)
		c.mu.Lock()
		c.connected = false
		if code != 0 {
			c.stats.closes[code]++
		}
		for _, m := range c.out {
			m.inflight = false
		}
		c.mu.Unlock()
		// The web client waits a little before reconnecting.
		select {
		case <-ctx.Done():
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// session is one connection: dial, rejoin, send and read until it ends. It
// returns the close code the server gave (0 when none).
func (c *chatClient) session(ctx context.Context) websocket.StatusCode {
	bases := c.bases()
	if len(bases) == 0 {
		return 0
	}
	c.mu.Lock()
	base := bases[c.next%len(bases)]
	c.next++
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, _, err := websocket.Dial(dctx, apptest.WSURL(base, "/ws", c.token), nil) //nolint:bodyclose // coder/websocket: no body to close
	cancel()
	if err != nil {
		return 0
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1)
	sctx, stop := context.WithCancel(ctx)
	defer stop()

	if f, err := readJSON(sctx, conn, 10*time.Second); err != nil || f["type"] != "welcome" {
		return websocket.CloseStatus(err)
	}
	c.mu.Lock()
	c.base = base
	c.stats.connects++
	joins := make([]map[string]any, 0, len(c.rooms))
	for _, room := range c.rooms {
		since := "0-0"
		if id, ok := c.lastID[room]; ok {
			since = id.String()
		}
		if c.stats.connects == 1 {
			since = "" // the first join: the rooms start empty
		}
		j := map[string]any{"type": "join", "room": room}
		if since != "" {
			j["since"] = since
		}
		joins = append(joins, j)
	}
	c.mu.Unlock()
	for _, j := range joins {
		if err := writeJSON(sctx, conn, j); err != nil {
			return 0
		}
	}

	readDone := make(chan websocket.StatusCode, 1)
	joined := make(chan struct{})
	go func() {
		defer stop()
		readDone <- c.read(sctx, conn, base, len(c.rooms), joined)
	}()
	select {
	case <-joined:
	case code := <-readDone:
		return code
	case <-time.After(15 * time.Second):
		c.problem("joins on %s not answered in 15 s", base)
		return 0
	}
	c.mu.Lock()
	c.connected, c.connAt = true, time.Now()
	c.mu.Unlock()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case code := <-readDone:
			return code
		case <-tick.C:
		}
		for _, m := range c.toSend() {
			frame := map[string]any{"type": "message", "room": m.Room, "text": m.Text, "clientId": m.ClientID}
			if err := writeJSON(sctx, conn, frame); err != nil {
				return <-readDone
			}
		}
	}
}

// toSend picks the messages to write now, in order: unanswered ones due
// again, then a new one when the pace allows, up to the window.
func (c *chatClient) toSend() []outMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	inflight := 0
	for _, m := range c.out {
		if m.inflight {
			inflight++
		}
	}
	if now.Before(c.holdUntil) {
		return nil
	}
	var out []outMsg
	unacked := 0
	for _, m := range c.out {
		if m.ID != "" {
			continue
		}
		unacked++
		if inflight < clientWindow && !m.inflight && !now.Before(m.retryAt) {
			m.inflight, m.lastSent = true, now
			inflight++
			out = append(out, *m)
		}
	}
	// A new message only while fewer than a window's worth are unanswered:
	// during an outage a sender's backlog stays small, as a person stops
	// typing into a client that says it is offline.
	if c.sendRoom == "" || !c.sending || unacked >= clientWindow || now.Before(c.dueNext) {
		return out
	}
	n := len(c.out)
	text := fmt.Sprintf("%s message %d", c.name, n)
	if c.textLen > len(text) {
		text += " " + padding(c.textLen-len(text)-1)
	}
	m := &outMsg{SentMessage: apptest.SentMessage{Room: c.sendRoom, ClientID: fmt.Sprintf("%s-%d", c.name, n), Text: text},
		firstSent: now, lastSent: now, inflight: true}
	c.out = append(c.out, m)
	c.byCID[m.ClientID] = m
	c.dueNext = c.dueNext.Add(time.Duration(float64(time.Second) / c.perSecond))
	if c.dueNext.Before(now.Add(-time.Second)) {
		c.dueNext = now // no burst to catch up after a pause
	}
	return append(out, *m)
}

// padding is n letters.
func padding(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

// read reads the connection until it ends, closing joined once every room
// answered joined, and returns the close code.
func (c *chatClient) read(ctx context.Context, conn *websocket.Conn, base string, rooms int, joined chan struct{}) websocket.StatusCode {
	pendingJoins := rooms
	if pendingJoins == 0 {
		close(joined)
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
		now := time.Now()
		var f struct {
			Type, Room, ID, ClientID, Code, UserID, Message string
			Recovered                                       *bool
			RetryAfterMs                                    int
		}
		if err := json.Unmarshal(b, &f); err != nil {
			c.problem("frame %q: %v", b, err)
			continue
		}
		switch f.Type {
		case "joined":
			if f.Room == "general" {
				continue
			}
			if f.Recovered != nil && !*f.Recovered {
				if err := c.catchUp(ctx, base, f.Room); err != nil {
					c.problem("catch up %s: %v", f.Room, err)
					return 0
				}
			}
			if pendingJoins--; pendingJoins == 0 {
				close(joined)
			}
		case "message":
			id, err := bus.ParseID(f.ID)
			if err != nil {
				c.problem("message frame without an id: %s", b)
				continue
			}
			c.mu.Lock()
			c.seen[f.Room] = append(c.seen[f.Room], delivery{id: f.ID, clientID: f.ClientID, at: now})
			if last, ok := c.lastID[f.Room]; !ok || last.Compare(id) < 0 {
				c.lastID[f.Room] = id
			}
			c.mu.Unlock()
		case "ack":
			c.mu.Lock()
			m := c.byCID[f.ClientID]
			switch {
			case m == nil:
				c.problems = append(c.problems, fmt.Sprintf("%s: ack for a message never sent: %s", c.name, b))
			case m.ID != "" && m.ID != f.ID:
				c.problems = append(c.problems, fmt.Sprintf("%s: %s acked as %s and again as %s", c.name, f.ClientID, m.ID, f.ID))
			default:
				m.ID, m.inflight, c.lastAck = f.ID, false, now
			}
			c.mu.Unlock()
		case "rate_limited":
			c.retry(f.ClientID, time.Duration(max(f.RetryAfterMs, 1))*time.Millisecond, &c.stats.rateLimited)
		case "error":
			if f.Code == "unavailable" && f.ClientID != "" {
				c.retry(f.ClientID, 500*time.Millisecond, &c.stats.unavailable)
				continue
			}
			if f.Code == "unavailable" && strings.HasPrefix(f.Message, "cannot join ") {
				// A join refused while Redis fails over (the room's
				// subscription could not be made): retried, as a client
				// does with any unavailable, by connecting again, which
				// rejoins every room with since.
				c.mu.Lock()
				c.stats.unavailable++
				c.mu.Unlock()
				return 0
			}
			c.problem("error frame %s", b)
		}
	}
}

// retry puts a refused message back, to be resent after wait; nothing is
// sent before then (the server would refuse it for the same reason).
func (c *chatClient) retry(clientID string, wait time.Duration, count *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*count++
	until := time.Now().Add(wait)
	if m := c.byCID[clientID]; m != nil && m.ID == "" {
		m.inflight, m.retryAt = false, until
	}
	if until.After(c.holdUntil) {
		c.holdUntil = until
	}
}

// catchUp pages the history API after the newest id seen in room, as the
// web client does when a replay was incomplete.
func (c *chatClient) catchUp(ctx context.Context, base, room string) error {
	c.mu.Lock()
	after := "0-0"
	if id, ok := c.lastID[room]; ok {
		after = id.String()
	}
	c.mu.Unlock()
	hc := http.Client{Timeout: 10 * time.Second}
	for range 100 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			base+"/api/rooms/"+room+"/messages?limit=200&after="+url.QueryEscape(after), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		var page struct {
			Messages []struct{ ID string }
			HasMore  bool
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("history of %s after %s: %d %v", room, after, resp.StatusCode, err)
		}
		c.mu.Lock()
		c.stats.historyPages++
		if c.fetched[room] == nil {
			c.fetched[room] = map[string]bool{}
		}
		for _, m := range page.Messages {
			c.fetched[room][m.ID] = true
			if id, err := bus.ParseID(m.ID); err == nil {
				if last, ok := c.lastID[room]; !ok || last.Compare(id) < 0 {
					c.lastID[room] = id
				}
			}
		}
		c.mu.Unlock()
		if !page.HasMore || len(page.Messages) == 0 {
			return nil
		}
		after = page.Messages[len(page.Messages)-1].ID
	}
	return errors.New("more than 100 pages behind")
}

func readJSON(ctx context.Context, conn *websocket.Conn, wait time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func writeJSON(ctx context.Context, conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}

// unacked is how many of the client's messages have no ack yet.
func (c *chatClient) unacked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.out {
		if m.ID == "" {
			n++
		}
	}
	return n
}

// state is whether the client is connected with every room joined, since
// when, and its last ack.
func (c *chatClient) state() (connected bool, since, lastAck time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected, c.connAt, c.lastAck
}

// sentMessages is the client's outbox as apptest.SentMessage, ids from acks.
func (c *chatClient) sentMessages() []apptest.SentMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]apptest.SentMessage, len(c.out))
	for i, m := range c.out {
		out[i] = m.SentMessage
	}
	return out
}

// received is every id the client got in room, over WebSocket or the
// history API.
func (c *chatClient) received(room string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]bool{}
	for _, d := range c.seen[room] {
		got[d.id] = true
	}
	for id := range c.fetched[room] {
		got[id] = true
	}
	return got
}

// outOfOrder counts the message frames of room that did not come after
// every frame before them (a duplicate or a reordering), across the
// client's connections.
func (c *chatClient) outOfOrder(room string) (n int, example string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last bus.ID
	for i, d := range c.seen[room] {
		id, _ := bus.ParseID(d.id)
		if i > 0 && last.Compare(id) >= 0 {
			n++
			if example == "" {
				example = fmt.Sprintf("%s after %s", d.id, last)
			}
			continue
		}
		last = id
	}
	return n, example
}
