package web

import (
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

// readUpload reads the multipart `file` field with the optional `title` and
// `tags` fields.
func (s *Server) readUpload(c *fiber.Ctx) (knowledge.Upload, error) {
	var up knowledge.Upload
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEMultipartForm) {
		return up, errs.Errorf(errs.Invalid, "send the document as multipart/form-data with a `file` field")
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return up, errs.Errorf(errs.Invalid, "the multipart form needs a `file` field")
	}
	if fh.Size > s.deps.Knowledge.MaxBytes {
		return up, errs.Errorf(errs.TooLarge, "the file is %.1f MB; the limit is %d MB", float64(fh.Size)/(1<<20), s.deps.Knowledge.MaxBytes>>20)
	}
	f, err := fh.Open()
	if err != nil {
		return up, errs.Errorf(errs.Invalid, "cannot read the uploaded file")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.deps.Knowledge.MaxBytes+1))
	if err != nil {
		return up, errs.Errorf(errs.Invalid, "cannot read the uploaded file")
	}
	up.Filename = fh.Filename
	up.ContentType = fh.Header.Get(fiber.HeaderContentType)
	up.Data = data
	up.Title = c.FormValue("title")
	if t := c.FormValue("tags"); t != "" {
		up.Tags = strings.Split(t, ",")
	}
	if u, ok := c.Locals("staff").(*auth.User); ok {
		up.UserID = u.ID
	}
	return up, nil
}

func (s *Server) createDocument(c *fiber.Ctx) error {
	up, err := s.readUpload(c)
	if err != nil {
		return err
	}
	d, created, err := s.deps.Knowledge.Create(c.UserContext(), up)
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if !created {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(fiber.Map{"id": d.ID, "version": d.Version, "chunks": d.Chunks,
		"created": created, "document": d})
}

func (s *Server) replaceDocument(c *fiber.Ctx) error {
	up, err := s.readUpload(c)
	if err != nil {
		return err
	}
	d, changed, err := s.deps.Knowledge.Replace(c.UserContext(), c.Params("id"), up)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"id": d.ID, "version": d.Version, "chunks": d.Chunks, "changed": changed, "document": d})
}

func (s *Server) listDocuments(c *fiber.Ctx) error {
	docs, err := s.deps.Knowledge.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"documents": docs})
}

func (s *Server) getDocument(c *fiber.Ctx) error {
	ctx := c.UserContext()
	d, err := s.deps.Knowledge.Get(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	chunks, err := s.deps.Knowledge.ChunksOf(ctx, d.ID)
	if err != nil {
		return err
	}
	versions, err := s.deps.Knowledge.Versions(ctx, d.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"document": d, "chunks": chunks, "versions": versions})
}

func (s *Server) deleteDocument(c *fiber.Ctx) error {
	userID := ""
	if u, ok := c.Locals("staff").(*auth.User); ok {
		userID = u.ID
	}
	if err := s.deps.Knowledge.Delete(c.UserContext(), c.Params("id"), userID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type searchRequest struct {
	Query      string   `json:"query"`
	K          int      `json:"k"`
	Tags       []string `json:"tags"`
	DocumentID string   `json:"document_id"`
}

func (s *Server) searchKnowledge(c *fiber.Ctx) error {
	var req searchRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	if req.K < 0 || req.K > 50 {
		return errs.Errorf(errs.Invalid, "k must be between 1 and 50")
	}
	if len([]rune(req.Query)) > 2000 {
		return errs.Errorf(errs.TooLarge, "query is longer than 2000 characters")
	}
	hits, err := s.deps.Index.Search(c.UserContext(), retrieval.SearchRequest{
		Text: req.Query, K: req.K, Tags: req.Tags, DocumentID: req.DocumentID})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"hits": hits})
}
