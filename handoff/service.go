package handoff

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/metrics"
	"github.com/tandem-chat/tandem/internal/pii"
)

// Options configure a Service.
type Options struct {
	MaxTextRunes int           // longest message text; default 4000
	HistorySize  int           // messages a Responder sees; default 20
	TurnTimeout  time.Duration // bound of one bot turn; default 60s
	// TurnGrace is how long a customer's message may wait for the bot
	// before its turn is taken for lost (its instance stopped) and run
	// again by any instance; default twice TurnTimeout and 5 s, past any
	// turn still running.
	TurnGrace time.Duration
	Now       func() time.Time // clock; default time.Now
	Logger    *slog.Logger
	Routing   Routing // assignment, presence and SLA timings
	Webhooks  WebhookOptions
	// RetentionEvery is how often each instance checks whether the daily
	// retention run is due; default 1h.
	RetentionEvery time.Duration
	Attachments    AttachmentOptions
	// PeerWindow is how long an instance must hear no other instance
	// before it stops sending notifications that nobody would receive;
	// default 10 s. Instances say hello four times a window.
	PeerWindow time.Duration
}

// Service is the conversation core: it stores messages with their seq,
// publishes committed events to every instance, and runs bot turns.
type Service struct {
	pool      *pgxpool.Pool
	store     *store
	hub       *Hub
	listener  *Listener
	pub       *Publisher
	botHeld   botConvs     // conversations last seen held by the bot (prepare's hint)
	early     atomic.Int64 // turns started ahead of their messages' commits, not yet settled
	responder Responder
	hooks     *webhooks
	log       *slog.Logger
	opt       Options

	turns   sync.WaitGroup
	turnCtx context.Context
	stop    context.CancelFunc
	// The sweep of unanswered turns stops first at Close, so that it
	// starts no turn while Close waits for them.
	sweepCtx  context.Context
	sweepStop context.CancelFunc
	swept     sync.WaitGroup
	locksMu   sync.Mutex
	locks     map[string]*convLock
	batch     batcher // customers' messages, stored in batches (batch.go)

	// kick asks the router for an assignment round.
	kick chan struct{}
	// sockets maps this instance's agent socket ids to their agents.
	socketsMu sync.Mutex
	sockets   map[string]string
	routed    sync.WaitGroup
}

type convLock struct {
	mu   sync.Mutex
	refs int
}

// NewService returns a Service over pool. Call Run to start listening for
// events and Close to drain bot turns.
func NewService(pool *pgxpool.Pool, responder Responder, opt Options) *Service {
	if opt.MaxTextRunes <= 0 {
		opt.MaxTextRunes = 4000
	}
	if opt.HistorySize <= 0 {
		opt.HistorySize = 20
	}
	if opt.TurnTimeout <= 0 {
		opt.TurnTimeout = 60 * time.Second
	}
	if opt.TurnGrace <= 0 {
		opt.TurnGrace = 2*opt.TurnTimeout + 5*time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.RetentionEvery <= 0 {
		opt.RetentionEvery = time.Hour
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if responder == nil {
		responder = Unconfigured{}
	}
	opt.Routing.defaults()
	opt.Attachments.defaults(pool)
	s := &Service{
		pool:      pool,
		store:     &store{pool: pool, now: opt.Now},
		hub:       NewHub(),
		responder: responder,
		log:       opt.Logger,
		opt:       opt,
		locks:     map[string]*convLock{},
		kick:      make(chan struct{}, 1),
		sockets:   map[string]string{},
	}
	s.turnCtx, s.stop = context.WithCancel(context.Background())
	s.hooks = newWebhooks(pool, opt.Webhooks, opt.Logger, opt.Now)
	s.sweepCtx, s.sweepStop = context.WithCancel(context.Background())
	origin := uuid.NewString()
	peers := newPeers(opt.PeerWindow)
	s.pub = newPublisher(pool, opt.Logger, s.hub, origin, peers)
	s.listener = &Listener{pool: pool, hub: s.hub, log: opt.Logger, ready: make(chan struct{}),
		self: `[{"o":"` + origin + `"`, peers: peers, hello: helloPayload(origin),
		load: func(ctx context.Context, id string, seq int64) (*Message, error) {
			return s.store.messageBySeq(ctx, id, seq)
		}}
	return s
}

// SetResponder replaces the Responder (the bot, once it is built).
func (s *Service) SetResponder(r Responder) { s.responder = r }

// Hub returns the in-process hub that the listener feeds.
func (s *Service) Hub() *Hub { return s.hub }

// Run listens for committed events, and routes conversations to agents,
// until ctx ends.
func (s *Service) Run(ctx context.Context) {
	go s.pub.Run(ctx)
	// Routing stops at Close too, before the pool goes.
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-rctx.Done():
		case <-s.turnCtx.Done():
		}
		cancel()
	}()
	s.routed.Add(5)
	go func() { defer s.routed.Done(); s.route(rctx) }()
	go func() { defer s.routed.Done(); s.beat(rctx) }()
	go func() { defer s.routed.Done(); s.hooks.run(rctx) }()
	go func() { defer s.routed.Done(); s.retentionDaily(rctx, s.opt.RetentionEvery) }()
	go func() { defer s.routed.Done(); s.sweep(rctx) }()
	sctx, scancel := context.WithCancel(ctx)
	s.swept.Add(1)
	go func() {
		defer s.swept.Done()
		defer scancel()
		stop := context.AfterFunc(s.sweepCtx, scancel)
		defer stop()
		s.sweepTurns(sctx)
	}()
	s.listener.Run(ctx)
}

