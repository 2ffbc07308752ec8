package handoff

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Agent presence.
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// DefaultCapacity is how many chats an agent holds at once unless set.
const DefaultCapacity = 3

// Agent is a staff user who works chats, with presence and load.
type Agent struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Status    string    `json:"status"`
	Capacity  int       `json:"capacity"`
	OpenChats int       `json:"open_chats"`
	Teams     []string  `json:"teams"`
	StatusAt  time.Time `json:"status_at"`
	// Connected says an agent socket of theirs is open on some instance.
	Connected bool `json:"connected"`
}

// agentSelect lists staff who may work chats (agents and admins) with
// their presence; users without an agents row are offline with the
// default capacity.
const agentSelect = `SELECT u.id, u.display_name, u.email, coalesce(a.status, 'offline'),
	coalesce(a.capacity, 3), coalesce(a.open_chats, 0), coalesce(a.status_at, u.created_at),
	EXISTS (SELECT 1 FROM agent_sockets k WHERE k.user_id = u.id),
	coalesce((SELECT array_agg(t.name ORDER BY lower(t.name)) FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = u.id), '{}')
	FROM users u LEFT JOIN agents a ON a.user_id = u.id
	WHERE NOT u.disabled AND (u.roles && ARRAY['agent', 'admin'])`

func scanAgent(row pgx.Row) (*Agent, error) {
	var a Agent
	if err := row.Scan(&a.ID, &a.Name, &a.Email, &a.Status, &a.Capacity, &a.OpenChats, &a.StatusAt, &a.Connected, &a.Teams); err != nil {
		return nil, db.Translate(err, "agent")
	}
	return &a, nil
}

// Agents lists every staff user who may work chats, by name.
func (s *Service) Agents(ctx context.Context) ([]Agent, error) {
	rows, err := s.pool.Query(ctx, agentSelect+` ORDER BY lower(u.display_name), u.email`)
	if err != nil {
		return nil, db.Translate(err, "agents")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) {
		a, err := scanAgent(r)
		if err != nil {
			return Agent{}, err
		}
		return *a, nil
	})
	if out == nil {
		out = []Agent{}
	}
	return out, db.Translate(err, "agents")
}

// Agent returns one agent. Returns NotFound (also for staff without the
// agent or admin role).
func (s *Service) Agent(ctx context.Context, userID string) (*Agent, error) {
	if !db.ValidID(userID) {
		return nil, errs.Errorf(errs.NotFound, "agent not found")
	}
	return scanAgent(s.pool.QueryRow(ctx, agentSelect+` AND u.id = $1`, userID))
}

// AgentConversations lists the conversations assigned to an agent, the
// oldest assignment first.
func (s *Service) AgentConversations(ctx context.Context, userID string) ([]Conversation, error) {
	if !db.ValidID(userID) {
		return []Conversation{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+conversationColumns+` FROM conversations
		WHERE state = 'assigned' AND assigned_to = $1 ORDER BY assigned_at, id`, userID)
	if err != nil {
		return nil, db.Translate(err, "conversations")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Conversation, error) {
		c, err := scanConversation(r)
		if err != nil {
			return Conversation{}, err
		}
		return *c, nil
	})
	if out == nil {
		out = []Conversation{}
	}
	return out, db.Translate(err, "conversations")
}

