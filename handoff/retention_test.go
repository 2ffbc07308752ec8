package handoff_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
)

// testClock is a settable clock for the services under test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// retentionCase is a set of conversations of different ages and states.
type retentionCase struct {
	old, recent, open, reopened *handoff.Conversation
	oldToken                    string
}

// seedRetention makes, at t0: an old conversation closed at t0 (a verified
// customer, messages, a note, a scored comment, a transfer note in the
// audit log), an open one started at t0, one closed at t0 and reopened by
// its customer; and one closed 20 days later.
func seedRetention(t *testing.T, e *env, svc *handoff.Service, clk *testClock, t0 time.Time) retentionCase {
	t.Helper()
	ctx := context.Background()
	alex := e.user("Alex Agent")
	agent := handoff.AgentActor(alex, false)
	clk.set(t0)
	var rc retentionCase
	var tok string
	rc.old, tok = must2[*handoff.Conversation, string](t)(svc.CreateConversation(ctx, handoff.Customer{ExternalID: "cust-42", Name: "Kim Lee", Email: "kim@example.com", Locale: "en"}, true))
	rc.oldToken = tok
	res := must[*handoff.PostResult](t)(svc.PostMessage(ctx, rc.old.ID, handoff.Author{Role: handoff.RoleCustomer}, "My address is 1 Main St", "r1"))
	<-res.Turn
	must[*handoff.Conversation](t)(svc.Claim(ctx, agent, rc.old.ID))
	must[*handoff.Note](t)(svc.AddNote(ctx, agent, rc.old.ID, "Kim called about her address"))
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, agent, rc.old.ID, "resolved"))
	must[*handoff.CSAT](t)(svc.SubmitCSAT(ctx, rc.old.ID, 4, "Kim was happy"))

	rc.open, _ = must2[*handoff.Conversation, string](t)(svc.CreateConversation(ctx, handoff.Customer{Name: "Open"}, false))
	must[*handoff.PostResult](t)(svc.PostMessage(ctx, rc.open.ID, handoff.Author{Role: handoff.RoleCustomer}, "still talking", "o1"))

	rc.reopened, _ = must2[*handoff.Conversation, string](t)(svc.CreateConversation(ctx, handoff.Customer{Name: "Back"}, false))
	must[*handoff.Conversation](t)(svc.Claim(ctx, agent, rc.reopened.ID))
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, agent, rc.reopened.ID, "resolved"))
	res = must[*handoff.PostResult](t)(svc.PostMessage(ctx, rc.reopened.ID, handoff.Author{Role: handoff.RoleCustomer}, "one more thing", "b1"))
	<-res.Turn

	clk.set(t0.Add(20 * 24 * time.Hour))
	rc.recent, _ = must2[*handoff.Conversation, string](t)(svc.CreateConversation(ctx, handoff.Customer{Name: "Recent"}, false))
	must[*handoff.Conversation](t)(svc.Claim(ctx, agent, rc.recent.ID))
	must[*handoff.Conversation](t)(svc.CloseConversation(ctx, agent, rc.recent.ID, "resolved"))
	return rc
}

