package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/auroradev/aurora/app/token"
)

// nShards spreads the receivers' bookkeeping over this many locks, so a
// worker's readers do not contend on one.
const nShards = 32

// shard is the bookkeeping of a slice of the receivers.
type shard struct {
	mu         sync.Mutex
	latency    *Histogram
	deliveries int64
	inWindow   int64
	foreign    int64
	echoes     int64
	ack        *Histogram
	errs       map[string]int64
	limited    int64
	accepted   int64
	answered   int64
	types      map[string]int64 // frames received, by type
	timeline   []SecStat        // receivers' deliveries by second of the run
}

type role uint8

const (
	roleIdle role = iota
	roleReceiver
	roleSender
)

// client is one connection of the worker.
type client struct {
	w      *worker
	ws     *websocket.Conn
	lean   *leanConn // instead of ws: an idle connection (lean.go)
	role   role
	sender int // run-wide sender number (senders only)
	shard  *shard
	sent   atomic.Int64
	done   chan struct{} // the reader returned
}

// worker runs one Job.
type worker struct {
	job     Job
	issuer  *token.Issuer
	clients []*http.Client // one per source address
	// leanDialers open the idle connections (lean.go), one per source address.
	leanDialers []ws.Dialer
	runTag      []byte // "bench <runid> ": the start of this run's texts

	conns   []*client
	shards  [nShards]shard
	closing atomic.Bool
	// windowEnd (Unix ns) separates deliveries inside the send window from
	// those drained after it.
	windowEnd atomic.Int64
	// start (Unix ns) is when the window starts: second 0 of the timeline.
	start     atomic.Int64
	delivered atomic.Int64 // this run's messages read by receivers
	echoed    atomic.Int64 // and by senders

	mu            sync.Mutex
	disconnects   int64
	disconnectErr []string
}

func newWorker(job Job) (*worker, error) {
	if job.Secret == "" {
		return nil, errors.New("no JWT secret: tokens cannot be minted")
	}
	if len(job.RunID) != 8 {
		return nil, fmt.Errorf("run id %q: want 8 hex digits", job.RunID)
	}
	ttl := job.TokenTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	w := &worker{job: job, issuer: token.NewIssuer([]byte(job.Secret), ttl), runTag: []byte("bench " + job.RunID + " ")}
	for i := range w.shards {
		w.shards[i].latency = NewHistogram()
		w.shards[i].ack = NewHistogram()
		w.shards[i].errs = map[string]int64{}
		w.shards[i].types = map[string]int64{}
	}
	ips := job.SourceIPs
	if len(ips) == 0 {
		ips = []string{""}
	}
	for _, ip := range ips {
		d := &net.Dialer{Timeout: job.DialTimeout}
		if ip != "" {
			a := net.ParseIP(ip)
			if a == nil {
				return nil, fmt.Errorf("source ip %q is not an IP address", ip)
			}
			d.LocalAddr = &net.TCPAddr{IP: a}
		}
		w.clients = append(w.clients, &http.Client{Transport: &http.Transport{
			Proxy:       nil, // loopback benchmarks never go through a proxy
			DialContext: d.DialContext,
		}})
		w.leanDialers = append(w.leanDialers, ws.Dialer{NetDial: d.DialContext, ReadBufferSize: leanReadBuf, Timeout: job.DialTimeout})
	}
	return w, nil
}

// UserID is the 24-hex user id of connection i of run runID.
func UserID(runID string, i int) string { return fmt.Sprintf("%s%016x", runID, i) }

