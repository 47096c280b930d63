package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Probe samples the server under test: its /metrics (Go runtime, process
// and aurora_chat_* figures) and, when PID is set and the server runs on
// this machine, /proc/<pid> (CPU time and VmRSS, as an operator reads them).
type Probe struct {
	MetricsURL string
	PID        int
	Client     *http.Client
	// MoreMetricsURLs and MorePIDs are further servers of the same run
	// (several chat processes): every figure is their sum.
	MoreMetricsURLs []string
	MorePIDs        []int
}

// Sample is the server's state at one moment; a figure that could not be
// read is absent (its error is in Errors).
type Sample struct {
	At      time.Time
	CPU     float64 // seconds of CPU, /proc or process_cpu_seconds_total
	RSS     float64 // bytes, VmRSS or process_resident_memory_bytes
	Metrics map[string]float64
	// Fanout is aurora_chat_fanout_latency_seconds: cumulative count by
	// upper bound (le).
	Fanout map[float64]float64
	Errors []string
}

// probedMetrics are the /metrics figures a sample keeps.
var probedMetrics = []string{
	"go_goroutines",
	"go_memstats_heap_inuse_bytes",
	"go_memstats_sys_bytes",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"aurora_chat_connections",
	"centrifugo_node_num_clients", // the peer's connection count
	"aurora_chat_messages_delivered_total",
	"aurora_chat_messages_received_total",
	"aurora_chat_rate_limited_total",
	"aurora_chat_slow_consumers_dropped_total",
}

// Sample reads the server's state now.
func (p *Probe) Sample() Sample {
	s := Sample{At: time.Now(), CPU: -1, RSS: -1, Metrics: map[string]float64{}, Fanout: map[float64]float64{}}
	if p.MetricsURL != "" {
		for _, u := range append([]string{p.MetricsURL}, p.MoreMetricsURLs...) {
			m, f := map[string]float64{}, map[float64]float64{}
			if err := p.scrape(u, m, f); err != nil {
				s.Errors = append(s.Errors, err.Error())
			}
			for k, v := range m {
				s.Metrics[k] += v
			}
			for k, v := range f {
				s.Fanout[k] += v
			}
		}
		if v, ok := s.Metrics["process_cpu_seconds_total"]; ok {
			s.CPU = v
		}
		if v, ok := s.Metrics["process_resident_memory_bytes"]; ok {
			s.RSS = v
		}
	}
	if p.PID > 0 {
		// /proc is finer than the metrics: it wins when available.
		var cpuSum, rssSum float64
		cpuOK, rssOK := true, true
		for _, pid := range append([]int{p.PID}, p.MorePIDs...) {
			if cpu, err := procCPU(pid); err != nil {
				s.Errors = append(s.Errors, err.Error())
				cpuOK = false
			} else {
				cpuSum += cpu
			}
			if rss, err := procRSS(pid); err != nil {
				s.Errors = append(s.Errors, err.Error())
				rssOK = false
			} else {
				rssSum += rss
			}
		}
		if cpuOK {
			s.CPU = cpuSum
		}
		if rssOK {
			s.RSS = rssSum
		}
	}
	return s
}

func (p *Probe) scrape(url string, into map[string]float64, fanout map[float64]float64) error {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return parseMetrics(resp.Body, into, fanout)
}

const fanoutBucket = `aurora_chat_fanout_latency_seconds_bucket{le="`

// parseMetrics reads the unlabelled samples of probedMetrics, and the
// buckets of the server's fan-out latency histogram, from the Prometheus
// text format.
func parseMetrics(r io.Reader, into map[string]float64, fanout map[float64]float64) error {
	want := map[string]bool{}
	for _, m := range probedMetrics {
		want[m] = true
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, fanoutBucket); ok && fanout != nil {
			le, val, ok := strings.Cut(rest, `"} `)
			bound, err1 := strconv.ParseFloat(le, 64)
			n, err2 := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if ok && err1 == nil && err2 == nil {
				fanout[bound] = n
			}
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("metric %s: bad value %q", name, val)
		}
		into[name] = v
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read metrics: %w", err)
	}
	return nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat times (100
// on every architecture Go supports).
const clockTicks = 100

// procCPU is a process's user+system CPU seconds from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read server cpu: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start
	// after its last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read server cpu: /proc/%d/stat has no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read server cpu: /proc/%d/stat is short", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read server cpu: bad utime/stime in /proc/%d/stat", pid)
	}
	return float64(u+s) / clockTicks, nil
}

