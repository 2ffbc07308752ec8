package bot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/tandem-chat/tandem/internal/audit"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/retrieval"
)

// sameQuestion is the cosine similarity above which two unanswered
// questions count as one.
const sameQuestion = 0.8

// Unanswered records the questions the bot escalated or could not answer,
// grouping near-duplicates, for the editors' report.
//
// Recording is off the bot turn's path: Record queues the question and
// one writer at a time stores what is queued, identical questions
// together, in one transaction. Recorded inline, every turn that did not
// answer waited for the near-duplicate lookup, and in a burst of customers
// asking the same thing each waited for the one before it, as all of them
// updated the same row. Report first waits for what this process queued
// before the call, so an editor who just asked the bot sees the question.
type Unanswered struct {
	pool *pgxpool.Pool
	emb  retrieval.Embedder
	log  *slog.Logger

	mu      sync.Mutex
	done    *sync.Cond // signalled whenever written grows
	pending []question
	writing bool  // a writer is storing pending
	queued  int64 // questions queued so far
	written int64 // of which stored (or given up on)
}

// question is one recorded turn, waiting to be stored.
type question struct {
	text, reason, conversationID string
	confidence                   float64
}

// maxPending bounds the queue: past it Record stores on the caller's time,
// so a database that cannot keep up slows turns down instead of growing
// memory without end.
const maxPending = 4096

// UnansweredGroup is one entry of the report.
type UnansweredGroup struct {
	ID             string    `json:"id"`
	Text           string    `json:"text"`
	Count          int       `json:"count"`
	Examples       []string  `json:"examples"`
	LastReason     string    `json:"last_reason"`
	LastConfidence float64   `json:"last_confidence"`
	ConversationID string    `json:"conversation_id,omitempty"`
	FirstSeen      time.Time `json:"first_seen"`
	LastSeen       time.Time `json:"last_seen"`
}

// NewUnanswered returns a recorder; it embeds with the local embedder so
// grouping works the same whatever model answers.
func NewUnanswered(pool *pgxpool.Pool, log *slog.Logger) *Unanswered {
	if log == nil {
		log = slog.Default()
	}
	u := &Unanswered{pool: pool, emb: retrieval.NewLocal(), log: log}
	u.done = sync.NewCond(&u.mu)
	return u
}

// Record adds a question (already redacted) to its group, or starts one.
// It returns once the question is queued; an error means it could not be
// stored (only when the queue was full and the caller stored it).
func (u *Unanswered) Record(ctx context.Context, text, reason string, confidence float64, conversationID string) error {
	q := question{text: text, reason: reason, confidence: confidence, conversationID: conversationID}
	u.mu.Lock()
	if len(u.pending) >= maxPending {
		u.mu.Unlock()
		return u.store(ctx, []question{q})
	}
	u.pending = append(u.pending, q)
	u.queued++
	start := !u.writing
	u.writing = true
	u.mu.Unlock()
	if start {
		go u.drain()
	}
	return nil
}

// drain stores what is queued until nothing is; one runs at a time.
func (u *Unanswered) drain() {
	for {
		u.mu.Lock()
		batch := u.pending
		u.pending = nil
		if len(batch) == 0 {
			u.writing = false
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := u.store(ctx, batch); err != nil {
			u.log.Warn("bot: record unanswered questions", "questions", len(batch), "error", err)
		}
		cancel()
		u.mu.Lock()
		u.written += int64(len(batch))
		u.done.Broadcast()
		u.mu.Unlock()
	}
}

// Flush waits until every question queued before the call is stored (or
// was given up on).
func (u *Unanswered) Flush() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for target := u.queued; u.written < target; {
		u.done.Wait()
	}
}

