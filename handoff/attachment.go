package handoff

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/imaging"
)

// Attachment is a photo or file as a message shows it. URL and
// ThumbnailURL are paths on this server (GET with the conversation's token
// or a staff session); ThumbnailURL is set for images.
type Attachment struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Size         int64  `json:"size"`
	Width        int    `json:"width,omitempty"`
	Height       int    `json:"height,omitempty"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
}

// IsImage reports whether the attachment is a picture.
func (a Attachment) IsImage() bool { return strings.HasPrefix(a.Type, "image/") }

// StoredAttachment is an attachment with what only the server needs.
type StoredAttachment struct {
	Attachment
	ConversationID string
	MessageID      string // "" until a message carries it
	UploaderRole   string // RoleCustomer or RoleAgent
	UploaderID     string
	SHA256         []byte
	CreatedAt      time.Time
	blobKey        string
	thumbKey       string
	thumbType      string
}

// Blob is one stored object: an attachment's file or its thumbnail.
type Blob struct {
	Key          string
	AttachmentID string
	Type         string
	Data         []byte
}

// BlobStore keeps attachments' bytes. Keys are unique; a key is written
// once. PostgresBlobs is the default; an S3-compatible object store
// (internal/s3store) serves large deployments.
//
// Deleting: when an attachment row goes (its conversation was deleted, or
// it was an upload never sent), a trigger queues its keys in
// attachment_blob_deletions, and Service's sweeper calls Delete for them.
// Retention therefore only deletes conversations; the blobs follow.
type BlobStore interface {
	// Put stores a blob. Returns Unavailable when the store cannot be
	// reached.
	Put(ctx context.Context, b Blob) error
	// Get returns a blob's bytes. Returns NotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Delete removes blobs; keys that do not exist are not an error.
	Delete(ctx context.Context, keys ...string) error
}

// PostgresBlobs keeps blobs in the attachment_blobs table, so a default
// install needs nothing but its database; a blob row goes with its
// attachment row (ON DELETE CASCADE).
type PostgresBlobs struct{ Pool *pgxpool.Pool }

var _ BlobStore = PostgresBlobs{}

// Put implements BlobStore.
func (p PostgresBlobs) Put(ctx context.Context, b Blob) error {
	_, err := p.Pool.Exec(ctx, `INSERT INTO attachment_blobs (key, attachment_id, data) VALUES ($1, $2, $3)`,
		b.Key, b.AttachmentID, b.Data)
	return db.Translate(err, "attachment data")
}

// Get implements BlobStore.
func (p PostgresBlobs) Get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := p.Pool.QueryRow(ctx, `SELECT data FROM attachment_blobs WHERE key = $1`, key).Scan(&data)
	return data, db.Translate(err, "attachment data")
}

// Delete implements BlobStore.
func (p PostgresBlobs) Delete(ctx context.Context, keys ...string) error {
	_, err := p.Pool.Exec(ctx, `DELETE FROM attachment_blobs WHERE key = ANY($1)`, keys)
	return db.Translate(err, "attachment data")
}

// DefaultAttachmentTypes are the types accepted unless configured: photos,
// PDF and plain text.
var DefaultAttachmentTypes = []string{"image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf", "text/plain"}

// AttachmentOptions configure attachments.
type AttachmentOptions struct {
	Store    BlobStore // default: PostgresBlobs on the service's pool
	MaxBytes int64     // largest file; default 10 MB
	// Types are the accepted content types, as found by sniffing the
	// content; default DefaultAttachmentTypes.
	Types []string
	// MaxPerConversation caps a conversation's attachments; default 100.
	MaxPerConversation int
	// ThumbnailSide bounds thumbnails (pixels); default 320.
	ThumbnailSide int
	// UnsentAfter is how long an upload no message carries is kept;
	// default 24h.
	UnsentAfter time.Duration
	// SweepEvery is the period of the blob sweeper; default 1 minute.
	SweepEvery time.Duration
}

func (o *AttachmentOptions) defaults(pool *pgxpool.Pool) {
	if o.Store == nil {
		o.Store = PostgresBlobs{Pool: pool}
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if len(o.Types) == 0 {
		o.Types = DefaultAttachmentTypes
	}
	if o.MaxPerConversation <= 0 {
		o.MaxPerConversation = 100
	}
	if o.ThumbnailSide <= 0 {
		o.ThumbnailSide = 320
	}
	if o.UnsentAfter <= 0 {
		o.UnsentAfter = 24 * time.Hour
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
}

// MaxAttachmentsPerMessage bounds the attachments one message carries.
const MaxAttachmentsPerMessage = 10

// MaxAttachmentBytes returns the configured size limit.
func (s *Service) MaxAttachmentBytes() int64 { return s.opt.Attachments.MaxBytes }

// SniffType returns the content type of data as found from its first bytes
// (http.DetectContentType's algorithm), without parameters: never from a
// file name. Text counts as text/plain only when the whole file is UTF-8
// without NUL bytes.
func SniffType(data []byte) string {
	t := http.DetectContentType(data)
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	if t == "text/plain" && (!utf8.Valid(data) || strings.IndexByte(string(data), 0) >= 0 ||
		strings.HasPrefix(string(data), "\xfe\xff") || strings.HasPrefix(string(data), "\xff\xfe")) {
		return "application/octet-stream"
	}
	return t
}

// typeNames say types in messages to people.
var typeNames = map[string]string{
	"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF",
	"application/pdf": "PDF", "text/plain": "plain text", "application/zip": "ZIP",
	"video/mp4": "MP4", "video/webm": "WebM", "audio/mpeg": "MP3", "audio/wave": "WAV", "application/ogg": "Ogg",
}

// extensions are the file name endings that fit each type; the first is
// what a name that does not fit gets.
var extensions = map[string][]string{
	"image/jpeg": {".jpg", ".jpeg", ".jfif", ".jpe"}, "image/png": {".png"}, "image/webp": {".webp"},
	"image/gif": {".gif"}, "application/pdf": {".pdf"}, "text/plain": {".txt", ".text", ".log", ".csv", ".md"},
	"application/zip": {".zip"}, "video/mp4": {".mp4", ".m4v"}, "video/webm": {".webm"},
	"audio/mpeg": {".mp3"}, "audio/wave": {".wav"}, "application/ogg": {".ogg", ".oga", ".ogv"},
}

func typeName(t string) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return t
}

// cleanName makes an uploaded file's name safe to show and to send back in
// Content-Disposition: no folders, no control or bidirectional-override
// characters, at most 120 characters, and an extension that fits the type
// the content really has ("scan.pdf" holding a PNG becomes "scan.png").
func cleanName(name, typ string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20, r == 0x7f, r == utf8.RuneError:
			return -1
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
			return -1 // bidi controls make "gpj.exe" look like "exe.jpg"
		case r == '"' || r == '/':
			return '_'
		}
		return r
	}, name)
	name = strings.Trim(strings.TrimSpace(name), ".")
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if exts := extensions[typ]; len(exts) > 0 {
		fits := false
		for _, e := range exts {
			fits = fits || strings.EqualFold(ext, e)
		}
		if !fits {
			ext = exts[0]
		}
	}
	if base == "" {
		base = "file"
		if strings.HasPrefix(typ, "image/") {
			base = "photo"
		}
	}
	if r := []rune(base); len(r) > 100 {
		base = string(r[:100])
	}
	return base + ext
}

// attachmentURL is where an attachment is downloaded.
func attachmentURL(convID, id string) string {
	return "/api/v1/conversations/" + convID + "/attachments/" + id
}

// Upload checks, cleans and stores a file for a conversation, and returns
// it; a message then carries it by id. The content decides the type (the
// name and the client's type are not trusted); photos lose their metadata
// (EXIF with the GPS position and the rest, keeping only the orientation)
// and get a thumbnail. Returns NotFound, Invalid, TooLarge (over the size
// limit, or the conversation holds too many), Unsupported (a type not
// accepted, or an image that cannot be read).
func (s *Service) Upload(ctx context.Context, convID string, author Author, name string, data []byte) (*Attachment, error) {
	o := s.opt.Attachments
	if author.Role != RoleCustomer && author.Role != RoleAgent {
		return nil, errs.Errorf(errs.Invalid, "only customers and agents attach files")
	}
	if len(data) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the file is empty")
	}
	if int64(len(data)) > o.MaxBytes {
		return nil, errs.Errorf(errs.TooLarge, "the file is %s; the limit is %s", FormatSize(int64(len(data))), FormatSize(o.MaxBytes))
	}
	typ := SniffType(data)
	allowed := false
	for _, t := range o.Types {
		allowed = allowed || t == typ
	}
	if !allowed {
		names := make([]string, 0, len(o.Types))
		for _, t := range o.Types {
			names = append(names, typeName(t))
		}
		what := "this kind of file"
		if typ != "application/octet-stream" {
			what = typeName(typ) + " files"
		}
		return nil, errs.Errorf(errs.Unsupported, "%s cannot be attached; accepted: %s", what, strings.Join(names, ", "))
	}
	a := &StoredAttachment{Attachment: Attachment{ID: uuid.NewString(), Type: typ}, ConversationID: convID,
		UploaderRole: author.Role, UploaderID: author.ID}
	var thumb []byte
	if a.IsImage() {
		if _, _, err := imaging.Config(data); err != nil {
			return nil, errs.Errorf(errs.Unsupported, "the file is not a readable %s image", typeName(typ))
		}
		clean, err := imaging.Strip(data)
		if err != nil {
			return nil, errs.Errorf(errs.Unsupported, "the file is not a readable %s image", typeName(typ))
		}
		data = clean
		if a.Width, a.Height, err = imaging.Size(data); err != nil {
			return nil, errs.Errorf(errs.Unsupported, "the file is not a readable %s image", typeName(typ))
		}
		thumb, a.thumbType, _, _, err = imaging.Preview(data, o.ThumbnailSide)
		switch {
		case errors.Is(err, imaging.ErrTooLarge):
			thumb = nil // kept, shown as a file
		case err != nil:
			return nil, errs.Errorf(errs.Unsupported, "the file is not a readable %s image", typeName(typ))
		}
	}
	a.Name = cleanName(name, typ)
	a.Size = int64(len(data))
	sum := sha256.Sum256(data)
	a.SHA256 = sum[:]
	a.URL = attachmentURL(convID, a.ID)
	a.blobKey = "conversations/" + convID + "/" + a.ID
	if thumb != nil {
		a.thumbKey = a.blobKey + ".thumb"
		a.ThumbnailURL = a.URL + "/thumbnail"
	}
	if err := s.store.insertAttachment(ctx, a, o.MaxPerConversation); err != nil {
		return nil, err
	}
	err := o.Store.Put(ctx, Blob{Key: a.blobKey, AttachmentID: a.ID, Type: a.Type, Data: data})
	if err == nil && thumb != nil {
		err = o.Store.Put(ctx, Blob{Key: a.thumbKey, AttachmentID: a.ID, Type: a.thumbType, Data: thumb})
	}
	if err != nil {
		// The row goes, and the trigger queues whatever was written.
		if _, derr := s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM attachments WHERE id = $1`, a.ID); derr != nil {
			s.log.Error("handoff: remove attachment after a failed write", "conversation_id", convID, "error", derr)
		}
		s.log.Error("handoff: store attachment", "conversation_id", convID, "error", err)
		if errs.CodeOf(err) == errs.Internal {
			return nil, errs.Errorf(errs.Unavailable, "the file could not be stored; try again shortly")
		}
		return nil, err
	}
	return &a.Attachment, nil
}

