package knowledge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/audit"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/retrieval"
)

// MaxUploadBytes is the default size limit of one uploaded document.
const MaxUploadBytes = 20 << 20

// Document is one knowledge document at its current version.
type Document struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	SourceName string    `json:"source_name"`
	Format     Format    `json:"format"`
	Tags       []string  `json:"tags"`
	Version    int       `json:"version"`
	Checksum   string    `json:"checksum"`
	SizeBytes  int64     `json:"size_bytes"`
	Chunks     int       `json:"chunks"`
	CreatedBy  string    `json:"created_by,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedBy  string    `json:"updated_by,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Version is one stored version of a document.
type Version struct {
	Version    int       `json:"version"`
	Title      string    `json:"title"`
	SourceName string    `json:"source_name"`
	Format     Format    `json:"format"`
	Checksum   string    `json:"checksum"`
	SizeBytes  int64     `json:"size_bytes"`
	Chunks     int       `json:"chunks"`
	CreatedBy  string    `json:"created_by,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// StoredChunk is a chunk as an editor sees it.
type StoredChunk struct {
	ID       string   `json:"id"`
	Ordinal  int      `json:"ordinal"`
	Heading  string   `json:"heading,omitempty"`
	Question string   `json:"question,omitempty"`
	Text     string   `json:"text"`
	Tags     []string `json:"tags"`
}

// Upload is a file an editor hands in.
type Upload struct {
	Filename    string
	ContentType string
	Data        []byte
	Title       string   // overrides the title found in the document
	Tags        []string // applied to every chunk, with a FAQ row's own tags
	UserID      string   // who loaded it
	// Source names the document's origin, kept as its source_name: a path
	// relative to the folder it was loaded from (tandem ingest), so that
	// en/faq.csv and zh/faq.csv stay two documents. Empty: the file's name.
	Source string
}

// Service keeps documents and their versions and hands their chunks to the
// retrieval index.
type Service struct {
	pool     *pgxpool.Pool
	index    *retrieval.Index
	MaxBytes int64
}

// NewService returns a Service over pool that indexes through index.
func NewService(pool *pgxpool.Pool, index *retrieval.Index) *Service {
	return &Service{pool: pool, index: index, MaxBytes: MaxUploadBytes}
}

// prepared is an upload parsed, chunked and embedded, ready to be written.
type prepared struct {
	title, source string
	format        Format
	checksum      string
	size          int64
	tags          []string
	entries       []retrieval.Entry
	vectors       *retrieval.Prepared
}

// prepare validates, parses, chunks and embeds an upload, outside any
// transaction. Returns TooLarge, Unsupported, Invalid, Unavailable.
func (s *Service) prepare(ctx context.Context, up Upload) (*prepared, error) {
	if int64(len(up.Data)) > s.MaxBytes {
		return nil, errs.Errorf(errs.TooLarge, "the file is %.1f MB; the limit is %d MB", float64(len(up.Data))/(1<<20), s.MaxBytes>>20)
	}
	if len(up.Data) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file is empty")
	}
	up.Title = strings.TrimSpace(up.Title)
	if utf8.RuneCountInString(up.Title) > 300 || !utf8.ValidString(up.Title) {
		return nil, errs.Errorf(errs.Invalid, "title must be valid text of at most 300 characters")
	}
	tags, err := cleanTags(up.Tags)
	if err != nil {
		return nil, err
	}
	format, err := DetectFormat(up.Filename, up.ContentType, up.Data)
	if err != nil {
		return nil, err
	}
	parsed, err := Parse(format, up.Data)
	if err != nil {
		return nil, err
	}
	if len(parsed.Chunks) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file has no text to answer from")
	}
	sum := sha256.Sum256(up.Data)
	p := &prepared{
		title: up.Title, source: filepath.Base(up.Filename), format: format,
		checksum: hex.EncodeToString(sum[:]), size: int64(len(up.Data)), tags: tags,
	}
	if up.Source != "" {
		p.source = filepath.ToSlash(filepath.Clean(up.Source))
	}
	if p.source == "." || p.source == "/" || p.source == "" {
		p.source = "upload"
	}
	if p.title == "" {
		p.title = strings.TrimSpace(parsed.Title)
	}
	if p.title == "" {
		base := filepath.Base(p.source)
		p.title = strings.TrimSuffix(base, filepath.Ext(base))
	}
	for _, c := range parsed.Chunks {
		ct := append(append([]string{}, tags...), c.Tags...)
		p.entries = append(p.entries, retrieval.Entry{
			Ordinal: c.Ordinal, Heading: c.Heading, Question: c.Question, Text: c.Text, Tags: dedupe(ct),
		})
	}
	return p, nil
}

func (s *Service) embed(ctx context.Context, p *prepared) error {
	v, err := s.index.Prepare(ctx, p.entries)
	if err != nil {
		return err
	}
	p.vectors = v
	return nil
}

func cleanTags(tags []string) ([]string, error) {
	var out []string
	for _, t := range tags {
		for _, part := range strings.Split(t, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if utf8.RuneCountInString(part) > 64 || !utf8.ValidString(part) {
				return nil, errs.Errorf(errs.Invalid, "tag %q is longer than 64 characters", part)
			}
			out = append(out, part)
		}
	}
	if len(out) > 50 {
		return nil, errs.Errorf(errs.Invalid, "at most 50 tags")
	}
	return dedupe(out), nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Create loads a new document as version 1. Uploading content identical to a
// live document's is a no-op that returns that document with created false.
func (s *Service) Create(ctx context.Context, up Upload) (*Document, bool, error) {
	p, err := s.prepare(ctx, up)
	if err != nil {
		return nil, false, err
	}
	if d, err := s.byChecksum(ctx, p.checksum); err == nil {
		return d, false, nil
	} else if !errs.Is(err, errs.NotFound) {
		return nil, false, err
	}
	if err := s.embed(ctx, p); err != nil {
		return nil, false, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, db.Translate(err, "document")
	}
	defer tx.Rollback(ctx)
	var id string
	err = tx.QueryRow(ctx, `INSERT INTO documents (title, source_name, format, tags, version, checksum, size_bytes, chunks, created_by, updated_by)
		VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $8) RETURNING id`,
		p.title, p.source, p.format, p.tags, p.checksum, p.size, len(p.entries), nilIfEmpty(up.UserID)).Scan(&id)
	if err != nil {
		return nil, false, db.Translate(err, "document")
	}
	if err := s.writeVersion(ctx, tx, id, 1, p, up.UserID); err != nil {
		return nil, false, err
	}
	if err := audit.Write(ctx, tx, time.Time{}, actorOf(ctx, up.UserID), "knowledge.create", "document", id,
		map[string]any{"title": p.title, "source_name": p.source, "version": 1, "chunks": len(p.entries), "checksum": p.checksum}); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, db.Translate(err, "document")
	}
	d, err := s.Get(ctx, id)
	return d, true, err
}

// writeVersion records a version and indexes its chunks inside tx.
func (s *Service) writeVersion(ctx context.Context, tx pgx.Tx, id string, version int, p *prepared, userID string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO document_versions (document_id, version, title, source_name, format, checksum, size_bytes, chunks, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		id, version, p.title, p.source, p.format, p.checksum, p.size, len(p.entries), nilIfEmpty(userID)); err != nil {
		return db.Translate(err, "document version")
	}
	for i := range p.vectors.Entries {
		p.vectors.Entries[i].DocumentID = id
		p.vectors.Entries[i].Version = version
	}
	_, err := s.index.Write(ctx, tx, p.vectors)
	return err
}

// Replace loads a new version of document id. Its old chunks stay searchable
// until the new ones are indexed, and leave search in the same transaction
// that adds them. Identical content is a no-op (changed false).
// Returns NotFound, and the errors of Create.
func (s *Service) Replace(ctx context.Context, id string, up Upload) (*Document, bool, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return nil, false, err
	}
	p, err := s.prepare(ctx, up)
	if err != nil {
		return nil, false, err
	}
	if up.Title == "" && p.title == strings.TrimSuffix(p.source, filepath.Ext(p.source)) && cur.Title != "" {
		p.title = cur.Title // keep an editor's title when the file brings none
	}
	if len(up.Tags) == 0 {
		p.tags = cur.Tags
		for i := range p.entries {
			p.entries[i].Tags = dedupe(append(append([]string{}, cur.Tags...), p.entries[i].Tags...))
		}
	}
	if p.checksum == cur.Checksum && p.title == cur.Title && equalTags(p.tags, cur.Tags) {
		return cur, false, nil
	}
	if err := s.embed(ctx, p); err != nil {
		return nil, false, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, db.Translate(err, "document")
	}
	defer tx.Rollback(ctx)
	var version int
	err = tx.QueryRow(ctx, `SELECT version FROM documents WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, id).Scan(&version)
	if err != nil {
		return nil, false, db.Translate(err, "document")
	}
	version++
	if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE document_id = $1`, id); err != nil {
		return nil, false, db.Translate(err, "chunks")
	}
	if err := s.writeVersion(ctx, tx, id, version, p, up.UserID); err != nil {
		return nil, false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE documents SET title = $2, source_name = $3, format = $4, tags = $5, version = $6,
		checksum = $7, size_bytes = $8, chunks = $9, updated_by = $10, updated_at = now() WHERE id = $1`,
		id, p.title, p.source, p.format, p.tags, version, p.checksum, p.size, len(p.entries), nilIfEmpty(up.UserID)); err != nil {
		return nil, false, db.Translate(err, "document")
	}
	if err := audit.Write(ctx, tx, time.Time{}, actorOf(ctx, up.UserID), "knowledge.replace", "document", id,
		map[string]any{"title": p.title, "source_name": p.source, "version": version, "chunks": len(p.entries), "checksum": p.checksum}); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, db.Translate(err, "document")
	}
	d, err := s.Get(ctx, id)
	return d, true, err
}