// dial opens connection i (worker-local index), reads its welcome and joins
// the room.
func (w *worker) dial(ctx context.Context, i int, r role, tok string) (*client, error) {
	if r == roleIdle {
		return w.leanDial(ctx, i, tok, r)
	}
	ctx, cancel := context.WithTimeout(ctx, w.job.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, w.job.WSURL, &websocket.DialOptions{
		HTTPClient: w.clients[i%len(w.clients)],
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	fail := func(err error) (*client, error) {
		ws.CloseNow()
		return nil, err
	}
	if w.job.Protocol == ProtocolCentrifugo {
		if err := w.centrifugoSetup(ctx, ws, tok, r); err != nil {
			return fail(err)
		}
		return &client{w: w, ws: ws, role: r, shard: &w.shards[i%nShards], done: make(chan struct{})}, nil
	}
	_, f, err := ws.Read(ctx)
	if err != nil {
		return fail(fmt.Errorf("read welcome: %w", err))
	}
	if !bytes.HasPrefix(f, []byte(`{"type":"welcome"`)) {
		return fail(fmt.Errorf("first frame is not welcome: %.200s", f))
	}
	if r != roleIdle && w.job.Room != "general" {
		join := []byte(`{"type":"join","room":"` + w.job.Room + `"}`)
		if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
			return fail(fmt.Errorf("send join: %w", err))
		}
		want := []byte(`{"type":"joined","room":"` + w.job.Room + `"`)
		for {
			_, f, err := ws.Read(ctx)
			if err != nil {
				return fail(fmt.Errorf("read joined: %w", err))
			}
			if bytes.HasPrefix(f, want) {
				break
			}
			if bytes.HasPrefix(f, []byte(`{"type":"error"`)) {
				return fail(fmt.Errorf("join %s: %.200s", w.job.Room, f))
			}
		}
	}
	c := &client{w: w, ws: ws, role: r, shard: &w.shards[i%nShards], done: make(chan struct{})}
	return c, nil
}

// tokens mints the tokens of the worker's n connections, one per user
// (connections of one user share it, as a user's tabs do).
func (w *worker) tokens(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		global := w.job.First + i
		user := global
		if w.job.PerUser > 1 {
			user = global / w.job.PerUser
		}
		if i > 0 && w.job.PerUser > 1 && (global-1)/w.job.PerUser == user {
			out[i] = out[i-1]
			continue
		}
		tok, _, err := w.issuer.Issue(UserID(w.job.RunID, user), "bench"+strconv.Itoa(user))
		if err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
		out[i] = tok
	}
	return out, nil
}

