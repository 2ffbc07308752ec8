package retrieval

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// SearchRequest is a search request.
type SearchRequest struct {
	Text       string
	K          int      // hits wanted; default 5, at most 50
	Tags       []string // only chunks with any of these tags
	DocumentID string   // only this document's chunks
}

// Hit is one search result.
type Hit struct {
	ChunkID    string  `json:"chunk_id"`
	DocumentID string  `json:"document_id"`
	Title      string  `json:"title"`
	Heading    string  `json:"heading,omitempty"`
	Question   string  `json:"question,omitempty"`
	Text       string  `json:"text"`
	Score      float64 `json:"score"`  // calibrated, in [0, 1]: usable as confidence
	Vector     float64 `json:"vector"` // cosine similarity of the embedding
	Lexical    float64 `json:"lexical"`
}

// candidates each side of the hybrid search contributes before fusion.
const candidates = 40

// lexicalWeight scales the full-text side's votes in the fusion. Measured
// in memory (retrieval/evalbank_test.go's scorers, Recall@1 at 0.4 / 0.2 /
// 0.1, vector alone): BQ 0.178 / 0.181 / 0.184, 0.182; Banking77 as a FAQ
// bank 0.827 / 0.843 / 0.849, 0.850; CLINC150 0.831 / 0.832 / 0.833, 0.829.
// The side earns its place by breaking near ties among the vector side's
// candidates, not by outvoting them.
const lexicalWeight = 0.1

// rrfK is the reciprocal rank fusion constant (Cormack et al.'s 60 is the
// usual choice; smaller trusts the top ranks more).
const rrfK = 60

