package handoff

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Webhook events: what an endpoint may subscribe to.
const (
	// HookEscalated: the bot handed a conversation to the queue; data is
	// {"conversation", "handoff": Packet, "queue": QueueInfo}.
	HookEscalated = "conversation.escalated"
	// HookAssigned: an agent got a conversation (claim, automatic
	// assignment, transfer, or writing in it); data is {"conversation",
	// "agent": {"id", "name"}, "reason"}.
	HookAssigned = "conversation.assigned"
	// HookClosed: a conversation was closed; data is {"conversation",
	// "resolution"}.
	HookClosed = "conversation.closed"
	// HookMessage: a message was stored (any role); data is {"message"}, the
	// message as the API returns it.
	HookMessage = "message.created"
	// HookCSAT: the customer scored a conversation; data is {"csat"}.
	HookCSAT = "csat.received"
)

// WebhookEvents lists every event an endpoint may subscribe to.
var WebhookEvents = []string{HookEscalated, HookAssigned, HookClosed, HookMessage, HookCSAT}

// Headers of a webhook request. The signature is
// "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), where timestamp
// is the Tandem-Timestamp header (Unix seconds); receivers should refuse
// old timestamps (replays) and use Tandem-Delivery to drop duplicates
// (delivery is at least once).
const (
	HeaderWebhookEvent     = "Tandem-Event"
	HeaderWebhookDelivery  = "Tandem-Delivery"
	HeaderWebhookTimestamp = "Tandem-Timestamp"
	HeaderWebhookSignature = "Tandem-Signature"
)

// SignWebhook returns the Tandem-Signature of body sent at timestamp.
func SignWebhook(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhook checks a signature in constant time, as a receiver would.
func VerifyWebhook(secret, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(SignWebhook(secret, timestamp, body)), []byte(signature))
}

// Webhook is an endpoint that receives events. Its secret is shown only
// when it is created or replaced.
type Webhook struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Enabled     bool      `json:"enabled"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Pending and Failed count its deliveries waiting and given up.
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
}

// WebhookChange creates or changes an endpoint; nil fields are left as
// they are (or take their defaults on creation: a generated secret,
// enabled).
type WebhookChange struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Secret      *string  `json:"secret"`
	Enabled     *bool    `json:"enabled"`
	Description *string  `json:"description"`
}

// Delivery is one event sent (or to send) to one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	Event         string     `json:"event"`
	State         string     `json:"state"` // pending, delivered or failed
	Attempts      int        `json:"attempts"`
	LastStatus    *int       `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

// WebhookOptions tune delivery; zero values take the defaults.
type WebhookOptions struct {
	// Client sends the requests; default: a 10 s timeout, redirects not
	// followed, link-local addresses (cloud metadata) refused.
	Client *http.Client
	// Poll is how often each instance looks for due deliveries besides
	// being woken by its own events; default 1s.
	Poll time.Duration
	// Workers is how many requests one instance sends at once; default 4.
	Workers int
	// BaseBackoff is the wait after the first failure, doubled after each
	// one (with ±20% jitter) up to MaxBackoff; defaults 10s and 1h.
	BaseBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many attempts before a delivery is failed for
	// good; default 12 (about a day with the default backoff).
	MaxAttempts int
	// Lease is how long a worker holds a delivery it sends; another
	// instance retries it after that if the worker died. Default 2m.
	Lease time.Duration
	// Refresh is how often the set of subscribed events is reloaded (a new
	// endpoint's events start at most this late on other instances);
	// default 5s.
	Refresh time.Duration
}

