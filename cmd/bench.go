package cmd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/cmd/loadgen"
)

// benchFlags are the flags every bench mode shares.
type benchFlags struct {
	url             string
	secret          string
	procs           int
	sourceIPs       string
	serverPID       string
	dialConcurrency int
	dialTimeout     time.Duration
	drain           time.Duration
	settle          time.Duration
	asJSON          bool
	protocol        string
}

func newBenchCmd(o *options) *cobra.Command {
	f := &benchFlags{}
	c := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a running Aurora's chat role over WebSocket (idle connections, room fan-out)",
		Long: `bench opens authenticated WebSocket connections against a running Aurora and
measures it. Tokens are minted locally with the server's JWT secret (no login,
so no bcrypt load distorts the run); every connection is a distinct user.

One process holds at most as many sockets as its open-file limit allows: use
--procs to spread the connections over child processes, and --source-ips to
spread them over several local addresses (on Linux all of 127.0.0.0/8 is
loopback).

The server's /metrics (and, with --server-pid on the same machine,
/proc/<pid>) are sampled to report its CPU and memory.`,
	}
	pf := c.PersistentFlags()
	pf.StringVar(&f.url, "url", "http://127.0.0.1:8080", "the Aurora server (http, https, ws or wss URL; WebSocket path /ws unless given)")
	pf.StringVar(&f.secret, "jwt-secret", "", "the server's auth.jwt_secret (default: the configured one, or <data_dir>/jwt-secret)")
	pf.IntVar(&f.procs, "procs", 1, "worker processes to spread the connections over")
	pf.StringVar(&f.sourceIPs, "source-ips", "", "local addresses to connect from, e.g. 127.0.0.2-127.0.0.9 (default: the system's choice)")
	pf.StringVar(&f.serverPID, "server-pid", "", "pid of the server on this machine, to read its CPU and VmRSS from /proc (several servers: comma-separated, in --url's order; figures are their sums)")
	pf.IntVar(&f.dialConcurrency, "dial-concurrency", 50, "connections each worker opens at a time")
	pf.DurationVar(&f.dialTimeout, "dial-timeout", 30*time.Second, "bound on opening one connection (handshake, welcome, join)")
	pf.DurationVar(&f.drain, "drain", 15*time.Second, "bound on waiting for answers and deliveries after the send window")
	pf.DurationVar(&f.settle, "settle", 2*time.Second, "pause once every connection is up, before the run starts (lets the joins' presence traffic die down)")
	pf.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	pf.StringVar(&f.protocol, "protocol", loadgen.ProtocolAurora, "the server's client protocol: aurora, or centrifugo (the peer of docs/performance.md: namespace chat open to client subscribe and publish, WebSocket path /connection/websocket unless given)")
	c.AddCommand(newBenchIdleCmd(o, f), newBenchFanoutCmd(o, f), newBenchWorkerCmd(o))
	return c
}

