package handoff

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// QueueEntry is a queued conversation as agents see it.
type QueueEntry struct {
	ID       string    `json:"id"`
	Team     string    `json:"team"`
	Priority int       `json:"priority"`
	Reason   string    `json:"reason"`
	Intent   string    `json:"intent,omitempty"`
	Summary  string    `json:"summary,omitempty"`
	Customer Customer  `json:"customer"`
	Verified bool      `json:"verified"`
	QueuedAt time.Time `json:"queued_at"`
	// WaitingSeconds is how long the customer has waited, as of the answer.
	WaitingSeconds int64 `json:"waiting_seconds"`
	// Position is the place in the team's queue, from 1; an "updated"
	// queue event (a new message: the preview changed, not the place)
	// leaves it out.
	Position int `json:"position,omitempty"`
	// Preview is the start of the customer's last message.
	Preview     string `json:"preview"`
	SLASeconds  int    `json:"sla_seconds"`
	SLABreached bool   `json:"sla_breached"`
}

// previewRunes bounds a queue entry's preview.
const previewRunes = 140

// queueSelect reads queue entries; $1 is the SLA of conversations without
// a team, in seconds.
const queueSelect = `SELECT c.id, coalesce(c.team, ''), c.priority, coalesce(c.reason, ''),
	coalesce(c.escalation->>'intent', ''), coalesce(c.escalation->>'summary', ''), c.customer, c.verified,
	coalesce(c.queued_at, c.updated_at), coalesce(t.sla_seconds, $1),
	coalesce((SELECT CASE WHEN m.text = '' AND jsonb_array_length(m.attachments) > 0
			THEN '📎 ' || (m.attachments->0->>'name') ELSE m.text END
		FROM messages m WHERE m.conversation_id = c.id AND m.role = 'customer'
		ORDER BY m.seq DESC LIMIT 1), '')`

func (s *Service) scanQueueEntry(row pgx.Row, position *int) (QueueEntry, error) {
	var e QueueEntry
	var customer []byte
	dest := []any{&e.ID, &e.Team, &e.Priority, &e.Reason, &e.Intent, &e.Summary, &customer, &e.Verified,
		&e.QueuedAt, &e.SLASeconds, &e.Preview}
	if position != nil {
		dest = append(dest, position)
	}
	if err := row.Scan(dest...); err != nil {
		return e, db.Translate(err, "queue entry")
	}
	_ = json.Unmarshal(customer, &e.Customer)
	if utf8.RuneCountInString(e.Preview) > previewRunes {
		e.Preview = string([]rune(e.Preview)[:previewRunes-1]) + "…"
	}
	e.WaitingSeconds = int64(s.opt.Now().Sub(e.QueuedAt) / time.Second)
	e.SLABreached = e.WaitingSeconds >= int64(e.SLASeconds)
	return e, nil
}

// QueueFilter narrows the queue.
type QueueFilter struct {
	// Team keeps one team's entries; "-" keeps those without a team.
	Team string
}

// Queue lists queued conversations, the highest priority first and then
// the longest waiting, with each one's place in its team's queue.
func (s *Service) Queue(ctx context.Context, f QueueFilter) ([]QueueEntry, error) {
	where := ""
	args := []any{int(s.opt.Routing.DefaultSLA / time.Second)}
	switch f.Team = strings.TrimSpace(f.Team); f.Team {
	case "":
	case "-":
		where = ` AND c.team IS NULL`
	default:
		where = ` AND lower(c.team) = lower($2)`
		args = append(args, f.Team)
	}
	rows, err := s.pool.Query(ctx, queueSelect+`,
		row_number() OVER (PARTITION BY c.team ORDER BY c.priority DESC, c.queued_at, c.id)
		FROM conversations c LEFT JOIN teams t ON t.name = c.team
		WHERE c.state = 'queued'`+where+` ORDER BY c.priority DESC, c.queued_at, c.id`, args...)
	if err != nil {
		return nil, db.Translate(err, "queue")
	}
	defer rows.Close()
	out := []QueueEntry{}
	for rows.Next() {
		var p int
		e, err := s.scanQueueEntry(rows, &p)
		if err != nil {
			return nil, err
		}
		e.Position = p
		out = append(out, e)
	}
	return out, db.Translate(rows.Err(), "queue")
}

// queueEntry returns one queued conversation's entry, with its position
// when withPosition. Returns NotFound when it is not queued.
//
// The position counts the entries ahead as two ranges of the queue index
// (higher priorities; the same priority queued earlier), so the count
// reads only those entries: written as one condition with an OR it read
// every queued conversation (10 ms a call with 1,200 queued, in the
// burst's statement log). Still, it reads as many entries as are ahead,
// so it is left out where nothing moved: a queued customer's new message
// changes the entry's preview, not its place.
func (s *Service) queueEntry(ctx context.Context, id string, withPosition bool) (QueueEntry, error) {
	if !db.ValidID(id) {
		return QueueEntry{}, errs.Errorf(errs.NotFound, "queue entry not found")
	}
	position := `0`
	if withPosition {
		position = `(SELECT count(*) + 1 FROM conversations o WHERE o.state = 'queued' AND coalesce(o.team, '') = coalesce(c.team, '')
			AND o.priority > c.priority)::int +
		(SELECT count(*) FROM conversations o WHERE o.state = 'queued' AND coalesce(o.team, '') = coalesce(c.team, '')
			AND o.priority = c.priority AND (o.queued_at, o.id) < (c.queued_at, c.id))::int`
	}
	var pos int
	e, err := s.scanQueueEntry(s.pool.QueryRow(ctx, queueSelect+`, `+position+`
		FROM conversations c LEFT JOIN teams t ON t.name = c.team
		WHERE c.id = $2 AND c.state = 'queued'`, int(s.opt.Routing.DefaultSLA/time.Second), id), &pos)
	e.Position = pos
	return e, err
}