func (o *WebhookOptions) defaults() {
	if o.Client == nil {
		o.Client = newWebhookClient(10 * time.Second)
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
}

// newWebhookClient is the default client: bounded, no redirects (a
// redirect would send the signed body somewhere the admin did not name),
// and no link-local or unspecified addresses, so an endpoint cannot reach
// a cloud provider's metadata service.
func newWebhookClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		host, _, _ := net.SplitHostPort(address)
		if ip := net.ParseIP(host); ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsUnspecified() || ip.IsMulticast()) {
			return fmt.Errorf("webhook: %s is a link-local, multicast or unspecified address", ip)
		}
		return nil
	}}
	return &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{DialContext: d.DialContext, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// webhooks is the outbox and its delivery worker.
type webhooks struct {
	pool *pgxpool.Pool
	opt  WebhookOptions
	log  *slog.Logger
	now  func() time.Time

	mu     sync.RWMutex
	loaded bool            // until the first load, every event counts as subscribed
	events map[string]bool // events some enabled endpoint wants
	kick   chan struct{}
}

func newWebhooks(pool *pgxpool.Pool, opt WebhookOptions, log *slog.Logger, now func() time.Time) *webhooks {
	opt.defaults()
	return &webhooks{pool: pool, opt: opt, log: log, now: now, kick: make(chan struct{}, 1)}
}

// subscribed reports whether some endpoint may want event, so that
// conversations without webhooks pay nothing for them.
func (w *webhooks) subscribed(event string) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return !w.loaded || w.events[event]
}

// refresh reloads the subscribed events.
func (w *webhooks) refresh(ctx context.Context) error {
	rows, err := w.pool.Query(ctx, `SELECT DISTINCT unnest(events) FROM webhooks WHERE enabled`)
	if err != nil {
		return db.Translate(err, "webhooks")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return db.Translate(err, "webhooks")
	}
	events := map[string]bool{}
	for _, n := range names {
		events[n] = true
	}
	w.mu.Lock()
	w.events, w.loaded = events, true
	w.mu.Unlock()
	return nil
}

// wake asks the local worker to look for due deliveries now.
func (w *webhooks) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// hookEnvelope is the body of every webhook request.
type hookEnvelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// hook queues event for every enabled endpoint that wants it, inside tx:
// the deliveries exist if and only if the change that made the event
// commits. It adds one statement to tx, and none when no endpoint wants the
// event; the sending happens later, in the worker, so a slow or dead
// endpoint never holds up a conversation.
func (s *Service) hook(ctx context.Context, tx pgx.Tx, event, convID string, data any, out *outbox) error {
	if s.hooks == nil || !s.hooks.subscribed(event) {
		return nil
	}
	now := s.opt.Now()
	id := uuid.NewString()
	body := rawJSON(hookEnvelope{ID: id, Type: event, CreatedAt: now.UTC(), Data: data})
	var conv *string
	if convID != "" {
		conv = &convID
	}
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (webhook_id, event_id, event, conversation_id, payload, next_attempt_at, created_at)
		SELECT w.id, $1, $2, $3, $4, $5, $5 FROM webhooks w WHERE w.enabled AND $2 = ANY(w.events)`,
		id, event, conv, body, now)
	if err != nil {
		return db.Translate(err, "webhook delivery")
	}
	if tag.RowsAffected() > 0 && out != nil {
		out.hooks = true
	}
	return nil
}

// hookMany is hook for many events of one kind in one statement (a batch
// of messages); it reports whether any delivery was queued.
func (s *Service) hookMany(ctx context.Context, tx pgx.Tx, event string, convIDs []string, data []any) (bool, error) {
	if len(convIDs) == 0 || !s.hooks.subscribed(event) {
		return false, nil
	}
	now := s.opt.Now()
	ids := make([]string, len(convIDs))
	bodies := make([]string, len(convIDs))
	for i := range convIDs {
		ids[i] = uuid.NewString()
		bodies[i] = string(rawJSON(hookEnvelope{ID: ids[i], Type: event, CreatedAt: now.UTC(), Data: data[i]}))
	}
	tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (webhook_id, event_id, event, conversation_id, payload, next_attempt_at, created_at)
		SELECT w.id, e.id, $1, e.conv, e.body::jsonb, $2, $2
		FROM unnest($3::uuid[], $4::uuid[], $5::text[]) AS e(id, conv, body)
		CROSS JOIN webhooks w WHERE w.enabled AND $1 = ANY(w.events)`, event, now, ids, convIDs, bodies)
	if err != nil {
		return false, db.Translate(err, "webhook delivery")
	}
	return tag.RowsAffected() > 0, nil
}

