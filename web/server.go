// Package web is Tandem's HTTP face: the Fiber JSON API, the WebSockets and
// the embedded pages. It is the only package that imports Fiber.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/metrics"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
)

// Deps is what the web layer needs from the rest of Tandem.
type Deps struct {
	Pool          *pgxpool.Pool
	Conversations *handoff.Service
	Auth          *auth.Store
	Knowledge     *knowledge.Service
	Index         *retrieval.Index
	Bot           *bot.Bot
	Logger        *slog.Logger
	Secret        string        // site secret for user_hash verification
	PublicURL     string        // how browsers reach us; its origin is always allowed
	Origins       []string      // other allowed browser origins
	WaitTimeout   time.Duration // bound of ?wait=true
	MaxTextRunes  int
	// RateNewConversations and RateMessages are the per-minute limits of
	// conversations started per client address and of customer messages
	// per conversation; 0 means no limit.
	RateNewConversations int
	RateMessages         int
	// TrustedProxies are reverse proxies whose X-Forwarded-For is believed.
	TrustedProxies []string
	// Ready reports whether the process can serve (database reachable,
	// migrations current); /readyz answers 503 with its error otherwise.
	Ready func(ctx context.Context) error
}

// Server is the HTTP application.
type Server struct {
	App  *fiber.App
	deps Deps
	log  *slog.Logger

	// sockets tracks open WebSockets so shutdown can close them with a
	// going-away code.
	socketsMu sync.Mutex
	sockets   map[*socket]struct{}
	closing   bool
	pings     pings // the conversation sockets' pings
	// Failed sign-ins per account and per client address.
	loginAccounts, loginAddrs *limiter
	// newConversations limits conversations started per client address;
	// customerMessages limits customer messages per conversation.
	newConversations *rateLimiter
	customerMessages *rateLimiter
	proxies          proxies
}

// New builds the Fiber app with every route.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.WaitTimeout <= 0 {
		d.WaitTimeout = 20 * time.Second
	}
	if d.MaxTextRunes <= 0 {
		d.MaxTextRunes = 4000
	}
	s := &Server{deps: d, log: d.Logger, sockets: map[*socket]struct{}{},
		loginAccounts:    newLimiter(loginAccountFailures, loginWindow),
		loginAddrs:       newLimiter(loginAddressFailures, loginWindow),
		newConversations: newRateLimiter(d.RateNewConversations),
		customerMessages: newRateLimiter(d.RateMessages),
		proxies:          parseProxies(d.TrustedProxies)}
	s.App = fiber.New(fiber.Config{
		AppName: "tandem",
		// Values from the context stay valid after the handler returns
		// (WebSockets and bot turns outlive it).
		Immutable:             true,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		BodyLimit:             s.maxBodyLimit(), // each route's own limit: bodyLimit
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		ReadBufferSize:        16 << 10,
		// Give the 16 KB read buffer back between requests: fasthttp
		// otherwise hands it to every upgraded WebSocket, where it stays
		// for the connection's life (measured: most of a customer
		// socket's memory; docs/benchmarks.md).
		ReduceMemoryUsage: true,
	})
	// Upgraded WebSockets close their own connections, so that a socket's
	// upgrade handler can return while the socket lives on, giving the
	// upgrade request back to fasthttp (Server.detach).
	s.App.Server().KeepHijackedConns = true
	s.limitBodies()
	s.App.Use(recover.New())
	s.App.Use(requestid.New())
	s.App.Use(s.observe)
	s.App.Use(s.apiHeaders)
	s.App.Use(s.cors)
	s.routes()
	return s
}

func (s *Server) routes() {
	app := s.App
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metrics())

	api := app.Group("/api/v1")
	api.Post("/auth/login", s.login)
	api.Post("/auth/logout", s.logout)
	api.Get("/auth/me", s.requireStaff(), s.me)

	api.Post("/conversations", s.createConversation)
	api.Get("/conversations/:id", s.conversationAccess, s.getConversation)
	api.Get("/conversations/:id/messages", s.conversationAccess, s.listMessages)
	api.Post("/conversations/:id/messages", s.conversationAccess, s.postMessage)
	api.Get("/customers/me/conversations", s.customerHistory)
	api.Get("/customers/me/conversations/:id/messages", s.customerHistoryMessages)

	editor := s.requireStaff(auth.RoleEditor)
	api.Post("/knowledge/documents", editor, s.createDocument)
	api.Get("/knowledge/documents", editor, s.listDocuments)
	api.Get("/knowledge/documents/:id", editor, s.getDocument)
	api.Put("/knowledge/documents/:id", editor, s.replaceDocument)
	api.Delete("/knowledge/documents/:id", editor, s.deleteDocument)
	api.Post("/knowledge/search", editor, s.searchKnowledge)

	admin := s.requireStaff(auth.RoleAdmin)
	api.Post("/bot/preview", editor, s.previewBot)
	api.Get("/bot/policy", editor, s.getPolicy)
	api.Put("/bot/policy", admin, s.putPolicy)
	api.Get("/intents", editor, s.getIntents)
	api.Put("/intents", admin, s.putIntents)
	api.Post("/intents/import", admin, s.importIntents)
	api.Get("/reports/unanswered", editor, s.unanswered)
	api.Post("/reports/unanswered/:id/resolve", editor, s.resolveUnanswered)

	s.handoffRoutes(api)
	s.attachmentRoutes(api) // attachments.go
	s.usersRoutes(api)      // users.go
	s.webhookRoutes(api)    // webhooks.go
	s.settingsRoutes(api)   // settings.go

	app.Get("/ws/conversations/:id", s.customerSocketUpgrade, s.customerSocket())
	app.Get("/ws/agent", s.agentSocketUpgrade, s.agentSocket())
	api.Get("/metrics/summary", s.requireStaff(auth.RoleAdmin), s.metricsSummary)
	s.pages() // the browser pages and /widget.js (pages.go)

	app.Use(func(c *fiber.Ctx) error {
		return errs.Errorf(errs.NotFound, "no route for %s %s", c.Method(), c.Path())
	})
}

