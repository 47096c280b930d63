package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
)

// Abuse thresholds.
const (
	// garbageLimit invalid frames within garbageWindow close the connection
	// with 1008 on the next one.
	garbageLimit  = 20
	garbageWindow = 10 * time.Second
	// limitedLimit rate-limited messages within limitedWindow close the
	// connection with 1008 on the next one: ten a second over the limits,
	// sustained. A person never comes near (3 a second is the room rate);
	// the web client resending the messages queued while it was offline,
	// each retried up to 3 times after its retryAfterMs, stays under it
	// with up to 29 of them.
	limitedLimit  = 100
	limitedWindow = 10 * time.Second
	// A connection's join and leave frames draw on a token bucket of
	// chat.max_rooms_per_conn + joinBurstExtra tokens (60 by default), so a
	// client joining every room it may be in at once after a reconnect
	// never waits, refilled at joinRate a second; a frame finding it empty
	// is answered with a rate_limited error (which counts as an invalid
	// frame). Each join costs Redis and store reads, and a replay.
	joinBurstExtra = 10
	joinRate       = 2
	// typingPerSecond bounds the typing frames a connection publishes;
	// extra ones are dropped (typing state is advisory).
	typingPerSecond = 5
	// slowGrace is how long a slow consumer gets to take its 4008 close
	// frame before its socket is closed under it.
	slowGrace = 5 * time.Second
)

// conn is one client connection. Its goroutine reads and handles frames one
// at a time (serve); a writer goroutine exists only while something is
// queued for it (writeLoop). Timers (ping, token expiry, slow consumer) run
// briefly on their own.
type conn struct {
	member // who it is and its send queue, as membership sees it
	d      *connDeps
	ws     *websocket.Conn
	sock   *corkConn // ws's socket, corked while a backlog is written
	id     string

	// Owned by the reader goroutine.
	rooms   []string    // joined rooms in join order; rooms[0] gets AuroraChat's {"text"}
	garbage abuseWindow // invalid frames
	limited abuseWindow // rate-limited messages
	// limitedUntil is, per room, when the rate-limit window that refused
	// the connection's last message there opens again: until then a
	// message to the room is refused here, without a Redis call.
	limitedUntil map[string]time.Time
	typingStart  time.Time
	typingN      int
	joinTokens   float64
	joinAt       time.Time // when joinTokens was last brought up to date
	// generalOnConnect: the connection is in general by its join on
	// connect only, so a join frame for general may still replay.
	generalOnConnect bool

	// procMu is held while one client frame is handled, so a shutdown can
	// wait for an in-flight send to be acked or refused.
	procMu  sync.Mutex
	stopped bool

	closeOnce   sync.Once
	closeReq    chan struct{}
	closeCode   websocket.StatusCode
	closeReason string
	dead        atomic.Bool   // close without handshake: the peer is gone
	writerDone  chan struct{} // closed once the writer closed the connection

	pingTimer *time.Timer
	expiry    *time.Timer
}

// connDeps is everything a connection uses of the gateway: its settings,
// metrics, room membership, the hot path and typing. One value, built by
// the gateway, is shared by every connection.
type connDeps struct {
	cfg     config.Chat
	log     *slog.Logger
	metrics *metrics
	rooms   *rooms
	sender  *sender
	typing  *typingPublisher
	allowed allowedRooms
	// access answers the membership rules' questions from the replica's
	// cache; members runs the joins that change membership.
	access  *membership.Cache
	members *membership.Service
	// A message's life (life.go): lookup finds the message an event acts
	// on, users resolves mentions, attachments vouches for a message's
	// attachments (nil: refused).
	lookup      messageLookup
	users       store.Users
	attachments attachmentChecker
	// markers are the store's read markers, the floor of one whose
	// Redis key expired.
	markers readMarkers
	// flusher coalesces the writes of room frames over chat.write_delay;
	// nil when the delay is 0 (every push starts the writer).
	flusher *flusher
}