// validURL checks an endpoint's URL.
func validURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(raw) > 2000 {
		return "", errs.Errorf(errs.Invalid, "url must be an http or https URL without credentials, at most 2000 characters")
	}
	return raw, nil
}

func validEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, errs.Errorf(errs.Invalid, "events must name at least one of %s", strings.Join(WebhookEvents, ", "))
	}
	var out []string
	for _, e := range events {
		if !slices.Contains(WebhookEvents, e) {
			return nil, errs.Errorf(errs.Invalid, "event %q is not one of %s", e, strings.Join(WebhookEvents, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func validSecret(secret string) error {
	if n := len(secret); n < 16 || n > 256 || !utf8.ValidString(secret) {
		return errs.Errorf(errs.Invalid, "secret must be 16 to 256 characters")
	}
	return nil
}

// newWebhookSecret returns a random signing secret.
func newWebhookSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

const webhookColumns = `w.id, w.url, w.events, w.enabled, w.description, w.created_at, w.updated_at,
	(SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending'),
	(SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'failed')`

func scanWebhook(row pgx.Row) (*Webhook, error) {
	var w Webhook
	if err := row.Scan(&w.ID, &w.URL, &w.Events, &w.Enabled, &w.Description, &w.CreatedAt, &w.UpdatedAt, &w.Pending, &w.Failed); err != nil {
		return nil, db.Translate(err, "webhook")
	}
	return &w, nil
}

// Webhooks lists the endpoints, oldest first.
func (s *Service) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks w ORDER BY w.created_at, w.id`)
	if err != nil {
		return nil, db.Translate(err, "webhooks")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Webhook, error) {
		w, err := scanWebhook(r)
		if err != nil {
			return Webhook{}, err
		}
		return *w, nil
	})
	if out == nil {
		out = []Webhook{}
	}
	return out, db.Translate(err, "webhooks")
}

// Webhook returns one endpoint. Returns NotFound.
func (s *Service) Webhook(ctx context.Context, id string) (*Webhook, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "webhook not found")
	}
	return scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks w WHERE w.id = $1`, id))
}

// CreateWebhook adds an endpoint and returns it with its secret (generated
// unless given). Returns Invalid.
func (s *Service) CreateWebhook(ctx context.Context, actor Actor, ch WebhookChange) (*Webhook, string, error) {
	if ch.URL == nil {
		return nil, "", errs.Errorf(errs.Invalid, "url is required")
	}
	u, err := validURL(*ch.URL)
	if err != nil {
		return nil, "", err
	}
	events, err := validEvents(ch.Events)
	if err != nil {
		return nil, "", err
	}
	secret := newWebhookSecret()
	if ch.Secret != nil {
		if err := validSecret(*ch.Secret); err != nil {
			return nil, "", err
		}
		secret = *ch.Secret
	}
	enabled := ch.Enabled == nil || *ch.Enabled
	desc := ""
	if ch.Description != nil {
		desc = strings.TrimSpace(*ch.Description)
	}
	if utf8.RuneCountInString(desc) > 500 {
		return nil, "", errs.Errorf(errs.Invalid, "description must be at most 500 characters")
	}
	var by *string
	if actor.ID != "" {
		by = &actor.ID
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, "", db.Translate(err, "webhook")
	}
	defer tx.Rollback(ctx)
	now := s.opt.Now()
	var id string
	if err := tx.QueryRow(ctx, `INSERT INTO webhooks (url, secret, events, enabled, description, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`, u, secret, events, enabled, desc, by, now).Scan(&id); err != nil {
		return nil, "", db.Translate(err, "webhook")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "webhook.create", "webhook", id,
		map[string]any{"url": u, "events": events, "enabled": enabled}); err != nil {
		return nil, "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, "", db.Translate(err, "webhook")
	}
	s.refreshHooks(ctx)
	w, err := s.Webhook(ctx, id)
	return w, secret, err
}

// UpdateWebhook changes an endpoint. Returns Invalid or NotFound.
func (s *Service) UpdateWebhook(ctx context.Context, actor Actor, id string, ch WebhookChange) (*Webhook, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "webhook not found")
	}
	data := map[string]any{}
	var u *string
	if ch.URL != nil {
		v, err := validURL(*ch.URL)
		if err != nil {
			return nil, err
		}
		u, data["url"] = &v, v
	}
	var events []string
	if ch.Events != nil {
		var err error
		if events, err = validEvents(ch.Events); err != nil {
			return nil, err
		}
		data["events"] = events
	}
	if ch.Secret != nil {
		if err := validSecret(*ch.Secret); err != nil {
			return nil, err
		}
		data["secret"] = "replaced" // never the secret itself
	}
	if ch.Enabled != nil {
		data["enabled"] = *ch.Enabled
	}
	if ch.Description != nil {
		d := strings.TrimSpace(*ch.Description)
		if utf8.RuneCountInString(d) > 500 {
			return nil, errs.Errorf(errs.Invalid, "description must be at most 500 characters")
		}
		ch.Description, data["description"] = &d, d
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "webhook")
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE webhooks SET url = coalesce($2, url), events = coalesce($3, events),
		secret = coalesce($4, secret), enabled = coalesce($5, enabled), description = coalesce($6, description), updated_at = $7
		WHERE id = $1`, id, u, events, ch.Secret, ch.Enabled, ch.Description, s.opt.Now())
	if err != nil {
		return nil, db.Translate(err, "webhook")
	}
	if tag.RowsAffected() == 0 {
		return nil, errs.Errorf(errs.NotFound, "webhook not found")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "webhook.update", "webhook", id, data); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "webhook")
	}
	s.refreshHooks(ctx)
	return s.Webhook(ctx, id)
}

// DeleteWebhook removes an endpoint and its deliveries. Returns NotFound.
func (s *Service) DeleteWebhook(ctx context.Context, actor Actor, id string) error {
	if !db.ValidID(id) {
		return errs.Errorf(errs.NotFound, "webhook not found")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "webhook")
	}
	defer tx.Rollback(ctx)
	var u string
	if err := tx.QueryRow(ctx, `DELETE FROM webhooks WHERE id = $1 RETURNING url`, id).Scan(&u); err != nil {
		return db.Translate(err, "webhook")
	}
	if _, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = $1`, id); err != nil {
		return db.Translate(err, "webhook deliveries")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "webhook.delete", "webhook", id, map[string]any{"url": u}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return db.Translate(err, "webhook")
	}
	s.refreshHooks(ctx)
	return nil
}