// Ready is closed once events from the database flow into the hub.
func (s *Service) Ready() <-chan struct{} { return s.listener.Ready() }

// Close waits (bounded by ctx) for bot turns in flight, then cancels the rest.
func (s *Service) Close(ctx context.Context) {
	s.sweepStop()
	s.swept.Wait()
	done := make(chan struct{})
	go func() { s.turns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("handoff: bot turns still running at shutdown; cancelling")
	}
	s.stop()
	routed := make(chan struct{})
	go func() { s.routed.Wait(); close(routed) }()
	select {
	case <-routed:
	case <-ctx.Done():
	}
}

// CreateConversation starts a conversation owned by the bot and returns it
// with the customer's token, which is shown once and stored only as a hash.
func (s *Service) CreateConversation(ctx context.Context, cust Customer, verified bool) (*Conversation, string, error) {
	if err := validateCustomer(&cust); err != nil {
		return nil, "", err
	}
	conv, token, err := s.store.createConversation(ctx, cust, verified)
	if err == nil {
		s.botHeld.set(conv.ID, conv.State == StateBot)
	}
	return conv, token, err
}

func validateCustomer(c *Customer) error {
	fields := map[string]*string{"external_id": &c.ExternalID, "name": &c.Name, "email": &c.Email, "locale": &c.Locale}
	for name, v := range fields {
		*v = strings.TrimSpace(*v)
		if !utf8.ValidString(*v) || utf8.RuneCountInString(*v) > 256 {
			return errs.Errorf(errs.Invalid, "customer.%s must be valid text of at most 256 characters", name)
		}
	}
	if len(c.Attributes) > 50 {
		return errs.Errorf(errs.Invalid, "customer.attributes may hold at most 50 keys")
	}
	return nil
}

// Conversation returns one conversation. Returns NotFound.
func (s *Service) Conversation(ctx context.Context, id string) (*Conversation, error) {
	return s.store.conversation(ctx, s.pool, id)
}

// AuthorizeCustomer checks that token opens conversation id. Returns
// Unauthorized for a token that opens nothing, Forbidden for a token of
// another conversation.
func (s *Service) AuthorizeCustomer(ctx context.Context, id, token string) error {
	if token == "" {
		return errs.Errorf(errs.Unauthorized, "a conversation token is required")
	}
	owner, err := s.store.conversationByToken(ctx, token)
	if err != nil {
		return err
	}
	if owner != id {
		// An unknown conversation is not found whoever asks; a known one is
		// forbidden to another conversation's token.
		if _, err := s.store.conversation(ctx, s.pool, id); err != nil {
			return err
		}
		return errs.Errorf(errs.Forbidden, "the token does not open this conversation")
	}
	return nil
}

// Author is who writes a message.
type Author struct {
	Role string // RoleCustomer or RoleAgent
	ID   string // staff user id for agents
	// Admin lets a staff user write in a chat assigned to someone else.
	Admin bool
}

// PostResult is the outcome of PostMessage.
type PostResult struct {
	Message Message
	Created bool  // false when client_msg_id matched an earlier message
	State   State // the conversation's state after the message
	// Turn is closed when the bot's turn for this message has finished
	// (nil when no turn was started by this call).
	Turn <-chan struct{}
}

