// Package loadgen is `aurora bench`'s WebSocket load generator: workers
// that open authenticated chat connections against a running Aurora and
// either hold them idle or fan messages out through one room, and the
// coordinator that splits a run over several worker processes (one process
// holds at most ~20k sockets), starts them together and merges what they
// measured.
//
// A worker talks to its coordinator with Commands and Events: in process
// over channels, or as a child process over JSON lines on stdin/stdout.
package loadgen

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Modes of a run.
const (
	ModeIdle   = "idle"
	ModeFanout = "fanout"
)

// Protocols a run speaks. Centrifugo is the peer docs/performance.md
// compares with: its JSON client protocol (connect with the same HS256
// token, subscribe to "chat:<room>", publish into it), so one tool, the
// same clients and the same accounting drive both servers.
const (
	ProtocolAurora     = "aurora"
	ProtocolCentrifugo = "centrifugo"
)

// Job is one worker's share of a run.
type Job struct {
	Mode     string        `json:"mode"`
	Protocol string        `json:"protocol,omitempty"` // ProtocolAurora ("" too) or ProtocolCentrifugo
	WSURL    string        `json:"ws_url"`             // ws://host:port/ws
	Secret   string        `json:"secret"`             // the server's JWT secret, to mint tokens locally
	TokenTTL time.Duration `json:"token_ttl"`
	// RunID (8 hex digits) tags this run's messages and prefixes its user
	// ids, so runs never mix.
	RunID string `json:"run_id"`
	// First is the run-wide index of this worker's first connection: user
	// i of the run is RunID followed by i in 16 hex digits.
	First int `json:"first"`

	// Idle mode: connections to open and how long to hold them once all
	// workers are up (0: until stopped).
	Conns int           `json:"conns,omitempty"`
	Hold  time.Duration `json:"hold,omitempty"`
	// PerUser (idle mode) is how many connections share a user: user i
	// holds run-wide connections i*PerUser..i*PerUser+PerUser-1, as a
	// person with several tabs and devices does. 0 or 1: one user each.
	PerUser int `json:"per_user,omitempty"`

	// Fanout mode: this worker's receivers and senders; senders are
	// numbered SenderBase.. of SendersTotal run-wide, which spreads their
	// send times evenly over a period.
	Receivers    int           `json:"receivers,omitempty"`
	Senders      int           `json:"senders,omitempty"`
	SenderBase   int           `json:"sender_base,omitempty"`
	SendersTotal int           `json:"senders_total,omitempty"`
	Rate         float64       `json:"rate,omitempty"` // messages per second per sender
	Room         string        `json:"room,omitempty"`
	Duration     time.Duration `json:"duration,omitempty"`
	TextSize     int           `json:"text_size,omitempty"`

	SourceIPs       []string      `json:"source_ips,omitempty"`
	DialConcurrency int           `json:"dial_concurrency"`
	DialTimeout     time.Duration `json:"dial_timeout"`
	// Settle is the pause between every connection being up and the
	// start, for the presence traffic of the joins to die down.
	Settle time.Duration `json:"settle,omitempty"`
	// Drain bounds the waits after the send window: for the senders'
	// answers, and for the receivers' last deliveries.
	Drain time.Duration `json:"drain"`
}

// conns is the number of connections the job opens.
func (j Job) conns() int {
	if j.Mode == ModeIdle {
		return j.Conns
	}
	return j.Receivers + j.Senders
}

// Command is what a coordinator tells a worker.
type Command struct {
	Op string `json:"op"` // "start", "stop" or "expect"
	// At (start): when the run starts, Unix ns, the same for every worker.
	At int64 `json:"at,omitempty"`
	// Accepted (expect): messages the server accepted run-wide; every
	// receiver must receive each of them.
	Accepted int64 `json:"accepted,omitempty"`
}

// Command ops.
const (
	OpStart  = "start"
	OpStop   = "stop"
	OpExpect = "expect"
)