// prepare opens every connection of the job, DialConcurrency at a time,
// until done or stop.
func (w *worker) prepare(ctx context.Context, stop <-chan struct{}) Ready {
	n := w.job.conns()
	// The tokens are minted before the clock starts: a reconnecting client
	// has its token already, and a JWT signature is the generator's CPU,
	// not the server's (about 45 µs each, as much as the server spends on
	// a whole connect).
	tokens, err := w.tokens(n)
	if err != nil {
		return Ready{DialErrors: n, ErrorSample: []string{err.Error()}}
	}
	start := time.Now()
	roles := make([]role, n)
	for i := range roles {
		switch {
		case w.job.Mode == ModeIdle:
			roles[i] = roleIdle
		case i < w.job.Receivers:
			roles[i] = roleReceiver
		default:
			roles[i] = roleSender
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	slots := make([]*client, n)
	var (
		mu      sync.Mutex
		errN    int
		samples []string
		wg      sync.WaitGroup
	)
	next := make(chan int)
	for range max(1, w.job.DialConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := w.dial(ctx, i, roles[i], tokens[i])
				if err != nil {
					mu.Lock()
					errN++
					if len(samples) < 5 && ctx.Err() == nil {
						samples = append(samples, err.Error())
					}
					mu.Unlock()
					continue
				}
				if c.role == roleSender {
					c.sender = w.job.SenderBase + (i - w.job.Receivers)
				}
				slots[i] = c
				if c.lean != nil {
					go c.leanReadLoop()
				} else {
					go c.readLoop()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			mu.Lock()
			errN += n - i
			mu.Unlock()
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, c := range slots {
		if c != nil {
			w.conns = append(w.conns, c)
		}
	}
	return Ready{Connected: len(w.conns), DialErrors: errN, ErrorSample: samples, ConnectSecs: time.Since(start).Seconds()}
}

// readLoop reads every frame the connection receives, into one reused
// buffer (the generator shares the machine with the server: it must cost
// little per frame).
func (c *client) readLoop() {
	defer close(c.done)
	buf := make([]byte, 0, 1024)
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf, err = readAll(r, buf[:0])
		}
		if err != nil {
			if !c.w.closing.Load() {
				c.w.disconnected(err)
			}
			return
		}
		if typ == websocket.MessageText {
			c.onFrame(buf, time.Now())
		}
	}
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (w *worker) disconnected(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.disconnects++
	if len(w.disconnectErr) < 5 {
		w.disconnectErr = append(w.disconnectErr, err.Error())
	}
}

var (
	prefixType        = []byte(`{"type":"`)
	prefixMessage     = []byte(`{"type":"message"`)
	prefixAck         = []byte(`{"type":"ack"`)
	prefixRateLimited = []byte(`{"type":"rate_limited"`)
	prefixError       = []byte(`{"type":"error"`)
	fieldText         = []byte(`"text":"`)
	fieldClientID     = []byte(`"clientId":"`)
	fieldCode         = []byte(`"code":"`)
)

// onFrame accounts for one frame received at now. Frames are matched by
// their prefix and fields found by search rather than decoded: Aurora
// writes "type" first, and the bench's own texts need no escaping.
func (c *client) onFrame(f []byte, now time.Time) {
	if c.w.job.Protocol == ProtocolCentrifugo {
		c.onCentrifugoFrame(f, now)
		return
	}
	c.onMessageOr(f, now, bytes.HasPrefix(f, prefixMessage))
}

// onMessageOr accounts for frame f: a message when isMessage, else by its
// type.
func (c *client) onMessageOr(f []byte, now time.Time, isMessage bool) {
	s := c.shard
	switch {
	case isMessage:
		sentAt, ours := c.w.sentAt(f)
		s.mu.Lock()
		s.types["message"]++
		switch {
		case !ours:
			s.foreign++
		case c.role == roleReceiver:
			lat := now.Sub(sentAt)
			s.latency.Record(lat)
			s.deliveries++
			if sec := (now.UnixNano() - c.w.start.Load()) / 1e9; sec >= 0 && sec < int64(len(s.timeline)) {
				s.timeline[sec].add(lat)
			}
			if now.UnixNano() <= c.w.windowEnd.Load() {
				s.inWindow++
			}
		default:
			s.echoes++
		}
		s.mu.Unlock()
		switch {
		case !ours:
		case c.role == roleReceiver:
			c.w.delivered.Add(1)
		default:
			c.w.echoed.Add(1)
		}
		return
	}
	typ := []byte("?")
	if bytes.HasPrefix(f, prefixType) {
		if j := bytes.IndexByte(f[len(prefixType):], '"'); j >= 0 {
			typ = f[len(prefixType) : len(prefixType)+j]
		}
	}
	s.mu.Lock()
	s.types[string(typ)]++
	s.mu.Unlock()
	switch {
	case c.role != roleSender:
		// presence, typing: counted by type only
	case bytes.HasPrefix(f, prefixAck):
		sentAt, ok := clientIDTime(f)
		s.mu.Lock()
		s.accepted++
		s.answered++
		if ok {
			s.ack.Record(now.Sub(sentAt))
		}
		s.mu.Unlock()
	case bytes.HasPrefix(f, prefixRateLimited):
		s.mu.Lock()
		s.limited++
		s.answered++
		s.mu.Unlock()
	case bytes.HasPrefix(f, prefixError):
		code := string(field(f, fieldCode))
		s.mu.Lock()
		s.errs[code]++
		if field(f, fieldClientID) != nil {
			s.answered++
		}
		s.mu.Unlock()
	}
}

// field returns the string value of a field (without escapes) or nil.
func field(f, name []byte) []byte {
	i := bytes.Index(f, name)
	if i < 0 {
		return nil
	}
	v := f[i+len(name):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

// sentAt reads the send time out of a message frame whose text this run
// wrote: "bench <runid> <unix ns> ...".
func (w *worker) sentAt(f []byte) (time.Time, bool) {
	i := bytes.Index(f, fieldText)
	if i < 0 {
		return time.Time{}, false
	}
	t := f[i+len(fieldText):]
	if !bytes.HasPrefix(t, w.runTag) {
		return time.Time{}, false
	}
	ns, ok := leadingInt(t[len(w.runTag):])
	return time.Unix(0, ns), ok
}

// clientIDTime reads the send time out of a clientId "<runid>.<sender>.<seq>.<unix ns>".
func clientIDTime(f []byte) (time.Time, bool) {
	id := field(f, fieldClientID)
	j := bytes.LastIndexByte(id, '.')
	if j < 0 {
		return time.Time{}, false
	}
	ns, ok := leadingInt(id[j+1:])
	return time.Unix(0, ns), ok
}

func leadingInt(b []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 19; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, i > 0
}

// message builds a sender's message frame; the text carries the send time
// (padded to TextSize bytes), and so does the clientId, for the ack.
func (w *worker) message(buf []byte, sender int, seq int64, now time.Time) []byte {
	ns := now.UnixNano()
	buf = append(buf[:0], `{"type":"message","room":"`...)
	buf = append(buf, w.job.Room...)
	buf = append(buf, `","text":"`...)
	start := len(buf)
	buf = append(buf, w.runTag...)
	buf = strconv.AppendInt(buf, ns, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(sender), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, seq, 10)
	for len(buf)-start < w.job.TextSize {
		buf = append(buf, 'x')
	}
	buf = append(buf, `","clientId":"`...)
	buf = append(buf, w.job.RunID...)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(sender), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, ns, 10)
	return append(buf, `"}`...)
}

// sendLoop sends Rate messages per second from at until end. Senders are
// phased evenly over one period run-wide, so the server sees a steady
// stream rather than bursts of every sender at once.
func (c *client) sendLoop(at, end time.Time, stop <-chan struct{}) {
	w := c.w
	period := time.Duration(float64(time.Second) / w.job.Rate)
	next := at.Add(period * time.Duration(c.sender) / time.Duration(max(1, w.job.SendersTotal)))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []byte
	for seq := int64(0); next.Before(end); seq++ {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-stop:
				return
			}
		}
		if w.job.Protocol == ProtocolCentrifugo {
			buf = w.centrifugoPublish(buf, c.sender, seq, time.Now())
		} else {
			buf = w.message(buf, c.sender, seq, time.Now())
		}
		c.sent.Add(1)
		if err := c.ws.Write(context.Background(), websocket.MessageText, buf); err != nil {
			// The reader sees the broken connection and counts it.
			return
		}
		next = next.Add(period)
	}
}

// answered counts the senders' frames that have been answered (ack,
// rate_limited or error).
func (w *worker) answered() int64 {
	var n int64
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		n += s.answered
		s.mu.Unlock()
	}
	return n
}

func (w *worker) sentTotal() int64 {
	var n int64
	for _, c := range w.conns {
		n += c.sent.Load()
	}
	return n
}

func (w *worker) acceptedTotal() int64 {
	var n int64
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		n += s.accepted
		s.mu.Unlock()
	}
	return n
}

