package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Worker is a running worker as its coordinator sees it.
type Worker interface {
	// Send passes a command; it does not wait for the worker to act.
	Send(Command) error
	// Events yields Ready, Sent and Result (or an Error) in that order; it
	// is closed when the worker is gone.
	Events() <-chan Event
	// Close stops the worker if it is still running and releases it.
	Close() error
}

// localWorker runs Serve in this process.
type localWorker struct {
	in     chan Command
	out    chan Event
	cancel context.CancelFunc
	once   sync.Once
}

// Local starts a worker for job in this process.
func Local(job Job) Worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &localWorker{in: make(chan Command, 8), out: make(chan Event, 8), cancel: cancel}
	go func() {
		defer close(w.out)
		Serve(ctx, job, w.in, w.out)
	}()
	return w
}

func (w *localWorker) Send(c Command) error {
	select {
	case w.in <- c:
		return nil
	default:
		return errors.New("worker is not taking commands")
	}
}

func (w *localWorker) Events() <-chan Event { return w.out }

func (w *localWorker) Close() error {
	w.once.Do(func() { close(w.in) })
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.out:
			if !ok {
				w.cancel()
				return nil
			}
		case <-t.C:
			w.cancel()
			return errors.New("in-process worker did not stop within a minute")
		}
	}
}

// processWorker is a child process speaking JSON lines: the job then
// commands on its stdin, events on its stdout.
type processWorker struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdin  io.WriteCloser
	enc    *json.Encoder
	out    chan Event
	closed bool
}

// WorkerEnv is set in a worker process's environment; a binary whose
// main is not aurora's (a test binary) uses it to recognise that it was
// started as a worker.
const WorkerEnv = "AURORA_BENCH_WORKER"

// Spawn starts exe with args as a worker process for job (the job, which
// holds the JWT secret, goes over the pipe, never on the command line).
// The worker's stderr is copied to stderr.
func Spawn(exe string, args []string, job Job, stderr io.Writer) (Worker, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("worker stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("worker stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", exe, err)
	}
	w := &processWorker{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), out: make(chan Event, 8)}
	go func() {
		defer close(w.out)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				w.out <- Event{Error: fmt.Sprintf("worker pid %d wrote a bad line: %v", cmd.Process.Pid, err)}
				return
			}
			w.out <- ev
		}
		_, _ = io.Copy(io.Discard, stdout) // drain, so the worker never blocks writing
	}()
	if err := w.enc.Encode(job); err != nil {
		w.Close()
		return nil, fmt.Errorf("send job to worker pid %d: %w", cmd.Process.Pid, err)
	}
	return w, nil
}

func (w *processWorker) Send(c Command) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("worker closed")
	}
	if err := w.enc.Encode(c); err != nil {
		return fmt.Errorf("command worker pid %d: %w", w.cmd.Process.Pid, err)
	}
	return nil
}

func (w *processWorker) Events() <-chan Event { return w.out }

// Close closes the worker's stdin (a worker stops on EOF) and waits for it
// to exit, killing it after a minute.
func (w *processWorker) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.stdin.Close()
	}
	w.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		for range w.out {
		}
		done <- w.cmd.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		_ = w.cmd.Process.Kill() // the timeout is the error to report
		return fmt.Errorf("worker pid %d did not exit within a minute: killed", w.cmd.Process.Pid)
	}
}

// ServeStdio is a worker process's main: it reads the job and then
// commands as JSON lines from r and writes events to w. EOF on r stops the
// worker.
func ServeStdio(ctx context.Context, r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return fmt.Errorf("read job: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	var job Job
	if err := json.Unmarshal(sc.Bytes(), &job); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	in := make(chan Command)
	out := make(chan Event, 8)
	go func() {
		defer close(in)
		for sc.Scan() {
			var c Command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				return // a broken coordinator: stop
			}
			in <- c
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, job, in, out)
		close(out)
	}()
	enc := json.NewEncoder(w)
	var werr error
	for ev := range out {
		if werr == nil {
			werr = enc.Encode(ev)
		}
	}
	<-done
	if werr != nil {
		return fmt.Errorf("write event: %w", werr)
	}
	return nil
}