// NewMessage is what a customer or an agent writes: text, attachments
// (ids of uploads to this conversation), or both.
type NewMessage struct {
	Text        string
	ClientMsgID string
	Attachments []string
}

// PostMessage stores a text message; see Post.
func (s *Service) PostMessage(ctx context.Context, convID string, author Author, text, clientMsgID string) (*PostResult, error) {
	return s.Post(ctx, convID, author, NewMessage{Text: text, ClientMsgID: clientMsgID})
}

// Post stores a message, acknowledged only after commit. The same
// ClientMsgID twice stores one message. A message needs text or
// attachments; each attachment must be an upload of the same side to this
// conversation that no other message carries. A customer message in a
// conversation the bot owns starts a bot turn; one in a closed conversation
// reopens it. An agent's message follows agentMayWrite. Returns Invalid,
// TooLarge, NotFound, Conflict.
func (s *Service) Post(ctx context.Context, convID string, author Author, nm NewMessage) (*PostResult, error) {
	start := time.Now()
	text, clientMsgID := strings.TrimSpace(nm.Text), nm.ClientMsgID
	if text == "" && len(nm.Attachments) == 0 {
		return nil, errs.Errorf(errs.Invalid, "text must not be empty")
	}
	if !utf8.ValidString(text) || strings.ContainsRune(text, 0) {
		return nil, errs.Errorf(errs.Invalid, "text must be valid UTF-8 without NUL characters")
	}
	if n := utf8.RuneCountInString(text); n > s.opt.MaxTextRunes {
		return nil, errs.Errorf(errs.TooLarge, "text is %d characters; the limit is %d", n, s.opt.MaxTextRunes)
	}
	if len(clientMsgID) > 128 {
		return nil, errs.Errorf(errs.Invalid, "client_msg_id must be at most 128 characters")
	}
	var pre Prepared     // the bot's head start on the message's turn
	var early *earlyTurn // the turn, started before the commit
	defer func() {
		release(pre)
		if early != nil {
			early.settle(nil) // no-op once posted settled it
		}
	}()
	if author.Role == RoleCustomer {
		// The transcript never keeps a customer's full card number.
		text = pii.MaskCards(text)
		if len(nm.Attachments) == 0 {
			busy := s.turnRunning(convID)
			pre = s.prepare(convID, text)
			if pre != nil && !busy {
				early, pre = s.startEarly(convID, text, clientMsgID, pre), nil
			}
			// Text alone goes in a batch; attachments are checked and
			// taken in the message's own transaction below.
			if m, state, ok := s.postCustomer(convID, text, clientMsgID, busy); ok {
				p := pre
				pre = nil
				return s.posted(ctx, m, state, &outbox{}, p, early, start), nil
			}
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "conversation")
	}
	defer tx.Rollback(ctx)
	conv, err := s.store.lockConversation(ctx, tx, convID)
	if err != nil {
		return nil, err
	}
	if clientMsgID != "" {
		prev, err := s.store.messageByClientID(ctx, tx, convID, clientMsgID)
		if err == nil {
			return &PostResult{Message: *prev, Created: false, State: conv.State}, nil
		}
		if !errs.Is(err, errs.NotFound) {
			return nil, err
		}
	}
	out := &outbox{}
	if author.Role == RoleCustomer && conv.State == StateClosed {
		if err := s.move(ctx, tx, conv, move{to: StateBot, actor: customerActor, reason: ReasonCustomerWrote}, out); err != nil {
			return nil, err
		}
	}
	if author.Role == RoleAgent {
		if err := s.agentMayWrite(ctx, tx, conv, author, out); err != nil {
			return nil, err
		}
	}
	atts, err := s.store.takeAttachments(ctx, tx, convID, author.Role, nm.Attachments)
	if err != nil {
		return nil, err
	}
	m := &Message{ConversationID: convID, Role: author.Role, AuthorID: author.ID, Text: text, ClientMsgID: clientMsgID, Attachments: atts}
	if err := s.insertMessage(ctx, tx, m, out); err != nil {
		return nil, err
	}
	if author.Role == RoleAgent && conv.State == StateAssigned && conv.AssignedTo == author.ID && conv.answeredAt == nil {
		if _, err := tx.Exec(ctx, `UPDATE conversations SET answered_at = $2 WHERE id = $1`, convID, m.CreatedAt); err != nil {
			return nil, db.Translate(err, "conversation")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "message")
	}
	p := pre
	pre = nil
	return s.posted(ctx, m, conv.State, out, p, early, start), nil
}