// store writes batch in one transaction and one round trip: identical
// questions count once each time they were asked, and each distinct one
// joins the nearest open group if it is close enough (groups started
// earlier in the same batch included), else starts one. This is a
// report, not a message anyone was promised: the commit does not wait for
// the disk (synchronous_commit off), so a crash may lose the last few.
func (u *Unanswered) store(ctx context.Context, batch []question) error {
	type group struct {
		question
		n int
	}
	var order []*group
	byText := make(map[string]*group, len(batch))
	for _, q := range batch {
		g := byText[q.text]
		if g == nil {
			g = &group{question: q}
			byText[q.text] = g
			order = append(order, g)
		}
		g.n++
		// The latest turn's reason, confidence and conversation stand for
		// the group, as when they were stored one by one.
		conv := g.conversationID
		g.question = q
		if q.conversationID == "" {
			g.conversationID = conv
		}
	}
	texts := make([]string, len(order))
	for i, g := range order {
		texts[i] = g.text
	}
	vecs, err := u.emb.Embed(ctx, texts)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	// The nearest open group comes from unanswered_open_nearest_idx
	// (migration 0015), which the planner would pass over for a small
	// table; its expression and conditions are written as in the index.
	b.Queue("SET LOCAL enable_seqscan = off")
	for i, g := range order {
		var conv *string
		if g.conversationID != "" {
			conv = &g.conversationID
		}
		b.Queue(fmt.Sprintf(`WITH near AS (
				SELECT id FROM unanswered
				WHERE resolved_at IS NULL AND vector_dims(embedding) = %[1]d AND embed_model = $2
					AND 1 - ((embedding::vector(%[1]d)) <=> $1::vector(%[1]d)) >= $6
				ORDER BY (embedding::vector(%[1]d)) <=> $1::vector(%[1]d) LIMIT 1
			), grouped AS (
				UPDATE unanswered u SET count = count + $8, last_seen = now(), last_reason = $3,
					last_confidence = $4, conversation_id = coalesce($5, conversation_id),
					examples = CASE WHEN cardinality(examples) < 5 AND NOT ($7 = ANY(examples)) THEN examples || $7 ELSE examples END
				FROM near WHERE u.id = near.id RETURNING u.id
			)
			INSERT INTO unanswered (text, embed_model, embedding, last_reason, last_confidence, conversation_id, examples, count)
			SELECT $7, $2, $1, $3, $4, $5, ARRAY[$7::text], $8 WHERE NOT EXISTS (SELECT 1 FROM grouped)`, len(vecs[i])),
			pgvector.NewVector(vecs[i]), u.emb.Name(), g.reason, g.confidence, conv, sameQuestion, g.text, g.n)
	}
	b.Queue("COMMIT")
	return db.Translate(u.pool.SendBatch(ctx, b).Close(), "unanswered")
}

// Report lists open groups, most asked first.
func (u *Unanswered) Report(ctx context.Context, limit int) ([]UnansweredGroup, error) {
	u.Flush()
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := u.pool.Query(ctx, `SELECT id, text, count, examples, last_reason, last_confidence,
		coalesce(conversation_id::text, ''), first_seen, last_seen FROM unanswered
		WHERE resolved_at IS NULL ORDER BY count DESC, last_seen DESC LIMIT $1`, limit)
	if err != nil {
		return nil, db.Translate(err, "unanswered")
	}
	defer rows.Close()
	out := []UnansweredGroup{}
	for rows.Next() {
		var g UnansweredGroup
		if err := rows.Scan(&g.ID, &g.Text, &g.Count, &g.Examples, &g.LastReason, &g.LastConfidence,
			&g.ConversationID, &g.FirstSeen, &g.LastSeen); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, db.Translate(rows.Err(), "unanswered")
}

// Resolve closes a group (say, after an editor added it as a FAQ).
// Returns NotFound.
func (u *Unanswered) Resolve(ctx context.Context, id string) error {
	if !db.ValidID(id) {
		return errNotFound("unanswered question")
	}
	tx, err := u.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "unanswered")
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE unanswered SET resolved_at = now() WHERE id = $1 AND resolved_at IS NULL`, id)
	if err != nil {
		return db.Translate(err, "unanswered")
	}
	if tag.RowsAffected() == 0 {
		return errNotFound("unanswered question")
	}
	if err := audit.Write(ctx, tx, time.Time{}, audit.ActorOf(ctx), "unanswered.resolve", "unanswered", id, nil); err != nil {
		return err
	}
	return db.Translate(tx.Commit(ctx), "unanswered")
}