// statusOf maps error codes to HTTP statuses.
var statusOf = map[errs.Code]int{
	errs.Invalid:      fiber.StatusBadRequest,
	errs.NotFound:     fiber.StatusNotFound,
	errs.Conflict:     fiber.StatusConflict,
	errs.Unauthorized: fiber.StatusUnauthorized,
	errs.Forbidden:    fiber.StatusForbidden,
	errs.TooLarge:     fiber.StatusRequestEntityTooLarge,
	errs.Unsupported:  fiber.StatusUnsupportedMediaType,
	errs.RateLimited:  fiber.StatusTooManyRequests,
	errs.Unavailable:  fiber.StatusServiceUnavailable,
	errs.Internal:     fiber.StatusInternalServerError,
}

// fiberCodes maps Fiber's own errors (unknown route, body too large) to ours.
var fiberCodes = map[int]errs.Code{
	fiber.StatusBadRequest:            errs.Invalid,
	fiber.StatusNotFound:              errs.NotFound,
	fiber.StatusMethodNotAllowed:      errs.NotFound,
	fiber.StatusRequestEntityTooLarge: errs.TooLarge,
	fiber.StatusUnsupportedMediaType:  errs.Unsupported,
	fiber.StatusUnauthorized:          errs.Unauthorized,
	fiber.StatusForbidden:             errs.Forbidden,
	fiber.StatusTooManyRequests:       errs.RateLimited,
	fiber.StatusServiceUnavailable:    errs.Unavailable,
}

// errorBody is the contract's error shape.
type errorBody struct {
	Error struct {
		Code    errs.Code `json:"code"`
		Message string    `json:"message"`
	} `json:"error"`
}

// errorHandler answers every error as {"error": {"code", "message"}} with the
// matching status, and logs only internal errors.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	code := errs.CodeOf(err)
	msg := errs.MessageOf(err)
	var fe *fiber.Error
	if errors.As(err, &fe) {
		if fc, ok := fiberCodes[fe.Code]; ok {
			code, msg = fc, fe.Message
		}
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			msg = s.tooLargeMessage(c.Method(), c.Path())
		}
	}
	switch {
	case code != errs.Internal || fe != nil:
	case db.Unreachable(err):
		// A path that did not translate its database error: the database
		// is away, which is worth a retry, not an internal error.
		code, msg = errs.Unavailable, "the database is unavailable; try again shortly"
	case db.Unstorable(err):
		code, msg = errs.Invalid, "the request holds characters that cannot be stored (such as NUL)"
	}
	status, ok := statusOf[code]
	if !ok {
		status = fiber.StatusInternalServerError
	}
	if code == errs.Unavailable {
		if c.GetRespHeader(fiber.HeaderRetryAfter) == "" {
			c.Set(fiber.HeaderRetryAfter, "1")
		}
	}
	if code == errs.Internal {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(),
			"request_id", requestID(c), "error", err)
	}
	var body errorBody
	body.Error.Code = code
	body.Error.Message = msg
	if code == errs.RateLimited && c.GetRespHeader(fiber.HeaderRetryAfter) == "" {
		c.Set(fiber.HeaderRetryAfter, "60")
	}
	return c.Status(status).JSON(body)
}

func requestID(c *fiber.Ctx) string {
	if v, ok := c.Locals("requestid").(string); ok {
		return v
	}
	return ""
}

// observe logs each request and records its metrics.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := s.App.ErrorHandler(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}
	route := c.Route().Path
	if route == "/" && c.Path() != "/" {
		route = "unmatched"
	}
	status := c.Response().StatusCode()
	d := time.Since(start)
	metrics.HTTPRequests.WithLabelValues(c.Method(), route, strconv.Itoa(status)).Inc()
	metrics.HTTPDuration.WithLabelValues(c.Method(), route).Observe(d.Seconds())
	if !strings.HasPrefix(c.Path(), "/ws/") {
		level := slog.LevelDebug
		if status >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(c.UserContext(), level, "http", "method", c.Method(), "path", c.Path(), "status", status,
			"duration_ms", float64(d.Microseconds())/1000, "request_id", requestID(c))
	}
	return nil
}

// parseJSON decodes the request body into v; an empty body leaves v as is
// when optional is true.
func parseJSON(c *fiber.Ctx, v any, optional bool) error {
	body := c.Body()
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return nil
		}
		return errs.Errorf(errs.Invalid, "a JSON request body is required")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return errs.Errorf(errs.Invalid, "request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return errs.Errorf(errs.Invalid, "field %q must be a %s", te.Field, te.Type.String())
		default:
			return errs.Errorf(errs.Invalid, "request body is not valid JSON")
		}
	}
	return nil
}

// Shutdown closes every WebSocket with a going-away code and stops the app,
// waiting (bounded by ctx) for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.socketsMu.Lock()
	s.closing = true
	all := make([]*socket, 0, len(s.sockets))
	for k := range s.sockets {
		all = append(all, k)
	}
	s.socketsMu.Unlock()
	for _, k := range all {
		k.goAway()
	}
	return s.App.ShutdownWithContext(ctx)
}
