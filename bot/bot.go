// Package bot turns a transcript plus a new customer message into a
// decision: answer (with text, sources and confidence), clarify, or
// escalate to a person (with reason, team, priority and summary). It works
// with no LLM at all (local mode) and better with one.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/pii"
	"github.com/tandem-chat/tandem/retrieval"
)

var _ handoff.Preparer = (*Bot)(nil)

// Decisions.
const (
	DecisionAnswer   = "answer"
	DecisionClarify  = "clarify"
	DecisionEscalate = "escalate"
)

// Escalation reasons.
const (
	ReasonCustomerRequest = "customer_requested"
	ReasonIntentPolicy    = "intent_policy"
	ReasonLowConfidence   = "low_confidence"
	ReasonFrustration     = "frustration"
	ReasonNoAnswer        = "sources_do_not_answer"
	ReasonUnavailable     = "knowledge_unavailable"
	ReasonLLMUnavailable  = "llm_unavailable"
)

// Searcher is the retrieval the bot needs.
type Searcher interface {
	Search(ctx context.Context, q retrieval.SearchRequest) ([]retrieval.Hit, error)
}

// IntentScore is a detected intent with the classifier's confidence.
type IntentScore struct {
	Name       string  `json:"name"`
	Confidence float64 `json:"confidence"`
}

// Decision is the outcome of one turn.
type Decision struct {
	Decision   string           `json:"decision"`
	Reply      string           `json:"reply"`
	Confidence float64          `json:"confidence"`
	Intent     IntentScore      `json:"intent"`
	Reason     string           `json:"reason"` // "" when the bot answers
	Sources    []handoff.Source `json:"sources"`
	Team       string           `json:"team,omitempty"`
	Priority   int              `json:"priority"`
	Summary    string           `json:"summary,omitempty"`
	// LastAnswer is the answer the bot would have given, for the agent.
	LastAnswer string `json:"last_answer,omitempty"`
	// Mode is "local" or "llm": what produced the reply.
	Mode string `json:"mode"`
}

// Bot is the turn pipeline.
type Bot struct {
	pool       *pgxpool.Pool
	search     Searcher
	intents    *IntentStore
	llm        *LLM
	vision     bool
	unanswered *Unanswered
	log        *slog.Logger

	mu      sync.RWMutex
	clf     *Classifier
	defs    map[string]Intent
	version string
	policy  Policy
}

// Options configure a Bot.
type Options struct {
	LLM *LLM // nil: local mode
	// Vision says the LLM's model takes images: customers' photos are
	// shown to it (LLM_VISION).
	Vision bool
	Logger *slog.Logger
}

// New returns a Bot. Call Start before use.
func New(pool *pgxpool.Pool, search Searcher, opt Options) *Bot {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Bot{pool: pool, search: search, intents: NewIntentStore(pool), llm: opt.LLM, vision: opt.Vision && opt.LLM != nil,
		unanswered: NewUnanswered(pool, opt.Logger), log: opt.Logger, policy: DefaultPolicy}
}

// Intents returns the intent store.
func (b *Bot) Intents() *IntentStore { return b.intents }

// Unanswered returns the unanswered-questions recorder.
func (b *Bot) Unanswered() *Unanswered { return b.unanswered }

// Start seeds the built-in intents, trains the classifier, loads the policy,
// and keeps both fresh (other instances may change them) until ctx ends.
func (b *Bot) Start(ctx context.Context) error {
	if err := b.intents.SeedBuiltins(ctx); err != nil {
		return err
	}
	if err := b.Refresh(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := b.Refresh(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("bot: refresh", "error", err)
				}
			}
		}
	}()
	return nil
}

// Refresh retrains the classifier if the intents changed, and reloads the
// policy.
func (b *Bot) Refresh(ctx context.Context) error {
	p, err := LoadPolicy(ctx, b.pool)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.policy = p
	b.mu.Unlock()
	v, err := b.intents.Version(ctx)
	if err != nil {
		return err
	}
	b.mu.RLock()
	same := v == b.version
	b.mu.RUnlock()
	if same {
		return nil
	}
	return b.retrain(ctx, v)
}

