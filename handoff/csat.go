package handoff

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// CSAT is a customer's satisfaction score for a closed conversation.
type CSAT struct {
	ConversationID string    `json:"conversation_id"`
	AgentID        string    `json:"agent_id,omitempty"`
	Score          int       `json:"score"`
	Comment        string    `json:"comment,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// SubmitCSAT stores the customer's answer to the csat.request sent on
// close: a score from 1 to 5 and an optional comment, once per close.
// Returns Invalid, NotFound, or Conflict when no request is open (the
// conversation is not closed, or was already scored).
func (s *Service) SubmitCSAT(ctx context.Context, convID string, score int, comment string) (*CSAT, error) {
	if score < 1 || score > 5 {
		return nil, errs.Errorf(errs.Invalid, "score must be a whole number from 1 to 5")
	}
	comment = strings.TrimSpace(comment)
	if !utf8.ValidString(comment) || utf8.RuneCountInString(comment) > 2000 {
		return nil, errs.Errorf(errs.Invalid, "comment must be valid text of at most 2000 characters")
	}
	var c *CSAT
	_, err := s.inTx(ctx, convID, func(tx pgx.Tx, conv *Conversation, out *outbox) error {
		var pending bool
		if err := tx.QueryRow(ctx, `SELECT csat_pending FROM conversations WHERE id = $1`, conv.ID).Scan(&pending); err != nil {
			return db.Translate(err, "conversation")
		}
		if conv.State != StateClosed || !pending {
			return errs.Errorf(errs.Conflict, "there is no open satisfaction survey for this conversation")
		}
		c = &CSAT{ConversationID: conv.ID, AgentID: conv.AssignedTo, Score: score, Comment: comment, CreatedAt: s.opt.Now()}
		var agent *string
		if c.AgentID != "" {
			agent = &c.AgentID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO csat_responses (conversation_id, agent_id, score, comment, created_at)
			VALUES ($1, $2, $3, $4, $5)`, conv.ID, agent, score, comment, c.CreatedAt); err != nil {
			return db.Translate(err, "csat")
		}
		if _, err := tx.Exec(ctx, `UPDATE conversations SET csat_pending = false WHERE id = $1`, conv.ID); err != nil {
			return db.Translate(err, "conversation")
		}
		ev := &Event{Type: EventCSAT, ConversationID: conv.ID, Data: rawJSON(map[string]any{"score": score, "comment": comment})}
		if err := s.store.insertEvent(ctx, tx, ev, "", RoleCustomer); err != nil {
			return err
		}
		out.add(*ev)
		if err := s.hook(ctx, tx, HookCSAT, conv.ID, map[string]any{"csat": c}, out); err != nil {
			return err
		}
		return s.store.insertAudit(ctx, tx, customerActor, "conversation.csat", "conversation", conv.ID,
			map[string]any{"score": score, "agent_id": c.AgentID})
	})
	return c, err
}

// CSATs lists a conversation's satisfaction scores, oldest first.
func (s *Service) CSATs(ctx context.Context, convID string) ([]CSAT, error) {
	rows, err := s.pool.Query(ctx, `SELECT conversation_id, coalesce(agent_id::text, ''), score, comment, created_at
		FROM csat_responses WHERE conversation_id = $1 ORDER BY created_at, id`, convID)
	if err != nil {
		return nil, db.Translate(err, "csat")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CSAT, error) {
		var c CSAT
		err := r.Scan(&c.ConversationID, &c.AgentID, &c.Score, &c.Comment, &c.CreatedAt)
		return c, err
	})
	if out == nil {
		out = []CSAT{}
	}
	return out, db.Translate(err, "csat")
}
