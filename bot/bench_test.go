package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

// benchQuestions are what customers ask, as they ask it: covered questions
// reworded, questions the knowledge base does not cover, requests for a
// person, small talk and Chinese.
var benchQuestions = []string{
	"how much is shipping", "where's my stuff?", "my wheel broke", "can I pay in instalments?",
	"do you ship to canada", "how do I return a suitcase I don't like", "when will I get my refund",
	"what does the warranty cover", "can I change the colour of my order", "is there free shipping",
	"do you sell hamster cages?", "what is the weather in Paris tomorrow", "can I bring a power bank on a plane",
	"I want to talk to a person", "hello", "thanks, that helped",
	"退货运费谁出？", "我的包裹到哪了", "保修期多长时间", "可以分期付款吗",
	"how do I reset my password", "my order arrived damaged", "can I cancel my order", "how do I clean a leather bag",
}

// BenchmarkTurnLocal measures the bot's own time for one customer turn in
// local mode (no LLM): redaction, intent classification, hybrid search over
// a knowledge base of TANDEM_BENCH_CHUNKS chunks, the decision, and
// recording unanswered questions. It reports p50 and p99 in milliseconds.
// Building the knowledge base (embedding, inserting, the HNSW index) is not
// timed; it takes minutes at 100,000 chunks on 2 cores, so the benchmark
// runs only when TANDEM_BENCH_CHUNKS is set.
func BenchmarkTurnLocal(b *testing.B) {
	v := os.Getenv("TANDEM_BENCH_CHUNKS")
	if v == "" {
		b.Skip("set TANDEM_BENCH_CHUNKS (scripts/bench.sh uses 100000): building the knowledge base takes minutes")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("TANDEM_BENCH_CHUNKS=%q: want a positive number", v)
	}
	ctx := context.Background()
	// TANDEM_BENCH_DATABASE_URL keeps the knowledge base between runs: a
	// database there is migrated and filled once, and reused while it
	// holds at least n chunks.
	url := os.Getenv("TANDEM_BENCH_DATABASE_URL")
	if url == "" {
		url = dbtest.New(b)
	}
	pool, err := db.Open(ctx, url, 8)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if applied, err := db.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	} else if len(applied) > 0 {
		pool.Reset() // connections opened before the vector type existed
	}
	ix := retrieval.NewIndex(pool, retrieval.NewLocal())
	var total int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&total); err != nil {
		b.Fatal(err)
	}
	if total < n {
		if total > 0 {
			b.Fatalf("the benchmark database holds %d chunks, fewer than %d: drop it or name another", total, n)
		}
		start := time.Now()
		total = buildKnowledgeBase(b, pool, ix, n)
		b.Logf("knowledge base: %d chunks built and indexed in %.0f s", total, time.Since(start).Seconds())
	} else {
		// A knowledge base built elsewhere (scripts/bench.sh shares
		// BenchmarkSearch's): add the demo's documents, which the
		// questions are about, unless they are there.
		loadDemo(b, knowledge.NewService(pool, ix))
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&total); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `ANALYZE chunks`); err != nil {
			b.Fatal(err)
		}
		b.Logf("knowledge base: %d chunks, reused", total)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM unanswered`); err != nil {
		b.Fatal(err)
	}

	searches := &timedSearcher{ix: ix}
	bt := bot.New(pool, searches, bot.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	if err := bt.Start(bctx); err != nil {
		b.Fatal(err)
	}
	history := []handoff.Message{
		{Role: handoff.RoleCustomer, Text: "hi"},
		{Role: handoff.RoleBot, Text: "Hello! Ask me anything.", Meta: handoff.Meta{Decision: bot.DecisionAnswer}},
	}
	turnOf := func(i int) handoff.Turn {
		m := handoff.Message{Role: handoff.RoleCustomer, Text: benchQuestions[i%len(benchQuestions)]}
		return handoff.Turn{History: append(slices.Clone(history), m), Message: m}
	}
	// Warm the pool's connections and PostgreSQL's caches.
	for i := range 2 * len(benchQuestions) {
		if _, err := bt.Respond(ctx, turnOf(i)); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	i := 0
	searches.lat = nil
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := bt.Respond(ctx, turnOf(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		i++
	}
	b.StopTimer()
	pct := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	if len(searches.lat) > 0 {
		b.ReportMetric(pct(searches.lat, 0.50), "search-p50-ms")
		b.ReportMetric(pct(searches.lat, 0.99), "search-p99-ms")
	}
	b.ReportMetric(float64(total), "chunks")
}

// timedSearcher times the bot's searches, to tell the search's share of a
// turn from the rest.
type timedSearcher struct {
	ix  *retrieval.Index
	lat []time.Duration // one goroutine runs the turns
}

func (t *timedSearcher) Search(ctx context.Context, q retrieval.SearchRequest) ([]retrieval.Hit, error) {
	start := time.Now()
	hits, err := t.ix.Search(ctx, q)
	t.lat = append(t.lat, time.Since(start))
	return hits, err
}

// loadDemo loads the demo's documents (../examples) through the knowledge
// service; a document already there (same checksum) is left as it is.
func loadDemo(b *testing.B, svc *knowledge.Service) {
	b.Helper()
	files, _ := filepath.Glob("../examples/*/*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := svc.Create(context.Background(), knowledge.Upload{Filename: f, Data: data}); err != nil {
			b.Fatalf("load %s: %v", f, err)
		}
	}
}

// buildKnowledgeBase loads the demo knowledge base through the knowledge
// service, then fills the index up to n chunks, written in bulk, and builds
// the HNSW index once at the end. It returns the chunk count.
//
// The filler is a catalogue of product manuals of 20 chunks each: every
// manual names its own product (a made-up name and model code), and its
// passages are 3 to 6 sentences drawn from the demo knowledge base and, when
// ../shared/data is there (TANDEM_SHARED_DATA elsewhere), from the customer
// messages of Banking77, CLINC150, HINT3 and BQ. So the vocabulary has both
// the common support words and the long tail of rare terms that a large
// real knowledge base has; with the demo's few hundred sentences alone every
// word would be in a large share of the chunks, and full-text search would
// measure that instead.
func buildKnowledgeBase(b *testing.B, pool *pgxpool.Pool, ix *retrieval.Index, n int) int {
	b.Helper()
	ctx := context.Background()
	svc := knowledge.NewService(pool, ix)
	loadDemo(b, svc)
	var sentences, headings []string
	rows, err := pool.Query(ctx, `SELECT heading, question, text FROM chunks`)
	if err != nil {
		b.Fatal(err)
	}
	split := regexp.MustCompile(`[^.!?。！？]+[.!?。！？]?`)
	demo := 0
	for rows.Next() {
		var heading, question, text string
		if err := rows.Scan(&heading, &question, &text); err != nil {
			b.Fatal(err)
		}
		demo++
		for _, h := range []string{heading, question} {
			if h != "" {
				headings = append(headings, h)
			}
		}
		for _, s := range split.FindAllString(text, -1) {
			if s = strings.TrimSpace(s); len(s) > 12 {
				sentences = append(sentences, s)
			}
		}
	}
	rows.Close()
	if len(sentences) == 0 || len(headings) == 0 {
		b.Fatal("the demo knowledge base yielded no text")
	}
	shared := os.Getenv("TANDEM_SHARED_DATA")
	if shared == "" {
		shared = "../../shared/data"
	}
	public, _ := filepath.Glob(filepath.Join(shared, "*", "*.jsonl"))
	for _, f := range public {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			var rec struct{ Text, Question string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Text+rec.Question != "" {
				sentences = append(sentences, rec.Text+rec.Question)
			}
		}
	}
	b.Logf("filler: %d sentences (%d public data files)", len(sentences), len(public))

	const perDoc, perJob = 20, 1000
	docs := (n - demo + perDoc - 1) / perDoc
	var docIDs []string
	rows, err = pool.Query(ctx, `INSERT INTO documents (title, source_name, format, checksum, chunks)
		SELECT 'Manual ' || i, 'manual-' || i || '.txt', 'text', 'manual-' || i, $2 FROM generate_series(1, $1) i
		RETURNING id`, docs, perDoc)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		docIDs = append(docIDs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 7))
	syllables := strings.Fields("ka ro vin tel mar os qua zen lu fex dor pia sto rin vel ba tor ny gal ix ume sha pol dra wen cor")
	name := func() string {
		var w strings.Builder
		for range 2 + rng.IntN(2) {
			w.WriteString(syllables[rng.IntN(len(syllables))])
		}
		s := w.String()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	var jobs [][]retrieval.Entry
	var entries []retrieval.Entry
	for made, d := demo, 0; made < n; d++ {
		product := fmt.Sprintf("%s %s", name(), name())
		code := fmt.Sprintf("%c%c-%d", 'A'+rng.IntN(26), 'A'+rng.IntN(26), 1000+rng.IntN(9000))
		for o := 0; o < perDoc && made < n; o++ {
			parts := []string{product + " (" + code + "):"}
			for range 3 + rng.IntN(4) {
				parts = append(parts, sentences[rng.IntN(len(sentences))])
			}
			entries = append(entries, retrieval.Entry{DocumentID: docIDs[d], Version: 1, Ordinal: o,
				Heading: product + ": " + headings[rng.IntN(len(headings))], Text: strings.Join(parts, " ")})
			made++
			if len(entries) == perJob {
				jobs = append(jobs, entries)
				entries = nil
			}
		}
	}
	if len(entries) > 0 {
		jobs = append(jobs, entries)
	}
	loaded := time.Now()
	// Embedding runs on every core; one writer inserts (concurrent bulk
	// inserts deadlock on the GIN indexes' pending lists).
	prepared := make(chan *retrieval.Prepared, 4)
	work := make(chan []retrieval.Entry)
	errc := make(chan error, runtime.GOMAXPROCS(0)+1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for entries := range work {
				p, err := ix.Prepare(ctx, entries)
				if err != nil {
					errc <- err
					return
				}
				prepared <- p
			}
		}()
	}
	go func() {
		for _, entries := range jobs {
			work <- entries
		}
		close(work)
		wg.Wait()
		close(prepared)
	}()
	for p := range prepared {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := ix.Write(ctx, tx, p)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	indexing := time.Now()
	if err := ix.EnsureIndex(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("embedded and inserted %d chunks in %.0f s; HNSW index built in %.0f s", n-demo,
		indexing.Sub(loaded).Seconds(), time.Since(indexing).Seconds())
	if _, err := pool.Exec(ctx, `ANALYZE chunks`); err != nil {
		b.Fatal(err)
	}
	var total int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&total); err != nil {
		b.Fatal(err)
	}
	return total
}

// BenchmarkStreamChunk decodes one streamed chunk as an Azure-style
// endpoint (and the fake) sends it: go-openai's whole response type, as
// Recv does, against the part the bot reads.
func BenchmarkStreamChunk(b *testing.B) {
	raw, err := json.Marshal(openai.ChatCompletionStreamResponse{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: 1,
		Model: "gpt-4o-mini", Choices: []openai.ChatCompletionStreamChoice{{Delta: openai.ChatCompletionStreamChoiceDelta{Content: " thirty"}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("go-openai", func(b *testing.B) {
		for b.Loop() {
			var r openai.ChatCompletionStreamResponse
			if err := json.Unmarshal(raw, &r); err != nil || r.Choices[0].Delta.Content != " thirty" {
				b.Fatal(err)
			}
		}
	})
	b.Run("bot", func(b *testing.B) {
		for b.Loop() {
			var r bot.StreamChunk
			if err := json.Unmarshal(raw, &r); err != nil || r.Choices[0].Delta.Content != " thirty" {
				b.Fatal(err)
			}
		}
	})
}
