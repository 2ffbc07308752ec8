package handoff

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// conversationColumns is the select list scanned by scanConversation.
const conversationColumns = `id, state, customer, verified, coalesce(team, ''), priority,
	coalesce(reason, ''), coalesce(assigned_to::text, ''),
	coalesce((SELECT display_name FROM users WHERE users.id = assigned_to), ''), coalesce(resolution, ''), csat_pending,
	last_seq, created_at, updated_at, queued_at, assigned_at, closed_at, answered_at`

func scanConversation(row pgx.Row) (*Conversation, error) {
	var c Conversation
	var customer []byte
	err := row.Scan(&c.ID, &c.State, &customer, &c.Verified, &c.Team, &c.Priority,
		&c.Reason, &c.AssignedTo, &c.AssigneeName, &c.Resolution, &c.CSATPending,
		&c.LastSeq, &c.CreatedAt, &c.UpdatedAt, &c.QueuedAt, &c.AssignedAt, &c.ClosedAt, &c.answeredAt)
	if err != nil {
		return nil, db.Translate(err, "conversation")
	}
	if len(customer) > 0 {
		if err := json.Unmarshal(customer, &c.Customer); err != nil {
			return nil, fmt.Errorf("handoff: customer of %s: %w", c.ID, err)
		}
	}
	return &c, nil
}

const messageColumns = `m.id, m.conversation_id, m.seq, m.role, coalesce(m.author_id::text, ''),
	coalesce(u.display_name, ''), m.text, coalesce(m.client_msg_id, ''), m.created_at, m.meta, m.attachments`

const messageFrom = `messages m LEFT JOIN users u ON u.id = m.author_id`

func scanMessage(row pgx.Row) (*Message, error) {
	var m Message
	var meta, atts []byte
	if err := row.Scan(&m.ID, &m.ConversationID, &m.Seq, &m.Role, &m.AuthorID, &m.AuthorName,
		&m.Text, &m.ClientMsgID, &m.CreatedAt, &meta, &atts); err != nil {
		return nil, db.Translate(err, "message")
	}
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &m.Meta); err != nil {
			return nil, fmt.Errorf("handoff: meta of message %s: %w", m.ID, err)
		}
	}
	if len(atts) > 2 {
		if err := json.Unmarshal(atts, &m.Attachments); err != nil {
			return nil, fmt.Errorf("handoff: attachments of message %s: %w", m.ID, err)
		}
	}
	return &m, nil
}

// newToken returns a random customer token and the hash that is stored.
func newToken() (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// store is the SQL behind Service.
type store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

func (s *store) createConversation(ctx context.Context, cust Customer, verified bool) (*Conversation, string, error) {
	id := uuid.NewString()
	token, hash := newToken()
	custJSON, err := json.Marshal(cust)
	if err != nil {
		return nil, "", errs.Errorf(errs.Invalid, "customer is not valid JSON")
	}
	var ext *string
	if cust.ExternalID != "" {
		ext = &cust.ExternalID
	}
	now := s.now()
	row := s.pool.QueryRow(ctx, `INSERT INTO conversations (id, token_hash, state, customer, external_id, verified, created_at, updated_at)
		VALUES ($1, $2, 'bot', $3, $4, $5, $6, $6) RETURNING `+conversationColumns,
		id, hash, custJSON, ext, verified, now)
	c, err := scanConversation(row)
	if err != nil {
		return nil, "", fmt.Errorf("handoff: create conversation: %w", err)
	}
	return c, token, nil
}

func (s *store) conversation(ctx context.Context, q db.Querier, id string) (*Conversation, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "conversation not found")
	}
	return scanConversation(q.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE id = $1`, id))
}

func (s *store) lockConversation(ctx context.Context, tx pgx.Tx, id string) (*Conversation, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "conversation not found")
	}
	return scanConversation(tx.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE id = $1 FOR UPDATE`, id))
}