func newConn(d *connDeps, ws *websocket.Conn, sock *corkConn, id, slot string, claims token.Claims) *conn {
	c := &conn{
		d:          d,
		ws:         ws,
		sock:       sock,
		id:         id,
		closeReq:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.member = member{
		userID:   claims.UserID,
		username: claims.Username,
		issuedAt: claims.IssuedAt,
		slot:     slot,
		log:      d.log.With("conn", id, "user", claims.UserID),
		q:        newSendQueue(d.cfg.SendQueue, d.cfg.SlowTimeout, c.slow),
		ep:       c,
	}
	c.q.startWriter = func() { go c.writeLoop() }
	if d.flusher != nil {
		c.q.schedule = d.flusher.schedule
	}
	ws.SetReadLimit(maxFrameBytes)
	return c
}

// start arms the connection's timers and joins general, which greets the
// client; it runs on the goroutine of the upgrade, whose stack the
// handshake has grown already. serve then reads until the connection
// closes.
func (c *conn) start(expires time.Time) {
	c.expiry = expiryTimer(expires, func() { c.closeWith(closeTokenExpired, "token expired") })
	// Armed only once the field is set: heartbeat reads it.
	c.pingTimer = time.AfterFunc(time.Hour, c.heartbeat)
	c.pingTimer.Reset(c.d.cfg.PingInterval)

	// welcome is the first frame, and is sent once general is subscribed:
	// what general receives meanwhile is held back until after it.
	if code, msg := c.join(generalRoom, nil, true); code != "" {
		c.log.Warn("cannot join general", "code", code, "msg", msg)
		if code == codeBanned || code == codeNotFound || code == codeForbidden {
			c.closeWith(websocket.StatusPolicyViolation, msg)
		} else {
			c.closeWith(websocket.StatusInternalError, "redis unavailable")
		}
	}
}

// serve reads until the connection closes, then leaves every room. It is
// the connection's one goroutine while nothing is being written.
func (c *conn) serve() {
	defer func() {
		c.expiry.Stop()
		c.pingTimer.Stop()
		c.cleanup()
	}()
	c.readLoop()
}

// closing reports whether a close was requested.
func (c *conn) closing() bool {
	select {
	case <-c.closeReq:
		return true
	default:
		return false
	}
}

// closeWith asks the writer to flush what is queued and close with code;
// the first request wins.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.closeReq)
		c.q.requestClose()
	})
}

// kill closes the connection without waiting for the peer: closing the
// socket also ends a write stuck on a peer that does not read. (Writes
// carry no context: a cancellable one costs a timer per frame.)
func (c *conn) kill() {
	c.dead.Store(true)
	c.closeWith(websocket.StatusGoingAway, "")
	// CloseNow waits while a close handshake is under way (bounded by the
	// library): not on the caller's goroutine.
	go c.ws.CloseNow()
}

// shutdown lets the frame being handled finish (an in-flight send is acked
// or refused), stops handling more, and closes with 1001.
func (c *conn) shutdown() {
	c.procMu.Lock()
	c.stopped = true
	c.procMu.Unlock()
	c.closeWith(websocket.StatusGoingAway, "server shutting down")
}

// slow is called by the send queue when it stayed full for SlowTimeout, or
// at once when a message did not fit.
func (c *conn) slow() {
	if c.closing() {
		return
	}
	c.d.metrics.slowDropped.Inc()
	c.log.Warn("slow consumer: closing", "queue", c.d.cfg.SendQueue, "slow_timeout", c.d.cfg.SlowTimeout)
	c.q.drop()
	c.closeWith(closeSlowConsumer, "slow consumer")
	// The close frame waits behind what the socket holds; a client that
	// does not read it in time is cut off.
	time.AfterFunc(slowGrace, c.kill)
}

// heartbeat pings the client; no pong by the next ping closes the connection.
func (c *conn) heartbeat() {
	if c.closing() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.d.cfg.PingInterval)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if !c.closing() {
			c.d.metrics.heartbeat.Inc()
			c.log.Info("no pong: closing", "err", err)
			c.kill()
		}
		return
	}
	c.pingTimer.Reset(c.d.cfg.PingInterval)
}

// writeLoop is the connection's writer while it has something to write
// (the send queue starts it, and it ends when the queue is empty): it
// writes everything queued, and on a close request flushes the queue and
// closes.
func (c *conn) writeLoop() {
	for {
		items, closing, ok := c.q.next()
		if !ok {
			return
		}
		if closing {
			if !c.dead.Load() {
				if err := c.writeQueued(items); err != nil {
					c.dead.Store(true)
				}
			}
			if c.dead.Load() {
				c.ws.CloseNow()
			} else {
				c.ws.Close(c.closeCode, c.closeReason)
			}
			close(c.writerDone)
			return
		}
		if err := c.writeQueued(items); err != nil {
			if !c.closing() {
				c.log.Debug("write failed", "err", err)
			}
			c.kill() // the next step closes
		}
	}
}

// writeQueued writes items: the frames go into one buffer and leave in one
// write syscall (in pieces of maxCork for a larger backlog).
func (c *conn) writeQueued(items []item) error {
	if len(items) == 0 {
		return nil
	}
	c.sock.cork()
	err := c.bufferFrames(items)
	if uerr := c.sock.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	m := c.d.metrics
	now := time.Now()
	n := 0
	for _, it := range items {
		if it.frame != nil {
			n++
			if it.ts > 0 {
				m.fanout.Observe(now.Sub(time.UnixMilli(it.ts)).Seconds())
			}
		}
		n += len(it.frames)
		c.q.written(it)
	}
	m.delivered.Add(float64(n))
	return nil
}

