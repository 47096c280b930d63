//go:build faults

package proctest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
)

// A fault scenario's traffic and the invariant it ends with.

// trafficSpec is who talks: senders send at perSecond each (under the
// default chat.room_rate of 3 per user per room), each to one room and
// member of two; receivers are in every room and send nothing.
type trafficSpec struct {
	rooms, senders, receivers int
	perSecond                 float64
	textLen                   int
}

// defaultTraffic is the scenarios' usual load: 6 senders at 2 a second in
// 3 rooms, 2 more receivers, across both replicas.
var defaultTraffic = trafficSpec{rooms: 3, senders: 6, receivers: 2, perSecond: 2}

// traffic is the running clients of a scenario.
type traffic struct {
	t       *testing.T
	f       *fleet
	clients []*chatClient
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startTraffic connects the clients (half on each replica), waits until
// each has joined its rooms, then lets the senders send.
func startTraffic(t *testing.T, f *fleet, s trafficSpec) *traffic {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{t: t, f: f, cancel: cancel}
	t.Cleanup(tr.stop)
	room := func(i int) string { return fmt.Sprintf("f%d", i%s.rooms) }
	for i := range s.senders + s.receivers {
		name := fmt.Sprintf("u%d", i)
		id := newUserID()
		var rooms []string
		if i < s.senders {
			rooms = []string{room(i)}
			if s.rooms > 1 {
				rooms = append(rooms, room(i+1))
			}
		} else {
			for r := range s.rooms {
				rooms = append(rooms, room(r))
			}
		}
		c := newChatClient(name, id, mintToken(t, id, name), rooms, f.chatBases, i)
		if i < s.senders {
			c.sender(room(i), s.perSecond)
			c.textLen = s.textLen
		}
		tr.clients = append(tr.clients, c)
	}
	for _, c := range tr.clients {
		tr.wg.Add(1)
		go func() { defer tr.wg.Done(); c.run(ctx) }()
	}
	waitUntil(t, "every client to connect and join its rooms", func() bool { return tr.allConnected() })
	for _, c := range tr.clients {
		c.setSending(true)
	}
	return tr
}

// stop disconnects every client.
func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

func (tr *traffic) allConnected() bool {
	for _, c := range tr.clients {
		if ok, _, _ := c.state(); !ok {
			return false
		}
	}
	return true
}

// acked is how many messages were acked so far.
func (tr *traffic) acked() int {
	n := 0
	for _, c := range tr.clients {
		for _, m := range c.sentMessages() {
			if m.ID != "" {
				n++
			}
		}
	}
	return n
}

// waitAcked waits until n more messages than now are acked.
func (tr *traffic) waitAcked(n int) {
	tr.t.Helper()
	want := tr.acked() + n
	waitUntil(tr.t, fmt.Sprintf("%d more acks", n), func() bool { return tr.acked() >= want })
}

// waitRecovered waits until every client is connected with its rooms
// joined and every sender was acked after since; it returns how long after
// since that was.
func (tr *traffic) waitRecovered(since time.Time) time.Duration {
	tr.t.Helper()
	waitUntil(tr.t, "every client to be connected and every sender acked again", func() bool {
		for _, c := range tr.clients {
			ok, _, lastAck := c.state()
			if !ok || (c.sendRoom != "" && !lastAck.After(since)) {
				return false
			}
		}
		return true
	})
	return time.Since(since)
}

// reconnects is how many connections the clients made beyond their first.
func (tr *traffic) reconnects() int {
	n := 0
	for _, c := range tr.clients {
		c.mu.Lock()
		n += c.stats.connects - 1
		c.mu.Unlock()
	}
	return n
}

// result is a scenario's row of the results table.
type result struct {
	scenario                                   string
	sent, acked, stored, duplicates, lost      int
	undelivered, outOfOrder                    int
	recovery                                   time.Duration
	reconnects, unavailable, rateLimited, hist int
	closes                                     map[int]int // close codes the clients got
}

// finish stops new messages, waits until every message is acked (clients
// resend until they are), delivered to every member of its room and
// stored, then checks the invariant: every acked message is stored exactly
// once and was delivered, live or by recovery, to every member of its
// room, in order; nothing stored that was not sent, no unacked message
// stored twice. It writes the scenario's row.
func (tr *traffic) finish(scenario string, recovery time.Duration) result {
	t := tr.t
	t.Helper()
	for _, c := range tr.clients {
		c.setSending(false)
	}
	// Every message gets an answer eventually: the clients resend what was
	// refused or unanswered.
	if !apptest.Poll(60*time.Second, func() bool {
		for _, c := range tr.clients {
			if c.unacked() > 0 {
				return false
			}
		}
		return true
	}) {
		t.Errorf("messages still unacked after 60 s")
	}
	var sent []outMsgView
	for _, c := range tr.clients {
		for _, m := range c.sentMessages() {
			sent = append(sent, outMsgView{m.Room, m.ClientID, m.Text, m.ID})
		}
	}
	// Live delivery lags the ack a little; a client recovering replays.
	undelivered := func() (int, string) {
		n, example := 0, ""
		for _, c := range tr.clients {
			for _, room := range c.rooms {
				got := c.received(room)
				for _, m := range sent {
					if m.room == room && m.id != "" && !got[m.id] {
						n++
						if example == "" {
							example = fmt.Sprintf("%s (%s) never reached %s", m.id, m.clientID, c.name)
						}
					}
				}
			}
		}
		return n, example
	}
	apptest.Poll(30*time.Second, func() bool { n, _ := undelivered(); return n == 0 })
	r := result{scenario: scenario, recovery: recovery, reconnects: tr.reconnects(), closes: map[int]int{}}
	var example string
	r.undelivered, example = undelivered()
	if r.undelivered > 0 {
		t.Errorf("%d (member, acked message) pairs undelivered, e.g. %s", r.undelivered, example)
	}
	for _, c := range tr.clients {
		if ok, _, _ := c.state(); !ok {
			t.Errorf("client %s is not connected at the end", c.name)
		}
		for _, room := range c.rooms {
			n, ex := c.outOfOrder(room)
			r.outOfOrder += n
			if n > 0 {
				t.Errorf("client %s got %d message frames of %s out of order or twice, e.g. %s", c.name, n, room, ex)
			}
		}
		c.mu.Lock()
		for _, p := range c.problems {
			t.Errorf("protocol: %s", p)
		}
		r.unavailable += c.stats.unavailable
		r.rateLimited += c.stats.rateLimited
		r.hist += c.stats.historyPages
		for code, n := range c.stats.closes {
			r.closes[int(code)] += n
		}
		c.mu.Unlock()
	}

	f := tr.f
	f.drained(90 * time.Second)
	if n := deadLetters(t, f.rc); n != 0 {
		t.Errorf("%d entries dead-lettered, want none", n)
	}
	var asSent []apptest.SentMessage
	for _, m := range sent {
		asSent = append(asSent, apptest.SentMessage{Room: m.room, ClientID: m.clientID, Text: m.text, ID: m.id})
	}
	var stored []storedMsg
	for _, s := range storedOf(t, f.mongoURL, f.dataDir, asSent) {
		if s.typ != bus.TypeEvent { // room events (joins append them) are not sent messages
			stored = append(stored, s)
		}
	}
	r.sent, r.stored = len(sent), len(stored)
	byClient := map[string]outMsgView{}
	for _, m := range sent {
		byClient[m.clientID] = m
		if m.id != "" {
			r.acked++
		}
	}
	times := map[string]int{}
	for _, s := range stored {
		m, ok := byClient[s.clientID]
		switch {
		case !ok:
			t.Errorf("stored message %s in %s (clientId %q) was never sent", s.id, s.room, s.clientID)
		case m.room != s.room || m.text != s.text:
			t.Errorf("message %s stored as %s/%q, sent as %s/%q", s.id, s.room, s.text, m.room, m.text)
		case m.id != "" && m.id != s.id:
			t.Errorf("message %s stored under id %s, acked as %s", s.clientID, s.id, m.id)
		}
		times[s.clientID]++
	}
	for _, m := range sent {
		switch n := times[m.clientID]; {
		case n > 1:
			r.duplicates += n - 1
		case n == 0 && m.id != "":
			r.lost++
		}
	}
	if r.lost > 0 || r.duplicates > 0 {
		t.Errorf("%d acked messages not stored, %d stored more than once", r.lost, r.duplicates)
	}
	if r.acked == 0 {
		t.Errorf("no message was acked: the scenario proved nothing")
	}
	tr.stop()
	writeRow(t, r)
	return r
}

// outMsgView is a sent message as the check reads it.
type outMsgView struct{ room, clientID, text, id string }

// resultsHeader is the results table's header (docs/reliability.md).
const resultsHeader = "| scenario | sent | acked | stored | duplicates | lost | undelivered | recovery time | reconnects | `unavailable` answers |\n" +
	"|---|---|---|---|---|---|---|---|---|---|\n"

// writeRow logs the scenario's row and, with AURORA_FAULTS_REPORT set,
// appends it to that file (how docs/reliability.md's table is made).
func writeRow(t *testing.T, r result) {
	rec := "—" // no fault to recover from
	if r.recovery > 0 {
		rec = r.recovery.Round(10 * time.Millisecond).String()
	}
	row := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %s | %d | %d |\n", r.scenario, r.sent, r.acked, r.stored,
		r.duplicates, r.lost, r.undelivered, rec, r.reconnects, r.unavailable)
	t.Logf("result:\n%s%s(rate_limited answers %d, history pages %d, close codes %v)", resultsHeader, row, r.rateLimited, r.hist, r.closes)
	path := os.Getenv("AURORA_FAULTS_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("AURORA_FAULTS_REPORT: %v", err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		_, _ = f.WriteString(resultsHeader)
	}
	if t.Failed() {
		row = strings.Replace(row, "| "+r.scenario, "| "+r.scenario+" (FAILED)", 1)
	}
	_, _ = f.WriteString(row)
}
