package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/url"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/errs"
)

// ui holds the pages and their assets: plain HTML, CSS and JavaScript
// modules, with no build step.
//
//go:embed ui
var ui embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets are the embedded files by their path under ui/, read once.
var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(ui, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := ui.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, "ui/")] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: embedded ui: " + err.Error())
	}
	return m
}()

// pages registers the browser pages, the widget script and their assets.
func (s *Server) pages() {
	app := s.App
	page := func(file string, framable bool) fiber.Handler {
		return func(c *fiber.Ctx) error {
			s.pageHeaders(c, framable)
			return sendAsset(c, file)
		}
	}
	app.Get("/", page("index.html", false))
	// The chat page is what the widget opens in an iframe, so the allowed
	// origins may frame it; the staff pages may not be framed at all.
	app.Get("/chat", page("chat.html", true))
	app.Get("/console", page("console.html", false))
	app.Get("/knowledge", page("knowledge.html", false))
	app.Get("/admin", page("admin.html", false))
	app.Get("/widget.js", s.widgetScript)
	app.Get("/ui/*", func(c *fiber.Ctx) error {
		name := c.Params("*")
		if strings.HasSuffix(name, ".html") {
			return errs.Errorf(errs.NotFound, "no asset %s", name)
		}
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set("Cross-Origin-Resource-Policy", "same-origin")
		return sendAsset(c, name)
	})
}

// sendAsset answers with an embedded file; browsers revalidate with its
// ETag, so a new binary's assets are picked up at once.
func sendAsset(c *fiber.Ctx, name string) error {
	a, ok := assets[name]
	if !ok {
		return errs.Errorf(errs.NotFound, "no asset %s", name)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, a.etag)
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, a.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, a.ctype)
	return c.Send(a.body)
}

// widgetScript serves the embeddable widget. Other sites load it with a
// <script> tag, so it is served to any origin; the chat it opens lives in an
// iframe on our own origin.
func (s *Server) widgetScript(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set("Cross-Origin-Resource-Policy", "cross-origin")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return sendAsset(c, "widget.js")
}

// pageHeaders sets the security headers of an HTML page: a Content Security
// Policy without inline scripts or styles, no MIME sniffing, a strict
// referrer policy, and framing only where the page is meant to be framed.
func (s *Server) pageHeaders(c *fiber.Ctx, framable bool) {
	ancestors := "'none'"
	if framable {
		ancestors = s.frameAncestors()
	}
	connect := "'self'"
	if host := safeHost(string(c.Request().Host())); host != "" {
		// Older browsers do not count ws: as 'self'.
		connect += " ws://" + host + " wss://" + host
	}
	c.Set(fiber.HeaderContentSecurityPolicy, strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		// blob: shows attachments the chat fetched with its token.
		"img-src 'self' data: blob:",
		"font-src 'self'",
		"media-src 'self' data:",
		"connect-src " + connect,
		"frame-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors " + ancestors,
	}, "; "))
	if !framable {
		c.Set(fiber.HeaderXFrameOptions, "DENY")
	}
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "strict-origin-when-cross-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// frameAncestors lists who may frame the chat page: our own origin, the
// public URL's and the allowed origins.
func (s *Server) frameAncestors() string {
	list := []string{"'self'"}
	add := func(o string) {
		u, err := url.Parse(strings.TrimRight(o, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || safeHost(u.Host) == "" {
			return
		}
		list = append(list, u.Scheme+"://"+u.Host)
	}
	add(s.deps.PublicURL)
	for _, o := range s.deps.Origins {
		if o == "*" {
			return "*"
		}
		add(o)
	}
	return strings.Join(list, " ")
}

// safeHost returns host when it is a plain host[:port], and "" otherwise,
// so a request's Host header cannot inject into a policy.
func safeHost(host string) string {
	if host == "" || len(host) > 255 {
		return ""
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '-', r == ':', r == '[', r == ']':
		default:
			return ""
		}
	}
	return host
}