func (b *Bot) retrain(ctx context.Context, version string) error {
	ins, err := b.intents.List(ctx)
	if err != nil {
		return err
	}
	defs := map[string]Intent{}
	for _, in := range ins {
		defs[in.Name] = in
	}
	var clf *Classifier
	if ex := trainingExamples(ins); len(ex) > 0 {
		start := time.Now()
		clf, err = TrainClassifier(ex, ClassifierOptions{})
		if err != nil {
			return err
		}
		b.log.Info("bot: intent classifier trained", "intents", len(defs), "examples", len(ex), "ms", time.Since(start).Milliseconds())
	}
	b.mu.Lock()
	b.clf, b.defs, b.version = clf, defs, version
	b.mu.Unlock()
	return nil
}

// Policy returns the policy in force.
func (b *Bot) Policy() Policy {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.policy
}

// Respond implements handoff.Responder. A message of attachments only is
// not guessed at: with a vision model its photos are shown to the model
// (see attachmentTurn); otherwise the bot acknowledges them.
func (b *Bot) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	var d Decision
	var err error
	if attachmentsOnly(turn.Message) {
		d = b.attachmentTurn(ctx, turn)
	} else {
		pre, _ := turn.Prepared.(*prefetch)
		d, err = b.decide(ctx, turn.Message.Text, turn.History, turn.Stream, pre, b.images(ctx, turn)...)
	}
	if err != nil {
		return handoff.Reply{}, err
	}
	conf := d.Confidence
	reply := handoff.Reply{
		Role: handoff.RoleBot,
		Text: d.Reply,
		Meta: handoff.Meta{Intent: d.Intent.Name, Confidence: &conf, Sources: d.Sources, Decision: d.Decision, Reason: d.Reason},
	}
	if d.Decision == DecisionEscalate && b.llm != nil && !turn.Draft {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if sum, err := b.llm.Summarize(sctx, turn.History); err == nil && sum != "" {
			d.Summary = sum
		}
		cancel()
	}
	if d.Decision == DecisionEscalate {
		reply.Escalate = &handoff.Escalation{
			Reason: d.Reason, Team: d.Team, Priority: d.Priority, Summary: d.Summary,
			Intent: d.Intent.Name, Confidence: d.Confidence, LastAnswer: d.LastAnswer, Sources: d.Sources,
		}
	}
	// A draft for an agent is not a customer's turn: nothing to record.
	if !turn.Draft && !noTurn(ctx) && d.Decision != DecisionAnswer && d.Decision != DecisionAcknowledge &&
		d.Reason != ReasonCustomerRequest && d.Reason != ReasonIntentPolicy {
		if err := b.unanswered.Record(context.WithoutCancel(ctx), pii.Redact(turn.Message.Text), d.Reason, d.Confidence, turn.Conversation.ID); err != nil {
			b.log.Warn("bot: record unanswered", "conversation_id", turn.Conversation.ID, "error", err)
		}
	}
	return reply, nil
}

// Preview shows what the bot would answer to text, writing nothing.
func (b *Bot) Preview(ctx context.Context, text string) (Decision, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Decision{}, errs.Errorf(errs.Invalid, "text must not be empty")
	}
	return b.decide(ctx, text, nil, nil, nil)
}

// noTurn reports whether the turn was called off because its message was
// not stored for the bot (handoff.ErrNoTurn): then nothing is to be said,
// recorded or warned about.
func noTurn(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), handoff.ErrNoTurn)
}

// answerHits is how many passages a turn retrieves.
const answerHits = 5

