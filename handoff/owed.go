package handoff

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/metrics"
)

// Unanswered turns. A customer's message to the bot is acknowledged once it
// is stored; its answer comes from a bot turn that runs afterwards on the
// instance that stored it. If that instance stops first, or the client
// never saw the acknowledgement and resent the message (which returns the
// stored copy and starts nothing), the customer would wait forever. So
// every instance sweeps for conversations the bot holds whose last event is
// a customer's message older than TurnGrace, and runs their turn. Nothing
// is written for this on the message's path.

// turnLookback bounds how old an unanswered message may be for the sweep
// to still answer it, on an instance's first sweep (after every instance
// was down, say): a customer gone for longer is not written to out of the
// blue. Later sweeps look at the messages that came due since the one
// before, twice over.
const turnLookback = time.Hour

// sweepTurns runs unanswered turns, until ctx ends.
func (s *Service) sweepTurns(ctx context.Context) {
	period := min(max(s.opt.TurnGrace/4, 200*time.Millisecond), 30*time.Second)
	lookback := turnLookback
	every(ctx, period, false, func() {
		n, err := s.SweepTurns(ctx, lookback)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("handoff: sweep of unanswered turns", "error", err)
			return // the same window again next time
		case n > 0:
			s.log.Warn("handoff: ran bot turns left unanswered (an instance stopped, or an acknowledgement was lost)", "turns", n)
		}
		lookback = 2 * period
	})
}

// SweepTurns starts the bot turns of conversations the bot holds whose
// last event is a customer's message that came due (waited past
// TurnGrace) within lookback, at most 50 at a time, and returns how many it
// started. It claims each by touching the conversation's updated_at in the
// transaction that found it (rows locked with SKIP LOCKED): updated_at
// moves with every seq, so a conversation touched since its customer's
// message came due is either answered or claimed, and no two instances
// take the same turn.
func (s *Service) SweepTurns(ctx context.Context, lookback time.Duration) (int, error) {
	now := s.opt.Now()
	due := now.Add(-s.opt.TurnGrace)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, db.Translate(err, "conversations")
	}
	defer tx.Rollback(ctx)
	// messages_customer_time_idx (0011) finds the window's messages.
	rows, err := tx.Query(ctx, `SELECT c.id, c.last_seq FROM conversations c
		WHERE c.id IN (SELECT m.conversation_id FROM messages m
			WHERE m.role = 'customer' AND m.created_at < $1 AND m.created_at >= $2)
		AND c.state = 'bot' AND c.updated_at < $1
		AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.seq = c.last_seq AND m.role = 'customer')
		ORDER BY c.updated_at LIMIT 50
		FOR UPDATE OF c SKIP LOCKED`, due, due.Add(-lookback))
	if err != nil {
		return 0, db.Translate(err, "conversations")
	}
	type owed struct {
		id  string
		seq int64
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (owed, error) {
		var o owed
		return o, r.Scan(&o.id, &o.seq)
	})
	if err != nil {
		return 0, db.Translate(err, "conversations")
	}
	if len(found) == 0 {
		return 0, nil
	}
	ids := make([]string, len(found))
	for i, o := range found {
		ids[i] = o.id
	}
	if _, err := tx.Exec(ctx, `UPDATE conversations SET updated_at = $2 WHERE id = ANY($1::uuid[])`, ids, now); err != nil {
		return 0, db.Translate(err, "conversations")
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, db.Translate(err, "conversations")
	}
	started := 0
	for _, o := range found {
		msg, err := s.store.messageBySeq(ctx, o.id, o.seq)
		if err != nil {
			return started, err
		}
		metrics.OwedTurns.Inc()
		s.startTurn(o.id, *msg, nil)
		started++
	}
	return started, nil
}