// posted finishes a stored message after its commit: it publishes the
// message and what else out holds, and starts the bot's turn when the bot
// holds the conversation (state is the state after the message), handing
// it pre, the responder's head start (or nil), which it owns, or settling
// early, the turn started before the commit (or nil). start is when the
// message came.
func (s *Service) posted(ctx context.Context, m *Message, state State, out *outbox, pre Prepared, early *earlyTurn, start time.Time) *PostResult {
	if m.Role == RoleCustomer && state == StateQueued {
		out.updated = append(out.updated, m.ConversationID) // the queue's preview changed
		out.kick = true                                     // a round may have skipped it while we held it
	}
	out.add(messageEvent(m))
	s.flush(ctx, out)
	metrics.Messages.WithLabelValues(m.Role).Inc()
	res := &PostResult{Message: *m, Created: true, State: state}
	if m.Role == RoleCustomer {
		s.botHeld.set(m.ConversationID, state == StateBot)
	}
	if m.Role == RoleCustomer && state == StateBot {
		messagePhase.Observe(time.Since(start).Seconds())
		if early != nil {
			stored := *m
			early.settle(&stored)
			res.Turn = early.done
		} else {
			res.Turn = s.startTurn(m.ConversationID, *m, pre)
		}
	} else {
		release(pre)
		if early != nil {
			early.settle(nil)
		}
	}
	return res
}

// agentMayWrite applies the rule for agents' messages: the assigned agent
// writes freely (and an admin too); an agent who writes in a queued
// conversation or one the bot holds takes it over; a closed conversation
// takes no agent messages. Returns Conflict.
func (s *Service) agentMayWrite(ctx context.Context, tx pgx.Tx, conv *Conversation, author Author, out *outbox) error {
	switch conv.State {
	case StateClosed:
		return errs.Errorf(errs.Conflict, "the conversation is closed; it reopens when the customer writes again")
	case StateAssigned:
		if conv.AssignedTo == author.ID || author.Admin {
			return nil
		}
		return errs.Errorf(errs.Conflict, "the conversation is assigned to %s", or(conv.AssigneeName, "another agent"))
	}
	return s.move(ctx, tx, conv, move{to: StateAssigned, actor: AgentActor(author.ID, author.Admin),
		reason: ReasonTakeover, agent: author.ID}, out)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// insertMessage stores a message inside tx, with its message.created
// webhook deliveries.
func (s *Service) insertMessage(ctx context.Context, tx pgx.Tx, m *Message, out *outbox) error {
	if err := s.store.insertMessage(ctx, tx, m); err != nil {
		return err
	}
	return s.hook(ctx, tx, HookMessage, m.ConversationID, map[string]any{"message": m}, out)
}

// messageEvent is the event that announces a stored message.
func messageEvent(m *Message) Event {
	return Event{Type: EventMessage, ConversationID: m.ConversationID, Seq: m.Seq, Message: m}
}

// Messages returns up to limit messages after seq.
func (s *Service) Messages(ctx context.Context, convID string, after int64, limit int) ([]Message, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return s.store.messages(ctx, convID, after, limit)
}

// Replay returns every stored event after seq, in order, up to limit.
func (s *Service) Replay(ctx context.Context, convID string, after int64, limit int) ([]Event, error) {
	return s.store.replay(ctx, convID, after, limit)
}

// Subscribe returns a subscription to a conversation's live events.
func (s *Service) Subscribe(convID string, buf int) *Subscription {
	return s.hub.Subscribe(convID, buf)
}

// SubscribeFunc has fn called with a conversation's live events (see
// Hub.SubscribeFunc).
func (s *Service) SubscribeFunc(convID string, fn func(Event) bool, dropped func()) *Subscription {
	return s.hub.SubscribeFunc(convID, fn, dropped)
}

// Typing tells the conversation's other side that role is typing.
func (s *Service) Typing(ctx context.Context, convID, role string) error {
	s.pub.Publish(convID, Event{Type: EventTyping, ConversationID: convID, Role: role})
	return nil
}

// lockConv serialises bot turns of one conversation in this process, so
// replies come in the order of the messages they answer.
func (s *Service) lockConv(id string) func() {
	s.locksMu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &convLock{}
		s.locks[id] = l
	}
	l.refs++
	s.locksMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.locksMu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(s.locks, id)
		}
		s.locksMu.Unlock()
	}
}