// decide runs the pipeline: redact → intent → retrieve → answer →
// confidence → decision. pre, when not nil, is the turn's search started
// ahead (Prepare).
func (b *Bot) decide(ctx context.Context, text string, history []handoff.Message, stream func(string), pre *prefetch, images ...ImageInput) (Decision, error) {
	b.mu.RLock()
	clf, defs, policy := b.clf, b.defs, b.policy
	b.mu.RUnlock()
	zh := isChinese(text)
	clean := pii.Redact(text)
	d := Decision{Intent: IntentScore{Name: IntentNone}, Sources: []handoff.Source{}, Mode: "local"}

	// Intent.
	if clf != nil {
		p := clf.Predict(clean)
		d.Intent = IntentScore{Name: p.Intent, Confidence: p.Confidence}
	}
	if asksForPerson(clean) && (d.Intent.Name == IntentNone || d.Intent.Confidence < policy.IntentThreshold) {
		d.Intent = IntentScore{Name: IntentHuman, Confidence: 1}
	}
	intent, known := defs[d.Intent.Name]
	acting := known && d.Intent.Confidence >= policy.IntentThreshold
	d.Team, d.Priority = policy.DefaultTeam, 0
	if acting {
		if intent.Team != "" {
			d.Team = intent.Team
		}
		d.Priority = intent.Priority
	}
	summary := func() string { return extractiveSummary(history, text, d) }

	// Customers who ask for a person get one, at once.
	if acting && d.Intent.Name == IntentHuman {
		d.Confidence = d.Intent.Confidence
		return b.escalate(d, ReasonCustomerRequest, zh, summary), nil
	}
	if acting && intent.Action == ActionEscalate {
		d.Confidence = d.Intent.Confidence
		return b.escalate(d, ReasonIntentPolicy, zh, summary), nil
	}
	if frustrated(clean, history) {
		return b.escalate(d, ReasonFrustration, zh, summary), nil
	}
	if acting {
		if r, ok := smallTalk(d.Intent.Name, zh); ok {
			d.Decision, d.Reply, d.Confidence = DecisionAnswer, r, d.Intent.Confidence
			return d, nil
		}
	}

	// Retrieve.
	searched := time.Now()
	hits, err := b.retrieve(ctx, clean, pre)
	searchPhase.Observe(time.Since(searched).Seconds())
	if err != nil && noTurn(ctx) {
		return d, err
	}
	if err != nil {
		b.log.Warn("bot: search failed; escalating", "error", err)
		return b.escalate(d, ReasonUnavailable, zh, summary), nil
	}
	if len(hits) > 0 {
		d.Confidence = hits[0].Score
	}
	threshold := policy.threshold(d.Intent.Name)
	if len(hits) == 0 || d.Confidence < threshold {
		if lowTurnsBefore(history) >= policy.LowTurns-1 {
			if len(hits) > 0 {
				d.LastAnswer = extractiveAnswer(hits[0])
				d.Sources = sourcesOf(hits[:1])
			}
			return b.escalate(d, ReasonLowConfidence, zh, summary), nil
		}
		d.Decision, d.Reason = DecisionClarify, ReasonLowConfidence
		d.Reply = clarifyText(hits, zh)
		d.Sources = []handoff.Source{}
		return d, nil
	}

	// Answer.
	d.Sources = sourcesOf(hits[:1])
	if b.llm != nil {
		ans, err := b.llm.Answer(ctx, clean, history, hits, stream, images...)
		switch {
		case err == nil && ans.NoAnswer:
			d.LastAnswer = extractiveAnswer(hits[0])
			return b.escalate(d, ReasonNoAnswer, zh, summary), nil
		case err == nil:
			d.Decision, d.Reply, d.Mode = DecisionAnswer, ans.Text, "llm"
			d.Sources = sourcesOf(ans.Cited)
			if len(d.Sources) == 0 {
				d.Sources = sourcesOf(hits[:1])
			}
			return d, nil
		case noTurn(ctx):
			return d, err
		default:
			// Fall back to local mode: the extractive answer is still
			// confident enough to give.
			b.log.Warn("bot: LLM failed; answering in local mode", "error", err)
			llmFallbacks.Inc()
		}
	}
	d.Decision = DecisionAnswer
	d.Reply = extractiveAnswer(hits[0]) + sourceLine(hits[0], zh)
	return d, nil
}