// FormatSize says a number of bytes for people: "10 MB", "1.5 MB", "12 KB".
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

const attachmentColumns = `id, conversation_id, coalesce(message_id::text, ''), uploader_role,
	coalesce(uploader_id::text, ''), name, content_type, size, sha256, coalesce(width, 0), coalesce(height, 0),
	blob_key, coalesce(thumb_key, ''), coalesce(thumb_type, ''), created_at`

func scanAttachment(row pgx.Row) (*StoredAttachment, error) {
	var a StoredAttachment
	if err := row.Scan(&a.ID, &a.ConversationID, &a.MessageID, &a.UploaderRole, &a.UploaderID, &a.Name, &a.Type,
		&a.Size, &a.SHA256, &a.Width, &a.Height, &a.blobKey, &a.thumbKey, &a.thumbType, &a.CreatedAt); err != nil {
		return nil, db.Translate(err, "attachment")
	}
	a.URL = attachmentURL(a.ConversationID, a.ID)
	if a.thumbKey != "" {
		a.ThumbnailURL = a.URL + "/thumbnail"
	}
	return &a, nil
}

// insertAttachment records an upload, refusing one past the
// conversation's cap. The conversation's row lock serialises the count.
func (s *store) insertAttachment(ctx context.Context, a *StoredAttachment, maxPer int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "attachment")
	}
	defer tx.Rollback(ctx)
	if _, err := s.lockConversation(ctx, tx, a.ConversationID); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM attachments WHERE conversation_id = $1`, a.ConversationID).Scan(&n); err != nil {
		return db.Translate(err, "attachments")
	}
	if n >= maxPer {
		return errs.Errorf(errs.TooLarge, "this conversation already holds %d attachments, the most it may", n)
	}
	var uploader, thumbKey, thumbType *string
	if a.UploaderID != "" {
		uploader = &a.UploaderID
	}
	if a.thumbKey != "" {
		thumbKey, thumbType = &a.thumbKey, &a.thumbType
	}
	var w, h *int
	if a.Width > 0 {
		w, h = &a.Width, &a.Height
	}
	a.CreatedAt = s.now()
	if _, err := tx.Exec(ctx, `INSERT INTO attachments (id, conversation_id, uploader_role, uploader_id, name, content_type,
		size, sha256, width, height, blob_key, thumb_key, thumb_type, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		a.ID, a.ConversationID, a.UploaderRole, uploader, a.Name, a.Type, a.Size, a.SHA256, w, h,
		a.blobKey, thumbKey, thumbType, a.CreatedAt); err != nil {
		return db.Translate(err, "attachment")
	}
	return db.Translate(tx.Commit(ctx), "attachment")
}

