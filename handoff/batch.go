package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/metrics"
)

// Customers' messages are stored in batches: while up to batchLeaders
// statements are in flight, the messages that arrive wait and go together
// in the next one, one statement and one commit for messages of many
// conversations (group commit). The statement is the whole of the common
// case (store_customer_messages, migration 0013): lock the conversations
// (in id order, so concurrent batches cannot deadlock), leave out
// client_msg_ids already stored, take each message's seq from its
// conversation's counter, and insert. A message it does not
// store (a closed conversation reopens, a repeated client_msg_id answers
// with the first message, an unknown conversation is not found; or the
// batch failed) takes the one-message path, which handles every case. A
// message is acknowledged only once the statement that stored it has
// committed.
const (
	batchLeaders = 4   // statements in flight at once
	batchMax     = 256 // messages per statement
)

// batchSQL stores the batch $1 (conversation ids), $2 (texts), $3
// (client_msg_ids, empty for none) at $4 with meta $5, and returns one row per
// message stored (migration 0013 has the statement).
const batchSQL = `SELECT id, conversation_id::text, seq, client, state FROM store_customer_messages($1, $2, $3, $4, $5)`

// batchedPost is one customer message waiting for its batch.
type batchedPost struct {
	convID, text, clientMsgID string
	done                      chan struct{}
	// Set before done closes: the stored message and the conversation's
	// state, or stored false for the one-message path.
	stored bool
	msg    Message
	state  State
}

// batcher gathers customers' messages into statements.
type batcher struct {
	mu      sync.Mutex
	pending []*batchedPost
	leaders int
}

// postCustomer stores a customer's message through a batch. It reports
// false when the message must take the one-message path instead. busy says
// a bot turn of the conversation was running here when the message came.
func (s *Service) postCustomer(convID, text, clientMsgID string, busy bool) (*Message, State, bool) {
	// Rows name conversations in lower case; anything else goes the
	// other way, so that every stored message finds its caller.
	if !db.ValidID(convID) || strings.ToLower(convID) != convID {
		return nil, "", false
	}
	// A conversation whose bot turn runs here is about to be locked by
	// the turn's reply; in a batch, waiting for that lock would hold up
	// every other message of the batch, so it waits on its own. (The
	// message's own early turn does not count: its reply waits for this
	// message.)
	if busy {
		return nil, "", false
	}
	p := &batchedPost{convID: convID, text: text, clientMsgID: clientMsgID, done: make(chan struct{})}
	b := &s.batch
	b.mu.Lock()
	b.pending = append(b.pending, p)
	lead := b.leaders < batchLeaders
	if lead {
		b.leaders++
	}
	b.mu.Unlock()
	if lead {
		s.leadBatch()
	}
	<-p.done
	if !p.stored {
		return nil, "", false
	}
	return &p.msg, p.state, true
}

// leadBatch stores the waiting messages, then hands the lead to a new
// goroutine if more have come, so no caller waits for others' batches
// after its own.
func (s *Service) leadBatch() {
	b := &s.batch
	b.mu.Lock()
	n := min(len(b.pending), batchMax)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	b.mu.Unlock()
	if n > 0 {
		s.storeBatch(batch)
	}
	b.mu.Lock()
	more := len(b.pending) > 0
	if !more {
		b.leaders--
	}
	b.mu.Unlock()
	if more {
		go s.leadBatch()
	}
}