// escalate fills an escalation decision with the words the customer sees.
func (b *Bot) escalate(d Decision, reason string, zh bool, summary func() string) Decision {
	d.Decision, d.Reason = DecisionEscalate, reason
	d.Summary = summary()
	if zh {
		d.Reply = "我这就为您转接人工客服。客服会看到我们之前的全部对话，您不必重复说明。"
	} else {
		d.Reply = "I'm connecting you with a member of our team. They will see our whole conversation, so you won't need to repeat yourself."
	}
	return d
}

func sourcesOf(hits []retrieval.Hit) []handoff.Source {
	out := make([]handoff.Source, 0, len(hits))
	for _, h := range hits {
		out = append(out, handoff.Source{DocumentID: h.DocumentID, Title: h.Title, ChunkID: h.ChunkID, Score: h.Score})
	}
	return out
}

// extractiveAnswer is the answer to quote from a hit: a FAQ pair's answer,
// or the passage.
func extractiveAnswer(h retrieval.Hit) string {
	return strings.TrimSpace(h.Text)
}

func sourceLine(h retrieval.Hit, zh bool) string {
	if h.Title == "" {
		return ""
	}
	if zh {
		return "\n\n来源：" + h.Title
	}
	return "\n\nSource: " + h.Title
}

// clarifyText asks the customer to rephrase and offers the closest topics.
func clarifyText(hits []retrieval.Hit, zh bool) string {
	var topics []string
	seen := map[string]bool{}
	for _, h := range hits {
		if h.Score < 0.15 {
			continue // too far off to offer as a topic
		}
		t := h.Question
		if t == "" {
			t = h.Heading
		}
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		topics = append(topics, t)
		if len(topics) == 3 {
			break
		}
	}
	var b strings.Builder
	if zh {
		b.WriteString("抱歉，我不确定是否理解了您的问题。")
		if len(topics) > 0 {
			b.WriteString("您是想问以下哪个问题吗？\n")
			for _, t := range topics {
				b.WriteString("• " + t + "\n")
			}
		}
		b.WriteString("您可以换个说法再问一次，或者输入“人工”联系客服。")
		return b.String()
	}
	b.WriteString("I'm not sure I understood your question.")
	if len(topics) > 0 {
		b.WriteString(" Did you mean one of these?\n")
		for _, t := range topics {
			b.WriteString("• " + t + "\n")
		}
	} else {
		b.WriteString(" ")
	}
	b.WriteString("You can rephrase it, or ask for a person and I will bring one in.")
	return b.String()
}

// smallTalk answers greetings, thanks and goodbyes.
func smallTalk(intent string, zh bool) (string, bool) {
	en := map[string]string{
		IntentGreeting: "Hello! I'm the virtual assistant. Ask me anything about our products, orders, shipping or returns.",
		IntentThanks:   "You're welcome! Is there anything else I can help with?",
		IntentGoodbye:  "Thanks for chatting with us. Have a great day!",
	}
	cn := map[string]string{
		IntentGreeting: "您好！我是智能助手，关于商品、订单、配送和退货的问题都可以问我。",
		IntentThanks:   "不客气！还有其他可以帮您的吗？",
		IntentGoodbye:  "感谢您的咨询，祝您生活愉快！",
	}
	if zh {
		r, ok := cn[intent]
		return r, ok
	}
	r, ok := en[intent]
	return r, ok
}

// lowTurnsBefore counts the bot's low-confidence turns in a row at the end
// of the history.
func lowTurnsBefore(history []handoff.Message) int {
	n := 0
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role != handoff.RoleBot {
			continue
		}
		if m.Meta.Decision == DecisionClarify {
			n++
			continue
		}
		break
	}
	return n
}