func equalTags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Delete removes a document from search at once; its record and versions
// are kept. Returns NotFound.
func (s *Service) Delete(ctx context.Context, id, userID string) error {
	if !db.ValidID(id) {
		return errs.Errorf(errs.NotFound, "document not found")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "document")
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE documents SET deleted_at = now(), updated_by = $2, updated_at = now(), chunks = 0
		WHERE id = $1 AND deleted_at IS NULL`, id, nilIfEmpty(userID))
	if err != nil {
		return db.Translate(err, "document")
	}
	if tag.RowsAffected() == 0 {
		return errs.Errorf(errs.NotFound, "document not found")
	}
	if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE document_id = $1`, id); err != nil {
		return db.Translate(err, "chunks")
	}
	if err := audit.Write(ctx, tx, time.Time{}, actorOf(ctx, userID), "knowledge.delete", "document", id, nil); err != nil {
		return err
	}
	return db.Translate(tx.Commit(ctx), "document")
}

// actorOf is who changes the knowledge base: the request's staff user, or
// the user an upload names (the CLI names none: the system).
func actorOf(ctx context.Context, userID string) audit.Actor {
	a := audit.ActorOf(ctx)
	if a.ID == "" && userID != "" {
		return audit.Actor{ID: userID, Role: "editor"}
	}
	return a
}