// SetStatus changes an agent's presence and, when capacity is not nil, how
// many chats they hold at once. Going online (or taking more chats) starts
// an assignment round; going away sends their chats not yet answered back
// to the queue, going offline sends every chat of theirs back, each keeping
// its place. Returns Invalid or NotFound.
func (s *Service) SetStatus(ctx context.Context, actor Actor, userID, status string, capacity *int) (*Agent, error) {
	if !slices.Contains([]string{StatusOnline, StatusAway, StatusOffline}, status) {
		return nil, errs.Errorf(errs.Invalid, "status must be online, away or offline")
	}
	if capacity != nil && (*capacity < 0 || *capacity > 100) {
		return nil, errs.Errorf(errs.Invalid, "capacity must be from 0 to 100")
	}
	if _, err := s.Agent(ctx, userID); err != nil {
		return nil, err
	}
	now := s.opt.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "agent")
	}
	defer tx.Rollback(ctx)
	// The row may appear concurrently (a socket opening): insert if need
	// be, then lock whichever row exists.
	if _, err := tx.Exec(ctx, `INSERT INTO agents (user_id, status_at, idle_since) VALUES ($1, $2, $2)
		ON CONFLICT (user_id) DO NOTHING`, userID, now); err != nil {
		return nil, db.Translate(err, "agent")
	}
	var prev string
	var prevCap int
	if err := tx.QueryRow(ctx, `SELECT status, capacity FROM agents WHERE user_id = $1 FOR UPDATE`, userID).Scan(&prev, &prevCap); err != nil {
		return nil, db.Translate(err, "agent")
	}
	newCap := prevCap
	if capacity != nil {
		newCap = *capacity
	}
	// Saying "online" over the API counts as presence: the socket grace
	// period starts again from the next socket that closes.
	if _, err := tx.Exec(ctx, `UPDATE agents SET status = $2, capacity = $3,
		status_at = CASE WHEN status = $2 THEN status_at ELSE $4 END,
		idle_since = CASE WHEN status <> 'online' AND $2 = 'online' THEN $4 ELSE idle_since END,
		sockets_gone_at = CASE WHEN $2 = 'online' THEN NULL ELSE sockets_gone_at END
		WHERE user_id = $1`, userID, status, newCap, now); err != nil {
		return nil, db.Translate(err, "agent")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "agent.status", "agent", userID,
		map[string]any{"from": prev, "to": status, "capacity": newCap}); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "agent")
	}
	a, err := s.Agent(ctx, userID)
	if err != nil {
		return nil, err
	}
	s.pub.Publish(TopicAgents, Event{Type: EventAgentStatus, Data: rawJSON(a)})
	switch status {
	case StatusOnline:
		if prev != StatusOnline || newCap > prevCap {
			s.Kick()
		}
	case StatusAway:
		s.requeueAgent(ctx, userID, false, ReasonAgentAway)
	case StatusOffline:
		s.requeueAgent(ctx, userID, true, ReasonAgentOffline)
	}
	return a, nil
}

// requeueAgent sends an agent's chats back to the queue with their place
// kept: all of them, or only those the agent has not answered yet. Each
// goes in its own transaction (conversation lock first, then the agent's
// row, the order every other path takes). Failures are logged.
func (s *Service) requeueAgent(ctx context.Context, userID string, all bool, reason string) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM conversations WHERE state = 'assigned' AND assigned_to = $1
		AND ($2 OR answered_at IS NULL) ORDER BY queued_at NULLS LAST`, userID, all)
	if err != nil && ctx.Err() != nil {
		return
	}
	if err != nil {
		s.log.Error("handoff: requeue", "agent_id", userID, "error", err)
		return
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.log.Error("handoff: requeue", "agent_id", userID, "error", err)
		return
	}
	for _, id := range ids {
		if err := s.requeueOne(ctx, id, userID, all, reason); err != nil && ctx.Err() == nil {
			s.log.Error("handoff: requeue", "agent_id", userID, "conversation_id", id, "error", err)
		}
	}
}

func (s *Service) requeueOne(ctx context.Context, convID, userID string, all bool, reason string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "conversation")
	}
	defer tx.Rollback(ctx)
	conv, err := s.store.lockConversation(ctx, tx, convID)
	if err != nil {
		return err
	}
	if conv.State != StateAssigned || conv.AssignedTo != userID || (!all && conv.answeredAt != nil) {
		return nil // it moved meanwhile
	}
	out := &outbox{}
	name := conv.AssigneeName
	if err := s.move(ctx, tx, conv, move{to: StateQueued, actor: systemActor, reason: reason, keepPlace: true}, out); err != nil {
		return err
	}
	if err := s.systemMessage(ctx, tx, conv, notice(conv.Customer.Locale, "agent_left", name), "requeued", out); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return db.Translate(err, "conversation")
	}
	s.flush(ctx, out)
	return nil
}

// AgentConnected records an open agent socket of userID on this instance
// and returns its id for AgentDisconnected. While any socket of an agent is
// open on any instance, the agent does not become away.
func (s *Service) AgentConnected(ctx context.Context, userID string) (string, error) {
	id := uuid.NewString()
	now := s.opt.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", db.Translate(err, "agent")
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO agents (user_id, status_at, idle_since) VALUES ($1, $2, $2)
		ON CONFLICT (user_id) DO UPDATE SET sockets_gone_at = NULL`, userID, now); err != nil {
		return "", db.Translate(err, "agent")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO agent_sockets (id, user_id, seen_at) VALUES ($1, $2, $3)`, id, userID, now); err != nil {
		return "", db.Translate(err, "agent socket")
	}
	if err := tx.Commit(ctx); err != nil {
		return "", db.Translate(err, "agent socket")
	}
	s.socketsMu.Lock()
	s.sockets[id] = userID
	s.socketsMu.Unlock()
	return id, nil
}

// AgentDisconnected forgets a socket; when it was the agent's last, the
// grace period starts.
func (s *Service) AgentDisconnected(socketID string) {
	s.socketsMu.Lock()
	userID, ok := s.sockets[socketID]
	delete(s.sockets, socketID)
	s.socketsMu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM agent_sockets WHERE id = $1)
		UPDATE agents SET sockets_gone_at = $3 WHERE user_id = $2
		AND NOT EXISTS (SELECT 1 FROM agent_sockets WHERE user_id = $2 AND id <> $1)`, socketID, userID, s.opt.Now()); err != nil {
		s.log.Warn("handoff: agent socket closed", "agent_id", userID, "error", err)
	}
}

