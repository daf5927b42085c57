package node

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node's own Prometheus series; the HTTP layer registers
// its request metrics on the same registry.
type metrics struct {
	reg          *prometheus.Registry
	inserts      prometheus.Counter
	fsyncs       prometheus.Counter
	fsyncSeconds prometheus.Histogram
	// truncatedEntries and droppedMessages count a former master's suffix
	// replaced on reconciliation.
	truncatedEntries prometheus.Counter
	droppedMessages  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		inserts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "replog_inserts_total", Help: "Messages appended by this node as master.",
		}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "replog_wal_fsyncs_total", Help: "fsyncs of the log (each covers every entry written since the last: group commit).",
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "replog_wal_fsync_seconds", Help: "Time spent in fsync of the log.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.truncatedEntries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replog_truncated_entries_total", Help: "Log entries replaced because the master's log differs (reconciliation).",
	})
	m.droppedMessages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "replog_dropped_messages_total", Help: "Messages dropped on reconciliation: written below a majority on a former master and absent from the new master's log.",
	})
	m.reg.MustRegister(m.inserts, m.fsyncs, m.fsyncSeconds, m.truncatedEntries, m.droppedMessages)
	return m
}
