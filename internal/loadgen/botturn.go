package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/llmfake"
)

// BotOptions shape the bot-turn measurement.
type BotOptions struct {
	Rate       float64       // turns per second
	Duration   time.Duration // measured time
	Warmup     time.Duration // turns before measuring; default 3 s, and at least until the server has run serverSettle
	Examples   string        // knowledge to load (the demo's examples folder)
	Latency    time.Duration // the fake LLM's time to its first chunk; default 60 ms
	TokenDelay time.Duration // between streamed tokens; default 10 ms
	Tokens     int           // tokens in each answer; default 20
}

// botQuestions are questions the demo knowledge base answers (its FAQ
// questions, reworded a little), so that each turn goes to the LLM.
var botQuestions = []string{
	"How much does shipping cost?", "Do you ship internationally?", "What is your return policy?",
	"What payment methods do you accept?", "How long will delivery take?", "Can I cancel my order?",
	"Is there free shipping?", "Where can I get an invoice for my order?", "When will my card be charged?",
	"Why was my payment declined?",
}

// BotTurns measures what Tandem adds to an LLM's time: customers' questions
// over WebSocket at a fixed rate (open loop), each answered by the bot in
// LLM mode against an OpenAI-compatible fake that waits a fixed time and
// then streams a fixed answer at a fixed pace. The same requests sent
// straight to the fake, at the same rate, give the baseline. Reported: the
// time to the first streamed token and to the stored reply reaching the
// customer, each minus the fake's own fixed time, for both paths; the
// difference is Tandem's overhead (redaction, intent, hybrid search, two
// commits, publishing, the sockets).
func (c *Config) BotTurns(ctx context.Context, o BotOptions) ([]Result, error) {
	if o.Warmup <= 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Latency <= 0 {
		o.Latency = 60 * time.Millisecond
	}
	if o.TokenDelay <= 0 {
		o.TokenDelay = 10 * time.Millisecond
	}
	if o.Tokens <= 0 {
		o.Tokens = 20
	}
	fake := turnFake(o.Latency, o.TokenDelay, o.Tokens)
	defer fake.Close()
	// The fake's own time to the first token, and to the end.
	fakeFirst := o.Latency + o.TokenDelay
	fakeAll := o.Latency + time.Duration(o.Tokens)*o.TokenDelay

	direct, err := c.directTurns(ctx, fake, o)
	if err != nil {
		return nil, err
	}
	fake.ResetRequests()

	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	if err := c.ingest(ctx, dbURL, o.Examples); err != nil {
		return nil, err
	}
	started := time.Now()
	p, err := c.startTandem(ctx, "tandem", dbURL, c.addr(0), append(fakeEnv(fake), "TANDEM_DB_MAX_CONNS=40")...)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	// Every turn with a search hit goes to the LLM: this measures the
	// path's overhead, not which questions the retrieval settles.
	if err := c.setAnswerThreshold(ctx, dbURL, p, 0.01); err != nil {
		return nil, err
	}
	// Each conversation asks every five seconds, so turns of one
	// conversation do not queue behind each other.
	nConvs := int(o.Rate*5) + 1
	convs, err := NewClient(p.URL).CreateConversations(ctx, nConvs, 32)
	if err != nil {
		return nil, err
	}
	// What is measured is a server past its start-up: the warm-up runs
	// until the server is serverSettle old.
	if settled := time.Until(started.Add(serverSettle)); o.Warmup < settled {
		o.Warmup = (settled + time.Second - 1).Truncate(time.Second)
	}
	total := int(o.Rate * (o.Warmup + o.Duration).Seconds())
	var (
		due, first, done = make([]atomic.Int64, total), make([]atomic.Int64, total), make([]atomic.Int64, total)
		answered         = make([]atomic.Bool, total)
		decisions        sync.Map // decision → *atomic.Int64
		errCount         atomic.Int64
		d                Dialer
	)
	// A conversation's current turn: deltas and the bot's message belong
	// to the last question it sent.
	current := make([]atomic.Int64, nConvs)
	for i := range current {
		current[i].Store(-1)
	}
	sessions := make([]*session, nConvs)
	if err := parallel(ctx, nConvs, 32, func(k int) error {
		var err error
		sessions[k], err = openSession(ctx, &d, p.URL, convs[k], func(f *wsFrame, at time.Time) {
			i := int(current[k].Load())
			if i < 0 {
				return
			}
			switch {
			case f.Type == "bot.delta":
				first[i].CompareAndSwap(0, at.UnixNano())
			case f.Type == "message" && f.Message != nil && f.Message.Role == "bot":
				if done[i].CompareAndSwap(0, at.UnixNano()) {
					answered[i].Store(f.Message.Meta.Decision == "answer")
					n, _ := decisions.LoadOrStore(f.Message.Meta.Decision, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			case f.Type == "error":
				errCount.Add(1)
			}
		})
		return err
	}); err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	logf(c.Log, "bot: %.0f turns/s through Tandem for %s (+%s warm-up), %d conversations", o.Rate, o.Duration, o.Warmup, nConvs)
	cpu0 := cpuOf(p.PID())
	pg0 := pgCPU(ctx, dbURL)
	if c.PProfDir != "" {
		go func() {
			time.Sleep(o.Warmup)
			c.saveProfile(p, "cpu-bot", fmt.Sprintf("profile?seconds=%d", int(o.Duration.Seconds())))
		}()
		go func() {
			time.Sleep(o.Warmup)
			c.saveProfile(p, "allocs-bot", fmt.Sprintf("allocs?seconds=%d", int(o.Duration.Seconds())))
		}()
		// The load generator's own time (its clients and the fake LLM)
		// shares the machine: worth knowing what it costs.
		go func() {
			time.Sleep(o.Warmup)
			c.selfProfile("loadgen-cpu-bot", o.Duration)
		}()
	}
	// The server's own timing of each phase, over the measured turns.
	var phases0 map[string]histogram
	phasesRead := make(chan struct{})
	go func() {
		defer close(phasesRead)
		time.Sleep(o.Warmup)
		var err error
		if phases0, err = scrapePhases(ctx, p.URL); err != nil {
			logf(c.Log, "bot: %v", err)
		}
	}()
	t0 := time.Now()
	schedule(ctx, total, o.Rate, t0, func(i int, at time.Time) {
		k := i % nConvs
		due[i].Store(at.UnixNano())
		current[k].Store(int64(i))
		go func() {
			if err := sessions[k].send(botQuestions[(i/nConvs+k)%len(botQuestions)], fmt.Sprintf("t%d", i)); err != nil {
				errCount.Add(1)
			}
		}()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if done[total-1].Load() != 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cpu := cpuOf(p.PID()) - cpu0
	<-phasesRead
	phases1, err := scrapePhases(ctx, p.URL)
	if err != nil {
		logf(c.Log, "bot: %v", err)
	}
	pg := pgCPU(ctx, dbURL).since(pg0)

	from := int(o.Rate * o.Warmup.Seconds())
	var ttft, all Latencies
	llm, missing := 0, 0
	for i := from; i < total; i++ {
		if done[i].Load() == 0 {
			missing++
			continue
		}
		if !answered[i].Load() || first[i].Load() == 0 {
			continue // answered without the LLM (or escalated): not a turn to measure
		}
		llm++
		ttft = append(ttft, time.Duration(first[i].Load()-due[i].Load())-fakeFirst)
		all = append(all, time.Duration(done[i].Load()-due[i].Load())-fakeAll)
	}
	ttft, all = ttft.Sorted(), all.Sorted()
	measured := total - from
	dr := Result{Name: fmt.Sprintf("BotTurn/direct/rate=%.0f", o.Rate), N: len(direct.all)}
	dr.Add(direct.first.P(50), "first-token-p50-ms")
	dr.Add(direct.first.P(99), "first-token-p99-ms")
	dr.Add(direct.all.P(50), "reply-p50-ms")
	dr.Add(direct.all.P(99), "reply-p99-ms")
	dr.Add(float64(direct.errors), "errors")
	dr.Add(direct.load, "load")
	tr := Result{Name: fmt.Sprintf("BotTurn/tandem/rate=%.0f", o.Rate), N: measured}
	tr.Add(ttft.P(50), "first-token-p50-ms")
	tr.Add(ttft.P(99), "first-token-p99-ms")
	tr.Add(all.P(50), "reply-p50-ms")
	tr.Add(all.P(99), "reply-p99-ms")
	tr.Add(all.P(50)-direct.all.P(50), "overhead-p50-ms")
	tr.Add(all.P(99)-direct.all.P(99), "overhead-p99-ms")
	tr.Add(float64(llm)/float64(measured), "llm-answered")
	tr.Add(float64(missing), "no-reply")
	tr.Add(float64(errCount.Load()), "errors")
	tr.Add(cpu.Seconds()*1000/float64(total), "server-cpu-ms/turn")
	tr.Add(pg.Seconds()*1000/float64(total), "pg-cpu-ms/turn")
	tr.Add(LoadAvg(), "load")
	pr := Result{Name: fmt.Sprintf("BotTurn/phases/rate=%.0f", o.Rate), N: measured}
	for _, ph := range botPhases {
		h, ok := phases1[ph]
		if !ok {
			continue
		}
		d := h.since(phases0[ph])
		pr.Add(d.quantile(0.5)*1000, ph+"-p50-ms")
		pr.Add(d.quantile(0.99)*1000, ph+"-p99-ms")
	}
	decisions.Range(func(k, v any) bool {
		logf(c.Log, "bot: decision %q: %d turns", k, v.(*atomic.Int64).Load())
		return true
	})
	logf(c.Log, "bot: %s", dr)
	logf(c.Log, "bot: %s", tr)
	logf(c.Log, "bot: %s", pr)
	return []Result{dr, tr, pr}, nil
}

// serverSettle is how long a server takes to settle after it starts:
// the first ten seconds it notifies every event to other instances, until
// it knows that there are none (handoff's peer window).
const serverSettle = 12 * time.Second

// turnFake is the fake LLM of the bot scenarios: each streamed answer
// comes after latency, tokens tokens tokenDelay apart, citing the first
// passage; a summary (not streamed) comes at once.
func turnFake(latency, tokenDelay time.Duration, tokens int) *llmfake.Server {
	fake := llmfake.New()
	fake.SetLatency(latency)
	fake.SetTokenDelay(tokenDelay)
	words := strings.Fields("You can return any unused item within thirty days of delivery for a full refund, and returns within the US are free [1]")
	for len(words) < tokens {
		words = append(words, "indeed")
	}
	answer := strings.Join(words[:tokens], " ")
	fake.SetReply(func(req openai.ChatCompletionRequest) string {
		if !req.Stream {
			return "The customer asked about an order, then wanted a person."
		}
		return answer
	})
	return fake
}

// fakeEnv points a server at fake, the bot scenarios' LLM.
func fakeEnv(fake *llmfake.Server) []string {
	return []string{"LLM_BASE_URL=" + fake.URL(), "LLM_API_KEY=loadgen", "LLM_MODEL=fake-model"}
}

// directRun is the baseline: the fake called straight, latencies minus
// its fixed time.
type directRun struct {
	first, all Latencies
	errors     int
	load       float64
}

// directTurns streams the same kind of request straight from the fake at
// the same rate, open loop, with the client Tandem uses.
func (c *Config) directTurns(ctx context.Context, fake *llmfake.Server, o BotOptions) (directRun, error) {
	cfg := openai.DefaultConfig("loadgen")
	cfg.BaseURL = fake.URL()
	cfg.HTTPClient = bot.LLMHTTPClient()
	client := openai.NewClientWithConfig(cfg)
	// About the size of the bot's request: instructions, five passages, the question.
	system := strings.Repeat("Answer the customer's question from the passages below and cite them as [n]. ", 12)
	passages := strings.Repeat("[1] Returns are accepted within 30 days of delivery for unused items with all tags attached. ", 15)
	total := int(o.Rate * (o.Warmup + o.Duration).Seconds())
	from := int(o.Rate * o.Warmup.Seconds())
	first, all := make([]time.Duration, total), make([]time.Duration, total)
	var errCount atomic.Int64
	var wg sync.WaitGroup
	logf(c.Log, "bot: %.0f turns/s straight to the fake LLM for %s (+%s warm-up)", o.Rate, o.Duration, o.Warmup)
	schedule(ctx, total, o.Rate, time.Now(), func(i int, at time.Time) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := client.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{
				Model: "fake-model", Stream: true, Temperature: 0.2, MaxTokens: 600,
				Messages: []openai.ChatCompletionMessage{
					{Role: openai.ChatMessageRoleSystem, Content: system},
					{Role: openai.ChatMessageRoleUser, Content: "<passages>" + passages + "</passages>"},
					{Role: openai.ChatMessageRoleUser, Content: botQuestions[i%len(botQuestions)]},
				}})
			if err != nil {
				errCount.Add(1)
				return
			}
			defer s.Close()
			for {
				r, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errCount.Add(1)
					return
				}
				if first[i] == 0 && len(r.Choices) > 0 && r.Choices[0].Delta.Content != "" {
					first[i] = time.Since(at)
				}
			}
			all[i] = time.Since(at)
		}()
	})
	wg.Wait()
	fakeFirst := o.Latency + o.TokenDelay
	fakeAll := o.Latency + time.Duration(o.Tokens)*o.TokenDelay
	var out directRun
	for i := from; i < total; i++ {
		if all[i] == 0 {
			continue
		}
		out.first = append(out.first, first[i]-fakeFirst)
		out.all = append(out.all, all[i]-fakeAll)
	}
	out.first, out.all = out.first.Sorted(), out.all.Sorted()
	out.errors = int(errCount.Load())
	out.load = LoadAvg()
	return out, nil
}

// setAnswerThreshold sets the bot's answer threshold through the admin API.
func (c *Config) setAnswerThreshold(ctx context.Context, dbURL string, p *Proc, threshold float64) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var id string
	if err := pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
		VALUES ('admin@loadgen.test', 'Loadgen Admin', 'x', '{admin}') RETURNING id`).Scan(&id); err != nil {
		return err
	}
	token, err := auth.NewStore(pool).NewSession(ctx, id, "api")
	if err != nil {
		return err
	}
	cl := NewClient(p.URL)
	var policy map[string]any
	if err := cl.Do(ctx, "GET", "/api/v1/bot/policy", token, nil, &policy); err != nil {
		return err
	}
	if inner, ok := policy["policy"].(map[string]any); ok {
		policy = inner
	}
	policy["answer_threshold"] = threshold
	return cl.Do(ctx, "PUT", "/api/v1/bot/policy", token, policy, nil)
}
