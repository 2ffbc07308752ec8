package handoff

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Handoff metrics live here rather than in internal/metrics because only
// this package updates them; /metrics serves them all the same.
var (
	queueWait = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "tandem_queue_wait_seconds", Help: "Time conversations waited in the queue before an agent got them.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
	})
	transitions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tandem_conversation_transitions_total", Help: "Conversation state changes by target state and reason.",
	}, []string{"to", "reason"})
	slaBreaches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_queue_sla_breaches_total", Help: "Queued conversations flagged for waiting past their team's SLA.",
	})
)
