package web

import (
	"io"
	"mime"
	"net/url"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
)

// attachmentRoutes: uploads by the customer (conversation token) or an
// agent, and downloads by the same people.
func (s *Server) attachmentRoutes(api fiber.Router) {
	api.Post("/conversations/:id/attachments", s.conversationAccess, s.uploadAttachment)
	api.Get("/conversations/:id/attachments/:aid", s.conversationAccess, s.downloadAttachment(false))
	api.Get("/conversations/:id/attachments/:aid/thumbnail", s.conversationAccess, s.downloadAttachment(true))
}

// uploadAttachment is POST /api/v1/conversations/{id}/attachments with a
// multipart `file` field. It answers 201 with the attachment; a message
// then carries it by id.
func (s *Server) uploadAttachment(c *fiber.Ctx) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEMultipartForm) {
		return errs.Errorf(errs.Invalid, "send the file as multipart/form-data with a `file` field")
	}
	a := c.Locals("access").(*access)
	// An upload counts against the conversation's message rate, like the
	// message that will carry it.
	if err := s.allowCustomerMessage(c, a, c.Params("id")); err != nil {
		return err
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return errs.Errorf(errs.Invalid, "the multipart form needs a `file` field")
	}
	max := s.deps.Conversations.MaxAttachmentBytes()
	if fh.Size > max {
		return errs.Errorf(errs.TooLarge, "the file is %s; the limit is %s", handoff.FormatSize(fh.Size), handoff.FormatSize(max))
	}
	f, err := fh.Open()
	if err != nil {
		return errs.Errorf(errs.Invalid, "cannot read the uploaded file")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return errs.Errorf(errs.Invalid, "cannot read the uploaded file")
	}
	author := handoff.Author{Role: handoff.RoleCustomer}
	if a.staff != nil {
		author = handoff.Author{Role: handoff.RoleAgent, ID: a.staff.ID}
	}
	att, err := s.deps.Conversations.Upload(c.UserContext(), c.Params("id"), author, fh.Filename, data)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(att)
}

// downloadAttachment serves an attachment or its thumbnail with the stored
// (sniffed) type. Photos, PDF and text open in the browser; anything else
// downloads. The bytes are the customer's: the answer may not run scripts
// (sandbox) nor be sniffed into another type, and like every API answer it
// is not stored by caches (apiHeaders); the ETag saves a client that keeps
// its own copy the transfer.
func (s *Server) downloadAttachment(thumbnail bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a := c.Locals("access").(*access)
		att, err := s.deps.Conversations.AttachmentOf(c.UserContext(), c.Params("id"), c.Params("aid"), a.staff == nil)
		if err != nil {
			return err
		}
		data, typ, err := s.deps.Conversations.AttachmentData(c.UserContext(), att, thumbnail)
		if err != nil {
			return err
		}
		etag := `"` + hexPrefix(att.SHA256) + map[bool]string{true: "-t", false: ""}[thumbnail] + `"`
		c.Set(fiber.HeaderETag, etag)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox")
		c.Set("Cross-Origin-Resource-Policy", "same-origin")
		if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, etag) {
			return c.SendStatus(fiber.StatusNotModified)
		}
		disposition := "attachment"
		if strings.HasPrefix(typ, "image/") || typ == "application/pdf" || typ == "text/plain" {
			disposition = "inline"
		}
		name := att.Name
		if thumbnail {
			name = strings.TrimSuffix(name, path.Ext(name)) + ".thumbnail" + map[string]string{"image/png": ".png"}[typ]
			if path.Ext(name) == ".thumbnail" {
				name += ".jpg"
			}
		}
		c.Set(fiber.HeaderContentDisposition, contentDisposition(disposition, name))
		if typ == "text/plain" {
			typ = "text/plain; charset=utf-8"
		}
		c.Set(fiber.HeaderContentType, typ)
		return c.Send(data)
	}
}

// contentDisposition says how to treat a download and its file name: an
// ASCII fallback and the UTF-8 name (RFC 6266, RFC 5987).
func contentDisposition(kind, name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' || r == ';' {
			return '_'
		}
		return r
	}, name)
	v := mime.FormatMediaType(kind, map[string]string{"filename": ascii})
	if v == "" {
		v = kind
	}
	if ascii != name {
		v += "; filename*=UTF-8''" + url.PathEscape(name)
	}
	return v
}

func hexPrefix(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 32)
	for i := 0; i < len(b) && i < 16; i++ {
		out = append(out, digits[b[i]>>4], digits[b[i]&15])
	}
	return string(out)
}
