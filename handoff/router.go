package handoff

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
)

// Routing tunes automatic assignment, presence and SLA checks.
type Routing struct {
	// Tick is how often each instance assigns, sweeps presence and checks
	// SLAs even when nothing asked it to; default 2s.
	Tick time.Duration
	// Grace is how long an agent may be without any agent socket before
	// becoming away; default 60s.
	Grace time.Duration
	// Heartbeat is how often an instance marks its agent sockets alive; a
	// socket not marked for three heartbeats and the grace period (its
	// instance died) is gone. Default 10s.
	Heartbeat time.Duration
	// DefaultSLA is the waiting threshold of conversations without a team;
	// default 5m.
	DefaultSLA time.Duration
	// Workers is how many assignment transactions an instance runs at
	// once; default 4.
	Workers int
	// Manual turns automatic assignment off: agents claim.
	Manual bool
}

func (r *Routing) defaults() {
	if r.Tick <= 0 {
		r.Tick = 2 * time.Second
	}
	if r.Grace <= 0 {
		r.Grace = 60 * time.Second
	}
	if r.Heartbeat <= 0 {
		r.Heartbeat = 10 * time.Second
	}
	if r.DefaultSLA <= 0 {
		r.DefaultSLA = 5 * time.Minute
	}
	if r.Workers <= 0 {
		r.Workers = 4
	}
}

// SetRouting changes the routing timings; call it before Run.
func (s *Service) SetRouting(r Routing) {
	r.defaults()
	s.opt.Routing = r
}

// Kick asks for an assignment round soon; many kicks make one round.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// route assigns when kicked and, every tick, sweeps presence, flags SLA
// breaches and assigns; it returns when ctx ends.
func (s *Service) route(ctx context.Context) {
	tick := time.NewTicker(s.opt.Routing.Tick)
	defer tick.Stop()
	assign := func() {
		if s.opt.Routing.Manual {
			return
		}
		if _, err := s.AssignQueued(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("handoff: assignment", "error", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			assign()
		case <-tick.C:
			if err := s.sweepPresence(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("handoff: presence sweep", "error", err)
			}
			if err := s.flagSLA(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("handoff: SLA check", "error", err)
			}
			assign()
		}
	}
}

// beat marks this instance's agent sockets alive until ctx ends.
func (s *Service) beat(ctx context.Context) {
	every(ctx, s.opt.Routing.Heartbeat, false, func() { s.heartbeat(ctx) })
}

// every calls fn each d until ctx ends; at once as well when now.
func every(ctx context.Context, d time.Duration, now bool, fn func()) {
	if now {
		fn()
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// flagSLA flags queued conversations waiting past their team's threshold,
// once each, and tells the team's agents (every agent for conversations
// without a team) and the admins. One UPDATE claims each flag, so several
// instances never flag one twice.
func (s *Service) flagSLA(ctx context.Context) error {
	now := s.opt.Now()
	rows, err := s.pool.Query(ctx, `UPDATE conversations c SET sla_flagged_at = $1
		FROM conversations q LEFT JOIN teams t ON t.name = q.team
		WHERE c.id = q.id AND q.state = 'queued' AND q.sla_flagged_at IS NULL
		AND q.queued_at + make_interval(secs => coalesce(t.sla_seconds, $2::int)) < $1::timestamptz
		RETURNING c.id`, now, int(s.opt.Routing.DefaultSLA/time.Second))
	if err != nil {
		return db.Translate(err, "queue")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return db.Translate(err, "queue")
	}
	for _, id := range ids {
		e, err := s.queueEntry(ctx, id, true)
		if err != nil {
			continue // assigned meanwhile
		}
		slaBreaches.Inc()
		ev := Event{Type: EventSLA, ConversationID: id, Data: rawJSON(map[string]any{"entry": e})}
		if e.Team == "" {
			s.pub.Publish(TopicAgents, ev)
		} else {
			s.pub.Publish(TeamTopic(e.Team), ev)
		}
		s.pub.Publish(TopicAdmins, ev)
	}
	return nil
}
