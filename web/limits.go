package web

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
)

// Request body limits. fasthttp reads a whole body before any handler
// runs, so the limit is chosen from the method and path as soon as the
// headers are in (bodyLimit): a request over it is refused with 413 before
// its body is read, and memory per request stays bounded by the limit of
// its route, not by the largest upload Tandem accepts.
const (
	// customerBodyLimit bounds what anyone on the internet may send: new
	// conversations, messages (4,000 characters are at most 16 KB of
	// UTF-8, or 24 KB escaped as JSON) and CSAT scores.
	customerBodyLimit = 64 << 10
	// defaultBodyLimit bounds every other API body (staff JSON).
	defaultBodyLimit = 1 << 20
	// intentsBodyLimit bounds a full set of intents or a JSONL import of
	// labelled examples.
	intentsBodyLimit = 16 << 20
	// multipartSlack is room for a multipart form's fields and boundaries
	// around an uploaded file of the largest allowed size; a file a little
	// over that size still reaches the handler, which names the limit.
	multipartSlack = 2 << 20
)

// bodyLimit returns the largest body accepted for a request.
func (s *Server) bodyLimit(method, path string) int {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if method != "POST" && method != "PUT" && method != "PATCH" {
		return defaultBodyLimit
	}
	p := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	switch {
	case len(p) == 1 && p[0] == "conversations",
		len(p) == 3 && p[0] == "conversations" && (p[2] == "messages" || p[2] == "csat"):
		return customerBodyLimit
	case len(p) == 3 && p[0] == "conversations" && p[2] == "attachments":
		return int(s.attachmentLimit()) + multipartSlack
	case p[0] == "knowledge" && len(p) >= 2 && p[1] == "documents" && len(p) <= 3:
		return int(s.uploadLimit()) + multipartSlack
	case p[0] == "intents" && len(p) <= 2:
		return intentsBodyLimit
	}
	return defaultBodyLimit
}

// uploadLimit is the largest knowledge document accepted.
func (s *Server) uploadLimit() int64 {
	if s.deps.Knowledge != nil && s.deps.Knowledge.MaxBytes > 0 {
		return s.deps.Knowledge.MaxBytes
	}
	return 20 << 20
}

// attachmentLimit is the largest attachment accepted
// (TANDEM_ATTACHMENT_MAX_BYTES).
func (s *Server) attachmentLimit() int64 {
	if s.deps.Conversations != nil {
		return s.deps.Conversations.MaxAttachmentBytes()
	}
	return 10 << 20
}

// maxBodyLimit is the largest of the limits, fasthttp's own bound.
func (s *Server) maxBodyLimit() int {
	return max(intentsBodyLimit, int(max(s.uploadLimit(), s.attachmentLimit()))+multipartSlack)
}

// limitBodies installs bodyLimit in the HTTP server.
func (s *Server) limitBodies() {
	s.App.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.bodyLimit(string(h.Method()), string(h.RequestURI()))}
	}
}

// tooLargeMessage explains a refused body with the route's limit.
func (s *Server) tooLargeMessage(method, path string) string {
	n := s.bodyLimit(method, path)
	if n >= 1<<20 {
		return fmt.Sprintf("the request body is over this endpoint's limit of %d MB", n>>20)
	}
	return fmt.Sprintf("the request body is over this endpoint's limit of %d KB", n>>10)
}