func must2[A, B any](t *testing.T) func(A, B, error) (A, B) {
	return func(a A, b B, err error) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// count runs a count query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestRetention checks both modes with a controlled clock: at 30 days,
// only the conversation closed more than 30 days ago goes (deleted with
// everything hanging off it, or stripped of personal data and kept for the
// figures); the open one, the reopened one and the recent one stay.
func TestRetention(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	policy := func(mode string) handoff.Retention { return handoff.Retention{Days: 30, Mode: mode} }

	t.Run("Validate", func(t *testing.T) {
		for _, r := range []handoff.Retention{{Days: -1}, {Days: 10, Mode: "shred"}, {Days: 100000}} {
			if err := r.Validate(); !errs.Is(err, errs.Invalid) {
				t.Errorf("%+v: %v, want Invalid", r, err)
			}
		}
		r := handoff.Retention{Days: 7, Mode: "Anonymize"}
		if err := r.Validate(); err != nil || r.Mode != handoff.RetentionAnonymise {
			t.Errorf("%+v %v", r, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		clk := &testClock{}
		svc := e.serviceWith(handoff.Options{Routing: manual, Now: clk.now})
		ctx := context.Background()
		rc := seedRetention(t, e, svc, clk, t0)
		now := t0.Add(31 * 24 * time.Hour)
		dry := must[handoff.RetentionRun](t)(svc.RunRetention(ctx, policy(handoff.RetentionDelete), now, true))
		if dry.Deleted != 1 || e.count(`SELECT count(*) FROM conversations`) != 4 {
			t.Fatalf("dry run %+v changed something or miscounted", dry)
		}
		run := must[handoff.RetentionRun](t)(svc.RunRetention(ctx, policy(handoff.RetentionDelete), now, false))
		if run.Deleted != 1 || !run.Cutoff.Equal(t0.Add(24*time.Hour)) {
			t.Fatalf("run %+v: want one deleted, cutoff a day after t0", run)
		}
		if _, err := svc.Conversation(ctx, rc.old.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("old conversation: %v, want NotFound", err)
		}
		for _, table := range []string{"messages", "conversation_events", "conversation_notes", "csat_responses"} {
			if n := e.count(`SELECT count(*) FROM `+table+` WHERE conversation_id = $1`, rc.old.ID); n != 0 {
				t.Errorf("%d rows of %s outlived their conversation", n, table)
			}
		}
		for _, c := range []*handoff.Conversation{rc.recent, rc.open, rc.reopened} {
			if _, err := svc.Conversation(ctx, c.ID); err != nil {
				t.Errorf("conversation %s: %v, want it kept", c.ID, err)
			}
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE subject_id = $1 AND (data ? 'note' OR data::text LIKE '%Kim%')`, rc.old.ID); n != 0 {
			t.Errorf("%d audit records still quote the conversation", n)
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'retention.run' AND (data->>'deleted')::int = 1`); n != 1 {
			t.Errorf("%d retention.run records", n)
		}
		// Later, the recent one's time comes too.
		run = must[handoff.RetentionRun](t)(svc.RunRetention(ctx, policy(handoff.RetentionDelete), now.Add(25*24*time.Hour), false))
		if run.Deleted != 1 {
			t.Fatalf("second run %+v: want the recent one", run)
		}
	})

	t.Run("Anonymise", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		clk := &testClock{}
		svc := e.serviceWith(handoff.Options{Routing: manual, Now: clk.now})
		ctx := context.Background()
		rc := seedRetention(t, e, svc, clk, t0)
		run := must[handoff.RetentionRun](t)(svc.RunRetention(ctx, policy(handoff.RetentionAnonymise), t0.Add(31*24*time.Hour), false))
		if run.Anonymised != 1 || run.Deleted != 0 {
			t.Fatalf("run %+v", run)
		}
		c := must[*handoff.Conversation](t)(svc.Conversation(ctx, rc.old.ID))
		if c.State != handoff.StateClosed || c.Customer.Name != "" || c.Customer.Email != "" || c.Customer.ExternalID != "" || c.Customer.Locale != "en" {
			t.Fatalf("anonymised conversation %+v: want it closed, with its locale only", c)
		}
		msgs := must[[]handoff.Message](t)(svc.Messages(ctx, rc.old.ID, 0, 100))
		if len(msgs) < 2 {
			t.Fatalf("messages %+v: want them kept for the figures", msgs)
		}
		for _, m := range msgs {
			if m.Text != "" || m.ClientMsgID != "" {
				t.Fatalf("message %+v kept its text", m)
			}
		}
		if n := e.count(`SELECT count(*) FROM conversation_notes WHERE conversation_id = $1`, rc.old.ID); n != 0 {
			t.Errorf("%d notes kept", n)
		}
		var score int
		var comment string
		if err := e.pool.QueryRow(ctx, `SELECT score, comment FROM csat_responses WHERE conversation_id = $1`, rc.old.ID).Scan(&score, &comment); err != nil || score != 4 || comment != "" {
			t.Errorf("csat %d %q %v: want the score without its comment", score, comment, err)
		}
		for _, q := range []string{
			`SELECT count(*) FROM conversation_events WHERE conversation_id = $1 AND data::text LIKE '%Kim%'`,
			`SELECT count(*) FROM audit_log WHERE subject_id = $1 AND (data ? 'note' OR data::text LIKE '%Kim%')`,
			`SELECT count(*) FROM conversations WHERE id = $1 AND (external_id IS NOT NULL OR escalation::text LIKE '%Kim%' OR anonymised_at IS NULL)`,
		} {
			if n := e.count(q, rc.old.ID); n != 0 {
				t.Errorf("%s: %d rows still name the customer", q, n)
			}
		}
		if err := svc.AuthorizeCustomer(ctx, rc.old.ID, rc.oldToken); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("the old token: %v, want Unauthorized", err)
		}
		// The verified customer's history no longer lists it.
		again, _ := must2[*handoff.Conversation, string](t)(svc.CreateConversation(ctx, handoff.Customer{ExternalID: "cust-42"}, true))
		if h := must[[]handoff.PastConversation](t)(svc.History(ctx, again, 50)); len(h) != 1 || h[0].ID != again.ID {
			t.Errorf("history %+v: want only the new conversation", h)
		}
		for _, c := range []*handoff.Conversation{rc.recent, rc.open, rc.reopened} {
			ms := must[[]handoff.Message](t)(svc.Messages(ctx, c.ID, 0, 100))
			for _, m := range ms {
				if m.Text == "" {
					t.Errorf("conversation %s lost message text", c.ID)
				}
			}
		}
		// Anonymised once: a second run finds nothing.
		if run := must[handoff.RetentionRun](t)(svc.RunRetention(ctx, policy(handoff.RetentionAnonymise), t0.Add(32*24*time.Hour), false)); run.Anonymised != 0 {
			t.Fatalf("second run %+v", run)
		}
	})

	t.Run("DailyAcrossInstances", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		clk := &testClock{}
		a := e.serviceWith(handoff.Options{Routing: manual, Now: clk.now})
		b := e.serviceWith(handoff.Options{Routing: manual, Now: clk.now})
		ctx := context.Background()
		admin := handoff.AgentActor(e.user("Ada Admin", "admin"), true)
		rc := seedRetention(t, e, a, clk, t0)
		clk.set(t0.Add(31 * 24 * time.Hour))
		if ran, err := a.RetentionDue(ctx); ran || err != nil {
			t.Fatalf("ran %v, %v with no policy", ran, err)
		}
		if _, err := a.SetRetention(ctx, admin, handoff.Retention{Days: 30, Mode: "delete"}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetRetention(ctx, admin, handoff.Retention{Days: 30, Mode: "burn"}); !errs.Is(err, errs.Invalid) {
			t.Fatalf("bad mode: %v", err)
		}
		ran, err := a.RetentionDue(ctx)
		if !ran || err != nil {
			t.Fatalf("first run of the day: %v, %v", ran, err)
		}
		if ran, err := b.RetentionDue(ctx); ran || err != nil {
			t.Fatalf("the other instance ran it again the same day: %v, %v", ran, err)
		}
		if _, err := a.Conversation(ctx, rc.old.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("old conversation: %v", err)
		}
		_, last, err := b.RetentionPolicy(ctx)
		if err != nil || last == nil || last.Deleted != 1 || !last.At.Equal(clk.now()) {
			t.Fatalf("last run %+v, %v", last, err)
		}
		clk.set(clk.now().Add(24 * time.Hour))
		if ran, err := b.RetentionDue(ctx); !ran || err != nil {
			t.Fatalf("next day: %v, %v", ran, err)
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'retention.run'`); n != 2 {
			t.Fatalf("%d runs recorded, want 2", n)
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'settings.update' AND subject_id = 'retention'`); n != 1 {
			t.Fatalf("%d setting changes recorded, want 1", n)
		}
		if !strings.Contains(last.Mode, "delete") {
			t.Fatalf("mode %q", last.Mode)
		}
	})
}
