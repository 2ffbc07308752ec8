package web

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

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

// staffToken returns the staff token of the request: a bearer token, the
// ?token= query (WebSockets), or the session cookie.
func staffToken(c *fiber.Ctx) string {
	if t := bearer(c); strings.HasPrefix(t, staffTokenPrefix) {
		return t
	}
	if t := c.Query("token"); strings.HasPrefix(t, staffTokenPrefix) {
		return t
	}
	return c.Cookies(sessionCookie)
}

// currentStaff authenticates the staff user of the request, if any; it
// returns (nil, nil) when the request carries no staff credentials.
func (s *Server) currentStaff(c *fiber.Ctx) (*auth.User, error) {
	if u, ok := c.Locals("staff").(*auth.User); ok {
		return u, nil
	}
	tok := staffToken(c)
	if tok == "" {
		return nil, nil
	}
	u, err := s.deps.Auth.Authenticate(c.UserContext(), tok)
	if err != nil {
		return nil, err
	}
	c.Locals("staff", u)
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

func (s *Server) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return errs.Errorf(errs.Invalid, "email and password are required")
	}
	keys := []string{"email:" + strings.ToLower(strings.TrimSpace(req.Email)), "ip:" + c.IP()}
	for _, k := range keys {
		if ok, wait := s.logins.Allow(k); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return errs.Errorf(errs.RateLimited, "too many failed sign-ins; try again in %d seconds", int(math.Ceil(wait.Seconds())))
		}
	}
	u, token, err := s.deps.Auth.Login(c.UserContext(), req.Email, req.Password, "cookie")
	if err != nil {
		if errs.Is(err, errs.Unauthorized) {
			for _, k := range keys {
				s.logins.Fail(k)
			}
		}
		return err
	}
	s.logins.Reset(keys[0])
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: token, Path: "/", HTTPOnly: true, SameSite: "Lax",
		Secure: c.Protocol() == "https", Expires: time.Now().Add(auth.CookieTTL),
	})
	return c.JSON(fiber.Map{"token": token, "user": u})
}

func (s *Server) logout(c *fiber.Ctx) error {
	if tok := staffToken(c); tok != "" {
		if err := s.deps.Auth.Logout(c.UserContext(), tok); err != nil {
			return err
		}
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", HTTPOnly: true, SameSite: "Lax",
		Expires: time.Unix(0, 0), MaxAge: -1})
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) me(c *fiber.Ctx) error {
	u, _ := s.currentStaff(c)
	return c.JSON(fiber.Map{"user": u})
}
