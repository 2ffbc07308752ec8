package retrieval

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/tandem-chat/tandem/internal/db"
)

// Entry is one chunk to index: the text knowledge hands over, and where it
// came from.
type Entry struct {
	DocumentID string
	Version    int
	Ordinal    int
	Heading    string
	Question   string // a FAQ pair's question, matched on its own; "" for passages
	Text       string
	Tags       []string
}

// embedText is what is embedded for an entry: a FAQ pair's question alone
// (question-to-question matching is what works best for FAQs), else the
// passage under its heading.
func (e Entry) embedText() string {
	if e.Question != "" {
		return e.Question
	}
	if e.Heading != "" {
		return e.Heading + "\n" + e.Text
	}
	return e.Text
}

// Index writes chunks with their vectors and full-text terms, and searches
// them.
type Index struct {
	pool *pgxpool.Pool
	emb  Embedder
	// EFSearch is hnsw.ef_search for vector candidates; 0 keeps the server's.
	EFSearch int
}

// NewIndex returns an Index over pool using emb.
func NewIndex(pool *pgxpool.Pool, emb Embedder) *Index {
	return &Index{pool: pool, emb: emb, EFSearch: 100}
}

// Embedder returns the index's embedder.
func (ix *Index) Embedder() Embedder { return ix.emb }

// Prepared is a batch of entries with their vectors, ready to be written in
// a transaction.
type Prepared struct {
	Entries []Entry
	Vectors [][]float32
	Model   string
}

// Prepare embeds entries. It is the slow part of indexing and runs outside
// any transaction, so the old version of a document stays searchable
// meanwhile. Returns Unavailable when a remote embedder fails.
func (ix *Index) Prepare(ctx context.Context, entries []Entry) (*Prepared, error) {
	texts := make([]string, len(entries))
	for i, e := range entries {
		texts[i] = e.embedText()
	}
	vecs, err := ix.emb.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("retrieval: embed: %w", err)
	}
	if len(vecs) != len(entries) {
		return nil, fmt.Errorf("retrieval: embedder returned %d vectors for %d texts", len(vecs), len(entries))
	}
	return &Prepared{Entries: entries, Vectors: vecs, Model: ix.emb.Name()}, nil
}

// writeBatch is how many chunks one INSERT statement carries. The
// term_stats trigger runs once per statement (migration 0007), so larger
// batches mean fewer, larger upserts; a thousand 1,024-dimension vectors
// are about 4 MB of parameters.
const writeBatch = 1000

// Write inserts prepared entries inside tx and returns their chunk ids.
// Each batch of entries is one INSERT … SELECT over arrays, which computes
// the tsvectors in the server; ids are made here so that they come back in
// the entries' order.
func (ix *Index) Write(ctx context.Context, tx pgx.Tx, p *Prepared) ([]string, error) {
	ids := make([]string, len(p.Entries))
	for start := 0; start < len(p.Entries); start += writeBatch {
		end := min(start+writeBatch, len(p.Entries))
		n := end - start
		var (
			docIDs, headings, questions, texts = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			aq, ah, at                         = make([]string, n), make([]string, n), make([]string, n)
			versions, ordinals                 = make([]int32, n), make([]int32, n)
			tagFrom, tagTo                     = make([]int32, n), make([]int32, n)
			tags                               = []string{}
			vecs                               = make([]pgvector.Vector, n)
			batchIDs                           = make([]string, n)
		)
		for j := range n {
			e := p.Entries[start+j]
			batchIDs[j] = uuid.NewString()
			docIDs[j], versions[j], ordinals[j] = e.DocumentID, int32(e.Version), int32(e.Ordinal)
			headings[j], questions[j], texts[j] = e.Heading, e.Question, e.Text
			aq[j], ah[j], at[j] = Analyze(e.Question), Analyze(e.Heading), Analyze(e.Text)
			// Each chunk's tags are the slice [from:to] (1-based, inclusive)
			// of one flat array; an empty slice gives '{}'.
			tagFrom[j] = int32(len(tags) + 1)
			tags = append(tags, e.Tags...)
			tagTo[j] = int32(len(tags))
			vecs[j] = pgvector.NewVector(p.Vectors[start+j])
		}
		_, err := tx.Exec(ctx, `INSERT INTO chunks (id, document_id, version, ordinal, heading, question, text, tags, tsv, embed_model, embedding)
			SELECT u.id, u.document_id, u.version, u.ordinal, u.heading, u.question, u.text, ($12::text[])[u.tag_from:u.tag_to],
				setweight(to_tsvector('simple', u.aq), 'A') || setweight(to_tsvector('simple', u.ah), 'B') ||
				setweight(to_tsvector('simple', u.at), 'C'),
				$13, u.embedding
			FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::text[], $11::vector[], $14::int[], $15::int[])
				AS u(id, document_id, version, ordinal, heading, question, text, aq, ah, at, embedding, tag_from, tag_to)`,
			batchIDs, docIDs, versions, ordinals, headings, questions, texts, aq, ah, at, vecs, tags, p.Model, tagFrom, tagTo)
		if err != nil {
			return nil, db.Translate(err, "chunk")
		}
		copy(ids[start:end], batchIDs)
	}
	return ids, nil
}

