package handoff

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
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

// envelope is what travels over NOTIFY: the instance that sent it, a topic
// and either the whole event or, when it is too large, a reference to load.
// Origin comes first, so that a listener knows its own notifications by
// their first bytes without decoding them.
type envelope struct {
	Origin string `json:"o,omitempty"`
	Topic  string `json:"t"`
	Event  *Event `json:"e,omitempty"`
	// Ref names a stored message too large for a notification.
	Ref *msgRef `json:"r,omitempty"`
}

type msgRef struct {
	ConversationID string `json:"c"`
	Seq            int64  `json:"s"`
}

// Publisher delivers events to this instance's hub at once and to every
// other instance with NOTIFY, after the transaction that stored them has
// committed. Local subscribers (the customer whose message started a bot
// turn, watching its tokens stream) so skip a round trip through
// PostgreSQL, and the listener drops this instance's own notifications. A NOTIFY inside the storing
// transaction would serialise every commit behind PostgreSQL's notification
// queue lock (halving throughput, measured); instead one goroutine batches
// whatever events are waiting into one notification on its own connection,
// where synchronous_commit is off (the events are already durable).
// Publishing after commit means two events of one conversation may arrive
// out of seq order; subscribers fill any gap from the database by seq.
type Publisher struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	in     chan envelope
	hub    *Hub   // this instance's
	origin string // this instance's id in envelopes
	// peers, when set, tells whether another instance can be listening;
	// alone, the publisher sends nothing (see peers).
	peers  *peers
	unsent unsent
}

// streamLinger is how long a notification that holds only streamed tokens
// or typing waits for more to join it: a bot answer streams a token every
// few milliseconds, and one NOTIFY per token cost PostgreSQL more than the
// rest of the turn (measured). Other instances' viewers see the tokens
// this much later; this instance's see them at once.
const streamLinger = 20 * time.Millisecond

func newPublisher(pool *pgxpool.Pool, log *slog.Logger, hub *Hub, origin string, peers *peers) *Publisher {
	return &Publisher{pool: pool, log: log, in: make(chan envelope, 8192), hub: hub, origin: origin, peers: peers}
}

// Publish delivers ev to this instance's subscribers of topic and queues
// it for the others. It does not block: when the queue is full the event
// is not sent to other instances and is counted, and their subscribers
// recover it by seq.
func (p *Publisher) Publish(topic string, ev Event) {
	if p.hub != nil {
		p.hub.Publish(topic, ev)
	}
	select {
	case p.in <- envelope{Origin: p.origin, Topic: topic, Event: &ev}:
	default:
		metrics.NotifyDropped.Inc()
	}
}

// ephemeral reports whether an envelope carries only a streamed token or
// typing, which may wait a little for company.
func (e envelope) ephemeral() bool {
	return e.Event != nil && (e.Event.Type == EventBotDelta || e.Event.Type == EventTyping)
}

