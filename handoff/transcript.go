package handoff

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
)

// Transcript is everything about a conversation, for agents: the handoff
// packet, the customer, every message, every event with who did it, the
// private notes and the satisfaction scores.
type Transcript struct {
	Conversation Conversation      `json:"conversation"`
	Customer     Customer          `json:"customer"`
	Handoff      *Packet           `json:"handoff"`
	Messages     []Message         `json:"messages"`
	Events       []TranscriptEvent `json:"events"`
	Notes        []Note            `json:"notes"`
	CSAT         []CSAT            `json:"csat"`
}

// TranscriptEvent is a stored event with its actor.
type TranscriptEvent struct {
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	State     State           `json:"state,omitempty"`
	ActorID   string          `json:"actor_id,omitempty"`
	ActorRole string          `json:"actor_role"`
	ActorName string          `json:"actor_name,omitempty"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// Transcript returns a conversation's whole transcript (up to 5,000
// messages). Returns NotFound.
func (s *Service) Transcript(ctx context.Context, convID string) (*Transcript, error) {
	conv, err := s.store.conversation(ctx, s.pool, convID)
	if err != nil {
		return nil, err
	}
	t := &Transcript{Conversation: *conv, Customer: conv.Customer}
	var packet []byte
	if err := s.pool.QueryRow(ctx, `SELECT escalation FROM conversations WHERE id = $1`, convID).Scan(&packet); err != nil {
		return nil, db.Translate(err, "conversation")
	}
	if len(packet) > 0 {
		t.Handoff = &Packet{}
		if err := json.Unmarshal(packet, t.Handoff); err != nil {
			return nil, err
		}
		t.Handoff.Customer, t.Handoff.Verified = conv.Customer, conv.Verified
	}
	if t.Messages, err = s.store.messages(ctx, convID, 0, 5000); err != nil {
		return nil, err
	}
	if t.Messages == nil {
		t.Messages = []Message{}
	}
	rows, err := s.pool.Query(ctx, `SELECT e.seq, e.type, coalesce(e.data->>'state', ''), coalesce(e.actor_id::text, ''),
		e.actor_role, coalesce(u.display_name, ''), e.data, e.created_at
		FROM conversation_events e LEFT JOIN users u ON u.id = e.actor_id
		WHERE e.conversation_id = $1 ORDER BY e.seq`, convID)
	if err != nil {
		return nil, db.Translate(err, "events")
	}
	t.Events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TranscriptEvent, error) {
		var e TranscriptEvent
		err := r.Scan(&e.Seq, &e.Type, &e.State, &e.ActorID, &e.ActorRole, &e.ActorName, &e.Data, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, db.Translate(err, "events")
	}
	if t.Events == nil {
		t.Events = []TranscriptEvent{}
	}
	if t.Notes, err = s.Notes(ctx, convID); err != nil {
		return nil, err
	}
	if t.CSAT, err = s.CSATs(ctx, convID); err != nil {
		return nil, err
	}
	return t, nil
}