// Event is what a worker reports; exactly one of its fields is set.
type Event struct {
	Ready  *Ready   `json:"ready,omitempty"`
	Sent   *Sent    `json:"sent,omitempty"`
	Result *Partial `json:"result,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// Ready reports a worker's connections set up.
type Ready struct {
	Connected   int      `json:"connected"`
	DialErrors  int      `json:"dial_errors"`
	ErrorSample []string `json:"error_sample,omitempty"`
	ConnectSecs float64  `json:"connect_s"`
}

// Sent reports the end of the send window (or of the idle hold).
type Sent struct {
	Sent     int64 `json:"sent"`
	Accepted int64 `json:"accepted"`
}

// Partial is one worker's measurements, merged by the coordinator.
type Partial struct {
	Receivers     int              `json:"receivers"`
	Sent          int64            `json:"sent"`
	Accepted      int64            `json:"accepted"`
	Unanswered    int64            `json:"unanswered"`
	RateLimited   int64            `json:"rate_limited"`
	ErrorFrames   map[string]int64 `json:"error_frames,omitempty"`
	FrameTypes    map[string]int64 `json:"frame_types,omitempty"`
	Deliveries    int64            `json:"deliveries"`
	InWindow      int64            `json:"in_window"`
	Expected      int64            `json:"expected"`
	SenderEchoes  int64            `json:"sender_echoes"`
	Foreign       int64            `json:"foreign"`
	Disconnects   int64            `json:"disconnects"`
	DisconnectErr []string         `json:"disconnect_sample,omitempty"`
	Latency       *Histogram       `json:"latency"`
	AckLatency    *Histogram       `json:"ack_latency"`
	Timeline      []SecStat        `json:"timeline,omitempty"`
	// CPUSecs is the worker process's CPU time during the window.
	CPUSecs float64 `json:"cpu_s"`
}

// ParseIPRange parses "127.0.0.2-127.0.0.9", "127.0.0.2,127.0.0.5" or a
// mix (comma-separated items, each an address or an IPv4 range).
func ParseIPRange(s string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		from, to, isRange := strings.Cut(item, "-")
		a := net.ParseIP(strings.TrimSpace(from))
		if a == nil {
			return nil, fmt.Errorf("source ip %q is not an IP address", from)
		}
		if !isRange {
			out = append(out, a.String())
			continue
		}
		b := net.ParseIP(strings.TrimSpace(to))
		a4, b4 := a.To4(), b.To4()
		if a4 == nil || b4 == nil {
			return nil, fmt.Errorf("source ip range %q: ranges are IPv4 only (a.b.c.d-a.b.c.e)", item)
		}
		lo := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
		hi := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3])
		if hi < lo {
			return nil, fmt.Errorf("source ip range %q ends before it starts", item)
		}
		if hi-lo >= 1<<16 {
			return nil, fmt.Errorf("source ip range %q has more than 65536 addresses", item)
		}
		for v := lo; ; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String())
			if v == hi {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no source ip given")
	}
	return out, nil
}

// split divides n into parts shares as even as possible (earlier ones
// larger).
func split(n, parts int) []int {
	out := make([]int, parts)
	for i := range out {
		out[i] = n / parts
		if i < n%parts {
			out[i]++
		}
	}
	return out
}

// Split divides a run's job into procs worker jobs: connections, receivers
// and senders spread evenly, with disjoint user indexes.
func Split(j Job, procs int) []Job {
	if procs < 1 {
		procs = 1
	}
	conns, recv, send := split(j.Conns, procs), split(j.Receivers, procs), split(j.Senders, procs)
	out := make([]Job, procs)
	first, senderBase := j.First, 0
	for i := range out {
		w := j
		w.Conns, w.Receivers, w.Senders = conns[i], recv[i], send[i]
		w.First, w.SenderBase, w.SendersTotal = first, senderBase, j.Senders
		first += w.conns()
		senderBase += w.Senders
		out[i] = w
	}
	return out
}

// SecStat is the deliveries received in one second of a run (counted from
// the window's start, by time of receipt) and their latency.
type SecStat struct {
	N     int64   `json:"n"`
	SumUs float64 `json:"sum_us"`
	MaxUs int64   `json:"max_us"`
}

func (s *SecStat) add(d time.Duration) {
	us := max(d.Microseconds(), 0)
	s.N++
	s.SumUs += float64(us)
	s.MaxUs = max(s.MaxUs, us)
}

// mergeTimeline adds b into a, second by second.
func mergeTimeline(a, b []SecStat) []SecStat {
	for len(a) < len(b) {
		a = append(a, SecStat{})
	}
	for i, s := range b {
		a[i].N += s.N
		a[i].SumUs += s.SumUs
		a[i].MaxUs = max(a[i].MaxUs, s.MaxUs)
	}
	return a
}