// Run sends queued events until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := p.run(ctx)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("notify: publisher connection lost; reconnecting", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *Publisher) run(ctx context.Context) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return err
	}
	var batch []json.RawMessage
	size := 0
	for {
		var first envelope
		var joined <-chan struct{}
		if p.peers != nil {
			joined = p.peers.joined
		}
		select {
		case <-ctx.Done():
			return nil
		case <-joined:
			// Another instance has said hello: it gets what it may
			// have missed while its hello was on the way.
			batch = batch[:0]
			for _, env := range p.unsent.take(time.Now()) {
				batch = append(batch, encodeEnvelope(env))
			}
			if err := p.send(ctx, pc, batch); err != nil {
				return err
			}
			continue
		case first = <-p.in:
		}
		if now := time.Now(); p.peers != nil && p.peers.alone(now) {
			// Nobody would receive it: kept (not encoded) for a
			// newcomer's replay, with whatever else is waiting.
			n := 1
			p.unsent.add(now, first)
		rest:
			for {
				select {
				case env := <-p.in:
					p.unsent.add(now, env)
					n++
				default:
					break rest
				}
			}
			metrics.NotifySkipped.Add(float64(n))
			continue
		}
		batch, size = batch[:0], 2
		add := func(env envelope) {
			b := encodeEnvelope(env)
			batch = append(batch, b)
			size += len(b) + 1
		}
		add(first)
		var linger <-chan time.Time
		var timer *time.Timer
		if first.ephemeral() {
			timer = time.NewTimer(streamLinger)
			linger = timer.C
		}
	drain:
		for size < maxNotifyPayload-1500 && len(batch) < 64 {
			select {
			case env := <-p.in:
				add(env)
				if !env.ephemeral() {
					linger = nil // a stored event goes without delay
				}
				continue
			default:
			}
			if linger == nil {
				break
			}
			select {
			case env := <-p.in:
				add(env)
				if !env.ephemeral() {
					linger = nil
				}
			case <-linger:
				break drain
			case <-ctx.Done():
				return nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if err := p.send(ctx, pc, batch); err != nil {
			return err
		}
	}
}

// send sends encoded envelopes, as few notifications under the payload
// limit as they fit in. Each envelope is json.Marshal's compact output,
// so the array is joined as it is rather than checked again.
func (p *Publisher) send(ctx context.Context, pc *pgx.Conn, batch []json.RawMessage) error {
	var payload []byte
	for len(batch) > 0 {
		n, sz := 0, 2
		for n < len(batch) && (n == 0 || sz+len(batch[n])+1 <= maxNotifyPayload) {
			sz += len(batch[n]) + 1
			n++
		}
		payload = append(payload[:0], '[')
		for i, b := range batch[:n] {
			if i > 0 {
				payload = append(payload, ',')
			}
			payload = append(payload, b...)
		}
		payload = append(payload, ']')
		if err := p.notify(ctx, pc, string(payload)); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

func (p *Publisher) notify(ctx context.Context, pc *pgx.Conn, payload string) error {
	_, err := pc.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, payload)
	return err
}

// sayHello announces this instance to the others (see peers).
func (l *Listener) sayHello(ctx context.Context, pc *pgx.Conn) error {
	_, err := pc.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, l.hello)
	return err
}

// encodeEnvelope renders an envelope for NOTIFY; an event too large for a
// notification travels as a reference that listeners load.
func encodeEnvelope(env envelope) json.RawMessage {
	b, err := json.Marshal(env)
	if err == nil && len(b) <= maxNotifyPayload-8 {
		return b
	}
	ev := *env.Event
	if ev.Type == EventMessage && ev.Message != nil {
		b, _ = json.Marshal(envelope{Origin: env.Origin, Topic: env.Topic, Ref: &msgRef{ConversationID: ev.ConversationID, Seq: ev.Seq}})
		return b
	}
	// Ephemeral events are cut down rather than lost.
	if len(ev.Delta) > maxNotifyPayload/2 {
		ev.Delta = ev.Delta[:maxNotifyPayload/2]
	}
	ev.Data = nil
	b, _ = json.Marshal(envelope{Origin: env.Origin, Topic: env.Topic, Event: &ev})
	return b
}

// Listener feeds the hub from PostgreSQL LISTEN, so that every instance sees
// every committed event. It reconnects on its own; after a reconnect it drops
// every subscriber, since events may have been missed, and they resume by seq.
type Listener struct {
	pool *pgxpool.Pool
	hub  *Hub
	// self is the prefix of this instance's own notifications, which it
	// has delivered already.
	self string
	log  *slog.Logger
	load func(ctx context.Context, conversationID string, seq int64) (*Message, error)
	// ready is closed once the first LISTEN is in place.
	ready chan struct{}
	// peers learns from the listener who else listens; hello is this
	// instance's announcement, sent when LISTEN is in place and every beat.
	peers *peers
	hello string
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
	// Hello goes out before this instance serves anything (ready), so
	// that the others notify it of everything its clients subscribe to.
	if err := l.sayHello(ctx, pc); err != nil {
		return err
	}
	l.peers.up(time.Now())
	defer l.peers.down()
	nextBeat := time.Now().Add(l.peers.beat)
	if *first {
		close(l.ready)
		*first = false
	} else {
		// Subscribers that joined while we were away may have missed events.
		l.hub.DropAll()
	}
	for {
		wctx, cancel := context.WithDeadline(ctx, nextBeat)
		n, err := pc.WaitForNotification(wctx)
		cancel()
		// A wait cut short by its deadline leaves the connection usable
		// (pgx sets a read deadline, and a timeout is not fatal).
		beat := err != nil && ctx.Err() == nil && wctx.Err() != nil
		if now := time.Now(); beat || !now.Before(nextBeat) {
			if err := l.sayHello(ctx, pc); err != nil {
				return err
			}
			nextBeat = now.Add(l.peers.beat)
		}
		if beat {
			continue
		}
		if err != nil {
			return err
		}
		if l.self != "" && strings.HasPrefix(n.Payload, l.self) {
			continue
		}
		l.peers.hear(time.Now())
		var envs []envelope
		if err := json.Unmarshal([]byte(n.Payload), &envs); err != nil {
			l.log.Error("notify: bad payload", "error", err)
			continue
		}
		for _, env := range envs {
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
}