// waitUntil polls cond until it holds, d passes or stop; it reports cond.
func waitUntil(cond func() bool, d time.Duration, stop <-chan struct{}) bool {
	deadline := time.Now().Add(d)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-t.C:
		case <-stop:
			return cond()
		}
	}
	return true
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run runs the window starting at at: senders send (fanout) or the
// connections are held (idle). It returns the CPU time used meanwhile.
func (w *worker) run(at time.Time, stop <-chan struct{}) (Sent, time.Duration) {
	var end time.Time
	switch {
	case w.job.Mode == ModeFanout:
		end = at.Add(w.job.Duration)
	case w.job.Hold > 0:
		end = at.Add(w.job.Hold)
	}
	w.start.Store(at.UnixNano())
	if w.job.Mode == ModeFanout {
		secs := int((w.job.Duration+2*w.job.Drain)/time.Second) + 2
		for i := range w.shards {
			s := &w.shards[i]
			s.mu.Lock()
			s.timeline = make([]SecStat, secs)
			s.mu.Unlock()
		}
	}
	if end.IsZero() {
		w.windowEnd.Store(1<<63 - 1)
	} else {
		w.windowEnd.Store(end.UnixNano())
	}
	if d := time.Until(at); d > 0 {
		select {
		case <-time.After(d):
		case <-stop:
		}
	}
	cpu0 := cpuTime()
	if w.job.Mode == ModeFanout {
		var wg sync.WaitGroup
		for _, c := range w.conns {
			if c.role == roleSender {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.sendLoop(at, end, stop)
				}()
			}
		}
		wg.Wait()
	} else if end.IsZero() {
		<-stop
	} else {
		select {
		case <-time.After(time.Until(end)):
		case <-stop:
		}
	}
	cpu := cpuTime() - cpu0
	// Every sent message is answered (ack, rate_limited or error) unless
	// its connection broke.
	sent := w.sentTotal()
	waitUntil(func() bool { return w.answered() >= sent }, w.job.Drain, stop)
	return Sent{Sent: sent, Accepted: w.acceptedTotal()}, cpu
}

