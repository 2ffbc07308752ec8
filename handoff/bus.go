package handoff

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/metrics"
)

// notifyChannel is the PostgreSQL channel that carries committed events to
// every instance.
const notifyChannel = "tandem_events"

// maxNotifyPayload keeps payloads under PostgreSQL's 8000-byte limit; a
// larger event is sent as a reference and loaded by each listener.
const maxNotifyPayload = 7000

// envelope is what travels over NOTIFY: a topic and either the whole event
// or, when it is too large, a reference to load.
type envelope struct {
	Topic string `json:"t"`
	Event *Event `json:"e,omitempty"`
	// Ref names a stored message too large for a notification.
	Ref *msgRef `json:"r,omitempty"`
}

type msgRef struct {
	ConversationID string `json:"c"`
	Seq            int64  `json:"s"`
}

// notify queues a notification inside tx, so that it is delivered only if
// and when tx commits, in commit order.
func notify(ctx context.Context, tx pgx.Tx, topic string, ev Event) error {
	payload, err := encodeEnvelope(topic, ev)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, payload)
	return err
}

// notifyNow sends an ephemeral event (typing, bot.delta) at once.
func notifyNow(ctx context.Context, pool *pgxpool.Pool, topic string, ev Event) error {
	payload, err := encodeEnvelope(topic, ev)
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, payload)
	return err
}

func encodeEnvelope(topic string, ev Event) (string, error) {
	b, err := json.Marshal(envelope{Topic: topic, Event: &ev})
	if err != nil {
		return "", err
	}
	if len(b) <= maxNotifyPayload {
		return string(b), nil
	}
	if ev.Type == EventMessage && ev.Message != nil {
		b, err = json.Marshal(envelope{Topic: topic, Ref: &msgRef{ConversationID: ev.ConversationID, Seq: ev.Seq}})
		return string(b), err
	}
	// Ephemeral events are cut down rather than lost.
	if len(ev.Delta) > maxNotifyPayload/2 {
		ev.Delta = ev.Delta[:maxNotifyPayload/2]
	}
	ev.Data = nil
	b, err = json.Marshal(envelope{Topic: topic, Event: &ev})
	return string(b), err
}

// Listener feeds the hub from PostgreSQL LISTEN, so that every instance sees
// every committed event. It reconnects on its own; after a reconnect it drops
// every subscriber, since events may have been missed, and they resume by seq.
type Listener struct {
	pool *pgxpool.Pool
	hub  *Hub
	log  *slog.Logger
	load func(ctx context.Context, conversationID string, seq int64) (*Message, error)
	// ready is closed once the first LISTEN is in place.
	ready chan struct{}
}

// Ready is closed once the listener is listening.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Run listens until ctx ends.
func (l *Listener) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := l.listen(ctx, &first)
		if ctx.Err() != nil {
			return
		}
		metrics.NotifyReconnects.Inc()
		l.log.Warn("notify: connection lost; reconnecting", "error", err, "in", backoff)
		l.hub.DropAll()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (l *Listener) listen(ctx context.Context, first *bool) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is dedicated to LISTEN and never goes back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	if *first {
		close(l.ready)
		*first = false
	} else {
		// Subscribers that joined while we were away may have missed events.
		l.hub.DropAll()
	}
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var env envelope
		if err := json.Unmarshal([]byte(n.Payload), &env); err != nil {
			l.log.Error("notify: bad payload", "error", err)
			continue
		}
		if env.Ref != nil {
			m, err := l.load(ctx, env.Ref.ConversationID, env.Ref.Seq)
			if err != nil {
				l.log.Error("notify: load message", "conversation_id", env.Ref.ConversationID, "error", err)
				continue
			}
			env.Event = &Event{Type: EventMessage, ConversationID: m.ConversationID, Seq: m.Seq, Message: m}
		}
		if env.Event != nil {
			l.hub.Publish(env.Topic, *env.Event)
		}
	}
}
