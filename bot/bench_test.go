package bot_test

import (
	"context"
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
	}
	if _, err := pool.Exec(ctx, `DELETE FROM unanswered`); err != nil {
		b.Fatal(err)
	}

	bt := bot.New(pool, ix, bot.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(total), "chunks")
}

// buildKnowledgeBase loads the demo knowledge base through the knowledge
// service, then fills the index up to n chunks with passages recombined
// from the demo's sentences (so vocabulary, lengths and both languages are
// realistic), written in bulk, and builds the HNSW index once at the end.
// It returns the chunk count.
func buildKnowledgeBase(b *testing.B, pool *pgxpool.Pool, ix *retrieval.Index, n int) int {
	b.Helper()
	ctx := context.Background()
	svc := knowledge.NewService(pool, ix)
	files, _ := filepath.Glob("../examples/*/*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := svc.Create(ctx, knowledge.Upload{Filename: f, Data: data}); err != nil {
			b.Fatalf("load %s: %v", f, err)
		}
	}
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

	const perDoc = 1000
	rng := rand.New(rand.NewPCG(42, 7))
	var docs [][]retrieval.Entry
	for made := demo; made < n; {
		var docID string
		if err := pool.QueryRow(ctx, `INSERT INTO documents (title, source_name, format, checksum, chunks)
			VALUES ($1, $2, 'text', $3, $4) RETURNING id`, fmt.Sprintf("Synthetic manual %d", len(docs)+1),
			fmt.Sprintf("synthetic-%d.txt", len(docs)+1), fmt.Sprintf("synthetic-%d", len(docs)+1), min(perDoc, n-made)).Scan(&docID); err != nil {
			b.Fatal(err)
		}
		var entries []retrieval.Entry
		for o := 0; o < perDoc && made < n; o++ {
			k := 2 + rng.IntN(5)
			parts := make([]string, k)
			for j := range parts {
				parts[j] = sentences[rng.IntN(len(sentences))]
			}
			entries = append(entries, retrieval.Entry{DocumentID: docID, Version: 1, Ordinal: o,
				Heading: headings[rng.IntN(len(headings))], Text: strings.Join(parts, " ")})
			made++
		}
		docs = append(docs, entries)
	}
	loaded := time.Now()
	// Embedding runs on every core; one writer inserts (concurrent bulk
	// inserts deadlock on the GIN indexes' pending lists).
	prepared := make(chan *retrieval.Prepared, 4)
	jobs := make(chan []retrieval.Entry)
	errc := make(chan error, runtime.GOMAXPROCS(0)+1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for entries := range jobs {
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
		for _, entries := range docs {
			jobs <- entries
		}
		close(jobs)
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
