package retrieval_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	"golang.org/x/sync/errgroup"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/retrieval"
)

// searchData is the shared evaluation data (see ../shared/data/README.md),
// read in place and never copied into the repository.
const searchData = "../../shared/data"

// benchRecord is one real question of the shared data sets.
type benchRecord struct {
	text  string
	group string // intent or FAQ cluster: records that ask the same thing
	label string // the group as a heading
	zh    bool
}

// benchCorpus is a knowledge base made of real questions, and held-out
// questions to search it with.
type benchCorpus struct {
	entries []retrieval.Entry
	groups  map[string]string // entry key (see entryKey) to its intent or cluster
	queries []string
	answers []map[string]bool // per query: the intents or clusters that answer it
}

// entryKey identifies a chunk by its text (every chunk's is distinct).
func entryKey(question, heading, text string) string {
	return question + "\x00" + heading + "\x00" + text
}

// readBenchJSONL calls fn with each record of a JSONL file under
// searchData, and skips b when the data is absent.
func readBenchJSONL(b *testing.B, rel string, fn func(rec map[string]any)) {
	b.Helper()
	f, err := os.Open(filepath.Join(searchData, rel))
	if err != nil {
		b.Skipf("no shared data: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			b.Fatalf("%s: %v", rel, err)
		}
		fn(rec)
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
}

func str(rec map[string]any, k string) string {
	s, _ := rec[k].(string)
	return strings.TrimSpace(s)
}

// makeBenchCorpus builds n distinct FAQ-like chunks from the training
// questions of Banking77, CLINC150 and HINT3 (English) and the BQ bank and
// queries (Chinese), and holds out about 300 questions that are not in it:
// every 31st of the Banking77 test and CLINC150 validation splits, every
// 24th BQ query. A third of the chunks are FAQ pairs (each real question
// once, answered by two other questions of its intent or cluster); the
// rest are passages of two or three questions of one intent under the
// intent's name, so every text is real language and no two are alike.
func makeBenchCorpus(b *testing.B, n int) benchCorpus {
	b.Helper()
	var recs []benchRecord
	c := benchCorpus{groups: map[string]string{}}
	seen := map[string]bool{}
	add := func(text, group, label string, zh bool) {
		if text != "" && !seen[text] {
			seen[text] = true
			recs = append(recs, benchRecord{text: text, group: group, label: label, zh: zh})
		}
	}
	intentLabel := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", " ") }
	readBenchJSONL(b, "banking77/train.jsonl", func(r map[string]any) {
		add(str(r, "text"), "b77/"+str(r, "intent"), "Cards and payments > "+intentLabel(str(r, "intent")), false)
	})
	readBenchJSONL(b, "clinc150/train.jsonl", func(r map[string]any) {
		add(str(r, "text"), "clinc/"+str(r, "intent"), intentLabel(str(r, "domain"))+" > "+intentLabel(str(r, "intent")), false)
	})
	for _, bot := range []string{"curekart", "powerplay11", "sofmattress"} {
		readBenchJSONL(b, "hint3/"+bot+"_train.jsonl", func(r map[string]any) {
			add(str(r, "text"), bot+"/"+str(r, "intent"), bot+" > "+intentLabel(str(r, "intent")), false)
		})
	}
	cluster := map[string]string{}
	readBenchJSONL(b, "bq/dev_faq_bank.jsonl", func(r map[string]any) {
		id := fmt.Sprint(r["faq_id"])
		cluster[id] = str(r, "cluster")
		add(str(r, "question"), "bq/"+cluster[id], cluster[id], true)
	})
	i := 0
	readBenchJSONL(b, "bq/dev_queries.jsonl", func(r map[string]any) {
		defer func() { i++ }()
		q := str(r, "question")
		ids, _ := r["faq_ids"].([]any)
		if i%24 == 0 {
			answers := map[string]bool{}
			for _, id := range ids {
				answers["bq/"+cluster[fmt.Sprint(id)]] = true
			}
			c.queries = append(c.queries, q)
			c.answers = append(c.answers, answers)
			return
		}
		if len(ids) > 0 {
			cl := cluster[fmt.Sprint(ids[0])]
			add(q, "bq/"+cl, cl, true)
		}
	})
	for _, split := range []struct{ file, prefix string }{{"banking77/test.jsonl", "b77/"}, {"clinc150/val.jsonl", "clinc/"}} {
		i := 0
		readBenchJSONL(b, split.file, func(r map[string]any) {
			// Out-of-scope questions have no answer to find.
			if oos, _ := r["is_oos"].(bool); oos {
				return
			}
			if i%31 == 0 && !seen[str(r, "text")] {
				c.queries = append(c.queries, str(r, "text"))
				c.answers = append(c.answers, map[string]bool{split.prefix + str(r, "intent"): true})
			}
			i++
		})
	}

	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	groups := map[string][]int{}
	for i, r := range recs {
		groups[r.group] = append(groups[r.group], i)
	}
	// other returns a record of r's group other than r (any record of r's
	// language when the group has no other).
	other := func(r int) benchRecord {
		g := groups[recs[r].group]
		for range 8 {
			if len(g) > 1 {
				if o := g[rng.IntN(len(g))]; o != r {
					return recs[o]
				}
				continue
			}
			if o := rng.IntN(len(recs)); o != r && recs[o].zh == recs[r].zh {
				return recs[o]
			}
		}
		return recs[(r+1)%len(recs)]
	}
	join := func(zh bool, parts ...string) string {
		if zh {
			return strings.Join(parts, "。")
		}
		return strings.Join(parts, " ")
	}
	nFAQ := min(len(recs), n/3)
	for i := range nFAQ {
		r := recs[i]
		e := retrieval.Entry{Question: r.text, Text: join(r.zh, other(i).text, other(i).text), Tags: []string{"faq"}}
		c.entries = append(c.entries, e)
		c.groups[entryKey(e.Question, e.Heading, e.Text)] = r.group
	}
	texts := map[string]bool{}
	for len(c.entries) < n {
		i := rng.IntN(len(recs))
		r := recs[i]
		parts := []string{r.text, other(i).text}
		if rng.IntN(2) == 0 {
			parts = append(parts, other(i).text)
		}
		text := join(r.zh, parts...)
		if texts[r.label+text] {
			continue
		}
		texts[r.label+text] = true
		c.entries = append(c.entries, retrieval.Entry{Heading: r.label, Text: text})
		c.groups[entryKey("", r.label, text)] = r.group
	}
	return c
}

// searchBenchChunks is the knowledge base size, from
// TANDEM_BENCH_SEARCH_CHUNKS; the benchmark is skipped without it, since
// building 100,000 chunks and their index takes minutes (make bench sets
// it).
func searchBenchChunks(b *testing.B) int {
	v := os.Getenv("TANDEM_BENCH_SEARCH_CHUNKS")
	if v == "" {
		b.Skip("set TANDEM_BENCH_SEARCH_CHUNKS (make bench uses 100000)")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		b.Fatalf("TANDEM_BENCH_SEARCH_CHUNKS=%q: want a number of at least 1000", v)
	}
	return n
}

// searchBenchPool is a fresh database's pool, or, when
// TANDEM_BENCH_DATABASE_URL names a database, that one's: migrated here,
// it must hold no chunks, and it keeps the knowledge base afterwards, with
// the last HNSW build, so that scripts/bench.sh can run BenchmarkTurnLocal
// (bot/) over the same 100,000 chunks instead of building its own.
func searchBenchPool(b *testing.B) *pgxpool.Pool {
	url := os.Getenv("TANDEM_BENCH_DATABASE_URL")
	if url == "" {
		return dbtest.Pool(b)
	}
	ctx := context.Background()
	pool, err := db.Open(ctx, url, 16)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if applied, err := db.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	} else if len(applied) > 0 {
		pool.Reset() // connections opened before the vector type existed
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n > 0 {
		b.Fatalf("TANDEM_BENCH_DATABASE_URL holds %d chunks already; BenchmarkSearch loads and times its own", n)
	}
	return pool
}

// buildHNSW runs the CREATE INDEX on one connection, with
// TANDEM_BENCH_MAINTENANCE_WORK_MEM when set, and returns its seconds.
func buildHNSW(ctx context.Context, pool *pgxpool.Pool, create string) (float64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if mem := os.Getenv("TANDEM_BENCH_MAINTENANCE_WORK_MEM"); mem != "" {
		if _, err := conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false)`, mem); err != nil {
			return 0, err
		}
		defer conn.Exec(context.WithoutCancel(ctx), `RESET maintenance_work_mem`)
	}
	start := time.Now()
	_, err = conn.Exec(ctx, create)
	return time.Since(start).Seconds(), err
}

// hnswVariant is one HNSW build setting.
type hnswVariant struct{ m, efConstruction int }

// searchBenchVariants are the builds to measure, in order, from
// TANDEM_BENCH_SEARCH_HNSW ("32:128,16:64", m:ef_construction; 16:64
// alone by default). The last build stays, and scripts/bench.sh runs
// BenchmarkTurnLocal over it, so it should be what EnsureIndex builds
// (pgvector's defaults, 16:64).
func searchBenchVariants(b *testing.B) []hnswVariant {
	v := os.Getenv("TANDEM_BENCH_SEARCH_HNSW")
	if v == "" {
		v = "16:64"
	}
	var out []hnswVariant
	for _, s := range strings.Split(v, ",") {
		var h hnswVariant
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d:%d", &h.m, &h.efConstruction); err != nil {
			b.Fatalf("TANDEM_BENCH_SEARCH_HNSW=%q: want m:ef_construction[,...]", v)
		}
		out = append(out, h)
	}
	return out
}

// neighbour is one vector search result.
type neighbour struct {
	id   string
	dist float64
}

// vectorTop10 runs the vector side's ORDER BY (the expression the HNSW
// index is built on) with LIMIT 10, with the given settings, and returns
// the neighbours and the plan's text. Plans are made for each run
// (plan_cache_mode), since a cached plan keeps the settings it was made
// under.
func vectorTop10(ctx context.Context, pool *pgxpool.Pool, dim int, q []float32, settings ...string) ([]neighbour, string, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback(ctx)
	for _, s := range append([]string{"plan_cache_mode = force_custom_plan"}, settings...) {
		if _, err := tx.Exec(ctx, "SET LOCAL "+s); err != nil {
			return nil, "", err
		}
	}
	sql := fmt.Sprintf(`SELECT id, (embedding::vector(%[1]d)) <=> $1::vector(%[1]d) FROM chunks
		ORDER BY (embedding::vector(%[1]d)) <=> $1::vector(%[1]d) LIMIT 10`, dim)
	rows, err := tx.Query(ctx, "EXPLAIN "+sql, pgvector.NewVector(q))
	if err != nil {
		return nil, "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, "", err
	}
	rows, err = tx.Query(ctx, sql, pgvector.NewVector(q))
	if err != nil {
		return nil, "", err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (neighbour, error) {
		var n neighbour
		return n, r.Scan(&n.id, &n.dist)
	})
	if err != nil {
		return nil, "", err
	}
	return out, strings.Join(lines, "\n"), tx.Commit(ctx)
}

// topAll runs vectorTop10 for every query and checks that the plan uses
// the HNSW index, or not, as wanted.
func topAll(b *testing.B, pool *pgxpool.Pool, dim int, qvecs [][]float32, hnsw bool, settings ...string) [][]neighbour {
	b.Helper()
	out := make([][]neighbour, len(qvecs))
	for i, q := range qvecs {
		var plan string
		var err error
		if out[i], plan, err = vectorTop10(context.Background(), pool, dim, q, settings...); err != nil {
			b.Fatal(err)
		}
		if strings.Contains(plan, "chunks_embedding_hnsw") != hnsw {
			b.Fatalf("with %v the plan is not as wanted (HNSW %v):\n%s", settings, hnsw, plan)
		}
	}
	return out
}

// recallAt10 is the share of the exact ten nearest that the index found.
// A result counts as found when it is one of them, or as close as the
// exact tenth (within float32 rounding: the exact distances are computed
// in float64, PostgreSQL's in float32), so that ties among equal vectors
// do not count against the index.
func recallAt10(exact, approx [][]neighbour) float64 {
	found, total := 0, 0
	for i := range exact {
		if len(exact[i]) == 0 {
			continue
		}
		in := map[string]bool{}
		for _, e := range exact[i] {
			in[e.id] = true
		}
		limit := exact[i][len(exact[i])-1].dist + 1e-5
		for _, a := range approx[i] {
			if in[a.id] || a.dist <= limit {
				found++
			}
		}
		total += len(exact[i])
	}
	return float64(found) / float64(total)
}

// sparseVectors holds the loaded chunks' vectors by their non-zero
// components (the local embedder's are hashed features: a few hundred of
// 1,024), with each chunk's id and norm, so that the exact neighbours of
// the held-out questions can be found here rather than by PostgreSQL
// scanning every vector once per question (20 of the 27 minutes at
// 1,000,000 chunks).
type sparseVectors struct {
	ids   []string
	start []int // chunk i's components are idx[start[i]:start[i+1]]
	idx   []uint16
	val   []float32
	norm  []float64
}

// add adds chunks with their ids.
func (s *sparseVectors) add(ids []string, vecs [][]float32) {
	if len(s.start) == 0 {
		s.start = append(s.start, 0)
	}
	for i, v := range vecs {
		var sq float64
		for j, x := range v {
			if x != 0 {
				s.idx = append(s.idx, uint16(j))
				s.val = append(s.val, x)
				sq += float64(x) * float64(x)
			}
		}
		s.ids = append(s.ids, ids[i])
		s.start = append(s.start, len(s.idx))
		s.norm = append(s.norm, math.Sqrt(sq))
	}
}

// join adds the chunks of o after s's.
func (s *sparseVectors) join(o *sparseVectors) {
	if len(s.start) == 0 {
		s.start = append(s.start, 0)
	}
	base := len(s.idx)
	for _, st := range o.start[1:] {
		s.start = append(s.start, base+st)
	}
	s.ids = append(s.ids, o.ids...)
	s.idx = append(s.idx, o.idx...)
	s.val = append(s.val, o.val...)
	s.norm = append(s.norm, o.norm...)
}

// nearest returns the ten chunks nearest to q by cosine distance, nearest
// first, computed in float64 (pgvector sums in float32, so its distances
// differ from these in the seventh digit).
func (s *sparseVectors) nearest(q []float32) []neighbour {
	var qn float64
	for _, x := range q {
		qn += float64(x) * float64(x)
	}
	qn = math.Sqrt(qn)
	top := make([]neighbour, 0, 11)
	for i := range s.ids {
		var dot float64
		for j := s.start[i]; j < s.start[i+1]; j++ {
			dot += float64(q[s.idx[j]]) * float64(s.val[j])
		}
		d := 1 - dot/(qn*s.norm[i])
		if len(top) == 10 && d >= top[9].dist {
			continue
		}
		k := len(top)
		if k < 10 {
			top = append(top, neighbour{})
		} else {
			k = 9
		}
		for k > 0 && top[k-1].dist > d {
			top[k] = top[k-1]
			k--
		}
		top[k] = neighbour{id: s.ids[i], dist: d}
	}
	return top
}

// exactAll runs nearest for every query, a goroutine per core.
func (s *sparseVectors) exactAll(qvecs [][]float32) [][]neighbour {
	out := make([][]neighbour, len(qvecs))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, q := range qvecs {
		g.Go(func() error {
			out[i] = s.nearest(q)
			return nil
		})
	}
	g.Wait()
	return out
}

// checkExact compares the exact neighbours found here with PostgreSQL's own
// exact search (the same ORDER BY with index scans off) for every step-th
// query: the same distances rank by rank, so that a fault here cannot pass
// for the index's recall.
func checkExact(b *testing.B, pool *pgxpool.Pool, dim int, qvecs [][]float32, exact [][]neighbour, step int) {
	b.Helper()
	for i := 0; i < len(qvecs); i += step {
		pg := topAll(b, pool, dim, qvecs[i:i+1], false, "enable_indexscan = off", "enable_bitmapscan = off")[0]
		if len(pg) != len(exact[i]) {
			b.Fatalf("query %d: PostgreSQL's exact search found %d neighbours, this one %d", i, len(pg), len(exact[i]))
		}
		for r := range pg {
			if math.Abs(pg[r].dist-exact[i][r].dist) > 1e-5 {
				b.Fatalf("query %d, rank %d: PostgreSQL's exact distance %.7f, this one's %.7f", i, r+1, pg[r].dist, exact[i][r].dist)
			}
		}
	}
}

// percentile returns the p-th percentile (0-100) of sorted durations, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return float64(sorted[max(i, 0)].Microseconds()) / 1000
}

// BenchmarkSearch measures hybrid search (Index.Search, k=10) over a
// knowledge base of TANDEM_BENCH_SEARCH_CHUNKS real-language chunks (see
// makeBenchCorpus), with held-out questions. The chunks are written through
// Index.Write without the HNSW index, which is built afterwards, as
// building beats inserting many times over; its build time and size are
// reported. For each build (TANDEM_BENCH_SEARCH_HNSW) and hnsw.ef_search
// value, a sub-benchmark reports the search latency p50 and p99 and the
// vector side's recall@10 against exact search (computed here over the
// loaded vectors, and checked against PostgreSQL's own for a tenth of the
// queries). One search runs at a time.
func BenchmarkSearch(b *testing.B) {
	n := searchBenchChunks(b)
	ctx := context.Background()
	start := time.Now()
	corpus := makeBenchCorpus(b, n)
	pool := searchBenchPool(b)
	emb := retrieval.NewLocal()
	dim := emb.Dim()
	ix := retrieval.NewIndex(pool, emb)
	b.Logf("corpus: %d chunks, %d queries (%.1fs)", len(corpus.entries), len(corpus.queries), time.Since(start).Seconds())

	// Load: one document per thousand chunks, each embedded and written in
	// its own transaction, as knowledge.Service.Create does, by two
	// workers, so that one embeds while the other's rows are written.
	start = time.Now()
	const perDoc = 1000
	docs := (len(corpus.entries) + perDoc - 1) / perDoc
	parts := make([]sparseVectors, docs)
	loadDoc := func(d int) error {
		entries := corpus.entries[d*perDoc : min((d+1)*perDoc, len(corpus.entries))]
		for i := range entries {
			entries[i].Ordinal = i
			entries[i].Version = 1
		}
		p, err := ix.Prepare(ctx, entries)
		if err != nil {
			return err
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO documents (title, source_name, format, checksum, chunks)
			VALUES ($1, $2, 'csv', $3, $4) RETURNING id`,
			fmt.Sprintf("Knowledge %d", d), fmt.Sprintf("kb-%d.csv", d), fmt.Sprintf("bench-%d", d), len(entries)).Scan(&id); err != nil {
			return err
		}
		for i := range p.Entries {
			p.Entries[i].DocumentID = id
		}
		written, err := ix.Write(ctx, tx, p)
		if err != nil {
			return err
		}
		parts[d].add(written, p.Vectors)
		return tx.Commit(ctx)
	}
	var g errgroup.Group
	g.SetLimit(2)
	for d := range docs {
		g.Go(func() error {
			if err := loadDoc(d); err != nil {
				return fmt.Errorf("document %d: %w", d, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE chunks`); err != nil {
		b.Fatal(err)
	}
	var tableMB float64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('chunks') / 1048576.0`).Scan(&tableMB); err != nil {
		b.Fatal(err)
	}
	loadS := time.Since(start).Seconds()
	b.Logf("load: %d chunks embedded and written in %.1fs (%.0f chunks/s), chunks table with its other indexes %.0f MB",
		len(corpus.entries), loadS, float64(len(corpus.entries))/loadS, tableMB)

	// Exact neighbours, once, here (see sparseVectors), checked against
	// PostgreSQL's exact search for about ten of the queries.
	start = time.Now()
	var sv sparseVectors
	for i := range parts {
		sv.join(&parts[i])
	}
	parts = nil
	qvecs, err := emb.Embed(ctx, corpus.queries)
	if err != nil {
		b.Fatal(err)
	}
	exact := sv.exactAll(qvecs)
	b.Logf("exact search: %d queries over %d vectors (%d non-zero components) in %.1fs",
		len(qvecs), len(sv.ids), len(sv.idx), time.Since(start).Seconds())
	start = time.Now()
	checkExact(b, pool, dim, qvecs, exact, max(1, len(qvecs)/10))
	sv = sparseVectors{}
	b.Logf("the same as PostgreSQL's exact search for every %dth query (%.1fs)", max(1, len(qvecs)/10), time.Since(start).Seconds())

	for _, v := range searchBenchVariants(b) {
		if _, err := pool.Exec(ctx, `DROP INDEX IF EXISTS chunks_embedding_hnsw_`+strconv.Itoa(dim)); err != nil {
			b.Fatal(err)
		}
		// Built as EnsureIndex builds it, with the server's
		// maintenance_work_mem (512 MB here; more made no difference at
		// 100,000 chunks), or TANDEM_BENCH_MAINTENANCE_WORK_MEM: at
		// 1,000,000 the graph (about 8 GB) must fit in it, or pgvector
		// finishes the build by inserting, many times slower.
		start = time.Now()
		buildS, err := buildHNSW(ctx, pool, fmt.Sprintf(`CREATE INDEX chunks_embedding_hnsw_%[1]d ON chunks
			USING hnsw ((embedding::vector(%[1]d)) vector_cosine_ops) WITH (m = %[2]d, ef_construction = %[3]d)`,
			dim, v.m, v.efConstruction))
		if err != nil {
			b.Fatal(err)
		}
		var indexMB float64
		if err := pool.QueryRow(ctx, `SELECT pg_relation_size('chunks_embedding_hnsw_`+strconv.Itoa(dim)+`') / 1048576.0`).Scan(&indexMB); err != nil {
			b.Fatal(err)
		}
		b.Logf("HNSW m=%d ef_construction=%d: built in %.1fs, %.0f MB", v.m, v.efConstruction, buildS, indexMB)

		for _, ef := range []int{40, 100, 200} {
			approx := topAll(b, pool, dim, qvecs, true, fmt.Sprintf("hnsw.ef_search = %d", ef), "enable_seqscan = off")
			recall := recallAt10(exact, approx)
			ix.EFSearch = ef
			// Warm the caches once, as a running server's are, and count the
			// queries whose first hit is of their intent (or BQ cluster).
			answered := 0
			for i, q := range corpus.queries {
				hits, err := ix.Search(ctx, retrieval.SearchRequest{Text: q, K: 10})
				if err != nil {
					b.Fatal(err)
				}
				if len(hits) > 0 && corpus.answers[i][corpus.groups[entryKey(hits[0].Question, hits[0].Heading, hits[0].Text)]] {
					answered++
				}
			}
			name := fmt.Sprintf("chunks=%d/m=%d/efc=%d/ef=%d", len(corpus.entries), v.m, v.efConstruction, ef)
			b.Run(name, func(b *testing.B) {
				var lat []time.Duration
				i := 0
				for b.Loop() {
					q := corpus.queries[i%len(corpus.queries)]
					i++
					t0 := time.Now()
					if _, err := ix.Search(ctx, retrieval.SearchRequest{Text: q, K: 10}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				slices.Sort(lat)
				b.ReportMetric(percentile(lat, 50), "p50-ms")
				b.ReportMetric(percentile(lat, 99), "p99-ms")
				b.ReportMetric(recall, "recall@10")
				b.ReportMetric(float64(answered)/float64(len(corpus.queries)), "intent@1")
				b.ReportMetric(buildS, "build-s")
				b.ReportMetric(indexMB, "index-MB")
			})
		}
	}
}