// Result is a whole run's measurements.
type Result struct {
	Mode  string `json:"mode"`
	URL   string `json:"url"`
	RunID string `json:"run_id"`
	Procs int    `json:"procs"`
	// Stopped: the run was interrupted; figures cover what ran.
	Stopped bool `json:"stopped,omitempty"`

	Conns        int     `json:"conns"`
	Receivers    int     `json:"receivers,omitempty"`
	Senders      int     `json:"senders,omitempty"`
	Rate         float64 `json:"rate_per_sender,omitempty"`
	Room         string  `json:"room,omitempty"`
	DurationSecs float64 `json:"duration_s"`
	TextSize     int     `json:"text_size,omitempty"`
	SourceIPs    int     `json:"source_ips"`

	Connected   int      `json:"connected"`
	DialErrors  int      `json:"dial_errors"`
	DialSample  []string `json:"dial_error_sample,omitempty"`
	ConnectSecs float64  `json:"connect_s"`

	Sent        int64            `json:"sent"`
	Accepted    int64            `json:"accepted"`
	RateLimited int64            `json:"rate_limited"`
	Unanswered  int64            `json:"unanswered"`
	ErrorFrames map[string]int64 `json:"error_frames"`
	// FrameTypes counts every frame the connections read after joining
	// (during the window and the drain), by type.
	FrameTypes       map[string]int64 `json:"frame_types"`
	Deliveries       int64            `json:"deliveries"`
	Expected         int64            `json:"expected"`
	Lost             int64            `json:"lost"`
	Extra            int64            `json:"extra"`
	InWindow         int64            `json:"deliveries_in_window"`
	DeliveriesPerSec float64          `json:"deliveries_per_s"`
	SenderEchoes     int64            `json:"sender_echoes"`
	Foreign          int64            `json:"foreign_messages"`
	Latency          Summary          `json:"latency"`
	AckLatency       Summary          `json:"ack_latency"`
	// Timeline is the receivers' deliveries second by second, by time of
	// receipt from the window's start (the drain included).
	Timeline         []Second `json:"timeline,omitempty"`
	Disconnects      int64    `json:"disconnects"`
	DisconnectSample []string `json:"disconnect_sample,omitempty"`

	// GeneratorCPUPercent is the worker processes' CPU time over the
	// window, in percent of one core.
	GeneratorCPUPercent float64       `json:"generator_cpu_percent"`
	Server              *ServerReport `json:"server,omitempty"`
	LoadAvgBefore       []float64     `json:"loadavg_before,omitempty"`
	LoadAvgAfter        []float64     `json:"loadavg_after,omitempty"`
}

// Coordinate drives workers through one run of job (the whole run's job,
// before Split) and merges what they measured. Cancelling ctx stops the
// run early: the workers wrap up and the result covers what ran. probe
// (optional) samples the server: in idle mode before anything connects
// (the caller's sample, passed as before) and after the hold; in fanout
// mode over the send window.
func Coordinate(ctx context.Context, job Job, workers []Worker, probe *Probe, before *Sample, progress io.Writer) (*Result, error) {
	c := &coordinator{ctx: ctx.Done(), workers: workers, progress: progress}
	res := &Result{Mode: job.Mode, RunID: job.RunID, Procs: len(workers), Conns: job.conns(), Receivers: job.Receivers,
		Senders: job.Senders, Rate: job.Rate, Room: job.Room, TextSize: job.TextSize, SourceIPs: len(job.SourceIPs),
		ErrorFrames: map[string]int64{}, FrameTypes: map[string]int64{}, LoadAvgBefore: LoadAvg()}
	if job.Mode == ModeIdle {
		res.Room, res.DurationSecs = "general", job.Hold.Seconds()
	} else {
		res.DurationSecs = job.Duration.Seconds()
	}

	readies, err := c.phase("ready")
	if err != nil {
		return nil, err
	}
	for _, ev := range readies {
		r := ev.Ready
		res.Connected += r.Connected
		res.DialErrors += r.DialErrors
		res.ConnectSecs = math.Max(res.ConnectSecs, r.ConnectSecs)
		for _, s := range r.ErrorSample {
			if len(res.DialSample) < 5 {
				res.DialSample = append(res.DialSample, s)
			}
		}
	}
	c.logf("%d/%d connections up in %.1fs (%d dial errors)", res.Connected, res.Conns, res.ConnectSecs, res.DialErrors)

	var (
		start, end *Sample
		at         time.Time
	)
	if !c.stopped {
		if job.Settle > 0 {
			c.logf("settling for %s", job.Settle)
		}
		// Far enough ahead for every worker to get the command.
		at = time.Now().Add(job.Settle + 200*time.Millisecond)
		c.sendAll(Command{Op: OpStart, At: at.UnixNano()})
		if job.Mode == ModeFanout {
			c.logf("sending for %s", job.Duration)
			if probe != nil {
				// Just before the first message: the scrape takes a moment.
				time.Sleep(time.Until(at.Add(-20 * time.Millisecond)))
				s := probe.Sample()
				start = &s
			}
		} else if job.Hold > 0 {
			c.logf("holding for %s", job.Hold)
		} else {
			c.logf("holding until interrupted")
		}
	}
	if probe != nil && start != nil && job.Mode == ModeFanout {
		select {
		case <-time.After(time.Until(at.Add(job.Duration))):
		case <-ctx.Done():
		}
		s := probe.Sample()
		end = &s
	}
	sents, err := c.phase("sent")
	if err != nil {
		return nil, err
	}
	if probe != nil && job.Mode == ModeIdle && !at.IsZero() {
		// After the hold, while every connection is still open.
		s := probe.Sample()
		start, end = before, &s
	}
	var accepted int64
	for _, ev := range sents {
		accepted += ev.Sent.Accepted
	}
	c.sendAll(Command{Op: OpExpect, Accepted: accepted})
	if job.Mode == ModeFanout {
		c.logf("window over: %d messages accepted; draining deliveries", accepted)
	}

	results, err := c.phase("result")
	if err != nil {
		return nil, err
	}
	res.Stopped = c.stopped
	lat, ack := NewHistogram(), NewHistogram()
	var (
		cpu      float64
		timeline []SecStat
	)
	for _, ev := range results {
		p := ev.Result
		res.Sent += p.Sent
		res.Accepted += p.Accepted
		res.RateLimited += p.RateLimited
		res.Unanswered += p.Unanswered
		for k, v := range p.ErrorFrames {
			res.ErrorFrames[k] += v
		}
		for k, v := range p.FrameTypes {
			res.FrameTypes[k] += v
		}
		res.Deliveries += p.Deliveries
		res.Expected += p.Expected
		res.InWindow += p.InWindow
		res.SenderEchoes += p.SenderEchoes
		res.Foreign += p.Foreign
		res.Disconnects += p.Disconnects
		for _, s := range p.DisconnectErr {
			if len(res.DisconnectSample) < 5 {
				res.DisconnectSample = append(res.DisconnectSample, s)
			}
		}
		if p.Latency != nil {
			lat.Merge(p.Latency)
		}
		if p.AckLatency != nil {
			ack.Merge(p.AckLatency)
		}
		cpu += p.CPUSecs
		timeline = mergeTimeline(timeline, p.Timeline)
	}
	for len(timeline) > 0 && timeline[len(timeline)-1].N == 0 {
		timeline = timeline[:len(timeline)-1]
	}
	for i, s := range timeline {
		sec := Second{T: i, Deliveries: s.N, MaxMs: float64(s.MaxUs) / 1000}
		if s.N > 0 {
			sec.MeanMs = math.Round(s.SumUs/float64(s.N)) / 1000
		}
		res.Timeline = append(res.Timeline, sec)
	}
	if res.Deliveries < res.Expected {
		res.Lost = res.Expected - res.Deliveries
	} else {
		res.Extra = res.Deliveries - res.Expected
	}
	res.Latency, res.AckLatency = lat.Summarize(), ack.Summarize()
	if job.Mode == ModeFanout && job.Duration > 0 {
		res.DeliveriesPerSec = float64(res.InWindow) / job.Duration.Seconds()
		res.GeneratorCPUPercent = 100 * cpu / job.Duration.Seconds()
	} else if !at.IsZero() && job.Hold > 0 {
		res.GeneratorCPUPercent = 100 * cpu / job.Hold.Seconds()
	}
	if start != nil && end != nil {
		res.Server = report(probe, *start, *end, res.Connected)
	}
	res.LoadAvgAfter = LoadAvg()
	return res, nil
}

