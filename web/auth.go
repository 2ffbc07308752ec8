package web

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/internal/audit"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
)

// sessionCookie is the consoles' session cookie.
const sessionCookie = "tandem_session"

// staffTokenPrefix marks staff tokens, so one Authorization header can carry
// either a staff token or a customer's conversation token.
const staffTokenPrefix = "tdm_"

func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// staffCredential returns the staff token of the request and whether it
// came from the session cookie. A bearer token in the Authorization header
// is the request's only credential when present (a customer's conversation
// token then leaves the cookie unused); otherwise a staff token in ?token=
// (WebSockets), otherwise the session cookie.
func staffCredential(c *fiber.Ctx) (token string, cookie bool) {
	if t := bearer(c); t != "" {
		if strings.HasPrefix(t, staffTokenPrefix) {
			return t, false
		}
		return "", false
	}
	if t := c.Query("token"); strings.HasPrefix(t, staffTokenPrefix) {
		return t, false
	}
	if t := c.Cookies(sessionCookie); t != "" {
		return t, true
	}
	return "", false
}

// staffToken returns the staff token of the request, wherever it came from.
func staffToken(c *fiber.Ctx) string {
	t, _ := staffCredential(c)
	return t
}

// currentStaff authenticates the staff user of the request, if any; it
// returns (nil, nil) when the request carries no staff credentials. A
// state-changing request signed in by the session cookie must also carry
// the session's CSRF token.
func (s *Server) currentStaff(c *fiber.Ctx) (*auth.User, error) {
	if u, ok := c.Locals("staff").(*auth.User); ok {
		return u, nil
	}
	tok, viaCookie := staffCredential(c)
	if tok == "" {
		return nil, nil
	}
	u, err := s.deps.Auth.Authenticate(c.UserContext(), tok)
	if err != nil {
		return nil, err
	}
	if viaCookie {
		if err := s.checkCSRF(c, tok); err != nil {
			return nil, err
		}
	}
	c.Locals("staff", u)
	c.SetUserContext(audit.WithActor(c.UserContext(), audit.Actor{ID: u.ID, Role: audit.StaffRole(u.Roles)}))
	return u, nil
}

// requireStaff lets through staff who hold any of roles (any staff when
// roles is empty); admins hold every role.
func (s *Server) requireStaff(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		u, err := s.currentStaff(c)
		if err != nil {
			return err
		}
		if u == nil {
			return errs.Errorf(errs.Unauthorized, "sign in first: staff credentials are required")
		}
		if len(roles) == 0 {
			return c.Next()
		}
		for _, r := range roles {
			if u.Has(r) {
				return c.Next()
			}
		}
		return errs.Errorf(errs.Forbidden, "this needs the %s role", strings.Join(roles, " or "))
	}
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Sign-in limits: failures per account (whatever the address) and per
// client address (whatever the account), each in a sliding window. An
// address gets more tries than an account, since offices share addresses.
const (
	loginAccountFailures = 10
	loginAddressFailures = 30
	loginWindow          = 5 * time.Minute
)

func (s *Server) login(c *fiber.Ctx) error {
	// A cross-site page must not sign the browser into an account of its
	// choosing (login CSRF): sign-in is for our own pages and for API
	// clients, which send no Origin.
	if !s.sameOrigin(c) {
		return errs.Errorf(errs.Forbidden, "sign in from this server's own pages (origin %s is not allowed)", c.Get(fiber.HeaderOrigin))
	}
	var req loginRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return errs.Errorf(errs.Invalid, "email and password are required")
	}
	account := strings.ToLower(strings.TrimSpace(req.Email))
	addr := s.clientIP(c)
	checks := []struct {
		l   *limiter
		key string
	}{{s.loginAccounts, account}, {s.loginAddrs, addr}}
	for _, ch := range checks {
		if ok, wait := ch.l.Allow(ch.key); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
			return errs.Errorf(errs.RateLimited, "too many failed sign-ins; try again in %d seconds", secs)
		}
	}
	u, token, err := s.deps.Auth.LoginFrom(c.UserContext(), req.Email, req.Password, "cookie", addr)
	if err != nil {
		if errs.Is(err, errs.Unauthorized) {
			for _, ch := range checks {
				ch.l.Fail(ch.key)
			}
		}
		return err
	}
	s.loginAccounts.Reset(account)
	s.setSessionCookie(c, token, time.Now().Add(auth.CookieTTL))
	return c.JSON(fiber.Map{"token": token, "user": u, "csrf_token": csrfToken(s.deps.Secret, token)})
}

// setSessionCookie sets (or, with an empty token, clears) the session
// cookie: HttpOnly so scripts never see it, SameSite=Strict so other sites
// never make the browser send it, Secure whenever the browser reached us
// over TLS.
func (s *Server) setSessionCookie(c *fiber.Ctx, token string, expires time.Time) {
	ck := &fiber.Cookie{Name: sessionCookie, Value: token, Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode, Secure: s.secure(c), Expires: expires}
	if token == "" {
		ck.MaxAge = -1
	}
	c.Cookie(ck)
}

func (s *Server) logout(c *fiber.Ctx) error {
	if tok, viaCookie := staffCredential(c); tok != "" {
		if viaCookie {
			if err := s.checkCSRF(c, tok); err != nil {
				return err
			}
		}
		if err := s.deps.Auth.Logout(c.UserContext(), tok); err != nil {
			return err
		}
	}
	s.setSessionCookie(c, "", time.Unix(0, 0))
	return c.SendStatus(fiber.StatusNoContent)
}

// me answers who is signed in, with the CSRF token that the staff pages
// send back on every state-changing request.
func (s *Server) me(c *fiber.Ctx) error {
	u, _ := s.currentStaff(c)
	out := fiber.Map{"user": u}
	if tok, viaCookie := staffCredential(c); viaCookie {
		out["csrf_token"] = csrfToken(s.deps.Secret, tok)
	}
	return c.JSON(out)
}