// procRSS is a process's VmRSS in bytes.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read server rss: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("read server rss: VmRSS line %q", line)
			}
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, fmt.Errorf("read server rss: VmRSS line %q", line)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("read server rss: /proc/%d/status has no VmRSS", pid)
}

// LoadAvg is the machine's 1, 5 and 15 minute load averages (nil where
// /proc/loadavg is not readable).
func LoadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return nil
	}
	out := make([]float64, 3)
	for i := range out {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// ServerReport is what the probe saw over a run: the window's CPU in
// fanout mode, the cost per connection in idle mode.
type ServerReport struct {
	PID      int      `json:"pid,omitempty"`
	Seconds  float64  `json:"seconds"`
	Errors   []string `json:"errors,omitempty"`
	CPU      float64  `json:"cpu_percent"` // of one core, over the window
	RSS      [2]int64 `json:"rss_bytes"`   // before, after
	Heap     [2]int64 `json:"heap_inuse_bytes"`
	Routines [2]int64 `json:"goroutines"`
	Conns    [2]int64 `json:"connections"`
	// Delivered is aurora_chat_messages_delivered_total's increase: every
	// frame written to a client, senders' echoes and acks included.
	Delivered    int64   `json:"frames_delivered"`
	DeliveredPer float64 `json:"frames_delivered_per_s"`
	// FanoutP50/P99Ms are bucket upper bounds of the server's own
	// aurora_chat_fanout_latency_seconds over the window: from the
	// message's ts (Redis clock, ms) to its write to a client socket, so
	// without the clients' read delay. -1 when beyond the last bucket.
	FanoutP50Ms float64 `json:"server_fanout_p50_le_ms"`
	FanoutP99Ms float64 `json:"server_fanout_p99_le_ms"`
	// Per connection (idle mode): (after - before) / connections opened.
	RSSPerConn      float64 `json:"rss_per_conn_bytes,omitempty"`
	HeapPerConn     float64 `json:"heap_per_conn_bytes,omitempty"`
	RoutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
}

func report(p *Probe, a, b Sample, connected int) *ServerReport {
	r := &ServerReport{PID: p.PID, Seconds: b.At.Sub(a.At).Seconds()}
	r.Errors = append(append(r.Errors, a.Errors...), b.Errors...)
	if a.CPU >= 0 && b.CPU >= 0 && r.Seconds > 0 {
		r.CPU = 100 * (b.CPU - a.CPU) / r.Seconds
	}
	r.RSS = [2]int64{int64(a.RSS), int64(b.RSS)}
	pair := func(name string) [2]int64 {
		return [2]int64{int64(a.Metrics[name]), int64(b.Metrics[name])}
	}
	r.Heap = pair("go_memstats_heap_inuse_bytes")
	r.Routines = pair("go_goroutines")
	r.Conns = pair("aurora_chat_connections")
	if _, ok := b.Metrics["aurora_chat_connections"]; !ok {
		r.Conns = pair("centrifugo_node_num_clients")
	}
	d := pair("aurora_chat_messages_delivered_total")
	r.Delivered = d[1] - d[0]
	if r.Seconds > 0 {
		r.DeliveredPer = float64(r.Delivered) / r.Seconds
	}
	r.FanoutP50Ms, r.FanoutP99Ms = bucketQuantile(a.Fanout, b.Fanout, 0.5), bucketQuantile(a.Fanout, b.Fanout, 0.99)
	if n := float64(r.Conns[1] - r.Conns[0]); n > 0 {
		if a.RSS >= 0 && b.RSS >= 0 {
			r.RSSPerConn = float64(r.RSS[1]-r.RSS[0]) / n
		}
		r.HeapPerConn = float64(r.Heap[1]-r.Heap[0]) / n
		r.RoutinesPerConn = float64(r.Routines[1]-r.Routines[0]) / n
	} else if connected > 0 && a.RSS >= 0 && b.RSS >= 0 {
		r.RSSPerConn = float64(r.RSS[1]-r.RSS[0]) / float64(connected)
	}
	return r
}

// bucketQuantile is the upper bound (ms) of the cumulative-histogram
// bucket holding the q-quantile of the observations between a and b; 0
// without observations, -1 beyond the last finite bound.
func bucketQuantile(a, b map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(b))
	for le := range b {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := b[bounds[len(bounds)-1]] - a[bounds[len(bounds)-1]]
	if total <= 0 {
		return 0
	}
	for _, le := range bounds {
		if b[le]-a[le] >= q*total {
			if math.IsInf(le, 1) {
				return -1
			}
			return le * 1000
		}
	}
	return -1
}
