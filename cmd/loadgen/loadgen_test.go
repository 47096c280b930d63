package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestHistogramBucketsAreContiguous(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		i := bucketOf(v)
		if i != prev && i != prev+1 {
			t.Fatalf("value %d: bucket %d after %d", v, i, prev)
		}
		lo, hi := bucketRange(i)
		if v < lo || v >= hi {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
		if float64(hi-lo)/float64(max(lo, 1)) > 1.0/subN+1e-9 && lo >= 2*subN {
			t.Fatalf("bucket %d = [%d, %d) is wider than 1/%d", i, lo, hi, subN)
		}
		prev = i
	}
	if i := bucketOf(math.MaxUint64); i != nBuckets-1 {
		t.Errorf("huge value in bucket %d, want the last (%d)", i, nBuckets-1)
	}
}

func TestHistogramQuantilesAndMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	// 1..1000 ms, split over two histograms as two workers would.
	for i := 1; i <= 1000; i++ {
		h := a
		if i%2 == 0 {
			h = b
		}
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h := NewHistogram()
	h.Merge(a)
	h.Merge(b)

	// Through JSON, as from a worker process.
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var got Histogram
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		v := got.Quantile(tc.q)
		if rel := math.Abs(float64(v-tc.want)) / float64(tc.want); rel > 0.02 {
			t.Errorf("q%.2f = %v, want %v within 2%%", tc.q, v, tc.want)
		}
	}
	if got.Count() != 1000 || got.Max() != time.Second {
		t.Errorf("count %d, max %v", got.Count(), got.Max())
	}
	if m := got.Mean(); m < 500*time.Millisecond || m > 501*time.Millisecond {
		t.Errorf("mean %v, want 500.5ms", m)
	}
	s := got.Summarize()
	if s.Count != 1000 || s.MaxMs != 1000 || s.P50Ms > s.P99Ms {
		t.Errorf("summary %+v", s)
	}
	if NewHistogram().Quantile(0.5) != 0 {
		t.Error("empty histogram quantile is not 0")
	}
	if err := json.Unmarshal([]byte(`{"buckets":[[99999,1]]}`), &got); err == nil {
		t.Error("a bucket out of range was accepted")
	}
}