// indexName is the HNSW index for one dimension.
func indexName(dim int) string { return fmt.Sprintf("chunks_embedding_hnsw_%d", dim) }

// EnsureIndex creates the HNSW (cosine) index over the embeddings cast to
// the embedder's dimension, and drops those of other dimensions. It is a
// no-op when the index exists.
func (ix *Index) EnsureIndex(ctx context.Context) error {
	dim := ix.emb.Dim()
	if dim <= 0 {
		return nil // a remote embedder learns its dimension on first use
	}
	rows, err := ix.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname LIKE 'chunks_embedding_hnsw_%'`)
	if err != nil {
		return db.Translate(err, "index")
	}
	var have []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		have = append(have, n)
	}
	rows.Close()
	want := indexName(dim)
	for _, n := range have {
		if n != want {
			if _, err := ix.pool.Exec(ctx, `DROP INDEX IF EXISTS `+pgx.Identifier{n}.Sanitize()); err != nil {
				return db.Translate(err, "index")
			}
		}
	}
	// m and ef_construction: pgvector's defaults (16, 64) measured well at
	// 100k chunks; see docs/benchmarks.md.
	_, err = ix.pool.Exec(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON chunks
		USING hnsw ((embedding::vector(%d)) vector_cosine_ops)`, want, dim))
	return db.Translate(err, "index")
}

// StaleChunks counts chunks embedded by another model than the index's (by
// name, or by dimension when a model changed its size under one name).
func (ix *Index) StaleChunks(ctx context.Context) (int, error) {
	var n int
	err := ix.pool.QueryRow(ctx, `SELECT count(*) FROM chunks WHERE embed_model <> $1 OR vector_dims(embedding) <> $2`,
		ix.emb.Name(), ix.emb.Dim()).Scan(&n)
	return n, db.Translate(err, "chunks")
}

// Reindex re-embeds every chunk with the current embedder (after a change of
// model), in batches, and rebuilds the vector index. progress, when not nil,
// is called with the count done so far.
func (ix *Index) Reindex(ctx context.Context, all bool, progress func(done, total int)) (int, error) {
	where := `WHERE (embed_model <> $1 OR vector_dims(embedding) <> $3)`
	if all {
		where = `WHERE $1::text IS NOT NULL AND $3::int IS NOT NULL`
	}
	var total int
	if err := ix.pool.QueryRow(ctx, `SELECT count(*) FROM chunks `+where+` AND $2::text IS NOT NULL`, ix.emb.Name(), "", ix.emb.Dim()).Scan(&total); err != nil {
		return 0, db.Translate(err, "chunks")
	}
	// Drop the vector index first: vectors of a new dimension do not fit the
	// old one's cast.
	if _, err := ix.pool.Exec(ctx, `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname LIKE 'chunks_embedding_hnsw_%' LOOP
			EXECUTE 'DROP INDEX ' || quote_ident(r.indexname); END LOOP; END $$`); err != nil {
		return 0, db.Translate(err, "index")
	}
	done := 0
	lastID := "00000000-0000-0000-0000-000000000000"
	for {
		rows, err := ix.pool.Query(ctx, `SELECT id, heading, question, text FROM chunks `+where+` AND id > $2 ORDER BY id LIMIT 256`, ix.emb.Name(), lastID, ix.emb.Dim())
		if err != nil {
			return done, db.Translate(err, "chunks")
		}
		var ids []string
		var entries []Entry
		for rows.Next() {
			var id string
			var e Entry
			if err := rows.Scan(&id, &e.Heading, &e.Question, &e.Text); err != nil {
				rows.Close()
				return done, err
			}
			ids = append(ids, id)
			entries = append(entries, e)
		}
		rows.Close()
		if len(ids) == 0 {
			break
		}
		lastID = ids[len(ids)-1]
		p, err := ix.Prepare(ctx, entries)
		if err != nil {
			return done, err
		}
		b := &pgx.Batch{}
		for i, id := range ids {
			b.Queue(`UPDATE chunks SET embedding = $2, embed_model = $3 WHERE id = $1`, id, pgvector.NewVector(p.Vectors[i]), p.Model)
		}
		if err := ix.pool.SendBatch(ctx, b).Close(); err != nil {
			return done, db.Translate(err, "chunks")
		}
		done += len(ids)
		if progress != nil {
			progress(done, total)
		}
	}
	return done, ix.EnsureIndex(ctx)
}

// sanitizeTags trims and drops empty tags.
func sanitizeTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