const documentColumns = `id, title, source_name, format, tags, version, checksum, size_bytes, chunks,
	coalesce(created_by::text, ''), created_at, coalesce(updated_by::text, ''), updated_at`

func scanDocument(row pgx.Row) (*Document, error) {
	var d Document
	if err := row.Scan(&d.ID, &d.Title, &d.SourceName, &d.Format, &d.Tags, &d.Version, &d.Checksum, &d.SizeBytes,
		&d.Chunks, &d.CreatedBy, &d.CreatedAt, &d.UpdatedBy, &d.UpdatedAt); err != nil {
		return nil, db.Translate(err, "document")
	}
	return &d, nil
}

// Get returns a live document. Returns NotFound.
func (s *Service) Get(ctx context.Context, id string) (*Document, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "document not found")
	}
	return scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1 AND deleted_at IS NULL`, id))
}

func (s *Service) byChecksum(ctx context.Context, sum string) (*Document, error) {
	return scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE checksum = $1 AND deleted_at IS NULL ORDER BY created_at LIMIT 1`, sum))
}

// BySourceName returns the newest live document loaded from a file of that
// name (what `tandem ingest` replaces). Returns NotFound.
func (s *Service) BySourceName(ctx context.Context, name string) (*Document, error) {
	return scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE source_name = $1 AND deleted_at IS NULL ORDER BY updated_at DESC LIMIT 1`, name))
}

// List returns every live document, newest first.
func (s *Service) List(ctx context.Context) ([]Document, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE deleted_at IS NULL ORDER BY updated_at DESC`)
	if err != nil {
		return nil, db.Translate(err, "documents")
	}
	defer rows.Close()
	out := []Document{}
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, db.Translate(rows.Err(), "documents")
}

// Versions returns a document's versions, newest first. Returns NotFound.
func (s *Service) Versions(ctx context.Context, id string) ([]Version, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT version, title, source_name, format, checksum, size_bytes, chunks,
		coalesce(created_by::text, ''), created_at FROM document_versions WHERE document_id = $1 ORDER BY version DESC`, id)
	if err != nil {
		return nil, db.Translate(err, "versions")
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		var v Version
		if err := rows.Scan(&v.Version, &v.Title, &v.SourceName, &v.Format, &v.Checksum, &v.SizeBytes, &v.Chunks, &v.CreatedBy, &v.CreatedAt); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, db.Translate(rows.Err(), "versions")
}

// ChunksOf returns the chunks of a document's current version, in order.
// Returns NotFound.
func (s *Service) ChunksOf(ctx context.Context, id string) ([]StoredChunk, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, ordinal, heading, question, text, tags FROM chunks
		WHERE document_id = $1 ORDER BY ordinal`, id)
	if err != nil {
		return nil, db.Translate(err, "chunks")
	}
	defer rows.Close()
	out := []StoredChunk{}
	for rows.Next() {
		var c StoredChunk
		if err := rows.Scan(&c.ID, &c.Ordinal, &c.Heading, &c.Question, &c.Text, &c.Tags); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, db.Translate(rows.Err(), "chunks")
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
