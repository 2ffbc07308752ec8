package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/errs"
)

// csrfHeader carries the CSRF token of a cookie-authenticated request.
const csrfHeader = "X-CSRF-Token"

// csrfToken is the CSRF token that goes with a session token: an HMAC of
// the session token with the site secret. It is bound to the session (a new
// sign-in gets a new one), needs no storage, and cannot be derived without
// the session token, which JavaScript never sees (the cookie is HttpOnly).
func csrfToken(secret, session string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("tandem-csrf\x00"))
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// safeMethod reports whether a method changes nothing (RFC 9110 §9.2.1),
// so it needs no CSRF token.
func safeMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return true
	}
	return false
}

// checkCSRF requires the session's CSRF token on a state-changing request
// that the session cookie authenticates. A cross-site page can make the
// browser send the cookie (a form post, say), but it cannot read the token
// or set a custom header without passing CORS, which staff endpoints never
// allow. Requests authenticated by a bearer token carry no ambient
// credential and are exempt.
func (s *Server) checkCSRF(c *fiber.Ctx, session string) error {
	if safeMethod(c.Method()) {
		return nil
	}
	got := c.Get(csrfHeader)
	if got == "" {
		return errs.Errorf(errs.Forbidden, "this request is signed in by cookie and needs the %s header (from /api/v1/auth/me)", csrfHeader)
	}
	if !hmac.Equal([]byte(got), []byte(csrfToken(s.deps.Secret, session))) {
		return errs.Errorf(errs.Forbidden, "the %s header does not match the session; reload the page", csrfHeader)
	}
	return nil
}

// secure reports whether the browser reached us over TLS: the public URL
// is https, or the connection is TLS, or a trusted proxy
// (TANDEM_TRUSTED_PROXIES) says so with X-Forwarded-Proto. Anyone else's
// X-Forwarded-Proto is ignored.
func (s *Server) secure(c *fiber.Ctx) bool {
	if strings.HasPrefix(strings.ToLower(s.deps.PublicURL), "https://") || c.Context().IsTLS() {
		return true
	}
	if !s.proxies.trusts(c.Context().RemoteIP()) {
		return false
	}
	// The first value is the scheme the outermost proxy saw.
	proto, _, _ := strings.Cut(c.Get(fiber.HeaderXForwardedProto), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// sameOrigin reports whether the request's Origin, when it has one, is this
// server itself (its Host or its public URL). Browsers send Origin on every
// cross-site POST, so a missing Origin means a non-browser client.
func (s *Server) sameOrigin(c *fiber.Ctx) bool {
	origin := strings.TrimRight(c.Get(fiber.HeaderOrigin), "/")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if u.Host == string(c.Request().Host()) {
		return true
	}
	pu, err := url.Parse(s.deps.PublicURL)
	return err == nil && strings.EqualFold(pu.Scheme+"://"+pu.Host, origin)
}

// customerPaths are the endpoints a customer's browser may call from a
// widget origin (TANDEM_ALLOWED_ORIGINS) with CORS. Staff endpoints are
// never open to other origins.
var customerPaths = regexp.MustCompile(`^/api/v1/(conversations(/[^/]+(/messages|/csat|/attachments(/[^/]+(/thumbnail)?)?)?)?|customers/me/conversations(/[^/]+/messages)?)/?$`)

// corsAllowed reports whether origin is one of the configured widget
// origins (the public URL's own origin needs no CORS).
func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.deps.Origins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// cors answers CORS for the customer endpoints, and only for the configured
// widget origins: the origin is echoed (never "*"), credentials are never
// allowed (customers authenticate with their conversation token in the
// Authorization header, not with cookies), and preflights end here. Other
// origins, and every staff endpoint, get no CORS headers, so browsers keep
// their pages from reading the answers.
func (s *Server) cors(c *fiber.Ctx) error {
	origin := strings.TrimRight(c.Get(fiber.HeaderOrigin), "/")
	if origin == "" || !customerPaths.MatchString(c.Path()) {
		return c.Next()
	}
	c.Vary(fiber.HeaderOrigin)
	preflight := c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != ""
	if !s.corsAllowed(origin) {
		if preflight {
			return errs.Errorf(errs.Forbidden, "origin %s is not allowed (TANDEM_ALLOWED_ORIGINS)", origin)
		}
		return c.Next()
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	if preflight {
		c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST")
		c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type")
		c.Set(fiber.HeaderAccessControlMaxAge, "600")
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Next()
}

// hstsMaxAge is how long browsers keep to https once they saw it (a year).
const hstsMaxAge = "max-age=31536000"

// apiHeaders are the headers of every answer: no MIME sniffing, HSTS when
// the browser came over TLS, and no caching of API answers (they carry
// tokens and personal data).
func (s *Server) apiHeaders(c *fiber.Ctx) error {
	err := c.Next()
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if s.secure(c) {
		c.Set(fiber.HeaderStrictTransportSecurity, hstsMaxAge)
	}
	if strings.HasPrefix(c.Path(), "/api/") {
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
	return err
}