func TestParseIPRange(t *testing.T) {
	got, err := ParseIPRange("127.0.0.2-127.0.0.4, 10.0.0.255-10.0.1.0,::1")
	if err != nil {
		t.Fatal(err)
	}
	want := "[127.0.0.2 127.0.0.3 127.0.0.4 10.0.0.255 10.0.1.0 ::1]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	for _, bad := range []string{"", "nope", "127.0.0.5-127.0.0.1", "::1-::2", "10.0.0.0-10.1.0.0"} {
		if _, err := ParseIPRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSplitCoversTheRunOnce(t *testing.T) {
	job := Job{Mode: ModeFanout, Receivers: 1001, Senders: 5, First: 7}
	jobs := Split(job, 3)
	var recv, send int
	next, senderNext := 7, 0
	for _, j := range jobs {
		if j.First != next || j.SenderBase != senderNext || j.SendersTotal != 5 {
			t.Errorf("job %+v: want first %d, sender base %d of 5", j, next, senderNext)
		}
		next += j.Receivers + j.Senders
		senderNext += j.Senders
		recv += j.Receivers
		send += j.Senders
	}
	if recv != 1001 || send != 5 {
		t.Errorf("split covers %d receivers, %d senders", recv, send)
	}
	idle := Split(Job{Mode: ModeIdle, Conns: 10}, 4)
	if idle[0].Conns != 3 || idle[3].Conns != 2 || idle[3].First != 8 {
		t.Errorf("idle split %+v", idle)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	w, err := newWorker(Job{Mode: ModeFanout, Secret: "s", RunID: "0badcafe", Room: "r1", TextSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1732670000, 123456789)
	frame := w.message(nil, 3, 42, at)
	var m map[string]string
	if err := json.Unmarshal(frame, &m); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	if m["type"] != "message" || m["room"] != "r1" || len(m["text"]) != 100 || !strings.HasPrefix(m["text"], "bench 0badcafe ") {
		t.Errorf("frame %s", frame)
	}
	// As the server delivers it, and acks it.
	delivered := []byte(`{"type":"message","id":"1-0","room":"r1","user":"b","userId":"x","text":"` + m["text"] + `","ts":1,"clientId":"` + m["clientId"] + `"}`)
	if got, ok := w.sentAt(delivered); !ok || !got.Equal(at) {
		t.Errorf("sentAt = %v %v, want %v", got, ok, at)
	}
	ack := []byte(`{"type":"ack","clientId":"` + m["clientId"] + `","id":"1-0","room":"r1","ts":1}`)
	if got, ok := clientIDTime(ack); !ok || !got.Equal(at) {
		t.Errorf("clientIDTime = %v %v, want %v", got, ok, at)
	}
	other, _ := newWorker(Job{Mode: ModeFanout, Secret: "s", RunID: "00000001"})
	if _, ok := other.sentAt(delivered); ok {
		t.Error("another run's message was taken for this run's")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 2051
go_memstats_heap_inuse_bytes 3.2e+07
aurora_chat_errors_total{code="invalid_json"} 3
aurora_chat_connections 1000
`
	m := map[string]float64{}
	if err := parseMetrics(strings.NewReader(text), m, nil); err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 2051 || m["go_memstats_heap_inuse_bytes"] != 3.2e7 || m["aurora_chat_connections"] != 1000 || len(m) != 3 {
		t.Errorf("parsed %v", m)
	}
	if err := parseMetrics(strings.NewReader("go_goroutines many\n"), m, nil); err == nil {
		t.Error("a bad value was accepted")
	}
}

func TestServerFanoutQuantiles(t *testing.T) {
	text := `aurora_chat_fanout_latency_seconds_bucket{le="0.001"} 10
aurora_chat_fanout_latency_seconds_bucket{le="0.01"} 60
aurora_chat_fanout_latency_seconds_bucket{le="0.1"} 109
aurora_chat_fanout_latency_seconds_bucket{le="+Inf"} 110
`
	before, after := map[float64]float64{}, map[float64]float64{}
	if err := parseMetrics(strings.NewReader(text), map[string]float64{}, after); err != nil {
		t.Fatal(err)
	}
	before[0.001] = 10 // the 10 fastest were observed before the window
	if got := bucketQuantile(before, after, 0.5); got != 10 {
		t.Errorf("p50 <= %g ms, want 10", got)
	}
	if got := bucketQuantile(before, after, 0.99); got != 100 {
		t.Errorf("p99 <= %g ms, want 100", got)
	}
	if got := bucketQuantile(before, after, 1); got != -1 {
		t.Errorf("p100 = %g, want -1 (beyond the last bound)", got)
	}
	if got := bucketQuantile(after, after, 0.5); got != 0 {
		t.Errorf("no observations: %g, want 0", got)
	}
}

// TestCentrifugoFrames: Centrifugo's replies and pushes, several to a
// frame, are accounted as Aurora's are: a publication of this run is a
// delivery with its latency, a publish reply an ack, an error reply an
// error by code; the publish command carries Aurora's message frame as its
// data, so the text (and its send time) is where sentAt looks.
func TestCentrifugoFrames(t *testing.T) {
	w, err := newWorker(Job{Mode: ModeFanout, Protocol: ProtocolCentrifugo, Secret: "s", RunID: "0badcafe", Room: "r1", TextSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1732670000, 123456789)
	cmd := w.centrifugoPublish(nil, 3, 42, at)
	var pub struct {
		ID      int `json:"id"`
		Publish struct {
			Channel string            `json:"channel"`
			Data    map[string]string `json:"data"`
		} `json:"publish"`
	}
	if err := json.Unmarshal(cmd, &pub); err != nil {
		t.Fatalf("publish %s: %v", cmd, err)
	}
	if pub.ID != 52 || pub.Publish.Channel != "chat:r1" || !strings.HasPrefix(pub.Publish.Data["text"], "bench 0badcafe ") {
		t.Errorf("publish %s", cmd)
	}
	data, _ := json.Marshal(pub.Publish.Data)
	push := `{"push":{"channel":"chat:r1","pub":{"data":` + string(data) + `,"offset":1}}}`
	recv := &client{w: w, role: roleReceiver, shard: &w.shards[0]}
	recv.onFrame([]byte(push+"\n"+push+"\n"+`{"push":{"channel":"chat:r1","join":{"info":{}}}}`), at.Add(5*time.Millisecond))
	if got := w.delivered.Load(); got != 2 {
		t.Errorf("deliveries %d, want 2", got)
	}
	if q := w.shards[0].latency.Quantile(0.5); q < 4*time.Millisecond || q > 6*time.Millisecond {
		t.Errorf("latency %v, want 5ms", q)
	}
	send := &client{w: w, role: roleSender, shard: &w.shards[1]}
	send.onFrame([]byte(`{"id":52,"publish":{}}`+"\n"+`{"id":53,"error":{"code":103,"message":"permission denied"}}`), at)
	s := &w.shards[1]
	if s.accepted != 1 || s.answered != 2 || s.errs["centrifugo_103"] != 1 {
		t.Errorf("accepted %d answered %d errors %v, want 1, 2, centrifugo_103", s.accepted, s.answered, s.errs)
	}
}
