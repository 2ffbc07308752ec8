package bot_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/llmfake"
	"github.com/tandem-chat/tandem/retrieval"
)

// stubSearch is the knowledge base of these tests: the hits of the first
// rule whose key the query contains, else none; or err for every query.
type stubSearch struct {
	mu    sync.Mutex
	rules []searchRule
	err   error
	calls int
}

type searchRule struct {
	key  string
	hits []retrieval.Hit
}

func (s *stubSearch) Search(ctx context.Context, q retrieval.SearchRequest) ([]retrieval.Hit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	for _, r := range s.rules {
		if strings.Contains(strings.ToLower(q.Text), r.key) {
			return append([]retrieval.Hit(nil), r.hits...), nil
		}
	}
	return []retrieval.Hit{}, nil
}

var (
	shippingHit = retrieval.Hit{ChunkID: "00000000-0000-0000-0000-00000000c001", DocumentID: "00000000-0000-0000-0000-00000000d001",
		Title: "FAQ", Question: "How much does shipping cost?", Text: "Standard shipping is $6.95, and free on orders of $75 or more.", Score: 0.93}
	freeHit = retrieval.Hit{ChunkID: "00000000-0000-0000-0000-00000000c002", DocumentID: "00000000-0000-0000-0000-00000000d002",
		Title: "Shipping and delivery", Heading: "Free shipping", Text: "Orders of $75 or more ship free within the US.", Score: 0.81}
	warrantyHit = retrieval.Hit{ChunkID: "00000000-0000-0000-0000-00000000c003", DocumentID: "00000000-0000-0000-0000-00000000d003",
		Title: "Warranty", Question: "What does the warranty cover?", Text: "The 10-year warranty covers defects in materials and workmanship.", Score: 0.88}
	// lowHits are what a question the knowledge base does not cover finds.
	lowHits = []retrieval.Hit{
		{ChunkID: "00000000-0000-0000-0000-00000000c011", DocumentID: "00000000-0000-0000-0000-00000000d001", Title: "FAQ",
			Question: "Do you sell luggage tags?", Text: "Yes, leather luggage tags are $15.", Score: 0.21},
		{ChunkID: "00000000-0000-0000-0000-00000000c012", DocumentID: "00000000-0000-0000-0000-00000000d001", Title: "FAQ",
			Question: "Can I add a monogram?", Text: "Monograms cost $10.", Score: 0.18},
	}
)

// demoSearch knows shipping and warranty; "strap" finds only weak hits.
func demoSearch() *stubSearch {
	return &stubSearch{rules: []searchRule{
		{"shipping", []retrieval.Hit{shippingHit, freeHit}},
		{"warranty", []retrieval.Hit{warrantyHit}},
		{"strap", lowHits},
	}}
}

