// Package kpi computes the support team's key figures over a period, in SQL,
// from the conversations, messages and events that handoff stores: volume
// per day, how many the bot contained, handoffs by reason, first response,
// queue wait and resolution times, and customer satisfaction.
package kpi

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// MaxSpan bounds a period, so one request cannot scan years of history.
const MaxSpan = 366 * 24 * time.Hour

// Summary is the key figures of the conversations started in [From, To).
type Summary struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Timezone string    `json:"timezone"`
	// Conversations started in the period; Handoffs is how many of them the
	// bot handed to a person (escalated to the queue) at least once, and
	// Contained how many it never did.
	Conversations   int      `json:"conversations"`
	Handoffs        int      `json:"handoffs"`
	Contained       int      `json:"contained"`
	ContainmentRate *float64 `json:"containment_rate"` // nil without conversations
	HandoffRate     *float64 `json:"handoff_rate"`
	PerDay          []Day    `json:"per_day"`
	// HandoffsByReason counts the bot's escalations by reason code.
	HandoffsByReason []ReasonCount `json:"handoffs_by_reason"`
	// FirstResponse runs from the first escalation to the first agent
	// message after it; QueueWait to the first assignment after it;
	// Resolution from the start of the conversation to its first close.
	FirstResponse Percentiles `json:"first_response_seconds"`
	QueueWait     Percentiles `json:"queue_wait_seconds"`
	Resolution    Percentiles `json:"resolution_seconds"`
	CSAT          CSAT        `json:"csat"`
}

// Day is one day of the period, in the summary's time zone.
type Day struct {
	Date          string `json:"date"` // YYYY-MM-DD
	Conversations int    `json:"conversations"`
	Handoffs      int    `json:"handoffs"`
	Contained     int    `json:"contained"`
}

// ReasonCount is how many escalations had one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Percentiles of a duration in seconds; nil when nothing was measured.
type Percentiles struct {
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	Count int      `json:"count"`
}

// CSAT is the customers' ratings of the period's conversations.
type CSAT struct {
	Average   *float64 `json:"average"`
	Responses int      `json:"responses"`
	// Distribution counts the scores 1 to 5 (index 0 is score 1).
	Distribution [5]int `json:"distribution"`
}

// escalations are the bot's moves of a conversation to the queue; moves
// back to the queue after an agent (transfers, an agent going away) are not
// handoffs.
const escalations = `e.type = 'state' AND e.data->>'state' = 'queued' AND e.data->>'from' = 'bot'`

