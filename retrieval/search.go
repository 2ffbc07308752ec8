package retrieval

import (
	"context"
	"fmt"
	"math"
	"sort"
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

// lexicalWeight scales the full-text side's votes in the fusion: at equal
// weight it cost 1 to 4 points of Recall@1 on FAQ data (BQ, Banking77),
// while at a quarter to a half it adds a little (docs/benchmarks.md).
const lexicalWeight = 0.4

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
	terms := queryTerms(q.Text)

	filter := ""
	args := []any{pgvector.NewVector(qv), ""}
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
	// Both candidate lists in one round trip; the vector side orders by the
	// same expression the HNSW index is built on, so the index serves it.
	// The LIMIT is written into the statement, not passed: pgx prepares
	// statements, and after five runs PostgreSQL may switch to a generic
	// plan, which, not knowing the limit, assumes a tenth of the table and
	// chooses a sequential scan and sort over the HNSW index (160 ms instead
	// of 3 ms at 10,000 chunks, and ten times that at 100,000).
	sql := fmt.Sprintf(`
		(SELECT c.id, 'v' AS side, 1 - ((c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d)) AS score
		 FROM chunks c WHERE true %[2]s
		 ORDER BY (c.embedding::vector(%[1]d)) <=> $1::vector(%[1]d) LIMIT %[3]d)
		UNION ALL
		(SELECT c.id, 't', ts_rank(c.tsv, tq, 1)
		 FROM chunks c, to_tsquery('simple', $2) tq WHERE $2 <> '' AND c.tsv @@ tq %[2]s
		 ORDER BY 3 DESC LIMIT %[3]d)`, dim, filter, candidates)

	conn, err := ix.pool.Acquire(ctx)
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	defer conn.Release()
	// One snapshot for the candidates and their text: under READ COMMITTED
	// a document replaced between the two statements would lose its hits.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	defer tx.Rollback(ctx)
	tsq, err := selectiveQuery(ctx, tx, terms)
	if err != nil {
		return nil, err
	}
	args[1] = tsq
	// At ten thousand chunks the planner preferred reading every vector
	// (72 ms) to the HNSW index (6 ms); the index is always the better bet
	// for the nearest-neighbour side. Iterative scans (pgvector 0.8) keep
	// filtered searches from coming back short.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL hnsw.iterative_scan = relaxed_order"); err != nil {
		return nil, db.Translate(err, "chunks")
	}
	if ix.EFSearch > 0 {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL hnsw.ef_search = %d", ix.EFSearch)); err != nil {
			return nil, db.Translate(err, "chunks")
		}
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	type cand struct {
		fused float64
	}
	cands := map[string]*cand{}
	var order []string
	vr, tr := 0, 0
	for rows.Next() {
		var id, side string
		var score float64
		if err := rows.Scan(&id, &side, &score); err != nil {
			rows.Close()
			return nil, err
		}
		c := cands[id]
		if c == nil {
			c = &cand{}
			cands[id] = c
			order = append(order, id)
		}
		if side == "v" {
			vr++
			c.fused += 1.0 / float64(rrfK+vr)
		} else {
			tr++
			c.fused += lexicalWeight / float64(rrfK+tr)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "chunks")
	}
	sort.SliceStable(order, func(i, j int) bool { return cands[order[i]].fused > cands[order[j]].fused })
	if len(order) > q.K {
		order = order[:q.K]
	}
	if len(order) == 0 {
		return []Hit{}, tx.Commit(ctx)
	}
	hits, err := ix.load(ctx, tx, order, qv)
	if err != nil {
		return nil, err
	}
	qTokens := tokenSet(q.Text)
	for i := range hits {
		hits[i].Lexical = coverage(qTokens, hits[i].Question+" "+hits[i].Heading+" "+hits[i].Text)
		hits[i].Score = Calibrate(hits[i].Vector, hits[i].Lexical)
	}
	return hits, tx.Commit(ctx)
}

// maxTerms bounds the full-text query to the rarest terms of the question.
const maxTerms = 8

// maxRanked bounds the chunks the full-text side ranks: terms are taken
// rarest first while their document frequencies, summed, stay within it.
// It binds only above about 10,000 chunks (below, eight terms each in at
// most a twentieth of the chunks stay within it). At 100,000 chunks it took
// the full-text side's p99 from 30-44 ms to 11 ms over 300 held-out
// questions (retrieval/search_bench_test.go's corpus), with the same share
// of first hits of the question's intent (0.740), so search time no longer
// grows with the knowledge base through terms that are merely common-ish.
const maxRanked = 4000

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

// selectiveQuery builds the full-text query from the question's rarest
// terms: a term found in more than a twentieth of the chunks matches too
// much to tell them apart and would make the search scan most of them, so
// it is left out, even when nothing is left (the vector side still
// answers): ranking every chunk that has "refund" took 190 ms at 100,000
// chunks. Terms no chunk has are left out too: they cannot match.
func selectiveQuery(ctx context.Context, tx pgx.Tx, terms []string) (string, error) {
	if len(terms) == 0 {
		return "", nil
	}
	rows, err := tx.Query(ctx, `SELECT lexeme, df,
		greatest((SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass), 0)::bigint
		FROM term_stats WHERE lexeme = ANY($1) AND df > 0 ORDER BY df, lexeme`, terms)
	if err != nil {
		return "", db.Translate(err, "chunks")
	}
	defer rows.Close()
	type term struct {
		lexeme string
		df     int64
	}
	var found []term
	var total int64
	for rows.Next() {
		var t term
		if err := rows.Scan(&t.lexeme, &t.df, &total); err != nil {
			return "", err
		}
		found = append(found, t)
	}
	if err := rows.Err(); err != nil {
		return "", db.Translate(err, "chunks")
	}
	limit := max(total/20, 50)
	var kept []string
	var ranked int64
	for _, t := range found {
		if t.df > limit || ranked+t.df > maxRanked {
			break // found is in order of df: no later term fits either
		}
		kept = append(kept, t.lexeme)
		ranked += t.df
		if len(kept) == maxTerms {
			break
		}
	}
	return strings.Join(kept, " | "), nil
}

// load fetches the hits' text and titles, in the given order.
// Each hit's cosine similarity is computed here, so hits found only by the
// full-text side have one too.
func (ix *Index) load(ctx context.Context, tx pgx.Tx, ids []string, qv []float32) ([]Hit, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT c.id, c.document_id, d.title, c.heading, c.question, c.text,
		1 - ((c.embedding::vector(%[1]d)) <=> $2::vector(%[1]d))
		FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY($1)`, len(qv)), ids, pgvector.NewVector(qv))
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	defer rows.Close()
	byID := map[string]Hit{}
	for rows.Next() {
		var h Hit
		if err := rows.Scan(&h.ChunkID, &h.DocumentID, &h.Title, &h.Heading, &h.Question, &h.Text, &h.Vector); err != nil {
			return nil, err
		}
		byID[h.ChunkID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "chunks")
	}
	out := make([]Hit, 0, len(ids))
	for _, id := range ids {
		if h, ok := byID[id]; ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// tokenSet is the set of distinct analyzed tokens of text.
func tokenSet(text string) map[string]bool {
	set := map[string]bool{}
	forEachToken(text, func(tok string) { set[tok] = true })
	return set
}

// coverage is the share of the query's tokens found in text.
func coverage(q map[string]bool, text string) float64 {
	if len(q) == 0 {
		return 0
	}
	t := tokenSet(text)
	n := 0
	for tok := range q {
		if t[tok] {
			n++
		}
	}
	return float64(n) / float64(len(q))
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
