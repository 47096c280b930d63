package chat

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics (aurora_chat_*).
type metrics struct {
	connections prometheus.Gauge
	received    prometheus.Counter
	delivered   prometheus.Counter
	rateLimited prometheus.Counter
	slowDropped prometheus.Counter
	// typingDropped counts typing frames lost to a failing Redis.
	typingDropped prometheus.Counter
	heartbeat     prometheus.Counter
	// unreplicated counts messages queued but not acked because fewer
	// than chat.ack_replicas replicas confirmed them in time.
	unreplicated prometheus.Counter
	fanout       prometheus.Histogram
	errors       *prometheus.CounterVec
	errorsByCode map[string]prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aurora_chat_connections",
			Help: "Open WebSocket connections on this replica.",
		}),
		received: counter("aurora_chat_messages_received_total",
			"Message frames received from clients."),
		delivered: counter("aurora_chat_messages_delivered_total",
			"Frames written to client sockets."),
		rateLimited: counter("aurora_chat_rate_limited_total",
			"Messages refused by the rate limits."),
		slowDropped: counter("aurora_chat_slow_consumers_dropped_total",
			"Connections closed (4008) because their send queue stayed full, or a message did not fit it."),
		typingDropped: counter("aurora_chat_typing_dropped_total",
			"Typing frames not published because Redis failed."),
		heartbeat: counter("aurora_chat_heartbeat_closes_total",
			"Connections closed because they did not answer a ping."),
		unreplicated: counter("aurora_chat_unreplicated_total",
			"Messages queued but answered unavailable: fewer than chat.ack_replicas Redis replicas confirmed them within chat.ack_timeout."),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aurora_chat_fanout_latency_seconds",
			Help:    "Time from a message's ts to its write to a client socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aurora_chat_errors_total",
			Help: "Error frames sent to clients, by code.",
		}, []string{"code"}),
	}
	// Resolve the label values once: error frames are counted on the
	// request path.
	m.errorsByCode = map[string]prometheus.Counter{}
	for _, c := range []string{codeInvalidJSON, codeInvalidMessage, codeUnknownType, codeEmptyText, codeTextTooLong,
		codeInvalidRoom, codeNotMember, codeTooManyRooms, codeUnavailable, codeRateLimited} {
		m.errorsByCode[c] = m.errors.WithLabelValues(c)
	}
	return m
}

// counter is a counter of the gateway's.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.connections, m.received, m.delivered, m.rateLimited,
		m.slowDropped, m.typingDropped, m.heartbeat, m.unreplicated, m.fanout, m.errors} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) errorFrame(code string) {
	if c, ok := m.errorsByCode[code]; ok {
		c.Inc()
		return
	}
	m.errors.WithLabelValues(code).Inc()
}
