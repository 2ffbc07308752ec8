package handoff

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// PastConversation is one of a verified customer's conversations, as their
// history lists it.
type PastConversation struct {
	ID        string     `json:"id"`
	State     State      `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	// Current marks the conversation whose token asked.
	Current  bool `json:"current"`
	Messages int  `json:"messages"`
	// Preview is the start of the last message.
	Preview string `json:"preview"`
}

// ConversationByToken returns the conversation a customer token opens.
// Returns Unauthorized.
func (s *Service) ConversationByToken(ctx context.Context, token string) (*Conversation, error) {
	if token == "" {
		return nil, errs.Errorf(errs.Unauthorized, "a conversation token is required")
	}
	id, err := s.store.conversationByToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return s.Conversation(ctx, id)
}

// verifiedCustomer returns the external id of a verified conversation's
// customer. Returns Forbidden when the customer is not verified.
func verifiedCustomer(c *Conversation) (string, error) {
	if !c.Verified || c.Customer.ExternalID == "" {
		return "", errs.Errorf(errs.Forbidden,
			"the customer of this conversation is not verified: start it with customer.external_id and a user_hash to see earlier conversations")
	}
	return c.Customer.ExternalID, nil
}

// History lists the conversations of the verified customer of conv, newest
// first: those started with the same external_id and a valid user_hash,
// never one started without (anyone can claim an external_id, only the
// site can sign it). Returns Forbidden for a customer who is not verified.
func (s *Service) History(ctx context.Context, conv *Conversation, limit int) ([]PastConversation, error) {
	ext, err := verifiedCustomer(conv)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.state, c.created_at, c.updated_at, c.closed_at,
			(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),
			coalesce((SELECT left(m.text, 140) FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1), '')
		FROM conversations c WHERE c.external_id = $1 AND c.verified
		ORDER BY c.created_at DESC, c.id LIMIT $2`, ext, limit)
	if err != nil {
		return nil, db.Translate(err, "conversations")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PastConversation, error) {
		var p PastConversation
		err := r.Scan(&p.ID, &p.State, &p.CreatedAt, &p.UpdatedAt, &p.ClosedAt, &p.Messages, &p.Preview)
		p.Current = p.ID == conv.ID
		return p, err
	})
	if out == nil {
		out = []PastConversation{}
	}
	return out, db.Translate(err, "conversations")
}

// HistoryMessages returns up to limit messages after seq of one of the
// verified customer's conversations (see History). Returns Forbidden for a
// customer who is not verified, NotFound for a conversation that is not
// theirs.
func (s *Service) HistoryMessages(ctx context.Context, conv *Conversation, id string, after int64, limit int) ([]Message, error) {
	ext, err := verifiedCustomer(conv)
	if err != nil {
		return nil, err
	}
	past, err := s.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if !past.Verified || past.Customer.ExternalID != ext {
		return nil, errs.Errorf(errs.NotFound, "conversation not found")
	}
	return s.Messages(ctx, past.ID, after, limit)
}
