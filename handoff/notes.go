package handoff

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Note is a private note on a conversation: agents see it in the
// transcript and on their sockets; the customer never does.
type Note struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	AuthorID       string    `json:"author_id,omitempty"`
	AuthorName     string    `json:"author_name,omitempty"`
	Text           string    `json:"text"`
	CreatedAt      time.Time `json:"created_at"`
}

// AddNote stores a private note. Returns NotFound or Invalid.
func (s *Service) AddNote(ctx context.Context, actor Actor, convID, text string) (*Note, error) {
	text, err := validNote(text, false)
	if err != nil {
		return nil, err
	}
	var n *Note
	_, err = s.inTx(ctx, convID, func(tx pgx.Tx, conv *Conversation, out *outbox) error {
		n, err = s.store.insertNote(ctx, tx, conv.ID, actor.ID, text)
		if err != nil {
			return err
		}
		out.to(StaffTopic(conv.ID), Event{Type: EventNote, ConversationID: conv.ID, Data: rawJSON(n)})
		return s.store.insertAudit(ctx, tx, actor, "conversation.note", "conversation", conv.ID, map[string]any{"note_id": n.ID})
	})
	return n, err
}

func (s *store) insertNote(ctx context.Context, tx pgx.Tx, convID, authorID, text string) (*Note, error) {
	n := &Note{ConversationID: convID, AuthorID: authorID, Text: text, CreatedAt: s.now()}
	var author *string
	if authorID != "" {
		author = &authorID
	}
	if err := tx.QueryRow(ctx, `INSERT INTO conversation_notes (conversation_id, author_id, text, created_at)
		VALUES ($1, $2, $3, $4) RETURNING id, coalesce((SELECT display_name FROM users WHERE id = $2), '')`,
		convID, author, text, n.CreatedAt).Scan(&n.ID, &n.AuthorName); err != nil {
		return nil, db.Translate(err, "note")
	}
	return n, nil
}

// Notes lists a conversation's private notes, oldest first.
func (s *Service) Notes(ctx context.Context, convID string) ([]Note, error) {
	if !db.ValidID(convID) {
		return nil, errs.Errorf(errs.NotFound, "conversation not found")
	}
	rows, err := s.pool.Query(ctx, `SELECT n.id, n.conversation_id, coalesce(n.author_id::text, ''), coalesce(u.display_name, ''),
		n.text, n.created_at FROM conversation_notes n LEFT JOIN users u ON u.id = n.author_id
		WHERE n.conversation_id = $1 ORDER BY n.created_at, n.id`, convID)
	if err != nil {
		return nil, db.Translate(err, "notes")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Note, error) {
		var n Note
		err := r.Scan(&n.ID, &n.ConversationID, &n.AuthorID, &n.AuthorName, &n.Text, &n.CreatedAt)
		return n, err
	})
	if out == nil {
		out = []Note{}
	}
	return out, db.Translate(err, "notes")
}