// testPool opens a fresh migrated database.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, dbtest.New(t), 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// startBot starts a bot over pool; it stops when the test ends.
func startBot(t *testing.T, pool *pgxpool.Pool, s bot.Searcher, llm *bot.LLM) *bot.Bot {
	t.Helper()
	b := bot.New(pool, s, bot.Options{LLM: llm, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return b
}

func customer(text string) handoff.Message {
	return handoff.Message{Role: handoff.RoleCustomer, Text: text}
}

func botSaid(text, decision string) handoff.Message {
	return handoff.Message{Role: handoff.RoleBot, Text: text, Meta: handoff.Meta{Decision: decision}}
}

// turn is a bot turn for text after history (which does not yet hold text).
func turn(text string, history ...handoff.Message) handoff.Turn {
	m := customer(text)
	return handoff.Turn{History: append(append([]handoff.Message(nil), history...), m), Message: m}
}

func respond(t *testing.T, b *bot.Bot, tr handoff.Turn) handoff.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := b.Respond(ctx, tr)
	if err != nil {
		t.Fatalf("Respond(%q): %v", tr.Message.Text, err)
	}
	if strings.TrimSpace(r.Text) == "" {
		t.Fatalf("Respond(%q): empty reply %+v", tr.Message.Text, r)
	}
	return r
}

// expectEscalation fails unless r hands off for reason.
func expectEscalation(t *testing.T, r handoff.Reply, reason string) *handoff.Escalation {
	t.Helper()
	if r.Escalate == nil || r.Escalate.Reason != reason || r.Meta.Decision != bot.DecisionEscalate || r.Meta.Reason != reason {
		t.Fatalf("reply %q meta %+v escalation %+v: want an escalation for %s", r.Text, r.Meta, r.Escalate, reason)
	}
	if r.Escalate.Summary == "" {
		t.Fatalf("escalation %+v without a summary", r.Escalate)
	}
	return r.Escalate
}

func expectDecision(t *testing.T, r handoff.Reply, decision string) {
	t.Helper()
	if r.Meta.Decision != decision || (r.Escalate != nil) != (decision == bot.DecisionEscalate) {
		t.Fatalf("reply %q meta %+v escalation %+v: want %s", r.Text, r.Meta, r.Escalate, decision)
	}
}

// TestTurn covers each decision in local mode: answer with a source, and
// each escalation trigger.
func TestTurn(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	b := startBot(t, pool, demoSearch(), nil)

	t.Run("AnswerWithSource", func(t *testing.T) {
		r := respond(t, b, turn("How much does shipping cost?"))
		expectDecision(t, r, bot.DecisionAnswer)
		if !strings.Contains(r.Text, shippingHit.Text) || !strings.Contains(r.Text, "Source: FAQ") {
			t.Fatalf("reply %q: want the FAQ answer quoted with its source", r.Text)
		}
		if len(r.Meta.Sources) != 1 || r.Meta.Sources[0].ChunkID != shippingHit.ChunkID || r.Meta.Confidence == nil || *r.Meta.Confidence != shippingHit.Score {
			t.Fatalf("meta %+v: want the hit as source and its score as confidence", r.Meta)
		}
	})

	t.Run("PersonEnglish", func(t *testing.T) {
		r := respond(t, b, turn("I want to talk to a person"))
		e := expectEscalation(t, r, bot.ReasonCustomerRequest)
		if e.Intent != bot.IntentHuman || e.Team != bot.DefaultPolicy.DefaultTeam || e.Priority != 1 {
			t.Fatalf("escalation %+v: want intent human, the default team, priority 1", e)
		}
		if !strings.Contains(r.Text, "connecting you") {
			t.Fatalf("reply %q: want the English handoff text", r.Text)
		}
	})

	t.Run("PersonChinese", func(t *testing.T) {
		for _, text := range []string{"转人工", "我要找人工客服", "人工"} {
			r := respond(t, b, turn(text))
			expectEscalation(t, r, bot.ReasonCustomerRequest)
			if !strings.Contains(r.Text, "人工客服") {
				t.Fatalf("reply to %q is %q: want Chinese", text, r.Text)
			}
		}
	})

	t.Run("LowConfidenceClarifiesThenEscalates", func(t *testing.T) {
		first := "Do you sell a strap for suitcases?"
		r1 := respond(t, b, turn(first))
		expectDecision(t, r1, bot.DecisionClarify)
		if r1.Meta.Reason != bot.ReasonLowConfidence || !strings.Contains(r1.Text, "• Do you sell luggage tags?") ||
			!strings.Contains(r1.Text, "• Can I add a monogram?") || len(r1.Meta.Sources) != 0 {
			t.Fatalf("first low turn %q meta %+v: want a clarifying question offering the closest topics", r1.Text, r1.Meta)
		}
		second := "a strap to keep my bag closed"
		r2 := respond(t, b, turn(second, customer(first), botSaid(r1.Text, r1.Meta.Decision)))
		e := expectEscalation(t, r2, bot.ReasonLowConfidence)
		if e.LastAnswer != lowHits[0].Text || len(e.Sources) != 1 || e.Sources[0].ChunkID != lowHits[0].ChunkID {
			t.Fatalf("escalation %+v: want the last attempted answer with its source", e)
		}
		if !strings.Contains(e.Summary, first) || !strings.Contains(e.Summary, second) {
			t.Fatalf("summary %q: want the first question and the latest", e.Summary)
		}
	})

	t.Run("NothingFoundClarifies", func(t *testing.T) {
		r := respond(t, b, turn("blorp fizzle wug"))
		expectDecision(t, r, bot.DecisionClarify)
		if strings.Contains(r.Text, "•") {
			t.Fatalf("reply %q offers topics though nothing was found", r.Text)
		}
	})

	t.Run("FrustrationRepeatedQuestion", func(t *testing.T) {
		q := "How much does shipping cost to Canada?"
		r := respond(t, b, turn(q, customer(q), botSaid("Standard shipping is $6.95.", bot.DecisionAnswer)))
		expectEscalation(t, r, bot.ReasonFrustration)
	})

	t.Run("FrustrationAnger", func(t *testing.T) {
		for _, text := range []string{"stupid bot, how much is express shipping", "WHERE IS MY SUITCASE, I PAID WEEKS AGO!", "气死了，我的包裹到底在哪"} {
			expectEscalation(t, respond(t, b, turn(text)), bot.ReasonFrustration)
		}
	})

	t.Run("KnowledgeUnavailable", func(t *testing.T) {
		broken := startBot(t, pool, &stubSearch{err: errors.New("connection refused")}, nil)
		r := respond(t, broken, turn("How much does shipping cost?"))
		expectEscalation(t, r, bot.ReasonUnavailable)
	})
}

// TestIntentAction: an intent whose action is escalate hands off to its
// team with its priority; intents are data, and the classifier retrains
// when they change.
func TestIntentAction(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	b := startBot(t, pool, demoSearch(), nil)
	ctx := context.Background()
	wholesale := bot.Intent{Name: "wholesale", Action: bot.ActionEscalate, Team: "sales", Priority: 4, Examples: []string{
		"I want to buy wholesale", "resellers welcome?", "bulk order for my shop", "can I become a reseller",
		"wholesale prices for 100 suitcases", "corporate order for my company", "I run a store and want to stock your bags",
		"bulk discounts for businesses", "trade account for retailers", "I'd like to order in bulk for my business",
	}}
	const q = "I'd like to become a reseller and buy wholesale"
	before := respond(t, b, turn(q))
	if before.Escalate != nil && before.Escalate.Reason == bot.ReasonIntentPolicy {
		t.Fatalf("escalated by intent before the intent existed: %+v", before.Escalate)
	}
	if err := b.Intents().Replace(ctx, []bot.Intent{wholesale}); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r := respond(t, b, turn(q))
	e := expectEscalation(t, r, bot.ReasonIntentPolicy)
	if e.Intent != "wholesale" || e.Team != "sales" || e.Priority != 4 || e.Confidence < b.Policy().IntentThreshold {
		t.Fatalf("escalation %+v: want intent wholesale to team sales with priority 4", e)
	}
	// An ordinary question is still answered.
	expectDecision(t, respond(t, b, turn("How much does shipping cost?")), bot.DecisionAnswer)

	d, err := b.Preview(ctx, "bulk order for my shop please")
	if err != nil {
		t.Fatal(err)
	}
	if d.Intent.Name != "wholesale" || d.Decision != bot.DecisionEscalate || d.Team != "sales" {
		t.Fatalf("preview %+v", d)
	}
}

func TestIntentStore(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	s := bot.NewIntentStore(pool)
	if err := s.SeedBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedBuiltins(ctx); err != nil {
		t.Fatalf("seeding twice: %v", err)
	}
	names := func() map[string]bot.Intent {
		t.Helper()
		ins, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bot.Intent{}
		for _, in := range ins {
			m[in.Name] = in
		}
		return m
	}
	builtins := names()
	for _, n := range []string{bot.IntentHuman, bot.IntentGreeting, bot.IntentThanks, bot.IntentGoodbye, bot.IntentComplaint} {
		in, ok := builtins[n]
		if !ok || !in.Builtin || len(in.Examples) == 0 {
			t.Fatalf("built-in intent %q: %+v", n, in)
		}
	}
	if builtins[bot.IntentHuman].Action != bot.ActionEscalate || builtins[bot.IntentComplaint].Action != bot.ActionEscalate {
		t.Fatal("asking for a person and complaints must escalate")
	}
	hasChinese := false
	for _, e := range builtins[bot.IntentHuman].Examples {
		hasChinese = hasChinese || strings.ContainsRune(e, '人')
	}
	if !hasChinese {
		t.Fatal("the human intent has no Chinese examples")
	}
	v0, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Invalid", func(t *testing.T) {
		for name, ins := range map[string][]bot.Intent{
			"EmptyName":    {{Name: " ", Examples: []string{"x"}}},
			"Reserved":     {{Name: bot.IntentNone, Examples: []string{"x"}}},
			"ReservedOOS":  {{Name: bot.IntentOOS, Examples: []string{"x"}}},
			"Twice":        {{Name: "a", Examples: []string{"x"}}, {Name: "a", Examples: []string{"y"}}},
			"BadAction":    {{Name: "a", Action: "ignore", Examples: []string{"x"}}},
			"EmptyExample": {{Name: "a", Examples: []string{"  "}}},
			"BadPriority":  {{Name: "a", Priority: 101, Examples: []string{"x"}}},
		} {
			if err := s.Replace(ctx, ins); !errs.Is(err, errs.Invalid) {
				t.Errorf("%s: error %v, want invalid", name, err)
			}
		}
		if _, err := s.Import(ctx, []bot.Example{{Text: "   ", Intent: "order_status"}}); !errs.Is(err, errs.Invalid) {
			t.Errorf("importing an empty example: error %v, want invalid", err)
		}
		if _, err := s.Import(ctx, []bot.Example{{Text: "hello", Intent: bot.IntentNone}}); !errs.Is(err, errs.Invalid) {
			t.Errorf("importing into the reserved intent none: error %v, want invalid", err)
		}
	})

	t.Run("ReplaceAndImport", func(t *testing.T) {
		err := s.Replace(ctx, []bot.Intent{
			{Name: "order_status", Examples: []string{"where is my order"}},
			{Name: "refund", Action: bot.ActionEscalate, Team: "billing", Priority: 2, Examples: []string{"I want my money back"}},
			{Name: bot.IntentComplaint, Action: bot.ActionEscalate, Team: "care", Examples: []string{"I want to complain"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := names()
		if got["order_status"].Action != bot.ActionAnswer || got["refund"].Team != "billing" || got["refund"].Priority != 2 {
			t.Fatalf("stored intents %+v", got)
		}
		if c := got[bot.IntentComplaint]; !c.Builtin || c.Team != "care" || len(c.Examples) != 1 {
			t.Fatalf("changed built-in %+v", c)
		}
		v1, _ := s.Version(ctx)
		if v1 == v0 {
			t.Fatal("version unchanged after Replace")
		}
		// Replace is the whole set: refund goes, built-ins stay.
		if err := s.Replace(ctx, []bot.Intent{{Name: "order_status", Examples: []string{"where is my order"}}}); err != nil {
			t.Fatal(err)
		}
		got = names()
		if _, ok := got["refund"]; ok {
			t.Fatal("refund survived a Replace without it")
		}
		if _, ok := got[bot.IntentGreeting]; !ok {
			t.Fatal("a built-in intent was removed")
		}
		v2, _ := s.Version(ctx)
		if v2 == v1 {
			t.Fatal("version unchanged after a Replace that only removed an intent")
		}
		n, err := s.Import(ctx, []bot.Example{
			{Text: "where is my order", Intent: "order_status"}, // already there
			{Text: "has my parcel shipped", Intent: "order_status"},
			{Text: "how do I change my address", Intent: "address_change"},
			{Text: "what's the weather", Intent: bot.IntentOOS}, // out of scope: not an intent
		})
		if err != nil || n != 2 {
			t.Fatalf("Import = %d, %v; want 2 new examples (one was there already)", n, err)
		}
		got = names()
		if ex := got["order_status"].Examples; len(ex) != 2 {
			t.Fatalf("order_status examples %q: want the new one added once", ex)
		}
		if a := got["address_change"]; a.Action != bot.ActionAnswer || len(a.Examples) != 1 {
			t.Fatalf("imported intent %+v", a)
		}
		if _, ok := got[bot.IntentOOS]; ok {
			t.Fatal("out-of-scope examples became an intent")
		}
		if v3, _ := s.Version(ctx); v3 == v2 {
			t.Fatal("version unchanged after Import")
		}
	})
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	b := startBot(t, pool, demoSearch(), nil)
	if p := b.Policy(); p.AnswerThreshold != bot.DefaultPolicy.AnswerThreshold || p.LowTurns != 2 {
		t.Fatalf("policy with nothing stored: %+v", p)
	}
	for name, p := range map[string]bot.Policy{
		"ThresholdAboveOne": {AnswerThreshold: 1.5, LowTurns: 2, IntentThreshold: 0.8},
		"NegativeIntent":    {AnswerThreshold: 0.5, LowTurns: 2, IntentThreshold: -0.1},
		"NoLowTurns":        {AnswerThreshold: 0.5, LowTurns: 0, IntentThreshold: 0.8},
		"PerIntent":         {AnswerThreshold: 0.5, LowTurns: 2, IntentThreshold: 0.8, IntentThresholds: map[string]float64{"x": 2}},
	} {
		if err := bot.SavePolicy(ctx, pool, p, ""); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: error %v, want invalid", name, err)
		}
	}

	// One low turn escalates at once.
	p := bot.DefaultPolicy
	p.LowTurns = 1
	if err := bot.SavePolicy(ctx, pool, p, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Policy(); got.LowTurns != 1 {
		t.Fatalf("policy after Refresh %+v", got)
	}
	expectEscalation(t, respond(t, b, turn("Do you sell a strap for suitcases?")), bot.ReasonLowConfidence)

	// A per-intent threshold: questions with no intent need 0.95 now, so
	// the 0.93 shipping answer is not good enough.
	p.LowTurns = 2
	p.IntentThresholds = map[string]float64{bot.IntentNone: 0.95}
	if err := bot.SavePolicy(ctx, pool, p, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expectDecision(t, respond(t, b, turn("How much does shipping cost?")), bot.DecisionClarify)
}

// TestUnanswered: low-confidence and escalated turns are recorded (never a
// plain request for a person), near-duplicates count together, and the
// preview records nothing.
func TestUnanswered(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	b := startBot(t, pool, demoSearch(), nil)

	for _, q := range []string{"Do you sell hamster cages?", "do you sell hamster cages", "Do you sell hamster cages??"} {
		expectDecision(t, respond(t, b, turn(q)), bot.DecisionClarify)
	}
	expectDecision(t, respond(t, b, turn("What is the weather in Paris tomorrow?")), bot.DecisionClarify)
	expectEscalation(t, respond(t, b, turn("I want to talk to a person")), bot.ReasonCustomerRequest)
	expectDecision(t, respond(t, b, turn("How much does shipping cost?")), bot.DecisionAnswer)
	if _, err := b.Preview(ctx, "Is there a discount for students?"); err != nil {
		t.Fatal(err)
	}
	// Personal data never reaches the report.
	expectDecision(t, respond(t, b, turn("Can you call me at +1 415 555 0134 about a gift?")), bot.DecisionClarify)

	groups, err := b.Unanswered().Report(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("%d groups %+v: want hamster cages (3), the weather (1) and the call (1)", len(groups), groups)
	}
	top := groups[0]
	if top.Count != 3 || !strings.Contains(strings.ToLower(top.Text), "hamster") || len(top.Examples) != 3 ||
		top.LastReason != bot.ReasonLowConfidence {
		t.Fatalf("top group %+v: want the three hamster questions together", top)
	}
	for _, g := range groups[1:] {
		if g.Count != 1 {
			t.Fatalf("group %+v: want 1", g)
		}
		if strings.Contains(g.Text, "555") || (strings.Contains(g.Text, "call me") && !strings.Contains(g.Text, "[phone]")) {
			t.Fatalf("group text %q keeps the phone number", g.Text)
		}
	}

	if err := b.Unanswered().Resolve(ctx, top.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Unanswered().Resolve(ctx, top.ID); !errs.Is(err, errs.NotFound) {
		t.Fatalf("resolving twice: %v, want not_found", err)
	}
	if err := b.Unanswered().Resolve(ctx, "nope"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("resolving a bad id: %v, want not_found", err)
	}
	groups, _ = b.Unanswered().Report(ctx, 0)
	if len(groups) != 2 {
		t.Fatalf("after resolving: %+v", groups)
	}
	// A resolved question asked again starts a new group.
	respond(t, b, turn("Do you sell hamster cages?"))
	groups, _ = b.Unanswered().Report(ctx, 0)
	if len(groups) != 3 {
		t.Fatalf("after asking a resolved question again: %+v", groups)
	}
}

func TestPreview(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	b := startBot(t, pool, demoSearch(), nil)
	if _, err := b.Preview(ctx, "   "); !errs.Is(err, errs.Invalid) {
		t.Fatalf("empty preview: %v, want invalid", err)
	}
	d, err := b.Preview(ctx, "How much does shipping cost?")
	if err != nil {
		t.Fatal(err)
	}
	if d.Decision != bot.DecisionAnswer || d.Confidence != shippingHit.Score || len(d.Sources) != 1 || d.Mode != "local" ||
		!strings.Contains(d.Reply, shippingHit.Text) || d.Intent.Name == "" {
		t.Fatalf("preview %+v", d)
	}
	d, err = b.Preview(ctx, "Do you sell a strap for suitcases?")
	if err != nil {
		t.Fatal(err)
	}
	if d.Decision != bot.DecisionClarify || d.Reason != bot.ReasonLowConfidence {
		t.Fatalf("preview %+v", d)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM unanswered) + (SELECT count(*) FROM messages) + (SELECT count(*) FROM conversations)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("preview wrote %d rows", n)
	}
}

// TestUnansweredBatches: questions recorded at once (many turns in
// flight) are stored together, identical ones counted and near-duplicates
// grouped even when their group starts in the same batch, and a report
// read right after sees them all.
func TestUnansweredBatches(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	ctx := context.Background()
	u := bot.NewUnanswered(pool, nil)
	convID := uuid.NewString()
	if _, err := pool.Exec(ctx, `INSERT INTO conversations (id, token_hash, state, customer) VALUES ($1, $2, 'bot', '{}')`,
		convID, "hash-"+convID); err != nil {
		t.Fatal(err)
	}
	asked := map[string]int{
		"Do you ship to Iceland?":    40,
		"do you ship to iceland":     10,
		"Can I pay with a cheque?":   25,
		"Is the shop open on Sunday": 1,
	}
	var wg sync.WaitGroup
	for text, n := range asked {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conv := ""
				if text == "Can I pay with a cheque?" && i == n-1 {
					conv = convID
				}
				if err := u.Record(ctx, text, bot.ReasonLowConfidence, 0.2, conv); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	groups, err := u.Report(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bot.UnansweredGroup{}
	total := 0
	for _, g := range groups {
		got[strings.ToLower(strings.Trim(g.Text, "?"))] = g
		total += g.Count
	}
	if len(groups) != 3 || total != 76 {
		t.Fatalf("%d groups, %d questions: %+v; want 3 groups of 76", len(groups), total, groups)
	}
	if g := got["do you ship to iceland"]; g.Count != 50 || len(g.Examples) != 2 {
		t.Fatalf("Iceland: %+v; want 50 in one group with both wordings", g)
	}
	if g := got["can i pay with a cheque"]; g.Count != 25 || g.ConversationID != convID || g.LastReason != bot.ReasonLowConfidence {
		t.Fatalf("cheque: %+v; want 25 and the conversation", g)
	}
	if g := got["is the shop open on sunday"]; g.Count != 1 {
		t.Fatalf("Sunday: %+v", g)
	}
}

// TestPrepareSearch: with an LLM, a turn uses the search its message's
// Prepare started (one search in all, for the redacted text), searches
// anew when the prepared text is not its message's or the prepared search
// failed, and answers from the same passages either way. In local mode
// Prepare starts nothing.
func TestPrepareSearch(t *testing.T) {
	t.Parallel()
	s := demoSearch()
	pool := testPool(t)
	if p := startBot(t, pool, s, nil).Prepare(context.Background(), "How much does shipping cost?"); p != nil {
		t.Fatalf("local mode prepared %v: want nothing", p)
	}
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	fake.SetReply(func(openai.ChatCompletionRequest) string { return "It costs what the first passage says [1]." })
	b := startBot(t, pool, s, bot.NewLLM(bot.LLMConfig{BaseURL: fake.URL(), Model: "fake-chat", Timeout: 20 * time.Second}))
	ctx := context.Background()
	// fromShipping: the answer cites the shipping passage.
	fromShipping := func(r handoff.Reply) bool {
		return len(r.Meta.Sources) > 0 && r.Meta.Sources[0].ChunkID == shippingHit.ChunkID
	}
	calls := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.calls
	}
	// waitCalls waits for the prepared search to have run, so that the
	// searches counted are the prepared one and the turn's own.
	waitCalls := func(before int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for calls() == before {
			if time.Now().After(deadline) {
				t.Fatal("the prepared search did not run")
			}
			time.Sleep(time.Millisecond)
		}
	}
	ask := func(prepared, asked string) (handoff.Reply, int) {
		t.Helper()
		before := calls()
		tr := turn(asked)
		tr.Prepared = b.Prepare(ctx, prepared)
		defer tr.Prepared.Release()
		waitCalls(before)
		r := respond(t, b, tr)
		return r, calls() - before
	}

	q := "How much does shipping cost? Write to ada@example.com"
	r, n := ask(q, q)
	expectDecision(t, r, bot.DecisionAnswer)
	if n != 1 || !fromShipping(r) {
		t.Fatalf("%d searches, reply %q %+v: want the prepared search used, and only it", n, r.Text, r.Meta.Sources)
	}
	if r, n = ask("What does the warranty cover?", q); n != 2 || !fromShipping(r) {
		t.Fatalf("%d searches, reply %q %+v: want the turn's own search when another text was prepared", n, r.Text, r.Meta.Sources)
	}

	// The prepared search fails; by the turn the database is back.
	s.mu.Lock()
	s.err = errors.New("connection refused")
	s.mu.Unlock()
	before := calls()
	tr := turn(q)
	tr.Prepared = b.Prepare(ctx, q)
	defer tr.Prepared.Release()
	waitCalls(before)
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	r = respond(t, b, tr)
	expectDecision(t, r, bot.DecisionAnswer)
	if n := calls() - before; n != 2 || !fromShipping(r) {
		t.Fatalf("%d searches, reply %q %+v: want a search of the turn's own after the prepared one failed", n, r.Text, r.Meta.Sources)
	}
}

// TestRespondNoTurn: a turn called off because its message was not stored
// for the bot (handoff.ErrNoTurn, while the LLM is still thinking) ends
// with an error and says nothing: no local fallback answer.
func TestRespondNoTurn(t *testing.T) {
	t.Parallel()
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	fake.SetLatency(time.Minute)
	b := startBot(t, testPool(t), demoSearch(), bot.NewLLM(bot.LLMConfig{BaseURL: fake.URL(), Model: "fake-chat", Timeout: 20 * time.Second}))
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	time.AfterFunc(100*time.Millisecond, func() { cancel(handoff.ErrNoTurn) })
	r, err := b.Respond(ctx, turn("How much does shipping cost?"))
	if err == nil || r.Text != "" {
		t.Fatalf("reply %q, err %v: want nothing said and the cancellation", r.Text, err)
	}
	// Any other end of the LLM's time (a shutdown, say) still falls back
	// to the local answer.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	time.AfterFunc(100*time.Millisecond, cancel2)
	r, err = b.Respond(ctx2, turn("How much does shipping cost?"))
	if err != nil || !strings.Contains(r.Text, "$6.95") {
		t.Fatalf("reply %q, err %v: want the local answer", r.Text, err)
	}
}
