package bot

import (
	"context"
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
type Unanswered struct {
	pool *pgxpool.Pool
	emb  retrieval.Embedder
}

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
func NewUnanswered(pool *pgxpool.Pool) *Unanswered {
	return &Unanswered{pool: pool, emb: retrieval.NewLocal()}
}

// Record adds a question (already redacted) to its group, or starts one.
func (u *Unanswered) Record(ctx context.Context, text, reason string, confidence float64, conversationID string) error {
	vecs, err := u.emb.Embed(ctx, []string{text})
	if err != nil {
		return err
	}
	v := pgvector.NewVector(vecs[0])
	var conv *string
	if conversationID != "" {
		conv = &conversationID
	}
	// One round trip: the nearest open group takes the question if it is
	// close enough, else a new group starts. This is a report, not a
	// message anyone was promised: the commit does not wait for the disk
	// (synchronous_commit off), so a crash may lose the last few records
	// but a bot turn does not wait for an fsync (1 to 5 ms here).
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	batch.Queue("SET LOCAL synchronous_commit = off")
	batch.Queue(`WITH near AS (
			SELECT id FROM unanswered
			WHERE resolved_at IS NULL AND embed_model = $2 AND vector_dims(embedding) = $3
				AND 1 - (embedding <=> $1) >= $7
			ORDER BY embedding <=> $1 LIMIT 1
		), grouped AS (
			UPDATE unanswered u SET count = count + 1, last_seen = now(), last_reason = $4,
				last_confidence = $5, conversation_id = coalesce($6, conversation_id),
				examples = CASE WHEN cardinality(examples) < 5 AND NOT ($8 = ANY(examples)) THEN examples || $8 ELSE examples END
			FROM near WHERE u.id = near.id RETURNING u.id
		)
		INSERT INTO unanswered (text, embed_model, embedding, last_reason, last_confidence, conversation_id, examples)
		SELECT $8, $2, $1, $4, $5, $6, ARRAY[$8::text] WHERE NOT EXISTS (SELECT 1 FROM grouped)`,
		v, u.emb.Name(), len(vecs[0]), reason, confidence, conv, sameQuestion, text)
	batch.Queue("COMMIT")
	return db.Translate(u.pool.SendBatch(ctx, batch).Close(), "unanswered")
}

// Report lists open groups, most asked first.
func (u *Unanswered) Report(ctx context.Context, limit int) ([]UnansweredGroup, error) {
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