// conversationByToken finds the conversation a customer token opens.
func (s *store) conversationByToken(ctx context.Context, token string) (string, error) {
	var id string
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT id, token_hash FROM conversations WHERE token_hash = $1`, hashToken(token)).Scan(&id, &hash)
	if err != nil {
		if err == pgx.ErrNoRows {
			return "", errs.Errorf(errs.Unauthorized, "the token is not valid")
		}
		return "", db.Translate(err, "conversation")
	}
	if subtle.ConstantTimeCompare(hash, hashToken(token)) != 1 {
		return "", errs.Errorf(errs.Unauthorized, "the token is not valid")
	}
	return id, nil
}

// nextSeq bumps the conversation's counter; the caller holds the row lock.
func (s *store) nextSeq(ctx context.Context, tx pgx.Tx, id string) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2
		WHERE id = $1 RETURNING last_seq`, id, s.now()).Scan(&seq)
	return seq, db.Translate(err, "conversation")
}

func (s *store) messageByClientID(ctx context.Context, tx pgx.Tx, convID, clientMsgID string) (*Message, error) {
	return scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+` FROM `+messageFrom+`
		WHERE m.conversation_id = $1 AND m.client_msg_id = $2`, convID, clientMsgID))
}

func (s *store) insertMessage(ctx context.Context, tx pgx.Tx, m *Message) error {
	seq, err := s.nextSeq(ctx, tx, m.ConversationID)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return err
	}
	atts := []byte("[]")
	if len(m.Attachments) > 0 {
		if atts, err = json.Marshal(m.Attachments); err != nil {
			return err
		}
	}
	var author, client *string
	if m.AuthorID != "" {
		author = &m.AuthorID
	}
	if m.ClientMsgID != "" {
		client = &m.ClientMsgID
	}
	m.Seq = seq
	// PostgreSQL keeps microseconds: the message sent live (socket,
	// webhook) reads the same as the one read back.
	m.CreatedAt = s.now().Truncate(time.Microsecond)
	err = tx.QueryRow(ctx, `INSERT INTO messages (conversation_id, seq, role, author_id, text, meta, client_msg_id, created_at, attachments)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		m.ConversationID, seq, m.Role, author, m.Text, meta, client, m.CreatedAt, atts).Scan(&m.ID)
	if err != nil {
		return db.Translate(err, "message")
	}
	if len(m.Attachments) > 0 {
		ids := make([]string, len(m.Attachments))
		for i, a := range m.Attachments {
			ids[i] = a.ID
		}
		if _, err := tx.Exec(ctx, `UPDATE attachments SET message_id = $1 WHERE id = ANY($2)`, m.ID, ids); err != nil {
			return db.Translate(err, "attachments")
		}
	}
	if m.AuthorID != "" && m.AuthorName == "" {
		_ = tx.QueryRow(ctx, `SELECT display_name FROM users WHERE id = $1`, m.AuthorID).Scan(&m.AuthorName)
	}
	return nil
}

// insertIfBot stores m with the conversation's next seq, in one statement
// that commits on its own, if the bot still holds the conversation; it
// reports whether it did. The UPDATE waits for any lock on the row and
// checks the state again on the row as it is then.
func (s *store) insertIfBot(ctx context.Context, m *Message) (bool, error) {
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return false, err
	}
	m.CreatedAt = s.now().Truncate(time.Microsecond) // as stored
	err = s.pool.QueryRow(ctx, `WITH c AS (
			UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2
			WHERE id = $1 AND state = 'bot' RETURNING last_seq)
		INSERT INTO messages (conversation_id, seq, role, text, meta, created_at)
		SELECT $1, c.last_seq, $3, $4, $5, $2 FROM c RETURNING id, seq`,
		m.ConversationID, m.CreatedAt, m.Role, m.Text, meta).Scan(&m.ID, &m.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.Translate(err, "message")
	}
	return true, nil
}

// insertEvent records a transcript event (a state change and the like).
func (s *store) insertEvent(ctx context.Context, tx pgx.Tx, ev *Event, actorID, actorRole string) error {
	seq, err := s.nextSeq(ctx, tx, ev.ConversationID)
	if err != nil {
		return err
	}
	return s.insertEventAt(ctx, tx, ev, seq, actorID, actorRole)
}

// insertEventAt records a transcript event with a seq the caller already
// took from the conversation's counter.
func (s *store) insertEventAt(ctx context.Context, tx pgx.Tx, ev *Event, seq int64, actorID, actorRole string) error {
	ev.Seq = seq
	now := s.now()
	ev.CreatedAt = &now
	var actor *string
	if actorID != "" {
		actor = &actorID
	}
	data := []byte(ev.Data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if ev.State != "" {
		// The state lives in the data too, so the stored row is whole.
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		if m == nil {
			m = map[string]any{}
		}
		m["state"] = ev.State
		data, _ = json.Marshal(m)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO conversation_events (conversation_id, seq, type, actor_id, actor_role, data, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, ev.ConversationID, seq, ev.Type, actor, actorRole, data, now); err != nil {
		return db.Translate(err, "event")
	}
	return nil
}

// collectMessages scans every row of a message query.
func collectMessages(rows pgx.Rows, err error) ([]Message, error) {
	if err != nil {
		return nil, db.Translate(err, "messages")
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, db.Translate(rows.Err(), "messages")
}

func (s *store) messages(ctx context.Context, convID string, after int64, limit int) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+messageColumns+` FROM `+messageFrom+`
		WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`, convID, after, limit)
	return collectMessages(rows, err)
}

// lastMessages returns the newest n messages, oldest first.
func (s *store) lastMessages(ctx context.Context, convID string, n int) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM (SELECT `+messageColumns+` FROM `+messageFrom+`
		WHERE m.conversation_id = $1 ORDER BY m.seq DESC LIMIT $2) t ORDER BY seq`, convID, n)
	return collectMessages(rows, err)
}