// Search runs hybrid search: nearest neighbours over the HNSW index and
// PostgreSQL full-text search over the same chunks, fused by reciprocal rank,
// each hit scored in [0, 1]. Returns Invalid for an empty query.
func (ix *Index) Search(ctx context.Context, q SearchRequest) ([]Hit, error) {
	q.Text = strings.TrimSpace(q.Text)
	if q.Text == "" {
		return nil, errs.Errorf(errs.Invalid, "query must not be empty")
	}
	if q.K <= 0 {
		q.K = 5
	}
	if q.K > 50 {
		q.K = 50
	}
	vecs, err := ix.emb.Embed(ctx, []string{q.Text})
	if err != nil {
		return nil, fmt.Errorf("retrieval: search: %w", err)
	}
	qv := vecs[0]
	dim := len(qv)

	filter := ""
	args := []any{pgvector.NewVector(qv), queryTerms(q.Text), maxTerms, maxRanked}
	if len(q.Tags) > 0 {
		args = append(args, sanitizeTags(q.Tags))
		filter += fmt.Sprintf(" AND c.tags && $%d", len(args))
	}
	if q.DocumentID != "" {
		if !db.ValidID(q.DocumentID) {
			return nil, errs.Errorf(errs.Invalid, "document_id is not a valid id")
		}
		args = append(args, q.DocumentID)
		filter += fmt.Sprintf(" AND c.document_id = $%d", len(args))
	}
	sql := searchSQL(dim, filter, q.K)

	// The settings go in the same round trip, in a transaction of their own:
	// at ten thousand chunks the planner preferred reading every vector
	// (72 ms) to the HNSW index (6 ms), and the index is always the better
	// bet for the nearest-neighbour side; iterative scans (pgvector 0.8)
	// keep filtered searches from coming back short. The statement's plan
	// is made once per connection (a generic plan): planned per call it
	// cost 0.4 ms of PostgreSQL's time at 200 turns a second, and the
	// generic plan is the same one (its LIMITs are written into the
	// statement and sequential scans are off), 0.6 to 0.7 ms faster a
	// search at 150 and at 100,000 chunks, with the same hits.
	stmts := []string{"BEGIN READ ONLY", "SET LOCAL enable_seqscan = off", "SET LOCAL hnsw.iterative_scan = relaxed_order",
		"SET LOCAL plan_cache_mode = force_generic_plan"}
	if ix.EFSearch > 0 {
		stmts = append(stmts, fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", ix.EFSearch))
	}
	batch := &pgx.Batch{}
	for _, st := range stmts {
		batch.Queue(st)
	}
	batch.Queue(sql, args...)
	batch.Queue("COMMIT")
	br := ix.pool.SendBatch(ctx, batch)
	defer br.Close()
	for range stmts {
		if _, err := br.Exec(); err != nil {
			return nil, db.Translate(err, "chunks")
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	hits := make([]Hit, 0, q.K)
	for rows.Next() {
		var h Hit
		if err := rows.Scan(&h.ChunkID, &h.DocumentID, &h.Title, &h.Heading, &h.Question, &h.Text, &h.Vector); err != nil {
			rows.Close()
			return nil, err
		}
		hits = append(hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "chunks")
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		return nil, db.Translate(err, "chunks")
	}
	qTokens := tokenSet(q.Text)
	for i := range hits {
		hits[i].Lexical = coverage(qTokens, hits[i].Question+" "+hits[i].Heading+" "+hits[i].Text)
		hits[i].Score = Calibrate(hits[i].Vector, hits[i].Lexical)
	}
	return hits, br.Close()
}

// searchSQL is the statement of a search with the given vector dimension,
// filter (conditions on chunks c) and number of hits.
//
// The whole search is one statement, so it sees one snapshot (a
// document replaced meanwhile cannot lose its hits) and costs one round
// trip with its settings (below): it used to take seven (begin, term
// statistics, three settings, candidates, texts, commit), and on a busy
// machine every round trip waits for the scheduler.
//
//   - terms: the query's rarest terms, joined by OR: a term found in more
//     than a twentieth of the chunks matches too much to tell them apart
//     and would make the search rank most of them (190 ms for "refund"
//     at 100,000 chunks), so it is left out, even when nothing is left
//     (the vector side still answers); terms are taken rarest first
//     while their document frequencies, summed, stay within maxRanked,
//     and at most maxTerms of them; terms no chunk has cannot match;
//   - v: nearest neighbours, ordered by the expression the HNSW index is
//     built on, so the index serves it;
//   - t: full-text matches of those terms;
//   - fused: reciprocal rank fusion of the two lists.
//
// The LIMITs are written into the statement, not passed: pgx prepares
// statements, and after five runs PostgreSQL may switch to a generic
// plan, which, not knowing the limit, assumes a tenth of the table and
// chooses a sequential scan and sort over the HNSW index (160 ms instead
// of 3 ms at 10,000 chunks, and ten times that at 100,000).
func searchSQL(dim int, filter string, k int) string {
	return fmt.Sprintf(`
		WITH total AS (
			SELECT greatest(max(reltuples), 0)::bigint AS n FROM pg_class WHERE oid = 'chunks'::regclass
		), ranked AS (
			SELECT s.lexeme, s.df,
				sum(s.df) OVER (ORDER BY s.df, s.lexeme) AS cum,
				row_number() OVER (ORDER BY s.df, s.lexeme) AS pos
			FROM term_stats s WHERE s.lexeme = ANY($2) AND s.df > 0
		), terms AS (
			SELECT coalesce(string_agg(r.lexeme, ' | ' ORDER BY r.df, r.lexeme), '') AS q
			FROM ranked r, total
			WHERE r.df <= greatest(total.n / 20, 50) AND r.cum <= $4 AND r.pos <= $3
		), v AS (
			SELECT id, row_number() OVER (ORDER BY d) AS rank FROM (
				SELECT c.id, (c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d) AS d
				FROM chunks c WHERE true %[2]s
				ORDER BY (c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d) LIMIT %[3]d) nn
		), t AS (
			SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank FROM (
				SELECT c.id, ts_rank(c.tsv, tq, 1) AS r
				FROM chunks c, terms, to_tsquery('simple', terms.q) tq
				WHERE terms.q <> '' AND c.tsv @@ tq %[2]s
				ORDER BY 2 DESC LIMIT %[3]d) ft
		), fused AS (
			SELECT coalesce(v.id, t.id) AS id,
				coalesce(1.0 / (%[4]d + v.rank), 0) + coalesce(%[5]g / (%[4]d + t.rank), 0) AS score,
				least(v.rank, t.rank + %[3]d) AS tie
			FROM v FULL JOIN t ON t.id = v.id
			ORDER BY score DESC, tie LIMIT %[6]d
		)
		SELECT c.id, c.document_id, d.title, c.heading, c.question, c.text,
			1 - ((c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d))
		FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
		ORDER BY f.score DESC, f.tie`, dim, filter, candidates, rrfK, lexicalWeight, k)

}

// maxTerms bounds the full-text query to the rarest terms of the question.
const maxTerms = 8

// maxRanked bounds the chunks the full-text side ranks: terms are taken
// rarest first while their document frequencies, summed, stay within it.
// Ranking costs a heap fetch per matching chunk (EXPLAIN ANALYZE at 100,000
// chunks: 2,000 to 2,700 chunks ranked in 18 to 28 ms of a loaded
// machine's time, most of a bot turn), while the side's worth is in rare
// terms (names, model codes) that the vector side may miss. At 4,000 the
// bound cost BQ Recall@1 0.170 against 0.176 at 1,000 (5,172 FAQs, where
// a twentieth of the chunks is about 260): terms as common as that blur
// the ranking more than they help it.
const maxRanked = 1000

// queryTerms returns the distinct analysed tokens of text.
func queryTerms(text string) []string {
	var out []string
	seen := map[string]bool{}
	forEachToken(text, func(tok string) {
		if !seen[tok] {
			seen[tok] = true
			out = append(out, tok)
		}
	})
	return out
}

// tokenSet is the set of distinct analyzed tokens of text.
func tokenSet(text string) map[string]bool {
	set := map[string]bool{}
	forEachToken(text, func(tok string) { set[tok] = true })
	return set
}

// coverage is the share of the query's tokens found in text. It keeps only
// the query's tokens it meets, not a set of the whole text (a passage's
// set was most of the 4.5% of an instance's CPU that scoring hits took).
func coverage(q map[string]bool, text string) float64 {
	if len(q) == 0 {
		return 0
	}
	found := make(map[string]struct{}, len(q))
	forEachToken(text, func(tok string) {
		if q[tok] {
			found[tok] = struct{}{}
		}
	})
	return float64(len(found)) / float64(len(q))
}

// Calibrate maps a hit's cosine similarity and lexical coverage to a score in
// [0, 1] that the bot uses as confidence. The weights are set by hand so that
// a close paraphrase with most of the question's terms scores above 0.5 and
// a loose match well below; they are not a fitted probability. Fitted on the
// BQ FAQ set (tandem eval retrieval --calibrate), where the local embedder's
// top hit is right 17% of the time, the logistic comes out nearly flat
// (1.64*vector - 0.07*lexical - 2.69): a per-knowledge-base calibration is
// future work (docs/benchmarks.md).
func Calibrate(vec, lex float64) float64 {
	z := calibA*vec + calibB*lex + calibC
	return 1 / (1 + math.Exp(-z))
}

// Calibration weights; see Calibrate.
var (
	calibA = 8.0
	calibB = 3.0
	calibC = -6.5
)
