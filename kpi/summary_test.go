package kpi_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/kpi"
)

// fixture writes conversations, events, messages and ratings with known
// times straight into the tables handoff keeps.
type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	seq  map[string]int64
}

func (f *fixture) conv(id string, at time.Time) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO conversations (id, token_hash, created_at, updated_at)
		VALUES ($1, decode(md5($2), 'hex'), $3, $3)`, id, id, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) next(id string) int64 {
	f.seq[id]++
	return f.seq[id]
}

func (f *fixture) state(id string, at time.Time, from, to, reason string) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO conversation_events (conversation_id, seq, type, data, created_at)
		VALUES ($1, $2, 'state', jsonb_build_object('from', $3::text, 'state', $4::text, 'reason', $5::text), $6)`,
		id, f.next(id), from, to, reason, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) message(id string, at time.Time, role string) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO messages (conversation_id, seq, role, text, created_at)
		VALUES ($1, $2, $3, 'text', $4)`, id, f.next(id), role, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rating(id string, score int) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO csat_responses (conversation_id, score) VALUES ($1, $2)`, id, score); err != nil {
		f.t.Fatal(err)
	}
}

func TestCompute(t *testing.T) {
	pool := dbtest.Pool(t)
	f := &fixture{t: t, pool: pool, seq: map[string]int64{}}
	day1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	at := func(day time.Time, hh, mm, ss int) time.Time {
		return day.Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second)
	}
	const (
		c1 = "00000000-0000-0000-0000-000000000001" // day 1, the bot answers
		c2 = "00000000-0000-0000-0000-000000000002" // day 1, asks for a person, transferred, closed
		c3 = "00000000-0000-0000-0000-000000000003" // day 2, low confidence, closed
		c4 = "00000000-0000-0000-0000-000000000004" // day 2, asks for a person, still waiting
		c5 = "00000000-0000-0000-0000-000000000005" // day 2, the bot answers
		c6 = "00000000-0000-0000-0000-000000000006" // the day before: outside the period
	)
	f.conv(c1, at(day1, 10, 0, 0))
	f.message(c1, at(day1, 10, 0, 1), "customer")
	f.message(c1, at(day1, 10, 0, 2), "bot")

	f.conv(c2, at(day1, 11, 0, 0))
	f.message(c2, at(day1, 11, 0, 10), "customer")
	f.state(c2, at(day1, 11, 1, 0), "bot", "queued", "customer_request")
	f.state(c2, at(day1, 11, 3, 0), "queued", "assigned", "claimed") // waited 120 s
	f.message(c2, at(day1, 11, 4, 0), "agent")                       // first response 180 s
	f.state(c2, at(day1, 11, 5, 0), "assigned", "queued", "transferred")
	f.state(c2, at(day1, 11, 6, 0), "queued", "assigned", "claimed")
	f.state(c2, at(day1, 11, 10, 0), "assigned", "closed", "closed") // resolution 600 s
	f.rating(c2, 5)

	f.conv(c3, at(day2, 9, 0, 0))
	f.state(c3, at(day2, 9, 0, 30), "bot", "queued", "low_confidence")
	f.state(c3, at(day2, 9, 5, 30), "queued", "assigned", "auto_assigned") // waited 300 s
	f.message(c3, at(day2, 9, 6, 30), "agent")                             // first response 360 s
	f.state(c3, at(day2, 9, 30, 0), "assigned", "closed", "closed")        // resolution 1800 s
	f.state(c3, at(day2, 9, 40, 0), "closed", "bot", "customer_wrote_again")
	f.state(c3, at(day2, 9, 50, 0), "bot", "closed", "closed") // a later close does not count
	f.rating(c3, 3)

	f.conv(c4, at(day2, 12, 0, 0))
	f.state(c4, at(day2, 12, 2, 0), "bot", "queued", "customer_request")

	f.conv(c5, at(day2, 13, 0, 0))

	f.conv(c6, day1.Add(-time.Hour))
	f.state(c6, day1.Add(-time.Hour+time.Minute), "bot", "queued", "frustration")
	f.rating(c6, 1)

	ctx := context.Background()
	s, err := kpi.Compute(ctx, pool, day1, day2.AddDate(0, 0, 1), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if s.Conversations != 5 || s.Handoffs != 3 || s.Contained != 2 {
		t.Errorf("conversations %d handoffs %d contained %d, want 5, 3, 2", s.Conversations, s.Handoffs, s.Contained)
	}
	eq := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got < want-1e-9 || *got > want+1e-9 {
			t.Errorf("%s = %v, want %v", name, deref(got), want)
		}
	}
	eq("containment_rate", s.ContainmentRate, 0.4)
	eq("handoff_rate", s.HandoffRate, 0.6)
	if len(s.PerDay) != 2 || s.PerDay[0] != (kpi.Day{Date: "2026-01-01", Conversations: 2, Handoffs: 1, Contained: 1}) ||
		s.PerDay[1] != (kpi.Day{Date: "2026-01-02", Conversations: 3, Handoffs: 2, Contained: 1}) {
		t.Errorf("per day %+v", s.PerDay)
	}
	if len(s.HandoffsByReason) != 2 || s.HandoffsByReason[0] != (kpi.ReasonCount{Reason: "customer_request", Count: 2}) ||
		s.HandoffsByReason[1] != (kpi.ReasonCount{Reason: "low_confidence", Count: 1}) {
		t.Errorf("handoffs by reason %+v", s.HandoffsByReason)
	}
	// percentile_cont interpolates: p50 of {a, b} is their mean, p90 is a + 0.9 (b - a).
	eq("queue wait p50", s.QueueWait.P50, 210)
	eq("queue wait p90", s.QueueWait.P90, 282)
	eq("first response p50", s.FirstResponse.P50, 270)
	eq("first response p90", s.FirstResponse.P90, 342)
	eq("resolution p50", s.Resolution.P50, 1200)
	eq("resolution p90", s.Resolution.P90, 1680)
	if s.QueueWait.Count != 2 || s.FirstResponse.Count != 2 || s.Resolution.Count != 2 {
		t.Errorf("counts: queue wait %d, first response %d, resolution %d; want 2 each", s.QueueWait.Count, s.FirstResponse.Count, s.Resolution.Count)
	}
	eq("csat average", s.CSAT.Average, 4)
	if s.CSAT.Responses != 2 || s.CSAT.Distribution != [5]int{0, 0, 1, 0, 1} {
		t.Errorf("csat %+v", s.CSAT)
	}

	t.Run("CSV", func(t *testing.T) {
		var b bytes.Buffer
		if err := s.WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"metric,value", "conversations,5", "containment_rate,0.4", "queue_wait_p50_seconds,210",
			"csat_score_5,1", "handoffs_reason_customer_request,2", "conversations_2026-01-02,3"} {
			if !strings.Contains(b.String(), line+"\n") {
				t.Errorf("CSV lacks %q:\n%s", line, b.String())
			}
		}
	})

	t.Run("DaysInTimeZone", func(t *testing.T) {
		// In Tokyo (UTC+9) day 1's conversations fall on 2026-01-01 still,
		// the period's quiet days are listed, and c6 (23:00 UTC on Dec 31,
		// 08:00 in Tokyo on Jan 1) now counts.
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			t.Skip("no time zone database")
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, tokyo)
		s, err := kpi.Compute(ctx, pool, from, from.AddDate(0, 0, 3), tokyo)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.PerDay) != 3 || s.PerDay[0].Date != "2026-01-01" || s.PerDay[0].Conversations != 3 ||
			s.PerDay[1].Conversations != 3 || s.PerDay[2].Conversations != 0 {
			t.Errorf("per day in Tokyo %+v", s.PerDay)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s, err := kpi.Compute(ctx, pool, day1.AddDate(1, 0, 0), day1.AddDate(1, 0, 7), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if s.Conversations != 0 || s.ContainmentRate != nil || s.QueueWait.P50 != nil || s.CSAT.Average != nil || len(s.PerDay) != 7 {
			t.Errorf("empty period %+v", s)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, p := range [][2]time.Time{{day2, day1}, {day1, day1}, {day1, day1.AddDate(2, 0, 0)}} {
			if _, err := kpi.Compute(ctx, pool, p[0], p[1], time.UTC); !errs.Is(err, errs.Invalid) {
				t.Errorf("period %v: error %v, want Invalid", p, err)
			}
		}
	})
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