// AttachmentOf returns a conversation's attachment for download. A
// customer sees what a message carries and their own uploads; staff see
// everything. Returns NotFound.
func (s *Service) AttachmentOf(ctx context.Context, convID, id string, customer bool) (*StoredAttachment, error) {
	if !db.ValidID(convID) || !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "attachment not found")
	}
	a, err := scanAttachment(s.pool.QueryRow(ctx, `SELECT `+attachmentColumns+` FROM attachments
		WHERE id = $1 AND conversation_id = $2`, id, convID))
	if err != nil {
		return nil, err
	}
	if customer && a.MessageID == "" && a.UploaderRole != RoleCustomer {
		return nil, errs.Errorf(errs.NotFound, "attachment not found")
	}
	return a, nil
}

// AttachmentData returns the bytes of an attachment, or of its thumbnail,
// with their content type. Returns NotFound (no thumbnail, or the bytes are
// gone), Unavailable.
func (s *Service) AttachmentData(ctx context.Context, a *StoredAttachment, thumbnail bool) ([]byte, string, error) {
	key, typ := a.blobKey, a.Type
	if thumbnail {
		if a.thumbKey == "" {
			return nil, "", errs.Errorf(errs.NotFound, "this attachment has no thumbnail")
		}
		key, typ = a.thumbKey, a.thumbType
	}
	data, err := s.opt.Attachments.Store.Get(ctx, key)
	if err != nil {
		if errs.CodeOf(err) != errs.NotFound {
			s.log.Error("handoff: read attachment", "conversation_id", a.ConversationID, "error", err)
		}
		if errs.CodeOf(err) == errs.Internal {
			return nil, "", errs.Errorf(errs.Unavailable, "the file could not be read; try again shortly")
		}
		return nil, "", err
	}
	return data, typ, nil
}