// Deliveries lists an endpoint's latest deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.pool.Query(ctx, `SELECT id, event_id, event, state, attempts, last_status, coalesce(last_error, ''),
		created_at, CASE WHEN state = 'pending' THEN next_attempt_at END, delivered_at
		FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id LIMIT $2`, webhookID, limit)
	if err != nil {
		return nil, db.Translate(err, "webhook deliveries")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := r.Scan(&d.ID, &d.EventID, &d.Event, &d.State, &d.Attempts, &d.LastStatus, &d.LastError,
			&d.CreatedAt, &d.NextAttemptAt, &d.DeliveredAt)
		return d, err
	})
	if out == nil {
		out = []Delivery{}
	}
	return out, db.Translate(err, "webhook deliveries")
}

// refreshHooks reloads the subscribed events after a local change.
func (s *Service) refreshHooks(ctx context.Context) {
	if err := s.hooks.refresh(ctx); err != nil {
		s.log.Warn("webhooks: reload subscriptions", "error", err)
	}
}

// run runs the delivery workers until ctx ends.
func (w *webhooks) run(ctx context.Context) {
	if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("webhooks: load subscriptions", "error", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < w.opt.Workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.work(ctx) }()
	}
	tick := time.NewTicker(w.opt.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("webhooks: reload subscriptions", "error", err)
			}
		}
	}
}

// work is one delivery worker: it sends due deliveries one at a time, and
// sleeps until woken or the next poll when there are none.
func (w *webhooks) work(ctx context.Context) {
	poll := time.NewTicker(w.opt.Poll)
	defer poll.Stop()
	for ctx.Err() == nil {
		sent, err := w.deliverOne(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("webhooks: deliver", "error", err)
		}
		if sent && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-w.kick:
		case <-poll.C:
		}
	}
}

// claimed is a delivery a worker took, with its endpoint.
type claimed struct {
	id, event, url, secret string
	body                   []byte
	attempts               int
}

// deliverOne takes one due delivery (SKIP LOCKED, so instances never take
// the same one), leases it, sends it, and records the outcome. It reports
// whether there was one.
func (w *webhooks) deliverOne(ctx context.Context) (bool, error) {
	now := w.now()
	var d claimed
	err := w.pool.QueryRow(ctx, `WITH due AS (
			SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND w.enabled
			ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $2
		FROM due, webhooks w WHERE d.id = due.id AND w.id = d.webhook_id
		RETURNING d.id, d.event, d.payload::text, d.attempts, w.url, w.secret`,
		now, now.Add(w.opt.Lease)).Scan(&d.id, &d.event, &d.body, &d.attempts, &d.url, &d.secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.Translate(err, "webhook delivery")
	}
	status, sendErr := w.send(ctx, d)
	if ctx.Err() != nil {
		// Shutting down: give the delivery back rather than count a
		// failure the endpoint did not cause.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, err := w.pool.Exec(rctx, `UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = $2
			WHERE id = $1 AND state = 'pending'`, d.id, now)
		return true, db.Translate(err, "webhook delivery")
	}
	done := w.now()
	if sendErr == nil {
		_, err = w.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $2, last_status = $3, last_error = NULL
			WHERE id = $1`, d.id, done, status)
		return true, db.Translate(err, "webhook delivery")
	}
	var st *int
	if status != 0 {
		st = &status
	}
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	state, next := "pending", done.Add(w.backoff(d.attempts))
	if d.attempts >= w.opt.MaxAttempts {
		state = "failed"
		w.log.Warn("webhooks: giving up on a delivery", "delivery_id", d.id, "url", d.url, "attempts", d.attempts, "error", msg)
	}
	_, err = w.pool.Exec(ctx, `UPDATE webhook_deliveries SET state = $2, next_attempt_at = $3, last_status = $4, last_error = $5
		WHERE id = $1`, d.id, state, next, st, msg)
	return true, db.Translate(err, "webhook delivery")
}

// backoff is the wait after the attempts-th failure: BaseBackoff doubled
// per failure, capped at MaxBackoff, with ±20% jitter so that endpoints
// coming back are not hit by every retry at once.
func (w *webhooks) backoff(attempts int) time.Duration {
	d := w.opt.BaseBackoff
	for i := 1; i < attempts && d < w.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opt.MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

// send makes one signed request; any 2xx answer is a success.
func (w *webhooks) send(ctx context.Context, d claimed) (int, error) {
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, strings.NewReader(string(d.body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tandem-Webhooks/1")
	req.Header.Set(HeaderWebhookEvent, d.event)
	req.Header.Set(HeaderWebhookDelivery, d.id)
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, SignWebhook(d.secret, ts, d.body))
	resp, err := w.opt.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
