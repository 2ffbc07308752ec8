package handoff

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-chat/tandem/internal/db"
)

// Actor is who causes a change: a staff user, the customer, the bot or the
// system (automatic assignment, presence). Admin lets a staff user act on
// conversations assigned to someone else.
type Actor struct {
	ID    string
	Role  string // RoleAgent, RoleCustomer, RoleBot or RoleSystem
	Admin bool
}

// AgentActor returns the actor for a staff user working chats; admin lets
// them act on chats assigned to others.
func AgentActor(userID string, admin bool) Actor {
	return Actor{ID: userID, Role: RoleAgent, Admin: admin}
}

var (
	systemActor   = Actor{Role: RoleSystem}
	botActor      = Actor{Role: RoleBot}
	customerActor = Actor{Role: RoleCustomer}
)

// Reasons recorded with transitions (the "why" of each event).
const (
	ReasonClaimed       = "claimed"
	ReasonAutoAssigned  = "auto_assigned"
	ReasonTakeover      = "agent_wrote"
	ReasonReleased      = "released"
	ReasonTransferred   = "transferred"
	ReasonClosed        = "closed"
	ReasonCustomerWrote = "customer_wrote_again"
	ReasonAgentAway     = "agent_away"
	ReasonAgentOffline  = "agent_offline"
)

// move is one state change of a conversation.
type move struct {
	to     State
	actor  Actor
	reason string
	// agent is the new assignee (to StateAssigned).
	agent string
	// team and priority replace the conversation's (to StateQueued); nil
	// keeps them. An empty team means no team.
	team     *string
	priority *int
	// keepPlace keeps queued_at (to StateQueued), so a conversation that
	// comes back to the queue keeps its place.
	keepPlace  bool
	resolution string
	// data is more public event data; the customer sees it.
	data map[string]any
	// audit is more detail for the audit log only (notes, packets); a
	// "note" also goes to the new assignee.
	audit map[string]any
}

// outbox collects what a transaction publishes once it has committed.
type outbox struct {
	events []topicEvent
	// queue lists conversations whose queue entry appeared or changed;
	// their entries are loaded and published after commit.
	queue []string
	// positions holds the queue positions already counted inside the
	// transaction (an escalation tells the customer theirs), so that
	// publishing the entry does not count them again.
	positions map[string]int
	// updated lists queued conversations whose entry changed (a new
	// customer message changes the preview).
	updated []string
	// kick asks for an assignment round.
	kick bool
	// hooks says webhook deliveries were queued: the worker is woken.
	hooks bool
}

type topicEvent struct {
	topic string
	ev    Event
}

// position records a queued conversation's position as counted inside the
// transaction.
func (o *outbox) position(id string, pos int) {
	if o.positions == nil {
		o.positions = map[string]int{}
	}
	o.positions[id] = pos
}

// add queues ev for the conversation's own topic.
func (o *outbox) add(ev Event) { o.events = append(o.events, topicEvent{ev.ConversationID, ev}) }

// to queues ev for another topic.
func (o *outbox) to(topic string, ev Event) { o.events = append(o.events, topicEvent{topic, ev}) }

func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