// storeBatch runs batchSQL for batch and tells each message its outcome.
func (s *Service) storeBatch(batch []*batchedPost) {
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	// The same client_msg_id twice in one batch: the second waits for the
	// first's commit on the one-message path and finds it there.
	type key struct{ conv, client string }
	seen := make(map[key]bool, len(batch))
	run := batch[:0:0]
	for _, p := range batch {
		if p.clientMsgID != "" {
			k := key{p.convID, p.clientMsgID}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		run = append(run, p)
	}
	// Ids go as UUIDs: as strings pgx tried the binary format on every
	// call, failed and fell back to text (13% of an instance's CPU at
	// 1,000 messages/s, in pgtype's PlanEncode and its error).
	convs := make([]pgtype.UUID, len(run))
	texts := make([]string, len(run))
	clients := make([]string, len(run))
	for i, p := range run {
		convs[i] = pgtype.UUID{Bytes: uuid.MustParse(p.convID), Valid: true}
		texts[i], clients[i] = p.text, p.clientMsgID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// PostgreSQL keeps microseconds: the acknowledged message reads the
	// same as the stored one (GET, replay, webhooks).
	now := s.store.now().Truncate(time.Microsecond)
	meta, _ := json.Marshal(Meta{})
	var got []storedRow
	var err error
	for try := 0; try < 3; try++ {
		got, err = s.runBatch(ctx, convs, texts, clients, now, meta)
		// A client_msg_id that another instance (or an earlier batch)
		// committed after this statement's snapshot shows up as a unique
		// violation; the row lock has waited for it, so a second run sees
		// it and leaves it out.
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || (pe.Code != "23505" && pe.Code != "40P01") {
			break
		}
	}
	if err != nil {
		s.log.Warn("handoff: message batch failed; storing one by one", "messages", len(run), "error", err)
		return
	}
	metrics.MessageBatch.Observe(float64(len(got)))
	// Rows come by conversation and seq; a conversation's messages got
	// their seqs in batch order, those with a client_msg_id found by it.
	byClient := map[key]storedRow{}
	anon := map[string][]storedRow{}
	for _, r := range got {
		if r.client != "" {
			byClient[key{r.conv, r.client}] = r
		} else {
			anon[r.conv] = append(anon[r.conv], r)
		}
	}
	for _, p := range run {
		var r storedRow
		if p.clientMsgID != "" {
			var ok bool
			if r, ok = byClient[key{p.convID, p.clientMsgID}]; !ok {
				continue
			}
		} else {
			q := anon[p.convID]
			if len(q) == 0 {
				continue
			}
			r, anon[p.convID] = q[0], q[1:]
		}
		p.stored, p.state = true, r.state
		p.msg = Message{ID: r.id, ConversationID: p.convID, Seq: r.seq, Role: RoleCustomer,
			Text: p.text, ClientMsgID: p.clientMsgID, CreatedAt: now}
	}
}

// storedRow is one message a batch stored.
type storedRow struct {
	id, conv, client string
	seq              int64
	state            State
}

// runBatch runs batchSQL once; the rows count only when err is nil, which
// means the statement committed.
func (s *Service) runBatch(ctx context.Context, convs []pgtype.UUID, texts, clients []string, now time.Time, meta []byte) ([]storedRow, error) {
	if s.hooks.subscribed(HookMessage) {
		return s.runBatchHooked(ctx, convs, texts, clients, now, meta)
	}
	rows, err := s.pool.Query(ctx, batchSQL, convs, texts, clients, now, meta)
	if err != nil {
		return nil, err
	}
	return scanStored(rows)
}

func scanStored(rows pgx.Rows) ([]storedRow, error) {
	defer rows.Close()
	var got []storedRow
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.id, &r.conv, &r.seq, &r.client, &r.state); err != nil {
			return nil, err
		}
		got = append(got, r)
	}
	// An error of the statement or its commit comes with the end of the rows.
	return got, rows.Err()
}

// runBatchHooked is runBatch when some webhook wants message.created: the
// batch and its deliveries commit together (three more round trips per
// batch, none per message), each delivery carrying the message as the API
// reads it back.
func (s *Service) runBatchHooked(ctx context.Context, convs []pgtype.UUID, texts, clients []string, now time.Time, meta []byte) ([]storedRow, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, batchSQL, convs, texts, clients, now, meta)
	if err != nil {
		return nil, err
	}
	got, err := scanStored(rows)
	if err != nil || len(got) == 0 {
		return got, err
	}
	ids := make([]string, len(got))
	for i, r := range got {
		ids[i] = r.id
	}
	msgs, err := collectMessages(tx.Query(ctx, `SELECT `+messageColumns+` FROM `+messageFrom+` WHERE m.id = ANY($1::uuid[])`, ids))
	if err != nil {
		return nil, err
	}
	convIDs := make([]string, len(msgs))
	data := make([]any, len(msgs))
	for i := range msgs {
		convIDs[i], data[i] = msgs[i].ConversationID, map[string]any{"message": &msgs[i]}
	}
	queued, err := s.hookMany(ctx, tx, HookMessage, convIDs, data)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if queued {
		s.hooks.wake()
	}
	return got, nil
}