// asksForPerson catches the plainest requests for a person, in case the
// classifier is unsure (one word like "agent" carries little signal).
func asksForPerson(text string) bool {
	t := strings.ToLower(strings.TrimSpace(text))
	t = strings.Trim(t, " .!?！？。")
	switch t {
	case "agent", "human", "person", "operator", "representative", "人工", "转人工", "人工客服", "客服":
		return true
	}
	for _, p := range []string{"talk to a human", "talk to a person", "speak to a human", "speak to a person",
		"real person", "human agent", "live agent", "talk to an agent", "speak to an agent", "speak with an agent",
		"talk to someone", "speak to someone", "customer service representative", "转人工", "人工客服", "找人工", "真人"} {
		if strings.Contains(t, p) {
			return true
		}
	}
	return false
}

// frustrated reports strong anger, or the customer repeating a question the
// bot already tried to answer.
func frustrated(text string, history []handoff.Message) bool {
	t := strings.ToLower(text)
	for _, w := range []string{"useless", "ridiculous", "stupid bot", "wtf", "this is a joke", "waste of time",
		"not helpful at all", "垃圾", "气死", "没用", "什么破", "浪费时间"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	letters, upper := 0, 0
	for _, r := range text {
		if unicode.IsLetter(r) && r < unicode.MaxLatin1 {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	if letters >= 12 && upper*10 >= letters*8 && strings.Count(text, "!") >= 1 {
		return true // shouting
	}
	// The same question again after the bot answered or asked to clarify.
	// text is redacted and the history is as stored, so compare redacted.
	var prev string
	answered := false
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role == handoff.RoleBot && (m.Meta.Decision == DecisionAnswer || m.Meta.Decision == DecisionClarify) {
			answered = true
		}
		if m.Role != handoff.RoleCustomer {
			continue
		}
		said := pii.Redact(m.Text)
		if said != text {
			if answered {
				prev = said
			}
			break
		}
		if i < len(history)-1 && answered {
			return true
		}
	}
	return prev != "" && similar(prev, text) >= 0.85
}

// similar is the Jaccard similarity of two texts' analysed tokens.
func similar(a, b string) float64 {
	ta, tb := strings.Fields(retrieval.Analyze(a)), strings.Fields(retrieval.Analyze(b))
	if len(ta) == 0 || len(tb) == 0 {
		return 0
	}
	set := map[string]int{}
	for _, t := range ta {
		set[t] |= 1
	}
	for _, t := range tb {
		set[t] |= 2
	}
	both := 0
	for _, v := range set {
		if v == 3 {
			both++
		}
	}
	return float64(both) / float64(len(set))
}

// extractiveSummary is the handoff summary when no LLM writes one.
func extractiveSummary(history []handoff.Message, text string, d Decision) string {
	var first string
	turns := 0
	for _, m := range history {
		if m.Role == handoff.RoleCustomer {
			turns++
			if first == "" {
				first = m.Describe()
			}
		}
	}
	var b strings.Builder
	if first != "" && first != text {
		fmt.Fprintf(&b, "First asked: %q. ", clip(pii.Redact(first), 200))
	}
	fmt.Fprintf(&b, "Latest: %q.", clip(pii.Redact(text), 200))
	if d.Intent.Name != "" && d.Intent.Name != IntentNone {
		fmt.Fprintf(&b, " Intent: %s (%.0f%%).", d.Intent.Name, d.Intent.Confidence*100)
	}
	if turns > 1 {
		fmt.Fprintf(&b, " %d customer messages so far.", turns)
	}
	return b.String()
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func isChinese(s string) bool {
	han, letters := 0, 0
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			han++
		} else if unicode.IsLetter(r) {
			letters++
		}
	}
	return han > 0 && han*3 >= letters
}

func errNotFound(what string) error { return errs.Errorf(errs.NotFound, "%s not found", what) }