// takeAttachments locks the uploads a new message carries and checks them:
// each exists in this conversation, was uploaded by the message's side and
// is not carried by another message. Returns Invalid, Conflict.
func (s *store) takeAttachments(ctx context.Context, tx pgx.Tx, convID, role string, ids []string) ([]Attachment, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxAttachmentsPerMessage {
		return nil, errs.Errorf(errs.Invalid, "a message carries at most %d attachments", MaxAttachmentsPerMessage)
	}
	seen := map[string]bool{}
	uniq := make([]string, 0, len(ids))
	for _, id := range ids {
		if !db.ValidID(id) {
			return nil, errs.Errorf(errs.Invalid, "attachment %q is not an attachment id", id)
		}
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	rows, err := tx.Query(ctx, `SELECT `+attachmentColumns+` FROM attachments
		WHERE conversation_id = $1 AND id = ANY($2) FOR UPDATE`, convID, uniq)
	if err != nil {
		return nil, db.Translate(err, "attachments")
	}
	byID := map[string]*StoredAttachment{}
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		byID[a.ID] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "attachments")
	}
	uploader := RoleCustomer
	if role != RoleCustomer {
		uploader = RoleAgent
	}
	out := make([]Attachment, 0, len(uniq))
	for _, id := range uniq {
		a := byID[id]
		switch {
		case a == nil:
			return nil, errs.Errorf(errs.Invalid, "attachment %s is not in this conversation (upload it first)", id)
		case a.UploaderRole != uploader:
			return nil, errs.Errorf(errs.Invalid, "attachment %s was uploaded by the other side of the conversation", id)
		case a.MessageID != "":
			return nil, errs.Errorf(errs.Conflict, "attachment %s was already sent in another message", id)
		}
		out = append(out, a.Attachment)
	}
	return out, nil
}