// count is the number of connections of role r.
func (w *worker) count(r role) int {
	n := 0
	for _, c := range w.conns {
		if c.role == r {
			n++
		}
	}
	return n
}

// finish closes every connection (with a close handshake, many at a
// time) and returns the measurements.
func (w *worker) finish(expected int64, cpu time.Duration) *Partial {
	w.closing.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range w.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c.lean != nil {
				c.lean.close()
			} else {
				c.ws.Close(websocket.StatusNormalClosure, "")
			}
			<-c.done
		}()
	}
	wg.Wait()

	p := &Partial{Receivers: w.count(roleReceiver), Expected: expected, Latency: NewHistogram(), AckLatency: NewHistogram(),
		ErrorFrames: map[string]int64{}, FrameTypes: map[string]int64{}, CPUSecs: cpu.Seconds(), Sent: w.sentTotal()}
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		p.Latency.Merge(s.latency)
		p.AckLatency.Merge(s.ack)
		p.Deliveries += s.deliveries
		p.InWindow += s.inWindow
		p.Foreign += s.foreign
		p.SenderEchoes += s.echoes
		p.Accepted += s.accepted
		p.RateLimited += s.limited
		p.Unanswered -= s.answered
		for k, v := range s.errs {
			p.ErrorFrames[k] += v
		}
		for k, v := range s.types {
			p.FrameTypes[k] += v
		}
		p.Timeline = mergeTimeline(p.Timeline, s.timeline)
		s.mu.Unlock()
	}
	p.Unanswered += p.Sent
	w.mu.Lock()
	p.Disconnects, p.DisconnectErr = w.disconnects, w.disconnectErr
	w.mu.Unlock()
	return p
}

// Serve runs one worker: it opens the job's connections and reports Ready,
// then follows the commands on in (start, expect; stop at any time, as does
// in being closed), reporting Sent and finally its Result on out, after
// which it returns. A job that cannot run is reported as an Error event.
func Serve(ctx context.Context, job Job, in <-chan Command, out chan<- Event) {
	w, err := newWorker(job)
	if err != nil {
		out <- Event{Error: err.Error()}
		return
	}
	stop := make(chan struct{})
	cmds := make(chan Command, 8)
	go func() {
		defer close(stop)
		for {
			select {
			case c, ok := <-in:
				if !ok || c.Op == OpStop {
					return
				}
				select {
				case cmds <- c:
				default: // a confused coordinator: drop rather than block
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	ready := w.prepare(ctx, stop)
	out <- Event{Ready: &ready}

	var at time.Time
	select {
	case c := <-cmds:
		if c.Op == OpStart {
			at = time.Unix(0, c.At)
		}
	case <-stop:
	}
	var (
		sent Sent
		cpu  time.Duration
	)
	if !at.IsZero() {
		sent, cpu = w.run(at, stop)
	}
	out <- Event{Sent: &sent}

	// Every receiver, and every sender, gets every accepted message.
	var expected, echoes int64 = -1, -1
	select {
	case c := <-cmds:
		if c.Op == OpExpect {
			expected = c.Accepted * int64(w.count(roleReceiver))
			echoes = c.Accepted * int64(w.count(roleSender))
		}
	case <-stop:
	}
	if expected >= 0 {
		waitUntil(func() bool { return w.delivered.Load() >= expected && w.echoed.Load() >= echoes }, w.job.Drain, stop)
	}
	out <- Event{Result: w.finish(max(expected, 0), cpu)}
}