// turnContext reads what a bot turn starts from, the conversation and its
// newest n messages (oldest first), in one round trip.
func (s *store) turnContext(ctx context.Context, convID string, n int) (*Conversation, []Message, error) {
	if !db.ValidID(convID) {
		return nil, nil, errs.Errorf(errs.NotFound, "conversation not found")
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+conversationColumns+` FROM conversations WHERE id = $1`, convID)
	b.Queue(`SELECT * FROM (SELECT `+messageColumns+` FROM `+messageFrom+`
		WHERE m.conversation_id = $1 ORDER BY m.seq DESC LIMIT $2) t ORDER BY seq`, convID, n)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	conv, err := scanConversation(br.QueryRow())
	if err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	history, err := collectMessages(rows, err)
	if err != nil {
		return nil, nil, err
	}
	return conv, history, br.Close()
}

func (s *store) messageBySeq(ctx context.Context, convID string, seq int64) (*Message, error) {
	return scanMessage(s.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM `+messageFrom+`
		WHERE m.conversation_id = $1 AND m.seq = $2`, convID, seq))
}

// replay returns every stored event after seq (messages and transcript
// events) in seq order, at most limit of them.
func (s *store) replay(ctx context.Context, convID string, after int64, limit int) ([]Event, error) {
	msgs, err := s.messages(ctx, convID, after, limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, type, data, created_at FROM conversation_events
		WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, convID, after, limit)
	if err != nil {
		return nil, db.Translate(err, "events")
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var ev Event
		var data []byte
		var at time.Time
		if err := rows.Scan(&ev.Seq, &ev.Type, &data, &at); err != nil {
			return nil, err
		}
		ev.ConversationID = convID
		ev.CreatedAt = &at
		ev.Data = data
		var st struct {
			State State `json:"state"`
		}
		_ = json.Unmarshal(data, &st)
		ev.State = st.State
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "events")
	}
	out := make([]Event, 0, len(msgs)+len(evs))
	i, j := 0, 0
	for i < len(msgs) || j < len(evs) {
		if j >= len(evs) || (i < len(msgs) && msgs[i].Seq < evs[j].Seq) {
			m := msgs[i]
			out = append(out, Event{Type: EventMessage, ConversationID: convID, Seq: m.Seq, Message: &m})
			i++
		} else {
			out = append(out, evs[j])
			j++
		}
	}
	// Both lists were cut at limit; keep only the part that is complete.
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