// Compute returns the summary of conversations started in [from, to), with
// days counted in loc. Returns Invalid when the period is empty or longer
// than MaxSpan.
func Compute(ctx context.Context, pool *pgxpool.Pool, from, to time.Time, loc *time.Location) (*Summary, error) {
	if !from.Before(to) {
		return nil, errs.Errorf(errs.Invalid, "from must be before to")
	}
	if to.Sub(from) > MaxSpan {
		return nil, errs.Errorf(errs.Invalid, "the period is longer than %d days", int(MaxSpan.Hours()/24))
	}
	if loc == nil {
		loc = time.UTC
	}
	s := &Summary{From: from, To: to, Timezone: loc.String(), PerDay: []Day{}, HandoffsByReason: []ReasonCount{}}

	// Conversations and handoffs per day.
	rows, err := pool.Query(ctx, `
		WITH convs AS (SELECT id, created_at FROM conversations WHERE created_at >= $1 AND created_at < $2),
		esc AS (SELECT DISTINCT e.conversation_id FROM conversation_events e JOIN convs c ON c.id = e.conversation_id
			WHERE `+escalations+`)
		SELECT to_char(c.created_at AT TIME ZONE $3, 'YYYY-MM-DD'), count(*), count(esc.conversation_id)
		FROM convs c LEFT JOIN esc ON esc.conversation_id = c.id
		GROUP BY 1 ORDER BY 1`, from, to, loc.String())
	if err != nil {
		return nil, fmt.Errorf("kpi: per day: %w", db.Translate(err, "conversations"))
	}
	byDay := map[string]Day{}
	for rows.Next() {
		var d Day
		if err := rows.Scan(&d.Date, &d.Conversations, &d.Handoffs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("kpi: per day: %w", err)
		}
		d.Contained = d.Conversations - d.Handoffs
		byDay[d.Date] = d
		s.Conversations += d.Conversations
		s.Handoffs += d.Handoffs
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kpi: per day: %w", db.Translate(err, "conversations"))
	}
	// Every day of the period, also the quiet ones.
	for d := dayStart(from.In(loc)); d.Before(to); d = d.AddDate(0, 0, 1) {
		key := d.Format("2006-01-02")
		day, ok := byDay[key]
		if !ok {
			day = Day{Date: key}
		}
		s.PerDay = append(s.PerDay, day)
	}
	s.Contained = s.Conversations - s.Handoffs
	if s.Conversations > 0 {
		c := float64(s.Contained) / float64(s.Conversations)
		h := float64(s.Handoffs) / float64(s.Conversations)
		s.ContainmentRate, s.HandoffRate = &c, &h
	}

	// Escalations by reason.
	rows, err = pool.Query(ctx, `
		SELECT coalesce(nullif(e.data->>'reason', ''), 'unknown'), count(*)
		FROM conversation_events e JOIN conversations c ON c.id = e.conversation_id
		WHERE c.created_at >= $1 AND c.created_at < $2 AND `+escalations+`
		GROUP BY 1 ORDER BY 2 DESC, 1`, from, to)
	if err != nil {
		return nil, fmt.Errorf("kpi: reasons: %w", db.Translate(err, "events"))
	}
	for rows.Next() {
		var r ReasonCount
		if err := rows.Scan(&r.Reason, &r.Count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("kpi: reasons: %w", err)
		}
		s.HandoffsByReason = append(s.HandoffsByReason, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kpi: reasons: %w", db.Translate(err, "events"))
	}

	// Waits after the first escalation, and time to the first close.
	err = pool.QueryRow(ctx, `
		WITH convs AS (SELECT id, created_at FROM conversations WHERE created_at >= $1 AND created_at < $2),
		esc AS (SELECT e.conversation_id AS id, min(e.created_at) AS at
			FROM conversation_events e JOIN convs c ON c.id = e.conversation_id WHERE `+escalations+` GROUP BY 1),
		waits AS (SELECT
			extract(epoch FROM (SELECT min(a.created_at) FROM conversation_events a WHERE a.conversation_id = esc.id
				AND a.type = 'state' AND a.data->>'state' = 'assigned' AND a.created_at >= esc.at) - esc.at)::float8 AS queue_wait,
			extract(epoch FROM (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = esc.id
				AND m.role = 'agent' AND m.created_at >= esc.at) - esc.at)::float8 AS first_response
			FROM esc),
		closes AS (SELECT extract(epoch FROM min(e.created_at) - c.created_at)::float8 AS resolution
			FROM convs c JOIN conversation_events e ON e.conversation_id = c.id
			WHERE e.type = 'state' AND e.data->>'state' = 'closed' GROUP BY c.id, c.created_at)
		SELECT
			(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response) FROM waits WHERE first_response IS NOT NULL),
			(SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response) FROM waits WHERE first_response IS NOT NULL),
			(SELECT count(first_response) FROM waits),
			(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_wait) FROM waits WHERE queue_wait IS NOT NULL),
			(SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY queue_wait) FROM waits WHERE queue_wait IS NOT NULL),
			(SELECT count(queue_wait) FROM waits),
			(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution) FROM closes),
			(SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution) FROM closes),
			(SELECT count(*) FROM closes)`, from, to).Scan(
		&s.FirstResponse.P50, &s.FirstResponse.P90, &s.FirstResponse.Count,
		&s.QueueWait.P50, &s.QueueWait.P90, &s.QueueWait.Count,
		&s.Resolution.P50, &s.Resolution.P90, &s.Resolution.Count)
	if err != nil {
		return nil, fmt.Errorf("kpi: durations: %w", db.Translate(err, "conversations"))
	}

	// Ratings.
	rows, err = pool.Query(ctx, `
		SELECT r.score, count(*) FROM csat_responses r JOIN conversations c ON c.id = r.conversation_id
		WHERE c.created_at >= $1 AND c.created_at < $2 GROUP BY 1`, from, to)
	if err != nil {
		return nil, fmt.Errorf("kpi: csat: %w", db.Translate(err, "ratings"))
	}
	sum := 0
	for rows.Next() {
		var score, n int
		if err := rows.Scan(&score, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("kpi: csat: %w", err)
		}
		if score >= 1 && score <= 5 {
			s.CSAT.Distribution[score-1] = n
			s.CSAT.Responses += n
			sum += score * n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kpi: csat: %w", db.Translate(err, "ratings"))
	}
	if s.CSAT.Responses > 0 {
		avg := float64(sum) / float64(s.CSAT.Responses)
		s.CSAT.Average = &avg
	}
	return s, nil
}

func dayStart(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// WriteCSV writes the summary as two columns, metric and value, one figure
// per row (days and reasons included), for spreadsheets.
func (s *Summary) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	num := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	rows := [][]string{
		{"metric", "value"},
		{"from", s.From.Format(time.RFC3339)},
		{"to", s.To.Format(time.RFC3339)},
		{"timezone", s.Timezone},
		{"conversations", strconv.Itoa(s.Conversations)},
		{"handoffs", strconv.Itoa(s.Handoffs)},
		{"contained", strconv.Itoa(s.Contained)},
		{"containment_rate", num(s.ContainmentRate)},
		{"handoff_rate", num(s.HandoffRate)},
		{"first_response_p50_seconds", num(s.FirstResponse.P50)},
		{"first_response_p90_seconds", num(s.FirstResponse.P90)},
		{"queue_wait_p50_seconds", num(s.QueueWait.P50)},
		{"queue_wait_p90_seconds", num(s.QueueWait.P90)},
		{"resolution_p50_seconds", num(s.Resolution.P50)},
		{"resolution_p90_seconds", num(s.Resolution.P90)},
		{"csat_average", num(s.CSAT.Average)},
		{"csat_responses", strconv.Itoa(s.CSAT.Responses)},
	}
	for i, n := range s.CSAT.Distribution {
		rows = append(rows, []string{fmt.Sprintf("csat_score_%d", i+1), strconv.Itoa(n)})
	}
	for _, r := range s.HandoffsByReason {
		rows = append(rows, []string{"handoffs_reason_" + r.Reason, strconv.Itoa(r.Count)})
	}
	for _, d := range s.PerDay {
		rows = append(rows,
			[]string{"conversations_" + d.Date, strconv.Itoa(d.Conversations)},
			[]string{"handoffs_" + d.Date, strconv.Itoa(d.Handoffs)})
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("kpi: csv: %w", err)
	}
	return nil
}
