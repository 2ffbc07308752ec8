package handoff

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Claim gives a conversation to the agent who asks: one in the queue, or
// one the bot holds (a takeover). Claiming one's own conversation again
// changes nothing. Manual claims are not limited by capacity: the agent
// chose. Returns NotFound, or Conflict when another agent holds it (someone
// else won) or it is closed.
func (s *Service) Claim(ctx context.Context, actor Actor, convID string) (*Conversation, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "conversation")
	}
	defer tx.Rollback(ctx)
	conv, err := s.store.lockConversation(ctx, tx, convID)
	if err != nil {
		return nil, err
	}
	switch conv.State {
	case StateAssigned:
		if conv.AssignedTo == actor.ID {
			return conv, nil
		}
		return nil, errs.Errorf(errs.Conflict, "%s already has this conversation", or(conv.AssigneeName, "another agent"))
	case StateClosed:
		return nil, errs.Errorf(errs.Conflict, "the conversation is closed")
	}
	out := &outbox{}
	if err := s.assignTo(ctx, tx, conv, actor, actor.ID, ReasonClaimed, nil, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "conversation")
	}
	s.flush(ctx, out)
	return conv, nil
}

// assignTo assigns conv to agent inside tx, tells the customer who joined
// and records how long the conversation waited.
func (s *Service) assignTo(ctx context.Context, tx pgx.Tx, conv *Conversation, actor Actor, agent, reason string, private map[string]any, out *outbox) error {
	from, queuedAt := conv.State, conv.QueuedAt
	if err := s.move(ctx, tx, conv, move{to: StateAssigned, actor: actor, reason: reason, agent: agent, audit: private}, out); err != nil {
		return err
	}
	if err := s.systemMessage(ctx, tx, conv, notice(conv.Customer.Locale, "joined", conv.AssigneeName), "assigned", out); err != nil {
		return err
	}
	if from == StateQueued && queuedAt != nil {
		waited := s.opt.Now().Sub(*queuedAt)
		if _, err := tx.Exec(ctx, `INSERT INTO queue_waits (team, waited_ms, assigned_at) VALUES (nullif($1, ''), $2, $3)`,
			conv.Team, waited.Milliseconds(), s.opt.Now()); err != nil {
			return db.Translate(err, "queue wait")
		}
		queueWait.Observe(waited.Seconds())
	}
	return nil
}

// AssignQueued runs automatic assignment until nothing more can be
// assigned, and returns how many conversations it assigned. Per team, the
// longest-waiting conversation of the highest priority goes to the online
// agent of the team with free capacity and the fewest open chats (the
// longest idle on a tie). Rows are taken with FOR UPDATE SKIP LOCKED, so
// any number of callers, in any number of instances, may run it at once
// without assigning a conversation twice or an agent over capacity.
func (s *Service) AssignQueued(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT coalesce(team, '') FROM conversations WHERE state = 'queued'`)
	if err != nil {
		return 0, db.Translate(err, "queue")
	}
	teams, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, db.Translate(err, "queue")
	}
	total := 0
	for _, team := range teams {
		busy := 0
		for ctx.Err() == nil {
			ok, retry, err := s.assignOne(ctx, team)
			if err != nil {
				return total, err
			}
			if ok {
				total++
				busy = 0
				continue
			}
			// Eligible agents exist but another transaction held them:
			// try again shortly rather than wait for the next tick.
			if retry && busy < 20 {
				busy++
				time.Sleep(time.Duration(busy) * time.Millisecond)
				continue
			}
			break
		}
	}
	return total, nil
}

// assignOne assigns one conversation of team's queue. It reports whether
// it did, and whether trying again soon may succeed (the candidates were
// locked by other transactions).
func (s *Service) assignOne(ctx context.Context, team string) (assigned, retry bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, false, db.Translate(err, "queue")
	}
	defer tx.Rollback(ctx)
	conv, err := scanConversation(tx.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
		WHERE state = 'queued' AND coalesce(team, '') = $1
		ORDER BY priority DESC, queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, team))
	if errs.Is(err, errs.NotFound) {
		// None left, or every one is being handled by someone else.
		var locked bool
		_ = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE state = 'queued' AND coalesce(team, '') = $1)`, team).Scan(&locked)
		return false, locked, nil
	}
	if err != nil {
		return false, false, err
	}
	// FOR UPDATE re-checks open_chats < capacity on the newest row version,
	// and skipped rows belong to transactions assigning them right now.
	var agent string
	err = tx.QueryRow(ctx, `SELECT a.user_id FROM agents a JOIN users u ON u.id = a.user_id
		WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled AND `+servesTeam+`
		ORDER BY a.open_chats, a.idle_since, a.user_id LIMIT 1 FOR UPDATE OF a SKIP LOCKED`, team).Scan(&agent)
	if err == pgx.ErrNoRows {
		var any bool
		_ = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents a JOIN users u ON u.id = a.user_id
			WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled AND `+servesTeam+`)`, team).Scan(&any)
		return false, any, nil
	}
	if err != nil {
		return false, false, db.Translate(err, "agents")
	}
	// A fresh statement sees the latest committed row, which we now hold.
	var open, capacity int
	var status string
	if err := tx.QueryRow(ctx, `SELECT open_chats, capacity, status FROM agents WHERE user_id = $1`, agent).Scan(&open, &capacity, &status); err != nil {
		return false, false, db.Translate(err, "agent")
	}
	if status != StatusOnline || open >= capacity {
		return false, true, nil
	}
	out := &outbox{}
	if err := s.assignTo(ctx, tx, conv, systemActor, agent, ReasonAutoAssigned, nil, out); err != nil {
		return false, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, false, db.Translate(err, "conversation")
	}
	out.kick = false // this round goes on anyway
	s.flush(ctx, out)
	return true, false, nil
}
