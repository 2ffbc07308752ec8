// Package metrics holds the Prometheus collectors that several packages
// update; /metrics serves them in the Prometheus text format.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// HTTPRequests counts HTTP requests by method, route and status.
	HTTPRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tandem_http_requests_total", Help: "HTTP requests by method, route and status.",
	}, []string{"method", "route", "status"})
	// HTTPDuration observes HTTP request latency by method and route.
	HTTPDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tandem_http_request_duration_seconds", Help: "HTTP request latency.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route"})
	// WebSockets is the number of open WebSockets by kind (customer, agent).
	WebSockets = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tandem_websockets_open", Help: "Open WebSockets by kind.",
	}, []string{"kind"})
	// WebSocketDrops counts sockets dropped because the client could not keep up.
	WebSocketDrops = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_websocket_slow_drops_total", Help: "WebSockets dropped because the client was too slow.",
	})
	// OwedTurns counts bot turns run by the sweep because the instance that
	// stored the customer's message never answered it.
	OwedTurns = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_owed_turns_total", Help: "Bot turns run again because their message was left unanswered (its instance stopped, or its acknowledgement was lost).",
	})
	// Messages counts stored messages by role.
	Messages = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tandem_messages_total", Help: "Messages stored, by role.",
	}, []string{"role"})
	// MessageBatch observes how many customer messages one statement (one
	// commit) stored.
	MessageBatch = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "tandem_message_batch_size", Help: "Customer messages stored per statement (group commit).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	// BotDecisions counts the bot's decisions (answer, clarify, escalate, error).
	BotDecisions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tandem_bot_decisions_total", Help: "Bot turns by decision.",
	}, []string{"decision"})
	// BotTurnDuration observes how long a bot turn takes.
	BotTurnDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "tandem_bot_turn_duration_seconds", Help: "Bot turn latency, from the customer's message to the reply's commit.",
		Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	// BotTurnPhase observes where a bot turn's time goes, phase by phase:
	// the ones Tandem waits on (see BotPhase*), and the LLM's own.
	BotTurnPhase = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tandem_bot_turn_phase_seconds",
		Help: "Bot turn latency by phase: message (the customer's message until its commit), context (reading the transcript), " +
			"search (the turn's wait for its search), llm_first_token and llm (the LLM's first streamed token and whole answer), " +
			"reply (storing and publishing the reply).",
		Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"phase"})
	// LLMFallbacks counts bot turns answered in local mode because the LLM failed.
	LLMFallbacks = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_llm_fallbacks_total", Help: "Bot turns answered locally because the LLM failed.",
	})
	// Handoffs counts escalations to people by reason.
	Handoffs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tandem_handoffs_total", Help: "Conversations handed to people, by reason.",
	}, []string{"reason"})
	// NotifyDropped counts events not published because the queue was full
	// (subscribers recover them from the database by seq).
	NotifyDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_notify_dropped_total", Help: "Events not published because the publish queue was full.",
	})
	// NotifySkipped counts events not sent to other instances because
	// none was listening (handoff's peers).
	NotifySkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_notify_skipped_total", Help: "Events not sent to other instances because none was listening.",
	})
	// NotifyReconnects counts reconnections of the LISTEN connection.
	NotifyReconnects = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tandem_notify_reconnects_total", Help: "Reconnections of the LISTEN/NOTIFY connection.",
	})
)