// turnRunning reports whether a bot turn of the conversation runs (or
// waits to run) in this process.
func (s *Service) turnRunning(id string) bool {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	return s.locks[id] != nil
}

// startTurn runs the bot's turn for a customer's stored message msg in the
// background, with pre, the responder's head start on it (or nil), which
// it owns.
func (s *Service) startTurn(convID string, msg Message, pre Prepared) <-chan struct{} {
	done := make(chan struct{})
	s.turns.Add(1)
	go func() {
		defer s.turns.Done()
		defer close(done)
		unlock := s.lockConv(convID)
		defer unlock()
		ctx, cancel := context.WithTimeout(s.turnCtx, s.opt.TurnTimeout)
		defer cancel()
		if err := s.runTurn(ctx, convID, msg, pre, nil); err != nil {
			s.log.Error("handoff: bot turn", "conversation_id", convID, "error", err)
		}
	}()
	return done
}

// The turn's phases handoff times (the bot times the others).
var (
	messagePhase = metrics.BotTurnPhase.WithLabelValues("message")
	contextPhase = metrics.BotTurnPhase.WithLabelValues("context")
	replyPhase   = metrics.BotTurnPhase.WithLabelValues("reply")
)

// turnStream is the stream of a turn's bot.delta events.
func (s *Service) turnStream(convID string) *deltaStream {
	return newDeltaStream(streamEvery, func(delta string) {
		s.pub.Publish(convID, Event{Type: EventBotDelta, ConversationID: convID, Delta: delta, Role: RoleBot})
	})
}

// runTurn runs the bot's turn for the customer's message msg. early, when
// not nil, is the turn started before msg was stored (msg has no seq yet):
// see earlyTurn.
func (s *Service) runTurn(ctx context.Context, convID string, msg Message, pre Prepared, early *earlyTurn) error {
	defer release(pre)
	start := time.Now()
	var conv *Conversation
	var history []Message
	for {
		// A database that is restarting is waited for (within the turn's
		// bound): the customer's message is stored, and must get its answer.
		err := whileUnavailable(ctx, func() (err error) {
			conv, history, err = s.store.turnContext(ctx, convID, s.opt.HistorySize)
			return err
		})
		if err != nil {
			if early != nil && s.settled(early) == nil {
				return nil // the message was not stored: no turn
			}
			return err
		}
		if early == nil || conv.State == StateBot {
			break
		}
		// Read beside the insert, the conversation was not the bot's:
		// once the message is stored, read again, as a turn after it.
		m := s.settled(early)
		if m == nil {
			return nil
		}
		msg, early = *m, nil
	}
	contextPhase.Observe(time.Since(start).Seconds())
	if conv.State != StateBot {
		return nil // a person took over meanwhile
	}
	var deltas *deltaStream
	if early != nil {
		history = withMessage(history, msg)
		deltas = early.deltas // held until the message is stored
	} else {
		deltas = s.turnStream(convID)
	}
	turn := Turn{Conversation: *conv, History: history, Message: msg, Prepared: pre,
		ReadAttachment: func(ctx context.Context, a Attachment) ([]byte, error) {
			sa, err := s.AttachmentOf(ctx, convID, a.ID, false)
			if err != nil {
				return nil, err
			}
			data, _, err := s.AttachmentData(ctx, sa, false)
			return data, err
		},
		Stream: deltas.add}
	reply, err := s.responder.Respond(ctx, turn)
	deltas.stop()
	if early != nil {
		m := s.settled(early)
		if m == nil {
			return nil // not stored, or a person holds it: nothing to say
		}
		msg = *m
	}
	if err != nil {
		s.log.Error("handoff: responder failed; handing to a person", "conversation_id", convID, "error", err)
		metrics.BotDecisions.WithLabelValues("error").Inc()
		reply = Reply{Role: RoleSystem,
			Text:     "Sorry, our assistant is unavailable right now. I am passing your conversation to a person.",
			Meta:     Meta{Decision: "escalate", Reason: "bot_unavailable"},
			Escalate: &Escalation{Reason: "bot_unavailable"}}
	}
	// The reply is stored even if the turn's time ran out meanwhile, within
	// a bound of its own.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.TurnTimeout)
	defer cancel()
	attempt := 0
	stored := time.Now()
	if err := whileUnavailable(actx, func() error {
		attempt++
		return s.applyReply(actx, convID, msg.Seq, reply, attempt > 1)
	}); err != nil {
		return err
	}
	replyPhase.Observe(time.Since(stored).Seconds())
	metrics.BotTurnDuration.Observe(time.Since(start).Seconds())
	if reply.Meta.Decision != "" {
		metrics.BotDecisions.WithLabelValues(reply.Meta.Decision).Inc()
	}
	return nil
}