func newBenchIdleCmd(o *options, f *benchFlags) *cobra.Command {
	var (
		conns, perUser int
		hold           time.Duration
	)
	c := &cobra.Command{
		Use:   "idle",
		Short: "Open N authenticated connections and hold them (memory per idle connection)",
		Example: `  aurora bench idle --conns 10000 --procs 2 --source-ips 127.0.0.2-127.0.0.9 \
      --jwt-secret "$AURORA_AUTH_JWT_SECRET" --server-pid "$(pgrep -n aurora)" --hold 130s`,
		Long: `idle samples the server, opens --conns connections (each sits in room general),
holds them for --hold, samples the server again and closes them. The report
divides the server's growth in VmRSS, Go heap in use and goroutines by the
connections opened. Go collects garbage only as it allocates, or every two
minutes when idle: a hold over 2m lets the handshakes' garbage be collected.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if conns < 1 {
				return errors.New("--conns must be at least 1")
			}
			if hold < 0 {
				return errors.New("--hold must not be negative")
			}
			if perUser < 1 {
				return errors.New("--per-user must be at least 1")
			}
			job := loadgen.Job{Mode: loadgen.ModeIdle, Conns: conns, Hold: hold, PerUser: perUser}
			return runBench(cmd, o, f, job)
		},
	}
	c.Flags().IntVar(&conns, "conns", 1000, "connections to open")
	c.Flags().DurationVar(&hold, "hold", 10*time.Second, "how long to hold them once all are open (0: until interrupted)")
	c.Flags().IntVar(&perUser, "per-user", 1, "connections per user (at most the server's chat.max_conns_per_user, 10 by default)")
	return c
}

func newBenchFanoutCmd(o *options, f *benchFlags) *cobra.Command {
	var (
		receivers, senders, textSize int
		rate                         float64
		room                         string
		duration                     time.Duration
	)
	c := &cobra.Command{
		Use:   "fanout",
		Short: "S senders send M msg/s each into one room joined by R receivers; measure deliveries and latency",
		Example: `  # The reference load: 1000 receivers, 50 senders x 2 msg/s = 100k deliveries/s
  aurora bench fanout --receivers 1000 --senders 50 --rate 2 --room bench --duration 60s \
      --jwt-secret "$AURORA_AUTH_JWT_SECRET" --server-pid "$(pgrep -n aurora)"`,
		Long: `fanout connects every receiver and sender, joins them to --room, then for
--duration each sender sends --rate messages per second (evenly phased across
senders). Each message's text carries its send time: latency is from the
sender's write to the receiver's read, on this machine's clock. Deliveries
count at the receivers only (senders get their own messages too: "sender
echoes"); expected is accepted messages x receivers.

The server's rate limits apply (chat.room_rate, default 3 per second per user
per room, and chat.user_rate): keep --rate below them or raise them on the
server; refused messages are counted as rate_limited.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case receivers < 0:
				return errors.New("--receivers must not be negative")
			case senders < 1:
				return errors.New("--senders must be at least 1")
			case rate <= 0 || rate > 1000:
				return fmt.Errorf("--rate %g: want more than 0 and at most 1000 messages per second per sender", rate)
			case duration <= 0:
				return errors.New("--duration must be positive")
			case !bus.ValidRoom(room):
				return fmt.Errorf("--room %q: %s", room, bus.RoomRule)
			case textSize < 0 || textSize > 4000:
				return fmt.Errorf("--text-size %d: want 0 to 4000", textSize)
			}
			job := loadgen.Job{Mode: loadgen.ModeFanout, Receivers: receivers, Senders: senders, Rate: rate,
				Room: room, Duration: duration, TextSize: textSize}
			return runBench(cmd, o, f, job)
		},
	}
	fl := c.Flags()
	fl.IntVar(&receivers, "receivers", 1000, "connections that only receive")
	fl.IntVar(&senders, "senders", 50, "connections that send (and receive)")
	fl.Float64Var(&rate, "rate", 2, "messages per second per sender")
	fl.StringVar(&room, "room", "bench", "the room every connection joins")
	fl.DurationVar(&duration, "duration", 30*time.Second, "length of the send window")
	fl.IntVar(&textSize, "text-size", 100, "message text length in bytes (at least the send-time marker)")
	return c
}

// newBenchWorkerCmd is the hidden command a worker process runs: its
// coordinator (the parent bench) talks to it over stdin and stdout.
func newBenchWorkerCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// ^C in a terminal reaches the whole process group: the
			// coordinator handles it and stops its workers over stdin, so
			// they still report what they measured.
			signal.Ignore(os.Interrupt)
			return loadgen.ServeStdio(cmd.Context(), cmd.InOrStdin(), o.stdout)
		},
	}
}

// benchURLs derives the WebSocket and /metrics URLs from --url.
func benchURLs(raw, protocol string) (ws, metrics string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("--url %q: want a URL like http://127.0.0.1:8080", raw)
	}
	var httpScheme string
	switch u.Scheme {
	case "http", "ws":
		u.Scheme, httpScheme = "ws", "http"
	case "https", "wss":
		u.Scheme, httpScheme = "wss", "https"
	default:
		return "", "", fmt.Errorf("--url %q: scheme must be http, https, ws or wss", raw)
	}
	m := url.URL{Scheme: httpScheme, Host: u.Host, Path: "/metrics"}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
		if protocol == loadgen.ProtocolCentrifugo {
			u.Path = "/connection/websocket"
		}
	}
	return u.String(), m.String(), nil
}

// benchSecret is --jwt-secret, else the configured secret, else the one a
// server with the same data dir generated; bench never generates one.
func benchSecret(cmd *cobra.Command, o *options, flag string) (string, time.Duration, error) {
	cfg, log, err := o.load(cmd)
	if err != nil {
		return "", 0, err
	}
	ttl := cfg.Auth.TokenTTL
	if flag != "" {
		return flag, ttl, nil
	}
	if cfg.Auth.JWTSecret != "" {
		return cfg.Auth.JWTSecret, ttl, nil
	}
	path := filepath.Join(cfg.DataDir, "jwt-secret")
	if _, err := os.Stat(path); err != nil {
		return "", 0, fmt.Errorf("no JWT secret: give --jwt-secret (the server's auth.jwt_secret), or run bench where the server's %s is readable", path)
	}
	s, err := infra.JWTSecret("", cfg.DataDir, log)
	if err != nil {
		return "", 0, err
	}
	return string(s), ttl, nil
}