// SweepAttachments deletes uploads that no message carried within
// UnsentAfter, then deletes from the blob store every blob queued for
// deletion (by the trigger on attachments, so also those of deleted
// conversations). Every instance may sweep at once: rows are taken with
// SKIP LOCKED. It returns how many blobs were deleted.
func (s *Service) SweepAttachments(ctx context.Context) (int, error) {
	o := s.opt.Attachments
	if _, err := s.pool.Exec(ctx, `DELETE FROM attachments WHERE message_id IS NULL AND created_at < $1`,
		s.opt.Now().Add(-o.UnsentAfter)); err != nil {
		return 0, db.Translate(err, "attachments")
	}
	total := 0
	for {
		n, err := s.sweepBatch(ctx, 200)
		total += n
		if err != nil || n < 200 {
			return total, err
		}
	}
}

func (s *Service) sweepBatch(ctx context.Context, size int) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, db.Translate(err, "attachments")
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT key FROM attachment_blob_deletions ORDER BY queued_at
		LIMIT $1 FOR UPDATE SKIP LOCKED`, size)
	if err != nil {
		return 0, db.Translate(err, "attachments")
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) == 0 {
		return 0, db.Translate(err, "attachments")
	}
	// The objects go first: a crash in between leaves the keys queued, and
	// deleting a missing object again is harmless.
	if err := s.opt.Attachments.Store.Delete(ctx, keys...); err != nil {
		return 0, fmt.Errorf("handoff: delete blobs: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM attachment_blob_deletions WHERE key = ANY($1)`, keys); err != nil {
		return 0, db.Translate(err, "attachments")
	}
	return len(keys), db.Translate(tx.Commit(ctx), "attachments")
}

// sweep runs SweepAttachments every SweepEvery until ctx ends.
func (s *Service) sweep(ctx context.Context) {
	every(ctx, s.opt.Attachments.SweepEvery, false, func() {
		if n, err := s.SweepAttachments(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("handoff: attachment sweep", "error", err)
		} else if n > 0 {
			s.log.Info("handoff: deleted attachment blobs", "blobs", n)
		}
	})
}

// Describe is a message's text for readers that see only text (summaries,
// a language model): the text, then a line naming each attachment.
func (m Message) Describe() string {
	var b strings.Builder
	b.WriteString(m.Text)
	for _, a := range m.Attachments {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		kind := "file"
		if a.IsImage() {
			kind = "photo"
		}
		fmt.Fprintf(&b, "[%s attached: %s]", kind, strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || r == '[' || r == ']' {
				return ' '
			}
			return r
		}, a.Name))
	}
	return b.String()
}