// heartbeat marks this instance's agent sockets alive.
func (s *Service) heartbeat(ctx context.Context) {
	s.socketsMu.Lock()
	ids := make([]string, 0, len(s.sockets))
	for id := range s.sockets {
		ids = append(ids, id)
	}
	s.socketsMu.Unlock()
	if len(ids) == 0 {
		return
	}
	if _, err := s.pool.Exec(ctx, `UPDATE agent_sockets SET seen_at = $2 WHERE id = ANY($1)`, ids, s.opt.Now()); err != nil && ctx.Err() == nil {
		s.log.Warn("handoff: agent heartbeat", "error", err)
	}
}

// sweepPresence forgets sockets whose instance stopped beating, then makes
// away every online agent whose sockets have all been gone for the grace
// period, sending their unanswered chats back to the queue. Any number of
// instances may sweep at once: each agent is changed by one UPDATE.
func (s *Service) sweepPresence(ctx context.Context) error {
	now := s.opt.Now()
	// A socket missing three heartbeats (and at least the grace period)
	// belongs to an instance that died; the grace period then runs from
	// its last heartbeat.
	stale := now.Add(-max(3*s.opt.Routing.Heartbeat, s.opt.Routing.Grace))
	if _, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM agent_sockets WHERE seen_at < $1 RETURNING user_id, seen_at)
		UPDATE agents a SET sockets_gone_at = g.last
		FROM (SELECT user_id, max(seen_at) AS last FROM gone GROUP BY user_id) g
		WHERE a.user_id = g.user_id AND a.sockets_gone_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM agent_sockets k WHERE k.user_id = a.user_id AND k.seen_at >= $1)`, stale); err != nil {
		return db.Translate(err, "agent sockets")
	}
	rows, err := s.pool.Query(ctx, `UPDATE agents a SET status = 'away', status_at = $1
		WHERE status = 'online' AND sockets_gone_at IS NOT NULL AND sockets_gone_at < $2
		AND NOT EXISTS (SELECT 1 FROM agent_sockets k WHERE k.user_id = a.user_id)
		RETURNING user_id`, now, now.Add(-s.opt.Routing.Grace))
	if err != nil {
		return db.Translate(err, "agents")
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return db.Translate(err, "agents")
	}
	for _, id := range gone {
		s.recordAway(ctx, id)
		s.requeueAgent(ctx, id, false, ReasonAgentAway)
	}
	return nil
}

func (s *Service) recordAway(ctx context.Context, userID string) {
	tx, err := s.pool.Begin(ctx)
	if err == nil {
		defer tx.Rollback(ctx)
		err = s.store.insertAudit(ctx, tx, systemActor, "agent.status", "agent", userID,
			map[string]any{"from": StatusOnline, "to": StatusAway, "reason": "sockets_gone"})
		if err == nil {
			err = tx.Commit(ctx)
		}
	}
	if err != nil {
		s.log.Warn("handoff: audit away", "agent_id", userID, "error", err)
	}
	s.log.Info("handoff: agent away: no socket within the grace period", "agent_id", userID)
	if a, err := s.Agent(ctx, userID); err == nil {
		s.pub.Publish(TopicAgents, Event{Type: EventAgentStatus, Data: rawJSON(a)})
	}
}
