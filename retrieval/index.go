package retrieval

import (
	"context"
	"fmt"
	"strings"

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

// Write inserts prepared entries inside tx and returns their chunk ids.
func (ix *Index) Write(ctx context.Context, tx pgx.Tx, p *Prepared) ([]string, error) {
	ids := make([]string, len(p.Entries))
	const batchSize = 500
	for start := 0; start < len(p.Entries); start += batchSize {
		end := min(start+batchSize, len(p.Entries))
		b := &pgx.Batch{}
		for i := start; i < end; i++ {
			e := p.Entries[i]
			tags := e.Tags
			if tags == nil {
				tags = []string{}
			}
			b.Queue(`INSERT INTO chunks (document_id, version, ordinal, heading, question, text, tags, tsv, embed_model, embedding)
				VALUES ($1, $2, $3, $4, $5, $6, $7,
					setweight(to_tsvector('simple', $8), 'A') || setweight(to_tsvector('simple', $9), 'B') ||
					setweight(to_tsvector('simple', $10), 'C'),
					$11, $12) RETURNING id`,
				e.DocumentID, e.Version, e.Ordinal, e.Heading, e.Question, e.Text, tags,
				Analyze(e.Question), Analyze(e.Heading), Analyze(e.Text), p.Model, pgvector.NewVector(p.Vectors[i]))
		}
		res := tx.SendBatch(ctx, b)
		for i := start; i < end; i++ {
			if err := res.QueryRow().Scan(&ids[i]); err != nil {
				res.Close()
				return nil, db.Translate(err, "chunk")
			}
		}
		if err := res.Close(); err != nil {
			return nil, db.Translate(err, "chunk")
		}
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