// openFileLimit is this process's soft RLIMIT_NOFILE (0: unknown).
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur, 1<<30))
}

func runBench(cmd *cobra.Command, o *options, f *benchFlags, job loadgen.Job) error {
	if f.procs < 1 || f.procs > 64 {
		return fmt.Errorf("--procs %d: want 1 to 64", f.procs)
	}
	if f.dialConcurrency < 1 {
		return errors.New("--dial-concurrency must be at least 1")
	}
	if f.dialTimeout <= 0 || f.drain <= 0 || f.settle < 0 {
		return errors.New("--dial-timeout and --drain must be positive, --settle not negative")
	}
	if f.protocol != loadgen.ProtocolAurora && f.protocol != loadgen.ProtocolCentrifugo {
		return fmt.Errorf("--protocol %q: want aurora or centrifugo", f.protocol)
	}
	// Several servers (chat processes of one run): --url lists them, and
	// worker i connects to server i mod n.
	var wsURLs, metricsURLs []string
	for _, u := range strings.Split(f.url, ",") {
		ws, m, err := benchURLs(strings.TrimSpace(u), f.protocol)
		if err != nil {
			return err
		}
		wsURLs, metricsURLs = append(wsURLs, ws), append(metricsURLs, m)
	}
	var pids []int
	if f.serverPID != "" {
		for _, p := range strings.Split(f.serverPID, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid < 1 {
				return fmt.Errorf("--server-pid %q: want process ids, comma-separated", f.serverPID)
			}
			pids = append(pids, pid)
		}
	}
	wsURL := wsURLs[0]
	secret, ttl, err := benchSecret(cmd, o, f.secret)
	if err != nil {
		return err
	}
	var ips []string
	if f.sourceIPs != "" {
		if ips, err = loadgen.ParseIPRange(f.sourceIPs); err != nil {
			return fmt.Errorf("--source-ips: %w", err)
		}
	}
	perProc := (job.Conns + job.Receivers + job.Senders + f.procs - 1) / f.procs
	if lim := openFileLimit(); perProc > 1_000_000 || lim > 0 && perProc+64 > lim {
		return fmt.Errorf("each worker process would hold %d sockets but the open-file limit is %d: raise --procs (or ulimit -n)", perProc, lim)
	}
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return fmt.Errorf("make run id: %w", err)
	}
	job.RunID = hex.EncodeToString(tag[:])
	job.WSURL, job.Secret, job.TokenTTL = wsURL, secret, ttl
	job.SourceIPs, job.DialConcurrency, job.DialTimeout, job.Drain = ips, f.dialConcurrency, f.dialTimeout, f.drain
	job.Settle = f.settle
	job.Protocol = f.protocol

	ctx, cancel := signalContext(cmd.Context())
	defer cancel()
	// The workers' stderr and the progress lines share one writer.
	stderr := &lockedWriter{w: o.stderr}
	probe := &loadgen.Probe{MetricsURL: metricsURLs[0], MoreMetricsURLs: metricsURLs[1:]}
	if len(pids) > 0 {
		probe.PID, probe.MorePIDs = pids[0], pids[1:]
	}
	var before *loadgen.Sample
	if job.Mode == loadgen.ModeIdle {
		s := probe.Sample()
		before = &s
	}

	jobs := loadgen.Split(job, f.procs)
	for i := range jobs {
		jobs[i].WSURL = wsURLs[i%len(wsURLs)]
	}
	workers := make([]loadgen.Worker, 0, len(jobs))
	defer func() {
		for _, w := range workers {
			w.Close()
		}
	}()
	if f.procs == 1 {
		workers = append(workers, loadgen.Local(jobs[0]))
	} else {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable to start workers: %w", err)
		}
		for _, j := range jobs {
			w, err := loadgen.Spawn(exe, []string{"bench", "worker"}, j, stderr)
			if err != nil {
				return err
			}
			workers = append(workers, w)
		}
	}
	res, err := loadgen.Coordinate(ctx, job, workers, probe, before, stderr)
	if err != nil {
		return err
	}
	res.URL = f.url
	if res.Server != nil {
		for _, e := range res.Server.Errors {
			fmt.Fprintln(stderr, "bench: server probe:", e)
		}
	}
	if err := output(o.stdout, f.asJSON, res, func(tw *tabwriter.Writer) { benchTable(tw, res) }); err != nil {
		return err
	}
	if res.Connected == 0 && !res.Stopped {
		sample := "no error recorded"
		if len(res.DialSample) > 0 {
			sample = res.DialSample[0]
		}
		return fmt.Errorf("no connection could be opened to %s: %s", wsURL, sample)
	}
	return nil
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// counts prints a map of counters sorted by key, or "none".
func counts(m map[string]int64) string {
	out := []string{}
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func latencyLine(s loadgen.Summary) string {
	if s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  (mean %.2f ms, %d samples)",
		s.P50Ms, s.P95Ms, s.P99Ms, s.P999Ms, s.MaxMs, s.MeanMs, s.Count)
}