// Second is one second of a run's timeline.
type Second struct {
	T          int     `json:"t"`
	Deliveries int64   `json:"deliveries"`
	MeanMs     float64 `json:"mean_ms"`
	MaxMs      float64 `json:"max_ms"`
}

type coordinator struct {
	ctx      <-chan struct{} // nil once the workers were told to stop
	workers  []Worker
	stopped  bool
	giveUp   <-chan time.Time
	progress io.Writer
}

func (c *coordinator) logf(format string, args ...any) {
	if c.progress != nil {
		fmt.Fprintf(c.progress, "bench: "+format+"\n", args...)
	}
}

func (c *coordinator) sendAll(cmd Command) {
	for i, w := range c.workers {
		if err := w.Send(cmd); err != nil {
			c.logf("worker %d: %v", i, err)
		}
	}
}

func (c *coordinator) stop() {
	c.ctx = nil
	c.stopped = true
	c.giveUp = time.After(time.Minute)
	c.logf("stopping")
	c.sendAll(Command{Op: OpStop})
}

// phase waits for every worker's next event, which must be of kind.
func (c *coordinator) phase(kind string) ([]Event, error) {
	out := make([]Event, len(c.workers))
	for i, w := range c.workers {
		for done := false; !done; {
			select {
			case ev, ok := <-w.Events():
				if !ok {
					c.stop()
					return nil, fmt.Errorf("worker %d ended before reporting %s", i, kind)
				}
				if ev.Error != "" {
					c.stop()
					return nil, fmt.Errorf("worker %d: %s", i, ev.Error)
				}
				if (kind == "ready" && ev.Ready == nil) || (kind == "sent" && ev.Sent == nil) || (kind == "result" && ev.Result == nil) {
					c.stop()
					return nil, fmt.Errorf("worker %d: got another event while waiting for %s", i, kind)
				}
				out[i], done = ev, true
			case <-c.ctx:
				c.stop()
			case <-c.giveUp:
				return nil, fmt.Errorf("worker %d did not report %s within a minute of being stopped", i, kind)
			}
		}
	}
	return out, nil
}
