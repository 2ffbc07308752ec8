package handoff

import (
	"context"
	"fmt"
	"sync"
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
//
// A commit waits for the disk, so assignments go in batches, in waves: when
// a team's free capacity covers its whole queue (order cannot matter: all
// will be assigned) a wave runs up to Routing.Workers batches at once,
// sharing the waits; when capacity is short, one batch at a time keeps the
// order. Each wave looks at the queue again, since it grows meanwhile.
func (s *Service) AssignQueued(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := s.assignWave(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

// assignWave runs one wave over every team's queue and returns how many it
// assigned.
func (s *Service) assignWave(ctx context.Context) (int, error) {
	// Every escalation asks for a wave; with no agent free (none online,
	// or all at capacity) counting the queue is wasted, and it grows with
	// the queue (2 ms a wave with 1,200 queued, in the burst's log).
	var free bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents a JOIN users u ON u.id = a.user_id
		WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled)`).Scan(&free); err != nil {
		return 0, db.Translate(err, "agents")
	}
	if !free {
		return 0, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT coalesce(team, ''), count(*) FROM conversations WHERE state = 'queued'
		GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return 0, db.Translate(err, "queue")
	}
	type backlog struct {
		Team   string
		Queued int
	}
	teams, err := pgx.CollectRows(rows, pgx.RowToStructByPos[backlog])
	if err != nil {
		return 0, db.Translate(err, "queue")
	}
	total := 0
	for _, b := range teams {
		var free int
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(a.capacity - a.open_chats), 0) FROM agents a
			JOIN users u ON u.id = a.user_id
			WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled AND `+servesTeam, b.Team).Scan(&free); err != nil {
			return total, db.Translate(err, "agents")
		}
		if free == 0 {
			continue
		}
		workers := 1
		if free >= b.Queued {
			workers = min(s.opt.Routing.Workers, (b.Queued+assignBatch-1)/assignBatch)
		}
		var (
			mu       sync.Mutex
			firstErr error
			wg       sync.WaitGroup
		)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.assignSome(ctx, b.Team)
				mu.Lock()
				total += n
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return total, firstErr
		}
	}
	return total, nil
}

// assignSome assigns one batch from a team's queue; when the candidates
// are held by other transactions it tries again a few times shortly rather
// than wait for the next tick.
func (s *Service) assignSome(ctx context.Context, team string) (int, error) {
	for busy := 1; ; busy++ {
		n, retry, err := s.assignOne(ctx, team)
		if err != nil || n > 0 || !retry || busy > 3 || ctx.Err() != nil {
			return n, err
		}
		time.Sleep(time.Duration(busy) * time.Millisecond)
	}
}

// assignBatch is how many conversations one assignment transaction takes
// at most: a commit waits for the disk (milliseconds), so sharing one
// among several assignments multiplies throughput. The first of a batch
// waits for the rest (a fraction of a millisecond each).
const assignBatch = 10

// assignOne assigns up to assignBatch conversations of team's queue in one
// transaction. It reports how many, and whether trying again soon may
// succeed (the candidates were locked by other transactions).
func (s *Service) assignOne(ctx context.Context, team string) (assigned int, retry bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, false, db.Translate(err, "queue")
	}
	defer tx.Rollback(ctx)
	out := &outbox{}
	for assigned < assignBatch {
		// Rows this transaction already assigned are no longer queued to
		// it; rows other transactions hold are skipped.
		conv, err := scanConversation(tx.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
			WHERE state = 'queued' AND coalesce(team, '') = $1
			ORDER BY priority DESC, queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, team))
		if errs.Is(err, errs.NotFound) {
			if assigned == 0 {
				// None left, or every one is being handled by someone else.
				var locked bool
				_ = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE state = 'queued' AND coalesce(team, '') = $1)`, team).Scan(&locked)
				return 0, locked, nil
			}
			break
		}
		if err != nil {
			return 0, false, err
		}
		// FOR UPDATE re-checks the conditions on the newest version of the
		// row and returns that version, so open_chats < capacity holds for
		// the agent we get. Skipped rows belong to transactions assigning
		// to them right now; rows this transaction locked are not skipped.
		var agent, status string
		var open, capacity int
		err = tx.QueryRow(ctx, `SELECT a.user_id, a.open_chats, a.capacity, a.status FROM agents a JOIN users u ON u.id = a.user_id
			WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled AND `+servesTeam+`
			ORDER BY a.open_chats, a.idle_since, a.user_id LIMIT 1 FOR UPDATE OF a SKIP LOCKED`, team).Scan(&agent, &open, &capacity, &status)
		if err == pgx.ErrNoRows {
			if assigned == 0 {
				var any bool
				_ = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents a JOIN users u ON u.id = a.user_id
					WHERE a.status = 'online' AND a.open_chats < a.capacity AND NOT u.disabled AND `+servesTeam+`)`, team).Scan(&any)
				return 0, any, nil
			}
			break
		}
		if err != nil {
			return 0, false, db.Translate(err, "agents")
		}
		if status != StatusOnline || open >= capacity {
			return 0, false, fmt.Errorf("handoff: locked agent %s is %s with %d of %d chats", agent, status, open, capacity)
		}
		if err := s.assignTo(ctx, tx, conv, systemActor, agent, ReasonAutoAssigned, nil, out); err != nil {
			return 0, false, err
		}
		assigned++
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, db.Translate(err, "conversation")
	}
	out.kick = false // this round goes on anyway
	s.flush(ctx, out)
	return assigned, false, nil
}