func benchTable(tw *tabwriter.Writer, r *loadgen.Result) {
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("mode", "%s%s", r.Mode, map[bool]string{true: " (interrupted)"}[r.Stopped])
	row("url", "%s", r.URL)
	row("workers", "%d process(es), %d source address(es)", r.Procs, max(r.SourceIPs, 1))
	row("connections", "%d of %d in %.1fs, %d dial errors", r.Connected, r.Conns, r.ConnectSecs, r.DialErrors)
	for _, s := range r.DialSample {
		row("  dial error", "%s", s)
	}
	if r.Mode == loadgen.ModeFanout {
		row("load", "%d receivers, %d senders x %g msg/s in room %s for %gs (text %d B)",
			r.Receivers, r.Senders, r.Rate, r.Room, r.DurationSecs, r.TextSize)
		row("messages", "%d sent, %d accepted, %d rate limited, %d unanswered", r.Sent, r.Accepted, r.RateLimited, r.Unanswered)
		row("deliveries", "%d of %d expected (lost %d, extra %d), %d sender echoes", r.Deliveries, r.Expected, r.Lost, r.Extra, r.SenderEchoes)
		row("deliveries/s", "%.0f (in the send window)", r.DeliveriesPerSec)
		row("latency", "%s", latencyLine(r.Latency))
		row("ack latency", "%s", latencyLine(r.AckLatency))
		if len(r.Timeline) > 0 {
			worst, over := r.Timeline[0], 0
			for _, sec := range r.Timeline {
				if sec.MeanMs > worst.MeanMs {
					worst = sec
				}
				if sec.MaxMs > 100 {
					over++
				}
			}
			row("by second", "worst mean %.2f ms (max %.2f ms) at t=%ds; %d of %d seconds had a delivery over 100 ms (--json: timeline)",
				worst.MeanMs, worst.MaxMs, worst.T, over, len(r.Timeline))
		}
	} else {
		row("hold", "%gs in room general", r.DurationSecs)
	}
	row("error frames", "%s", counts(r.ErrorFrames))
	row("frames read", "%s", counts(r.FrameTypes))
	row("disconnects", "%d", r.Disconnects)
	for _, s := range r.DisconnectSample {
		row("  disconnect", "%s", s)
	}
	row("generator cpu", "%.0f%% of a core", r.GeneratorCPUPercent)
	if s := r.Server; s != nil {
		if r.Mode == loadgen.ModeFanout {
			row("server cpu", "%.1f%% of a core over %.1fs", s.CPU, s.Seconds)
			row("server frames", "%d written (%.0f/s, echoes and acks included)", s.Delivered, s.DeliveredPer)
			row("server fan-out", "p50 <= %g ms, p99 <= %g ms (its aurora_chat_fanout_latency_seconds: ts to socket write)", s.FanoutP50Ms, s.FanoutP99Ms)
		}
		row("server rss", "%s -> %s", mib(float64(s.RSS[0])), mib(float64(s.RSS[1])))
		row("server heap", "%s -> %s in use", mib(float64(s.Heap[0])), mib(float64(s.Heap[1])))
		row("server goroutines", "%d -> %d", s.Routines[0], s.Routines[1])
		row("server connections", "%d -> %d", s.Conns[0], s.Conns[1])
		if r.Mode == loadgen.ModeIdle {
			row("per connection", "%.1f KiB RSS, %.1f KiB heap, %.2f goroutines", s.RSSPerConn/1024, s.HeapPerConn/1024, s.RoutinesPerConn)
		}
	}
	if len(r.LoadAvgBefore) == 3 && len(r.LoadAvgAfter) == 3 {
		row("load average", "%.2f %.2f %.2f before, %.2f %.2f %.2f after", r.LoadAvgBefore[0], r.LoadAvgBefore[1], r.LoadAvgBefore[2],
			r.LoadAvgAfter[0], r.LoadAvgAfter[1], r.LoadAvgAfter[2])
	}
}
