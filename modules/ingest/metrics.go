package ingest

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the aurora_ingest_* series.
type metrics struct {
	consumed     prometheus.Counter
	inserted     prometheus.Counter
	duplicates   prometheus.Counter
	claimed      prometheus.Counter
	deadLettered prometheus.Counter
	storeErrors  prometheus.Counter
	lost         prometheus.Counter
	groupLost    prometheus.Counter
	trimmed      prometheus.Counter

	expired            prometheus.Counter
	retentionErrors    prometheus.Counter
	attachmentsDeleted prometheus.Counter
	attachmentErrors   prometheus.Counter
	batchSize          prometheus.Histogram
	insertLatency      prometheus.Histogram
	pending            prometheus.Gauge
	lag                prometheus.Gauge
	length             prometheus.Gauge

	// byStream holds each shard stream's gauge values; the gauges show
	// their sums (the process's workers share one set of series).
	mu       sync.Mutex
	byStream map[string][3]float64
}

// setStream records stream's pending, lag and length and sets the gauges
// to the sums over the streams.
func (m *metrics) setStream(stream string, pending, lag, length float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byStream[stream] = [3]float64{pending, lag, length}
	var sum [3]float64
	for _, v := range m.byStream {
		for i := range sum {
			sum[i] += v[i]
		}
	}
	m.pending.Set(sum[0])
	m.lag.Set(sum[1])
	m.length.Set(sum[2])
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "aurora", Subsystem: "ingest", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "aurora", Subsystem: "ingest", Name: name, Help: help})
	}
	m := &metrics{
		consumed:           counter("consumed_total", "Stream entries read by this worker (new, own pending and claimed)."),
		inserted:           counter("inserted_total", "Messages inserted into the store."),
		duplicates:         counter("duplicates_total", "Redelivered messages the store already held (acknowledged, not stored again)."),
		claimed:            counter("claimed_total", "Entries taken over from idle consumers with XAUTOCLAIM."),
		deadLettered:       counter("dead_lettered_total", "Entries moved to the dead stream."),
		storeErrors:        counter("store_errors_total", "Failed store writes (the batch stays pending and is retried)."),
		lost:               counter("lost_total", "Pending entries found deleted from the stream before they were stored."),
		trimmed:            counter("trimmed_total", "Acknowledged entries trimmed from the stream."),
		expired:            counter("expired_total", "Rows (messages, room events, life entries) deleted by retention."),
		retentionErrors:    counter("retention_errors_total", "Retention passes that failed (retried at the next interval)."),
		attachmentsDeleted: counter("attachments_deleted_total", "Attachment objects deleted after their message was deleted or expired."),
		attachmentErrors:   counter("attachment_delete_errors_total", "Attachment objects that could not be deleted (left in storage)."),
		groupLost:          counter("group_lost_total", "Times the consumer group was found gone (Redis lost the stream): acknowledged messages not yet stored may be lost."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "aurora", Subsystem: "ingest", Name: "batch_size",
			Help:    "Entries per batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		insertLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "aurora", Subsystem: "ingest", Name: "insert_duration_seconds",
			Help:    "Time of one store.InsertMessages call.",
			Buckets: prometheus.DefBuckets,
		}),
		pending: gauge("pending", "Entries of the group delivered and not acknowledged (XPENDING), over every shard stream."),
		lag:     gauge("lag", "Entries of the stream not yet delivered to the group, over every shard stream."),
		length:  gauge("stream_length", "Entries in the stream (XLEN), over every shard stream."),

		byStream: map[string][3]float64{},
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.inserted, m.duplicates, m.claimed, m.deadLettered, m.storeErrors,
			m.lost, m.groupLost, m.trimmed, m.expired, m.retentionErrors, m.attachmentsDeleted, m.attachmentErrors, m.batchSize, m.insertLatency, m.pending, m.lag, m.length)
	}
	return m
}