// bufferFrames puts the frames of items into the corked socket.
func (c *conn) bufferFrames(items []item) error {
	for _, it := range items {
		if c.dead.Load() {
			return errors.New("connection aborted")
		}
		if it.frame != nil {
			if err := c.sock.writeText(it.frame); err != nil {
				return err
			}
		}
		for _, f := range it.frames {
			if err := c.sock.writeText(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// readLoop reads and handles client frames until the connection closes.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if s := websocket.CloseStatus(err); s == -1 && !c.closing() {
				c.log.Debug("read ended", "err", err)
			}
			return
		}
		if c.closing() {
			continue // draining the peer until the close handshake ends
		}
		if typ != websocket.MessageText {
			c.closeWith(websocket.StatusUnsupportedData, "binary frames are not supported")
			continue
		}
		c.procMu.Lock()
		if !c.stopped {
			c.handle(data)
		}
		c.procMu.Unlock()
	}
}

// cleanup leaves every room and stops the writer (the gateway then
// unregisters the connection and frees its slot).
func (c *conn) cleanup() {
	c.closeWith(websocket.StatusNormalClosure, "")
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	for _, room := range slices.Clone(c.rooms) {
		c.leaveRoom(ctx, room)
	}
	<-c.writerDone
	c.q.stop()
	c.log.Debug("closed", "code", c.closeCode)
}

// rateLimited answers a message refused by a rate limit until the window
// opens in retryAfter, and counts it towards the abuse close.
func (c *conn) rateLimited(room, clientID string, retryAfter time.Duration) {
	ms := min(max(int64((retryAfter+time.Millisecond-1)/time.Millisecond), 1), rateWindowMs)
	c.d.metrics.rateLimited.Inc()
	c.reply(rateLimitedFrame{Type: "rate_limited", Room: room, ClientID: clientID, RetryAfterMs: ms})
	c.abuse(&c.limited, limitedWindow, limitedLimit, "rate-limited messages")
}

// joinAllowed takes a token for a join or leave frame; when none is left it
// answers the frame with a rate_limited error and returns false.
func (c *conn) joinAllowed(clientID string) bool {
	burst := float64(c.d.cfg.MaxRoomsPerConn + joinBurstExtra)
	now := time.Now()
	if c.joinAt.IsZero() {
		c.joinTokens = burst
	} else {
		c.joinTokens = min(burst, c.joinTokens+now.Sub(c.joinAt).Seconds()*joinRate)
	}
	c.joinAt = now
	if c.joinTokens >= 1 {
		c.joinTokens--
		return true
	}
	wait := time.Duration((1 - c.joinTokens) / joinRate * float64(time.Second))
	ms := max(int64((wait+time.Millisecond-1)/time.Millisecond), 1)
	c.failFrame(errorFrame{Type: "error", Code: codeRateLimited, ClientID: clientID, RetryAfterMs: ms,
		Message: fmt.Sprintf("too many joins and leaves: at most %d a second after the first %.0f, retry in %d ms", joinRate, burst, ms)})
	return false
}

// fail sends an error frame and counts client faults towards the garbage
// threshold.
func (c *conn) fail(code, msg, clientID string) {
	c.failFrame(errorFrame{Type: "error", Code: code, Message: msg, ClientID: clientID})
}

func (c *conn) failFrame(f errorFrame) {
	code := f.Code
	c.d.metrics.errorFrame(code)
	c.reply(f)
	switch code {
	case codeUnavailable, codeMuted, codeForbidden, codeBanned, codeMessageDeleted:
		// Not garbage: a well-formed frame the rules refused (a muted
		// or readonly member typing away), answered from the replica's
		// cache at the cost of a lookup; or an event that lost a race
		// with a delete.
		return
	}
	c.abuse(&c.garbage, garbageWindow, garbageLimit, "invalid frames")
}

// abuseWindow counts a connection's events of one kind in fixed windows: a
// window starts with the first event after the last one ended.
type abuseWindow struct {
	start time.Time
	n     int
}

// abuse counts one event in w and closes the connection with 1008 once
// more than limit fell in one window of length.
func (c *conn) abuse(w *abuseWindow, length time.Duration, limit int, what string) {
	now := time.Now()
	if now.Sub(w.start) > length {
		w.start, w.n = now, 0
	}
	w.n++
	if w.n > limit {
		c.log.Info("too many "+what+": closing", "count", w.n)
		c.closeWith(websocket.StatusPolicyViolation, "too many "+what)
	}
}

// expiryTimer closes the connection with 4001 when its token expires.
func expiryTimer(exp time.Time, fn func()) *time.Timer {
	return time.AfterFunc(time.Until(exp), fn)
}
