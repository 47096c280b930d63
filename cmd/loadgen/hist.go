package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in microseconds in log-linear buckets: exact
// below 64 µs, then 64 buckets per power of two (at most 1.6% relative
// error). Its size does not grow with the samples, so workers record
// millions of deliveries in it and the parent merges a few of them.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64 // µs
	max    uint64  // µs, exact
}

const (
	subBits = 6
	subN    = 1 << subBits
	// maxExp bounds the recorded value to 2^maxExp µs (about 12 days);
	// larger ones are clamped.
	maxExp   = 40
	nBuckets = (maxExp - subBits + 1) * subN
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{counts: make([]uint64, nBuckets)} }

func bucketOf(v uint64) int {
	if v < 2*subN {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subN, 2*subN)
	i := (e+1)<<subBits + int(v>>e) - subN
	if i >= nBuckets {
		return nBuckets - 1
	}
	return i
}

// bucketRange is the range of values [lo, hi) that bucket i holds.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subN {
		return uint64(i), uint64(i) + 1
	}
	e := i>>subBits - 1
	m := uint64(i&(subN-1) + subN)
	return m << e, (m + 1) << e
}

// Record adds one duration (negative ones, from clock steps, count as 0).
func (h *Histogram) Record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	v := uint64(us)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// holding the sample of that rank, never above the exact maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := min(lo+(hi-lo)/2, h.max)
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average recorded duration.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.n)) * time.Microsecond
}

// histJSON is the wire form between worker processes: only the non-empty
// buckets, as [index, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	Sum     float64     `json:"sum_us"`
	Max     uint64      `json:"max_us"`
}

// MarshalJSON encodes the non-empty buckets.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histJSON{Buckets: [][2]uint64{}, Sum: h.sum, Max: h.max}
	for i, c := range h.counts {
		if c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = *NewHistogram()
	for _, bc := range in.Buckets {
		if bc[0] >= nBuckets {
			return fmt.Errorf("histogram bucket %d out of range (%d buckets)", bc[0], nBuckets)
		}
		h.counts[bc[0]] += bc[1]
		h.n += bc[1]
	}
	h.sum, h.max = in.Sum, in.Max
	return nil
}

// Summary is a histogram's figures in milliseconds, as reported.
type Summary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// Summarize returns the reported figures of h.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count:  h.n,
		MeanMs: ms(h.Mean()),
		P50Ms:  ms(h.Quantile(0.50)),
		P95Ms:  ms(h.Quantile(0.95)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.Max()),
	}
}