// move changes conv's state inside tx: the conversation row, the agents'
// open-chat counters, the transcript event, the audit record, and what to
// publish after commit. The caller holds the conversation's row lock.
func (s *Service) move(ctx context.Context, tx pgx.Tx, conv *Conversation, m move, out *outbox) error {
	now := s.opt.Now()
	from := conv.State
	// Ahead of the commit: a wrong hint only costs a turn its head start,
	// or one search that no turn uses.
	s.botHeld.set(conv.ID, m.to == StateBot)
	oldAgent := ""
	if from == StateAssigned {
		oldAgent = conv.AssignedTo
	}
	// Each UPDATE also takes the state event's seq and the assignee's name,
	// saving a statement each: assignment throughput is bounded by them.
	var q string
	args := []any{conv.ID, now}
	switch m.to {
	case StateBot:
		q = `UPDATE conversations SET state = 'bot', assigned_to = NULL, closed_at = NULL, csat_pending = false,
			answered_at = NULL, updated_at = $2, last_seq = last_seq + 1 WHERE id = $1`
	case StateQueued:
		// keepPlace keeps queued_at unless the conversation was never queued.
		q = `UPDATE conversations SET state = 'queued', assigned_to = NULL, answered_at = NULL, updated_at = $2,
			queued_at = CASE WHEN $3 AND queued_at IS NOT NULL THEN queued_at ELSE $2 END,
			sla_flagged_at = CASE WHEN $3 AND NOT $6 THEN sla_flagged_at ELSE NULL END,
			reason = coalesce($4, reason),
			team = CASE WHEN $6 THEN nullif($5, '') ELSE team END,
			priority = coalesce($7, priority), last_seq = last_seq + 1 WHERE id = $1`
		var reason *string
		if m.reason != "" {
			reason = &m.reason
		}
		team := ""
		if m.team != nil {
			team = *m.team
		}
		args = append(args, m.keepPlace, reason, team, m.team != nil, m.priority)
	case StateAssigned:
		if m.agent == "" {
			return fmt.Errorf("handoff: assignment without an agent")
		}
		q = `UPDATE conversations SET state = 'assigned', assigned_to = $3, assigned_at = $2, answered_at = NULL,
			closed_at = NULL, csat_pending = false, updated_at = $2, last_seq = last_seq + 1 WHERE id = $1`
		args = append(args, m.agent)
	case StateClosed:
		q = `UPDATE conversations SET state = 'closed', closed_at = $2, updated_at = $2, resolution = $3,
			csat_pending = true, last_seq = last_seq + 1 WHERE id = $1`
		args = append(args, m.resolution)
	default:
		return fmt.Errorf("handoff: unknown state %q", m.to)
	}
	var seq int64
	var assignee string
	if err := tx.QueryRow(ctx, q+` RETURNING last_seq, coalesce((SELECT display_name FROM users WHERE users.id = assigned_to), '')`,
		args...).Scan(&seq, &assignee); err != nil {
		return db.Translate(err, "conversation")
	}
	conv.LastSeq = seq

	// Counters change in user-id order, so two transfers in opposite
	// directions cannot deadlock on the agents' rows.
	type delta struct {
		id string
		n  int
	}
	var deltas []delta
	if oldAgent != "" && !(m.to == StateAssigned && m.agent == oldAgent) {
		deltas = append(deltas, delta{oldAgent, -1})
	}
	if m.to == StateAssigned && m.agent != oldAgent {
		deltas = append(deltas, delta{m.agent, +1})
	}
	slices.SortFunc(deltas, func(a, b delta) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	for _, d := range deltas {
		if d.n > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO agents (user_id, open_chats, idle_since) VALUES ($1, 1, $2)
				ON CONFLICT (user_id) DO UPDATE SET open_chats = agents.open_chats + 1, idle_since = $2`, d.id, now); err != nil {
				return db.Translate(err, "agent")
			}
		} else {
			if _, err := tx.Exec(ctx, `UPDATE agents SET open_chats = greatest(open_chats - 1, 0) WHERE user_id = $1`, d.id); err != nil {
				return db.Translate(err, "agent")
			}
			out.kick = true // capacity freed
		}
	}

	data := map[string]any{"from": from, "reason": m.reason}
	for k, v := range m.data {
		data[k] = v
	}
	switch m.to {
	case StateAssigned:
		data["agent"] = map[string]string{"id": m.agent, "name": assignee}
		conv.AssignedTo, conv.AssigneeName = m.agent, assignee
		conv.AssignedAt = &now
	case StateQueued:
		if m.team != nil {
			conv.Team = *m.team
			data["team"] = *m.team
		} else {
			data["team"] = conv.Team
		}
		if m.priority != nil {
			conv.Priority = *m.priority
		}
		data["priority"] = conv.Priority
		conv.AssignedTo, conv.AssigneeName = "", ""
		out.kick = true
	case StateClosed:
		data["resolution"] = m.resolution
		conv.Resolution = m.resolution
		conv.ClosedAt = &now
		conv.CSATPending = true
	case StateBot:
		conv.AssignedTo, conv.AssigneeName = "", ""
		conv.CSATPending = false
	}
	ev := &Event{Type: EventState, ConversationID: conv.ID, State: m.to, Data: rawJSON(data)}
	if err := s.store.insertEventAt(ctx, tx, ev, seq, m.actor.ID, m.actor.Role); err != nil {
		return err
	}
	out.add(*ev)

	audit := map[string]any{"from": from, "to": m.to, "reason": m.reason}
	for k, v := range m.data {
		audit[k] = v
	}
	for k, v := range m.audit {
		audit[k] = v
	}
	if m.to == StateAssigned {
		audit["agent_id"] = m.agent
	}
	action := "conversation." + string(m.to)
	if m.reason == ReasonTransferred {
		action = "conversation.transfer" // to a team's queue or to an agent: the data says which
	}
	if err := s.store.insertAudit(ctx, tx, m.actor, action, "conversation", conv.ID, audit); err != nil {
		return err
	}

	if from == StateQueued && m.to != StateQueued {
		out.to(TopicAgents, Event{Type: EventQueue, ConversationID: conv.ID,
			Data: rawJSON(map[string]any{"change": "removed", "reason": m.reason, "state": m.to})})
	}
	if m.to == StateQueued {
		out.queue = append(out.queue, conv.ID)
	}
	if oldAgent != "" && !(m.to == StateAssigned && m.agent == oldAgent) {
		out.to(AgentTopic(oldAgent), Event{Type: EventUnassigned, ConversationID: conv.ID,
			Data: rawJSON(map[string]any{"agent_id": oldAgent, "reason": m.reason, "state": m.to})})
	}
	if m.to == StateAssigned && m.agent != oldAgent {
		conv.State = m.to
		d := map[string]any{"agent_id": m.agent, "reason": m.reason, "conversation": conv}
		if note, ok := m.audit["note"]; ok {
			d["note"] = note // staff only: this topic never reaches customers
		}
		out.to(AgentTopic(m.agent), Event{Type: EventAssigned, ConversationID: conv.ID, Data: rawJSON(d)})
	}
	conv.State = m.to
	conv.UpdatedAt = now
	transitions.WithLabelValues(string(m.to), m.reason).Inc()
	switch m.to {
	case StateAssigned:
		return s.hook(ctx, tx, HookAssigned, conv.ID, map[string]any{"conversation": conv,
			"agent": map[string]string{"id": m.agent, "name": assignee}, "reason": m.reason}, out)
	case StateClosed:
		return s.hook(ctx, tx, HookClosed, conv.ID, map[string]any{"conversation": conv, "resolution": m.resolution}, out)
	}
	return nil
}

// flush publishes what a committed transaction collected.
func (s *Service) flush(ctx context.Context, out *outbox) {
	for _, te := range out.events {
		s.pub.Publish(te.topic, te.ev)
	}
	for i, ids := range [][]string{out.queue, out.updated} {
		change := []string{"added", "updated"}[i]
		for _, id := range ids {
			pos, counted := out.positions[id]
			e, err := s.queueEntry(ctx, id, change == "added" && !counted)
			if err != nil {
				continue // it left the queue meanwhile; its removal is published
			}
			if change == "added" && counted {
				e.Position = pos
			}
			s.pub.Publish(TopicAgents, Event{Type: EventQueue, ConversationID: id,
				Data: rawJSON(map[string]any{"change": change, "entry": e})})
		}
	}
	if out.kick {
		s.Kick()
	}
	if out.hooks {
		s.hooks.wake()
	}
}

// execer is what a transaction and the pool have in common for writes.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertAudit records who did what, inside tx when the change has one.
func (s *store) insertAudit(ctx context.Context, tx execer, a Actor, action, subjectType, subjectID string, data map[string]any) error {
	var actor *string
	if a.ID != "" {
		actor = &a.ID
	}
	role := a.Role
	if a.Admin {
		role = "admin"
	}
	if role == "" {
		role = RoleSystem
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (at, actor_id, actor_role, action, subject_type, subject_id, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.now(), actor, role, action, subjectType, subjectID, rawJSON(data))
	return db.Translate(err, "audit record")
}
