package handoff

import (
	"context"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Packet is the handoff packet agents receive: the bot's escalation with
// the team it asked for, and who the customer is.
type Packet struct {
	Escalation
	// RequestedTeam is the team the bot named; Team is the one the
	// conversation went to ("" when no team of that name exists, so any
	// agent may take it).
	RequestedTeam string    `json:"requested_team,omitempty"`
	Team          string    `json:"team"`
	EscalatedAt   time.Time `json:"escalated_at"`
	Customer      Customer  `json:"customer"`
	Verified      bool      `json:"verified"`
}

// QueueInfo is what the customer is told on escalation, also sent as the
// "queue" field of the state event.
type QueueInfo struct {
	// Status is "connecting" (an agent is free), "waiting", "offline" (no
	// agent of the team online) or "out_of_hours".
	Status   string `json:"status"`
	Position int    `json:"position"`
	// EstimatedWaitSeconds comes from recent waits; absent when unknown.
	EstimatedWaitSeconds *int       `json:"estimated_wait_seconds,omitempty"`
	OpensAt              *time.Time `json:"opens_at,omitempty"`
	// OfferContact asks the customer to leave an e-mail address or phone
	// number: nobody can answer now and the conversation stays a ticket.
	OfferContact bool `json:"offer_contact"`
}

// escalate moves a conversation the bot holds to the queue, inside tx: the
// packet, the state event, and a system message telling the customer where
// they stand.
func (s *Service) escalate(ctx context.Context, tx pgx.Tx, conv *Conversation, e Escalation, out *outbox) error {
	now := s.opt.Now()
	requested := strings.TrimSpace(e.Team)
	team := ""
	if requested != "" {
		t, err := s.store.teamByName(ctx, tx, requested)
		switch {
		case err == nil:
			team = t.Name
		case errs.Is(err, errs.NotFound):
			s.log.Warn("handoff: escalation names an unknown team; any agent may take it",
				"conversation_id", conv.ID, "team", requested)
		default:
			return err
		}
	}
	if e.Reason == "" {
		e.Reason = "escalated"
	}
	// Verified customers go ahead of others of the same intent priority;
	// within a priority the longest waiting goes first.
	priority := e.Priority
	if conv.Verified {
		priority++
	}
	packet := Packet{Escalation: e, RequestedTeam: requested, Team: team, EscalatedAt: now,
		Customer: conv.Customer, Verified: conv.Verified}
	if _, err := tx.Exec(ctx, `UPDATE conversations SET escalation = $2, escalated_at = $3 WHERE id = $1`,
		conv.ID, rawJSON(packet), now); err != nil {
		return db.Translate(err, "conversation")
	}
	info, err := s.queueInfo(ctx, tx, team, priority, now)
	if err != nil {
		return err
	}
	if err := s.move(ctx, tx, conv, move{to: StateQueued, actor: botActor, reason: e.Reason, team: &team, priority: &priority,
		data:  map[string]any{"queue": info},
		audit: map[string]any{"escalation": e, "requested_team": requested}}, out); err != nil {
		return err
	}
	out.position(conv.ID, info.Position)
	if err := s.hook(ctx, tx, HookEscalated, conv.ID, map[string]any{"conversation": conv, "handoff": packet, "queue": info}, out); err != nil {
		return err
	}
	return s.systemMessage(ctx, tx, conv, queueNotice(conv.Customer.Locale, team, info), info.Status, out)
}

// availability is who can take a team's conversations now.
type availability struct {
	open     bool
	opensAt  *time.Time
	online   int // online agents who serve the team
	free     int // of those, with capacity left
	position int
}

// queueInfo works out what to tell a customer joining team's queue with
// priority at now.
func (s *Service) queueInfo(ctx context.Context, q db.Querier, team string, priority int, now time.Time) (QueueInfo, error) {
	av := availability{open: true}
	if team != "" {
		t, err := s.store.teamByName(ctx, q, team)
		if err != nil {
			return QueueInfo{}, err
		}
		if h, err := parseHours(t.Timezone, t.Hours); err == nil {
			av.open = h.Open(now)
			if !av.open {
				if at, ok := h.NextOpen(now); ok {
					av.opensAt = &at
				}
			}
		}
	}
	err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE a.open_chats < a.capacity)
		FROM agents a JOIN users u ON u.id = a.user_id
		WHERE a.status = 'online' AND NOT u.disabled AND `+servesTeam, team).Scan(&av.online, &av.free)
	if err != nil {
		return QueueInfo{}, db.Translate(err, "agents")
	}
	// Two ranges of the queue index, which an OR would not use (see
	// queueEntry).
	if err := q.QueryRow(ctx, `SELECT (SELECT count(*) + 1 FROM conversations
		WHERE state = 'queued' AND coalesce(team, '') = $1 AND priority > $2) +
		(SELECT count(*) FROM conversations
		WHERE state = 'queued' AND coalesce(team, '') = $1 AND priority = $2 AND queued_at <= $3)`,
		team, priority, now).Scan(&av.position); err != nil {
		return QueueInfo{}, db.Translate(err, "queue")
	}
	info := QueueInfo{Position: av.position}
	switch {
	case av.free > 0:
		info.Status = "connecting"
	case !av.open:
		info.Status, info.OpensAt, info.OfferContact = "out_of_hours", av.opensAt, true
	case av.online == 0:
		info.Status, info.OfferContact = "offline", true
	default:
		info.Status = "waiting"
		if w, ok, err := s.estimateWait(ctx, q, team, av.position, av.online, now); err != nil {
			return QueueInfo{}, err
		} else if ok {
			secs := int(w / time.Second)
			info.EstimatedWaitSeconds = &secs
		}
	}
	return info, nil
}

// servesTeam is the condition (on agents a, with the team name as $1) that
// an agent serves a team's queue: conversations without a team go to any
// agent, a team's to its members.
const servesTeam = `($1 = '' OR EXISTS (SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id
	WHERE m.user_id = a.user_id AND t.name = $1))`

// estimateWait guesses how long the customer at position will wait: the
// median of the team's waits over the last day (all teams' when the team
// has too few), times the rounds of assignment ahead of them given the
// agents online. It reports false without enough data.
func (s *Service) estimateWait(ctx context.Context, q db.Querier, team string, position, online int, now time.Time) (time.Duration, bool, error) {
	load := func(byTeam bool) ([]int64, error) {
		rows, err := q.Query(ctx, `SELECT waited_ms FROM queue_waits
			WHERE assigned_at > $1 AND (NOT $2 OR coalesce(team, '') = $3) ORDER BY assigned_at DESC LIMIT 50`,
			now.Add(-24*time.Hour), byTeam, team)
		if err != nil {
			return nil, db.Translate(err, "queue waits")
		}
		return pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	waits, err := load(true)
	if err != nil {
		return 0, false, err
	}
	if len(waits) < 3 {
		if waits, err = load(false); err != nil {
			return 0, false, err
		}
	}
	if len(waits) < 3 {
		return 0, false, nil
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	median := time.Duration(waits[len(waits)/2]) * time.Millisecond
	rounds := math.Ceil(float64(position) / float64(max(online, 1)))
	return time.Duration(float64(median) * rounds), true, nil
}

// queueNotice is the system message for a customer joining the queue.
func queueNotice(locale, team string, info QueueInfo) string {
	tp := teamPhrase(locale, team)
	switch info.Status {
	case "connecting":
		return notice(locale, "connecting", tp)
	case "out_of_hours":
		back := ""
		if info.OpensAt != nil {
			back = notice(locale, "back_at", info.OpensAt.Format("Mon 15:04 (MST)"))
		}
		return notice(locale, "out_of_hours", tp, back)
	case "offline":
		return notice(locale, "offline", tp)
	}
	text := notice(locale, "position", info.Position, tp)
	if info.EstimatedWaitSeconds != nil {
		w := *info.EstimatedWaitSeconds
		d := notice(locale, "minute")
		if w >= 60 {
			d = notice(locale, "minutes", (w+59)/60)
		}
		return text + notice(locale, "wait", d)
	}
	return text + notice(locale, "no_estimate")
}