// whileUnavailable runs fn until it succeeds, fails for another reason than
// an unreachable database, or ctx ends, backing off between attempts.
func whileUnavailable(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || !db.Unreachable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// applyReply stores the bot's message and, if it escalates, the move to the
// queue, in one transaction.
//
// again says an earlier attempt failed on the way, maybe after its commit
// (the connection broke before the answer came back): then a reply already
// stored after the customer's message (seq after) with the same role and
// text is this one, and is not stored twice.
func (s *Service) applyReply(ctx context.Context, convID string, after int64, reply Reply, again bool) error {
	role := reply.Role
	if role == "" {
		role = RoleBot
	}
	// The common case, an answer, is one statement: five round trips
	// (BEGIN, lock, seq, insert, COMMIT) were most of a turn's own time
	// in the database after the search.
	if !again && reply.Escalate == nil && strings.TrimSpace(reply.Text) != "" && !s.hooks.subscribed(HookMessage) {
		m := &Message{ConversationID: convID, Role: role, Text: reply.Text, Meta: reply.Meta}
		stored, err := s.store.insertIfBot(ctx, m)
		if err != nil || !stored {
			return err // !stored: a person took over while the bot was thinking
		}
		out := &outbox{}
		out.add(messageEvent(m))
		s.flush(ctx, out)
		metrics.Messages.WithLabelValues(role).Inc()
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "conversation")
	}
	defer tx.Rollback(ctx)
	conv, err := s.store.lockConversation(ctx, tx, convID)
	if err != nil {
		return err
	}
	if again {
		var stored bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id = $1
			AND seq > $2 AND role = $3 AND text = $4)`, convID, after, role, reply.Text).Scan(&stored); err != nil {
			return db.Translate(err, "conversation")
		}
		if stored {
			return nil
		}
	}
	if conv.State != StateBot {
		return nil // a person took over while the bot was thinking
	}
	out := &outbox{}
	if strings.TrimSpace(reply.Text) != "" {
		m := &Message{ConversationID: convID, Role: role, Text: reply.Text, Meta: reply.Meta}
		if err := s.insertMessage(ctx, tx, m, out); err != nil {
			return err
		}
		out.add(messageEvent(m))
	}
	if e := reply.Escalate; e != nil {
		if err := s.escalate(ctx, tx, conv, *e, out); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return db.Translate(err, "conversation")
	}
	s.flush(ctx, out)
	metrics.Messages.WithLabelValues(role).Inc()
	if reply.Escalate != nil {
		metrics.Handoffs.WithLabelValues(reply.Escalate.Reason).Inc()
	}
	return nil
}

// WaitReply waits, bounded by ctx, for the first bot, system or agent message
// after seq, and returns it with the conversation's state then. It returns
// a nil message when none came in time.
func (s *Service) WaitReply(ctx context.Context, convID string, after int64, sub *Subscription, turn <-chan struct{}) (*Message, State, error) {
	find := func() (*Message, error) {
		msgs, err := s.store.messages(ctx, convID, after, 50)
		if err != nil {
			return nil, err
		}
		for i := range msgs {
			if msgs[i].Role != RoleCustomer {
				return &msgs[i], nil
			}
		}
		return nil, nil
	}
	state := func() State {
		c, err := s.store.conversation(ctx, s.pool, convID)
		if err != nil {
			return ""
		}
		return c.State
	}
	if m, err := find(); err != nil || m != nil {
		return m, state(), err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, state(), nil
		case <-turn:
			turn = nil
			if m, err := find(); err != nil || m != nil {
				return m, state(), err
			}
		case ev, ok := <-sub.C:
			if !ok {
				m, err := find()
				return m, state(), err
			}
			if ev.Type == EventMessage && ev.Message != nil && ev.Seq > after && ev.Message.Role != RoleCustomer {
				return ev.Message, state(), nil
			}
		}
	}
}
