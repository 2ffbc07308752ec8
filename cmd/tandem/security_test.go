package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/web"
)

// matrixIdentities are who the role matrix tries every route as, in the
// order of the letters of an expectation: no credentials, the customer of
// the conversation in the path (its conversation token), the customer of
// another conversation, and a staff user of each role (a bearer token).
var matrixIdentities = []string{"none", "customer", "other", "editor", "agent", "admin"}

// roleMatrix is what each route answers each identity: A allowed (any
// status but 401, 403 and 500: a 400 for the test's empty body still shows
// the request got past authorisation), U 401, D 403. Every route the app
// registers must have a line, so a new route cannot ship without saying
// who may call it.
var roleMatrix = map[string]string{
	"GET /healthz":                                   "AAAAAA",
	"GET /readyz":                                    "AAAAAA",
	"GET /metrics":                                   "AAAAAA",
	"GET /":                                          "AAAAAA",
	"GET /chat":                                      "AAAAAA",
	"GET /console":                                   "AAAAAA",
	"GET /knowledge":                                 "AAAAAA",
	"GET /admin":                                     "AAAAAA",
	"GET /widget.js":                                 "AAAAAA",
	"GET /ui/*":                                      "AAAAAA",
	"POST /api/v1/auth/login":                        "AAAAAA",
	"POST /api/v1/auth/logout":                       "AAAAAA",
	"GET /api/v1/auth/me":                            "UUUAAA",
	"POST /api/v1/conversations":                     "AAAAAA",
	"GET /api/v1/conversations/:id":                  "UADDAA",
	"GET /api/v1/conversations/:id/messages":         "UADDAA",
	"POST /api/v1/conversations/:id/messages":        "UADDAA",
	"POST /api/v1/conversations/:id/csat":            "UADDDD",
	"POST /api/v1/conversations/:id/attachments":     "UADDAA",
	"GET /api/v1/conversations/:id/attachments/:aid": "UADDAA",
	"GET /api/v1/conversations/:id/attachments/:aid/thumbnail": "UADDAA",
	"GET /ws/conversations/:id":                                "UADDAA",
	"GET /ws/agent":                                            "UUUDAA",
	"GET /api/v1/queue":                                        "UUUDAA",
	"POST /api/v1/conversations/:id/claim":                     "UUUDAA",
	"POST /api/v1/conversations/:id/release":                   "UUUDAA",
	"POST /api/v1/conversations/:id/transfer":                  "UUUDAA",
	"POST /api/v1/conversations/:id/close":                     "UUUDAA",
	"POST /api/v1/conversations/:id/suggest":                   "UUUDAA",
	"GET /api/v1/conversations/:id/transcript":                 "UUUDAA",
	"GET /api/v1/conversations/:id/notes":                      "UUUDAA",
	"POST /api/v1/conversations/:id/notes":                     "UUUDAA",
	"GET /api/v1/agents":                                       "UUUDAA",
	"GET /api/v1/agents/me":                                    "UUUDAA",
	"PUT /api/v1/agents/me/status":                             "UUUDAA",
	"GET /api/v1/teams":                                        "UUUDAA",
	"GET /api/v1/teams/:name":                                  "UUUDAA",
	"POST /api/v1/teams":                                       "UUUDDA",
	"PUT /api/v1/teams/:name":                                  "UUUDDA",
	"PUT /api/v1/teams/:name/members/:user":                    "UUUDDA",
	"DELETE /api/v1/teams/:name/members/:user":                 "UUUDDA",
	"GET /api/v1/canned-replies":                               "UUUDAA",
	"POST /api/v1/canned-replies":                              "UUUDDA",
	"PUT /api/v1/canned-replies/:id":                           "UUUDDA",
	"DELETE /api/v1/canned-replies/:id":                        "UUUDDA",
	"GET /api/v1/knowledge/documents":                          "UUUADA",
	"POST /api/v1/knowledge/documents":                         "UUUADA",
	"GET /api/v1/knowledge/documents/:id":                      "UUUADA",
	"PUT /api/v1/knowledge/documents/:id":                      "UUUADA",
	"DELETE /api/v1/knowledge/documents/:id":                   "UUUADA",
	"POST /api/v1/knowledge/search":                            "UUUADA",
	"POST /api/v1/bot/preview":                                 "UUUADA",
	"GET /api/v1/bot/policy":                                   "UUUADA",
	"PUT /api/v1/bot/policy":                                   "UUUDDA",
	"GET /api/v1/intents":                                      "UUUADA",
	"PUT /api/v1/intents":                                      "UUUDDA",
	"POST /api/v1/intents/import":                              "UUUDDA",
	"GET /api/v1/reports/unanswered":                           "UUUADA",
	"POST /api/v1/reports/unanswered/:id/resolve":              "UUUADA",
	"GET /api/v1/audit":                                        "UUUDDA",
	"GET /api/v1/users":                                        "UUUDDA",
	"POST /api/v1/users":                                       "UUUDDA",
	"PATCH /api/v1/users/:id":                                  "UUUDDA",
	"GET /api/v1/metrics/summary":                              "UUUDDA",
	"GET /api/v1/customers/me/conversations":                   "UADUUU",
	"GET /api/v1/customers/me/conversations/:id/messages":      "UADUUU",
	"GET /api/v1/settings/retention":                           "UUUDDA",
	"PUT /api/v1/settings/retention":                           "UUUDDA",
	"GET /api/v1/webhooks":                                     "UUUDDA",
	"POST /api/v1/webhooks":                                    "UUUDDA",
	"GET /api/v1/webhooks/:id":                                 "UUUDDA",
	"PATCH /api/v1/webhooks/:id":                               "UUUDDA",
	"DELETE /api/v1/webhooks/:id":                              "UUUDDA",
}

// matrixFixture is what the matrix's paths point at.
type matrixFixture struct {
	users    map[string]string // role → user id
	other    conversation      // another customer's conversation
	document string
	canned   string
	agentID  string
}

// TestRoleMatrix walks every route registered on the app (app.GetRoutes,
// so a new route without a line in roleMatrix fails here) with every
// identity, and checks who gets in. State-changing requests each get a
// fresh conversation and a fresh session, so one request's effect (a
// claim, a close, a sign-out) cannot change another's answer.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	// Every route with every identity starts many conversations from one
	// address, far more than the per-address limit a widget needs.
	s := startEnv(t, dbtest.New(t), true, map[string]string{"TANDEM_RATE_NEW_CONVERSATIONS": "0", "TANDEM_RATE_MESSAGES": "0"})
	ctx := context.Background()
	fx := matrixFixture{users: map[string]string{}}
	for _, role := range []string{auth.RoleEditor, auth.RoleAgent, auth.RoleAdmin} {
		u, err := s.Auth.CreateUser(ctx, auth.NewUser{Email: role + "@example.com", Password: "matrix-password", Roles: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		fx.users[role] = u.ID
	}
	fx.agentID = fx.users[auth.RoleAgent]
	team, err := s.Conv.CreateTeam(ctx, handoff.AgentActor(fx.users[auth.RoleAdmin], true), "Billing", handoff.TeamSettings{})
	if err != nil {
		t.Fatal(err)
	}
	_ = team
	fx.other = s.createConversation(t)
	doc, _, err := s.Knowledge.Create(ctx, knowledge.Upload{Filename: "returns.md", Data: []byte("# Returns\n\nReturn any item within 30 days.\n")})
	if err != nil {
		t.Fatal(err)
	}
	fx.document = doc.ID
	canned, err := s.Conv.CreateCannedReply(ctx, handoff.AgentActor(fx.users[auth.RoleAdmin], true), handoff.CannedReply{Title: "Hello", Text: "Hello!"})
	if err != nil {
		t.Fatal(err)
	}
	fx.canned = canned.ID

	seen := map[string]bool{}
	var keys []string
	for _, r := range s.Web.App.GetRoutes(true) {
		method := r.Method
		if method == http.MethodHead {
			if strings.HasPrefix(r.Path, "/ws/") {
				continue // a WebSocket handshake is a GET
			}
			method = http.MethodGet // HEAD runs the GET handler
		}
		key := method + " " + r.Path
		want, ok := roleMatrix[key]
		if !ok {
			t.Errorf("route %s %s has no line in roleMatrix: say who may call it", r.Method, r.Path)
			continue
		}
		if !seen[r.Method+" "+r.Path] {
			seen[r.Method+" "+r.Path] = true
			keys = append(keys, r.Method+" "+r.Path+"|"+want)
		}
		seen[key] = true
	}
	for key := range roleMatrix {
		if !seen[key] {
			t.Errorf("roleMatrix has %s, which the app does not register", key)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		route, want, _ := strings.Cut(k, "|")
		method, path, _ := strings.Cut(route, " ")
		for i, who := range matrixIdentities {
			got := s.matrixRequest(t, &fx, method, path, who)
			if class := statusClass(got); class != want[i] {
				t.Errorf("%s %s as %s: status %d (%c), want %c", method, path, who, got, class, want[i])
			}
		}
	}
}

// statusClass is the letter of roleMatrix a status belongs to; 500 is X,
// which no expectation has.
func statusClass(status int) byte {
	switch {
	case status == http.StatusUnauthorized:
		return 'U'
	case status == http.StatusForbidden:
		return 'D'
	case status >= 500 && status != http.StatusServiceUnavailable:
		return 'X'
	}
	return 'A'
}

var pathParam = regexp.MustCompile(`:[a-z]+|\*`)

// matrixRequest sends one request of the matrix and returns its status.
func (s *server) matrixRequest(t *testing.T, fx *matrixFixture, method, route, who string) int {
	t.Helper()
	ctx := context.Background()
	var conv conversation
	switch {
	case strings.HasPrefix(route, "/api/v1/customers/me/"):
		// A verified customer's history: the customer's own conversation
		// is verified; the other customer's is not.
		conv = s.createVerified(t, "matrix-customer")
	case strings.Contains(route, "/conversations/:id"):
		conv = s.createConversation(t)
	}
	path := pathParam.ReplaceAllStringFunc(route, func(p string) string {
		switch {
		case p == "*":
			return "lib.js"
		case p == ":name":
			return "billing"
		case p == ":user":
			return fx.agentID
		case strings.Contains(route, "/conversations/"):
			return conv.ID // the customers/me route: the customer's own
		case strings.Contains(route, "/knowledge/documents/"):
			return fx.document
		case strings.Contains(route, "/canned-replies/"):
			return fx.canned
		case strings.Contains(route, "/users/"):
			return fx.agentID
		}
		// Unanswered questions and the like: an id that exists nowhere.
		return "7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42"
	})
	token := ""
	switch who {
	case "customer":
		token = conv.Token
		if token == "" {
			token = fx.other.Token // a customer token, on a route that is not a conversation's
		}
	case "other":
		token = fx.other.Token
	case auth.RoleEditor, auth.RoleAgent, auth.RoleAdmin:
		var err error
		if token, err = s.Auth.NewSession(ctx, fx.users[who], "api"); err != nil {
			t.Fatal(err)
		}
	}
	var headers []string
	if who == "admin-cookie" || who == "admin-cookie-csrf" {
		// The admin signed in by the session cookie, as the staff pages are.
		cookie, err := s.Auth.NewSession(ctx, fx.users[auth.RoleAdmin], "cookie")
		if err != nil {
			t.Fatal(err)
		}
		headers = []string{"Cookie", "tandem_session=" + cookie}
		if who == "admin-cookie-csrf" {
			headers = append(headers, "X-CSRF-Token", s.csrfToken(t, cookie))
		}
	}
	if strings.HasPrefix(path, "/ws/") {
		u := "ws://" + s.Addr() + path
		if token != "" {
			u += "?token=" + url.QueryEscape(token)
		}
		d := websocket.Dialer{HandshakeTimeout: wait}
		c, resp, err := d.Dial(u, nil)
		if err == nil {
			c.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		return resp.StatusCode
	}
	var body any
	if method != http.MethodGet && method != http.MethodHead && method != http.MethodDelete {
		body = map[string]any{}
	}
	return s.do(t, method, path, token, body, headers...).status
}

// csrfToken asks /api/v1/auth/me, signed in by the cookie, for the
// session's CSRF token, as the staff pages do.
func (s *server) csrfToken(t *testing.T, cookie string) string {
	t.Helper()
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	s.do(t, "GET", "/api/v1/auth/me", "", nil, "Cookie", "tandem_session="+cookie).expect(t, http.StatusOK).decode(t, &me)
	if me.CSRFToken == "" {
		t.Fatal("/api/v1/auth/me gave no csrf_token to a cookie session")
	}
	return me.CSRFToken
}

// TestCSRF checks that every state-changing route signed in by the session
// cookie wants the session's CSRF token (403 without it, or with another
// session's), and answers with it as it answers a bearer token; bearer
// tokens need none. It walks the routes as TestRoleMatrix does.
func TestCSRF(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	ctx := context.Background()
	fx := matrixFixture{users: map[string]string{}}
	for _, role := range []string{auth.RoleAgent, auth.RoleAdmin} {
		u, err := s.Auth.CreateUser(ctx, auth.NewUser{Email: role + "@example.com", Password: "csrf-password", Roles: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		fx.users[role] = u.ID
	}
	fx.agentID = fx.users[auth.RoleAgent]
	if _, err := s.Conv.CreateTeam(ctx, handoff.AgentActor(fx.users[auth.RoleAdmin], true), "Billing", handoff.TeamSettings{}); err != nil {
		t.Fatal(err)
	}
	fx.other = s.createConversation(t)
	canned, err := s.Conv.CreateCannedReply(ctx, handoff.AgentActor(fx.users[auth.RoleAdmin], true), handoff.CannedReply{Title: "Hello", Text: "Hello!"})
	if err != nil {
		t.Fatal(err)
	}
	fx.canned = canned.ID
	fx.document = "7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42"

	checked := 0
	for _, r := range s.Web.App.GetRoutes(true) {
		want := roleMatrix[r.Method+" "+r.Path]
		if safeMethod(r.Method) || want == "" || (want[0] == 'A' && r.Path != "/api/v1/auth/logout") {
			continue // reads, and routes nobody needs to sign in for
		}
		admin := want[len(want)-1]
		if got := statusClass(s.matrixRequest(t, &fx, r.Method, r.Path, "admin-cookie")); got != 'D' {
			t.Errorf("%s %s by cookie without the CSRF token: class %c, want D (403)", r.Method, r.Path, got)
		}
		if got := statusClass(s.matrixRequest(t, &fx, r.Method, r.Path, "admin-cookie-csrf")); got != admin {
			t.Errorf("%s %s by cookie with the CSRF token: class %c, want %c as with a bearer token", r.Method, r.Path, got, admin)
		}
		checked++
	}
	if checked < 25 {
		t.Fatalf("only %d state-changing routes checked", checked)
	}

	t.Run("TokenOfAnotherSession", func(t *testing.T) {
		mine, _ := s.Auth.NewSession(ctx, fx.users[auth.RoleAdmin], "cookie")
		theirs, _ := s.Auth.NewSession(ctx, fx.users[auth.RoleAdmin], "cookie")
		r := s.do(t, "PUT", "/api/v1/agents/me/status", "", map[string]any{"status": "online"},
			"Cookie", "tandem_session="+mine, "X-CSRF-Token", s.csrfToken(t, theirs)).expect(t, http.StatusForbidden)
		if code := r.errorCode(t); code != "forbidden" {
			t.Fatalf("code %q", code)
		}
		s.do(t, "PUT", "/api/v1/agents/me/status", "", map[string]any{"status": "online"},
			"Cookie", "tandem_session="+mine, "X-CSRF-Token", s.csrfToken(t, mine)).expect(t, http.StatusOK)
	})

	t.Run("BearerNeedsNone", func(t *testing.T) {
		tok, _ := s.Auth.NewSession(ctx, fx.users[auth.RoleAgent], "api")
		s.do(t, "PUT", "/api/v1/agents/me/status", tok, map[string]any{"status": "away"}).expect(t, http.StatusOK)
	})

	t.Run("CustomerTokenBeatsStaffCookie", func(t *testing.T) {
		// A staff member trying the widget in the browser they work in:
		// the widget's conversation token is the credential, the cookie is
		// not used (no CSRF token needed, and the message is the customer's).
		c := s.createConversation(t)
		cookie, _ := s.Auth.NewSession(ctx, fx.users[auth.RoleAgent], "cookie")
		var out struct {
			Message apiMessage `json:"message"`
		}
		s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", c.Token, map[string]string{"text": "hello"},
			"Cookie", "tandem_session="+cookie).expect(t, http.StatusCreated).decode(t, &out)
		if out.Message.Role != "customer" || out.Message.AuthorID != "" {
			t.Fatalf("message %+v, want the customer's", out.Message)
		}
	})

	t.Run("LoginFromAnotherSite", func(t *testing.T) {
		// A cross-site page must not sign the browser in (login CSRF).
		body := map[string]string{"email": "agent@example.com", "password": "csrf-password"}
		s.do(t, "POST", "/api/v1/auth/login", "", body, "Origin", "https://evil.example").expect(t, http.StatusForbidden)
		s.do(t, "POST", "/api/v1/auth/login", "", body, "Origin", s.URL()).expect(t, http.StatusOK)
	})
}

// safeMethod mirrors the server's: methods that change nothing.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sessionCookieOf returns the session cookie a response sets.
func sessionCookieOf(t *testing.T, r *response) *http.Cookie {
	t.Helper()
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == "tandem_session" {
			return ck
		}
	}
	t.Fatalf("no session cookie in %v", r.header)
	return nil
}

// TestSessionCookie checks the session cookie's attributes: HttpOnly and
// SameSite=Strict always, Secure when browsers reach the server over TLS
// (TANDEM_PUBLIC_URL https), and HSTS on pages and answers then.
func TestSessionCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		public, proxy string // TANDEM_PUBLIC_URL, TANDEM_TRUSTED_PROXIES
		forwarded     string // X-Forwarded-Proto sent with every request
		secure        bool
	}{
		{"HTTP", "", "", "", false},
		{"HTTPS", "https://support.example.com", "", "", true},
		{"TrustedProxySaysHTTPS", "", "127.0.0.1", "https", true},
		{"TrustedProxySaysHTTP", "", "127.0.0.1", "http", false},
		{"UntrustedSaysHTTPS", "", "10.9.9.9", "https", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.public != "" {
				env["TANDEM_PUBLIC_URL"] = tc.public
			}
			if tc.proxy != "" {
				env["TANDEM_TRUSTED_PROXIES"] = tc.proxy
			}
			s := startEnv(t, dbtest.New(t), false, env)
			const password = "cookie-password"
			if _, err := s.Auth.CreateUser(context.Background(), auth.NewUser{Email: "agent@example.com", Password: password, Roles: []string{auth.RoleAgent}}); err != nil {
				t.Fatal(err)
			}
			cheapenPassword(t, s.Pool, "agent@example.com", password)
			fwd := []string{}
			if tc.forwarded != "" {
				fwd = []string{"X-Forwarded-Proto", tc.forwarded}
			}
			r := s.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "agent@example.com", "password": password}, fwd...).
				expect(t, http.StatusOK)
			ck := sessionCookieOf(t, r)
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tc.secure || ck.Path != "/" {
				t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v", ck, tc.secure)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("the sign-in answer may be cached: %v", r.header)
			}
			for _, path := range []string{"/console", "/api/v1/auth/me"} {
				h := s.do(t, "GET", path, "", nil, fwd...).header
				if got := h.Get("Strict-Transport-Security") != ""; got != tc.secure {
					t.Errorf("%s: Strict-Transport-Security %q, want it only over TLS", path, h.Get("Strict-Transport-Security"))
				}
			}
			out := s.do(t, "POST", "/api/v1/auth/logout", "", nil, "Cookie", "tandem_session="+ck.Value,
				"X-CSRF-Token", s.csrfToken(t, ck.Value)).expect(t, http.StatusNoContent)
			if gone := sessionCookieOf(t, out); gone.Value != "" || gone.MaxAge >= 0 && !gone.Expires.Before(time.Now()) {
				t.Fatalf("logout cookie %+v, want it cleared", gone)
			}
			s.do(t, "GET", "/api/v1/auth/me", "", nil, "Cookie", "tandem_session="+ck.Value).expect(t, http.StatusUnauthorized)
		})
	}
}

// TestCORS checks that the customer endpoints answer CORS for the widget
// origins of TANDEM_ALLOWED_ORIGINS only, without credentials, and that no
// staff endpoint ever does.
func TestCORS(t *testing.T) {
	t.Parallel()
	const shop = "https://shop.example.com"
	s := startEnv(t, dbtest.New(t), false, map[string]string{"TANDEM_ALLOWED_ORIGINS": shop})
	c := s.createConversation(t)
	preflight := func(path, origin string) *response {
		return s.do(t, "OPTIONS", path, "", nil, "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization, content-type")
	}
	for _, path := range []string{"/api/v1/conversations", "/api/v1/conversations/" + c.ID + "/messages",
		"/api/v1/conversations/" + c.ID, "/api/v1/conversations/" + c.ID + "/csat", "/api/v1/customers/me/conversations"} {
		r := preflight(path, shop).expect(t, http.StatusNoContent)
		if r.header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight of %s from the shop: %v", path, r.header)
		}
		r = preflight(path, "https://evil.example").expect(t, http.StatusForbidden)
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight of %s from another origin allowed: %v", path, r.header)
		}
	}
	r := s.do(t, "POST", "/api/v1/conversations", "", map[string]any{}, "Origin", shop).expect(t, http.StatusCreated)
	if r.header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(r.header.Get("Vary"), "Origin") {
		t.Errorf("create from the shop: %v", r.header)
	}
	r = s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/messages", c.Token, nil, "Origin", shop).expect(t, http.StatusOK)
	if r.header.Get("Access-Control-Allow-Origin") != shop {
		t.Errorf("messages from the shop: %v", r.header)
	}
	r = s.do(t, "POST", "/api/v1/conversations", "", map[string]any{}, "Origin", "https://evil.example").expect(t, http.StatusCreated)
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin may read the answer: %v", r.header)
	}
	for _, path := range []string{"/api/v1/queue", "/api/v1/auth/login", "/api/v1/auth/me", "/api/v1/conversations/" + c.ID + "/transcript",
		"/api/v1/conversations/" + c.ID + "/close", "/api/v1/users"} {
		for _, method := range []string{"GET", "OPTIONS"} {
			r := s.do(t, method, path, "", nil, "Origin", shop, "Access-Control-Request-Method", "POST")
			if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
				t.Errorf("staff endpoint %s %s answers CORS to a widget origin: %v", method, path, r.header)
			}
		}
	}
}

// TestLoginLimits checks both sign-in limits with clients on different
// loopback addresses (127.0.0.0/8 is all loopback): failures per account
// lock the account whatever address tries, failures per address lock the
// address whatever account it tries; each answers 429 with Retry-After.
func TestLoginLimits(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	const password = "correct horse battery"
	emails := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"}
	for _, e := range emails {
		if _, err := s.Auth.CreateUser(context.Background(), auth.NewUser{Email: e, Password: password, Roles: []string{auth.RoleAgent}}); err != nil {
			t.Fatal(err)
		}
		cheapenPassword(t, s.Pool, e, password)
	}
	// from returns a sign-in from a loopback address of its own.
	type client struct{ hc *http.Client }
	from := func(ip string) client {
		local := &net.TCPAddr{IP: net.ParseIP(ip)}
		hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: local}).DialContext}}
		t.Cleanup(hc.CloseIdleConnections)
		return client{hc}
	}
	login := func(c client, email, password string) *response {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"email": email, "password": password})
		resp, err := c.hc.Post(s.URL()+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: raw}
	}
	retryAfter := func(r *response) {
		t.Helper()
		if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs <= 0 || secs > 300 {
			t.Fatalf("Retry-After %q, want seconds up to the 5-minute window", r.header.Get("Retry-After"))
		}
	}

	t.Run("PerAccount", func(t *testing.T) {
		// Ten failures for a@, each from another address.
		for i := 0; i < 10; i++ {
			login(from(fmt.Sprintf("127.0.1.%d", i+1)), emails[0], "wrong password").expect(t, http.StatusUnauthorized)
		}
		other := from("127.0.1.99")
		retryAfter(login(other, emails[0], password).expect(t, http.StatusTooManyRequests))
		// The address itself is not locked: another account signs in.
		login(other, emails[1], password).expect(t, http.StatusOK)
	})

	t.Run("PerAddress", func(t *testing.T) {
		// 30 failures from one address, spread over accounts so that none
		// reaches its own limit.
		one := from("127.0.2.1")
		for i := 0; i < 30; i++ {
			login(one, emails[1+i%4], "wrong password").expect(t, http.StatusUnauthorized)
		}
		r := login(one, emails[1], password).expect(t, http.StatusTooManyRequests)
		retryAfter(r)
		if code := r.errorCode(t); code != "rate_limited" {
			t.Fatalf("code %q", code)
		}
		// The accounts are not locked: from elsewhere they sign in.
		login(from("127.0.2.2"), emails[2], password).expect(t, http.StatusOK)
	})
}

// TestConversationIDs checks that conversation ids and tokens cannot be
// guessed (random v4 UUIDs, 256-bit tokens), and that a token opens its
// own conversation only: another's is 403, an unknown id 404 (the same as
// for staff), and no token 401.
func TestConversationIDs(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	var convs []conversation
	for i := 0; i < 20; i++ {
		c := s.createConversation(t)
		if !v4.MatchString(c.ID) || seen[c.ID] {
			t.Fatalf("conversation id %q is not a fresh random (v4) UUID", c.ID)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(c.Token); err != nil || len(raw) < 32 {
			t.Fatalf("token %q is not 256 random bits", c.Token)
		}
		seen[c.ID] = true
		convs = append(convs, c)
	}
	a, b := convs[0], convs[1]
	s.do(t, "GET", "/api/v1/conversations/"+a.ID+"/messages", a.Token, nil).expect(t, http.StatusOK)
	s.do(t, "GET", "/api/v1/conversations/"+b.ID+"/messages", a.Token, nil).expect(t, http.StatusForbidden)
	s.do(t, "POST", "/api/v1/conversations/"+b.ID+"/messages", a.Token, map[string]string{"text": "hi"}).expect(t, http.StatusForbidden)
	s.do(t, "GET", "/api/v1/conversations/"+b.ID, "", nil).expect(t, http.StatusUnauthorized)
	s.do(t, "GET", "/api/v1/conversations/7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42", a.Token, nil).expect(t, http.StatusNotFound)
	s.do(t, "GET", "/api/v1/conversations/"+a.ID, a.Token[:len(a.Token)-1]+"x", nil).expect(t, http.StatusUnauthorized)
	// The customer socket too.
	d := websocket.Dialer{HandshakeTimeout: wait}
	if _, resp, err := d.Dial(s.wsURL(b.ID, a.Token, 0), nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("socket of another conversation: %v %v", err, resp)
	}
}

// TestAuditLog does each kind of staff action the audit log must cover
// (sign-in and sign-out, assignment, transfer, close, knowledge changes,
// settings: bot policy, intents, teams, canned replies; role changes) over
// the API, and checks that each wrote a record naming who did it, readable
// by admins only.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	s := startServer(t, dbtest.New(t))
	ctx := context.Background()
	adminID, admin := s.staff(t, "Ada Admin", "admin")
	editorID, editor := s.staff(t, "Eddie Editor", "editor")
	const password = "audit-password"
	agentUser, err := s.Auth.CreateUser(ctx, auth.NewUser{Email: "alex@example.com", Password: password, DisplayName: "Alex Agent", Roles: []string{auth.RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	agentID := agentUser.ID
	cheapenPassword(t, s.Pool, "alex@example.com", password)
	var li struct{ Token string }
	s.login(t, "alex@example.com", password).expect(t, http.StatusOK).decode(t, &li)
	agent := li.Token
	s.login(t, "alex@example.com", "wrong password").expect(t, http.StatusUnauthorized)

	c := s.createConversation(t)
	conv := "/api/v1/conversations/" + c.ID
	s.do(t, "POST", conv+"/claim", agent, nil).expect(t, http.StatusOK)
	s.do(t, "POST", "/api/v1/teams", admin, map[string]any{"name": "Billing"}).expect(t, http.StatusCreated)
	s.do(t, "PUT", "/api/v1/teams/Billing/members/"+agentID, admin, nil).expect(t, http.StatusOK)
	s.do(t, "POST", conv+"/transfer", agent, map[string]any{"team": "Billing", "note": "billing question"}).expect(t, http.StatusOK)
	s.do(t, "POST", conv+"/claim", agent, nil).expect(t, http.StatusOK)
	s.do(t, "POST", conv+"/close", agent, map[string]any{"resolution": "resolved"}).expect(t, http.StatusOK)
	s.do(t, "POST", "/api/v1/canned-replies", admin, map[string]any{"title": "Hi", "text": "Hello!"}).expect(t, http.StatusCreated)

	var doc struct{ ID string }
	s.upload(t, "POST", "/api/v1/knowledge/documents", editor, "file", "gift.md", []byte("# Gift wrapping\n\nGift wrapping costs $5.\n")).
		expect(t, http.StatusCreated).decode(t, &doc)
	s.upload(t, "PUT", "/api/v1/knowledge/documents/"+doc.ID, editor, "file", "gift.md", []byte("# Gift wrapping\n\nGift wrapping costs $6.\n")).expect(t, http.StatusOK)
	s.do(t, "DELETE", "/api/v1/knowledge/documents/"+doc.ID, editor, nil).expect(t, http.StatusNoContent)
	var unanswered string
	if err := s.Pool.QueryRow(ctx, `INSERT INTO unanswered (text, embed_model, embedding, last_reason)
		VALUES ('Do you ship to Mars?', 'test', '[1,0,0]', 'no_answer') RETURNING id`).Scan(&unanswered); err != nil {
		t.Fatal(err)
	}
	s.do(t, "POST", "/api/v1/reports/unanswered/"+unanswered+"/resolve", editor, nil).expect(t, http.StatusNoContent)

	s.do(t, "PUT", "/api/v1/bot/policy", admin, map[string]any{"low_turns": 3}).expect(t, http.StatusOK)
	var intents struct {
		Intents []map[string]any `json:"intents"`
	}
	s.do(t, "GET", "/api/v1/intents", admin, nil).expect(t, http.StatusOK).decode(t, &intents)
	s.do(t, "PUT", "/api/v1/intents", admin, intents).expect(t, http.StatusOK)
	s.do(t, "POST", "/api/v1/intents/import", admin, `{"text":"where is my parcel","intent":"order_status"}`+"\n").expect(t, http.StatusOK)
	s.do(t, "PATCH", "/api/v1/users/"+editorID, admin, map[string]any{"roles": []string{"editor", "agent"}}).expect(t, http.StatusOK)
	s.do(t, "POST", "/api/v1/webhooks", admin, map[string]any{"url": "https://crm.example.com/hook", "events": []string{"conversation.closed"}}).
		expect(t, http.StatusCreated)
	s.do(t, "POST", "/api/v1/auth/logout", agent, nil).expect(t, http.StatusNoContent)

	for _, tok := range []string{editor, "", c.Token} {
		if r := s.do(t, "GET", "/api/v1/audit", tok, nil); r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Fatalf("the audit log answered %d to a non-admin: %s", r.status, r.body)
		}
	}
	var out struct {
		Records []struct {
			ActorID     string         `json:"actor_id"`
			ActorRole   string         `json:"actor_role"`
			Action      string         `json:"action"`
			SubjectType string         `json:"subject_type"`
			SubjectID   string         `json:"subject_id"`
			Data        map[string]any `json:"data"`
		} `json:"records"`
	}
	s.do(t, "GET", "/api/v1/audit?limit=500", admin, nil).expect(t, http.StatusOK).decode(t, &out)
	for _, want := range []struct{ action, actor, subject string }{
		{"auth.login", agentID, agentID},
		{"auth.login_failed", agentID, agentID},
		{"auth.logout", agentID, agentID},
		{"conversation.assigned", agentID, c.ID},
		{"conversation.transfer", agentID, c.ID},
		{"conversation.closed", agentID, c.ID},
		{"team.create", adminID, ""},
		{"team.member.add", adminID, ""},
		{"canned_reply.create", adminID, ""},
		{"knowledge.create", editorID, doc.ID},
		{"knowledge.replace", editorID, doc.ID},
		{"knowledge.delete", editorID, doc.ID},
		{"unanswered.resolve", editorID, unanswered},
		{"settings.update", adminID, "bot.policy"},
		{"intents.replace", adminID, "intents"},
		{"intents.import", adminID, "intents"},
		{"user.update", adminID, editorID},
		{"webhook.create", adminID, ""},
	} {
		found := false
		for _, r := range out.Records {
			if r.Action == want.action && r.ActorID == want.actor && (want.subject == "" || r.SubjectID == want.subject) {
				found = true
				if r.Action == "user.update" && r.Data["roles"] == nil {
					t.Errorf("role change recorded without the roles: %+v", r)
				}
				if r.Action == "conversation.transfer" && r.Data["to_team"] != "Billing" {
					t.Errorf("transfer recorded without its team: %+v", r)
				}
			}
		}
		if !found {
			t.Errorf("no %s record by %s on %q", want.action, want.actor, want.subject)
		}
	}
	if strings.Contains(fmt.Sprint(out.Records), password) {
		t.Error("a password reached the audit log")
	}
}

// TestWebhooksAPI configures an endpoint over the admin API and checks, at
// a real receiver, that a customer's message arrives as message.created,
// signed with the secret the API returned, carrying the message as the API
// shows it; that rotating the secret signs with the new one; and that the
// endpoint's page lists its deliveries.
func TestWebhooksAPI(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	_, admin := s.staff(t, "Ada Admin", "admin")
	type got struct {
		ts, sig, delivery string
		body              []byte
	}
	recv := make(chan got, 100)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		recv <- got{r.Header.Get("Tandem-Timestamp"), r.Header.Get("Tandem-Signature"), r.Header.Get("Tandem-Delivery"), b}
	}))
	t.Cleanup(rcv.Close)
	next := func() got {
		t.Helper()
		select {
		case g := <-recv:
			return g
		case <-time.After(wait):
			t.Fatal("no webhook request")
		}
		return got{}
	}

	s.do(t, "POST", "/api/v1/webhooks", admin, map[string]any{"url": "javascript:alert(1)", "events": []string{"message.created"}}).expect(t, http.StatusBadRequest)
	var created struct {
		Webhook struct {
			ID     string   `json:"id"`
			Events []string `json:"events"`
		} `json:"webhook"`
		Secret string `json:"secret"`
	}
	s.do(t, "POST", "/api/v1/webhooks", admin, map[string]any{"url": rcv.URL + "/tandem", "events": []string{"message.created"}}).
		expect(t, http.StatusCreated).decode(t, &created)
	if !strings.HasPrefix(created.Secret, "whsec_") || len(created.Secret) < 40 {
		t.Fatalf("secret %q", created.Secret)
	}
	list := s.do(t, "GET", "/api/v1/webhooks", admin, nil).expect(t, http.StatusOK)
	if strings.Contains(string(list.body), created.Secret) {
		t.Fatal("the list shows the secret")
	}

	c := s.createConversation(t)
	msg := s.post(t, c, "Where is my order?", "w1")
	g := next()
	if !handoff.VerifyWebhook(created.Secret, g.ts, g.body, g.sig) {
		t.Fatalf("signature %q does not verify over %s.%s", g.sig, g.ts, g.body)
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			Message apiMessage `json:"message"`
		} `json:"data"`
	}
	if err := json.Unmarshal(g.body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Type != "message.created" || env.Data.Message.ID != msg.ID || env.Data.Message.Text != "Where is my order?" ||
		env.Data.Message.Seq != msg.Seq || !env.Data.Message.CreatedAt.Equal(msg.CreatedAt) {
		t.Fatalf("event %s, want the message %+v", g.body, msg)
	}
	next() // the placeholder's reply

	const rotated = "a-new-secret-for-this-endpoint"
	s.do(t, "PATCH", "/api/v1/webhooks/"+created.Webhook.ID, admin, map[string]any{"secret": rotated}).expect(t, http.StatusOK)
	s.post(t, c, "Hello again", "w2")
	g = next()
	if !handoff.VerifyWebhook(rotated, g.ts, g.body, g.sig) || handoff.VerifyWebhook(created.Secret, g.ts, g.body, g.sig) {
		t.Fatal("after rotation the signature is not the new secret's")
	}
	next()

	var page struct {
		Deliveries []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"deliveries"`
	}
	deadline := time.Now().Add(wait)
	for {
		s.do(t, "GET", "/api/v1/webhooks/"+created.Webhook.ID, admin, nil).expect(t, http.StatusOK).decode(t, &page)
		delivered := 0
		for _, d := range page.Deliveries {
			if d.State == "delivered" {
				delivered++
			}
		}
		if delivered == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v, want 4 delivered", page.Deliveries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.do(t, "DELETE", "/api/v1/webhooks/"+created.Webhook.ID, admin, nil).expect(t, http.StatusNoContent)
	s.do(t, "GET", "/api/v1/webhooks/"+created.Webhook.ID, admin, nil).expect(t, http.StatusNotFound)
}

// createVerified starts a conversation for a customer the site vouches
// for: external_id with its user_hash (HMAC-SHA256 with the site secret).
func (s *server) createVerified(t *testing.T, externalID string) conversation {
	t.Helper()
	var c conversation
	s.do(t, "POST", "/api/v1/conversations", "", map[string]any{
		"customer": map[string]any{"external_id": externalID, "name": "Kim"}, "user_hash": web.UserHash(testSecret, externalID),
	}).expect(t, http.StatusCreated).decode(t, &c)
	return c
}

// TestIdentityVerification checks widget identity verification: with the
// site secret, user_hash must be the HMAC-SHA256 of external_id (a wrong
// one is 403); a verified customer lists and reads their earlier verified
// conversations, never ones started without a hash for their external_id
// nor anyone else's; an unverified customer sees none.
func TestIdentityVerification(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	create := func(body map[string]any) *response {
		return s.do(t, "POST", "/api/v1/conversations", "", body)
	}
	cust := func(id string) map[string]any { return map[string]any{"external_id": id, "name": "Kim"} }

	t.Run("WrongHash", func(t *testing.T) {
		for name, body := range map[string]map[string]any{
			"Garbage":       {"customer": cust("cust-42"), "user_hash": "deadbeef"},
			"AnotherID":     {"customer": cust("cust-42"), "user_hash": web.UserHash(testSecret, "cust-7")},
			"AnotherSecret": {"customer": cust("cust-42"), "user_hash": web.UserHash("some-other-site-secret", "cust-42")},
			"PaddedID":      {"customer": cust(" cust-42"), "user_hash": web.UserHash(testSecret, " cust-42")},
			"HashOfNothing": {"customer": cust("cust-42"), "user_hash": web.UserHash(testSecret, "")},
		} {
			r := create(body).expect(t, http.StatusForbidden)
			if code := r.errorCode(t); code != "forbidden" {
				t.Errorf("%s: code %q", name, code)
			}
		}
		create(map[string]any{"user_hash": web.UserHash(testSecret, "cust-42")}).expect(t, http.StatusBadRequest)
	})

	first := s.createVerified(t, "cust-42")
	s.post(t, first, "My parcel never came", "h1")
	// Someone else claims cust-42 without the site's hash.
	var forged conversation
	create(map[string]any{"customer": cust("cust-42")}).expect(t, http.StatusCreated).decode(t, &forged)
	s.post(t, forged, "Injected into cust-42's history?", "f1")
	other := s.createVerified(t, "cust-7")
	s.post(t, other, "Someone else's question", "o1")
	// Upper-case hex is the same hash.
	var second conversation
	create(map[string]any{"customer": cust("cust-42"), "user_hash": strings.ToUpper(web.UserHash(testSecret, "cust-42"))}).
		expect(t, http.StatusCreated).decode(t, &second)
	var got struct{ Verified bool }
	s.do(t, "GET", "/api/v1/conversations/"+second.ID, second.Token, nil).expect(t, http.StatusOK).decode(t, &got)
	if !got.Verified {
		t.Fatal("a conversation with a valid user_hash is not verified")
	}

	t.Run("VerifiedSeesTheirHistory", func(t *testing.T) {
		var h struct {
			ExternalID    string `json:"external_id"`
			Conversations []struct {
				ID       string `json:"id"`
				Current  bool   `json:"current"`
				Messages int    `json:"messages"`
				Preview  string `json:"preview"`
			} `json:"conversations"`
		}
		s.do(t, "GET", "/api/v1/customers/me/conversations", second.Token, nil).expect(t, http.StatusOK).decode(t, &h)
		if h.ExternalID != "cust-42" || len(h.Conversations) != 2 || h.Conversations[0].ID != second.ID || !h.Conversations[0].Current ||
			h.Conversations[1].ID != first.ID || h.Conversations[1].Current || h.Conversations[1].Messages < 1 {
			t.Fatalf("history %+v: want the second (current) then the first, and no other", h)
		}
		var msgs struct{ Messages []apiMessage }
		s.do(t, "GET", "/api/v1/customers/me/conversations/"+first.ID+"/messages", second.Token, nil).expect(t, http.StatusOK).decode(t, &msgs)
		if len(msgs.Messages) == 0 || msgs.Messages[0].Text != "My parcel never came" {
			t.Fatalf("earlier messages %+v", msgs.Messages)
		}
		// Not the forged one, not another customer's, not an unknown id.
		for _, id := range []string{forged.ID, other.ID, "7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42"} {
			s.do(t, "GET", "/api/v1/customers/me/conversations/"+id+"/messages", second.Token, nil).expect(t, http.StatusNotFound)
		}
		// The history is read-only: the token still opens its own
		// conversation only.
		s.do(t, "GET", "/api/v1/conversations/"+first.ID+"/messages", second.Token, nil).expect(t, http.StatusForbidden)
		s.do(t, "POST", "/api/v1/conversations/"+first.ID+"/messages", second.Token, map[string]string{"text": "hi"}).expect(t, http.StatusForbidden)
	})

	t.Run("UnverifiedSeesNothing", func(t *testing.T) {
		for _, c := range []conversation{forged, s.createConversation(t)} {
			r := s.do(t, "GET", "/api/v1/customers/me/conversations", c.Token, nil).expect(t, http.StatusForbidden)
			if strings.Contains(string(r.body), first.ID) {
				t.Fatalf("an unverified customer got the history: %s", r.body)
			}
			s.do(t, "GET", "/api/v1/customers/me/conversations/"+first.ID+"/messages", c.Token, nil).expect(t, http.StatusForbidden)
		}
		s.do(t, "GET", "/api/v1/customers/me/conversations", "", nil).expect(t, http.StatusUnauthorized)
		s.do(t, "GET", "/api/v1/customers/me/conversations", "not-a-token", nil).expect(t, http.StatusUnauthorized)
	})
}

// TestRetentionSettingAndCommand sets retention over the admin API and
// runs it with `tandem retention run` (a conversation's close backdated 40
// days stands in for the clock): a dry run counts, a run anonymises that
// conversation only.
func TestRetentionSettingAndCommand(t *testing.T) {
	dbURL := dbtest.New(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("TANDEM_SECRET", testSecret)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	s := startPlaceholderServer(t, dbURL)
	ctx := context.Background()
	_, admin := s.staff(t, "Ada Admin", "admin")
	_, agent := s.staff(t, "Alex Agent", "agent")

	s.do(t, "PUT", "/api/v1/settings/retention", admin, map[string]any{"days": 30, "mode": "shred"}).expect(t, http.StatusBadRequest)
	s.do(t, "PUT", "/api/v1/settings/retention", agent, map[string]any{"days": 30}).expect(t, http.StatusForbidden)
	var got struct {
		Days int    `json:"days"`
		Mode string `json:"mode"`
	}
	s.do(t, "PUT", "/api/v1/settings/retention", admin, map[string]any{"days": 30, "mode": "anonymise"}).expect(t, http.StatusOK).decode(t, &got)
	if got.Days != 30 || got.Mode != "anonymise" {
		t.Fatalf("setting %+v", got)
	}

	old, recent := s.createConversation(t), s.createConversation(t)
	for _, c := range []conversation{old, recent} {
		s.post(t, c, "My phone number is 555 0100", "p-"+c.ID)
		s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", agent, nil).expect(t, http.StatusOK)
	}
	if _, err := s.Pool.Exec(ctx, `UPDATE conversations SET closed_at = now() - interval '40 days' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"retention", "run"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("tandem retention run %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	if out := cli("--dry-run"); !strings.Contains(out, "0 would be deleted, 1 would be anonymised") {
		t.Fatalf("dry run: %q", out)
	}
	if out := cli(); !strings.Contains(out, "0 were deleted, 1 were anonymised") {
		t.Fatalf("run: %q", out)
	}
	var tr struct {
		Messages []apiMessage `json:"messages"`
	}
	s.do(t, "GET", "/api/v1/conversations/"+old.ID+"/transcript", agent, nil).expect(t, http.StatusOK).decode(t, &tr)
	for _, m := range tr.Messages {
		if strings.Contains(m.Text, "555") {
			t.Fatalf("anonymised transcript still has %q", m.Text)
		}
	}
	if msgs := s.messages(t, recent, 0); len(msgs) == 0 || !strings.Contains(msgs[0].Text, "555 0100") {
		t.Fatalf("the recent conversation lost its messages: %+v", msgs)
	}
	var audit struct {
		Records []struct{ Action string } `json:"records"`
	}
	s.do(t, "GET", "/api/v1/audit", admin, nil).expect(t, http.StatusOK).decode(t, &audit)
	actions := fmt.Sprint(audit.Records)
	if !strings.Contains(actions, "retention.run") || !strings.Contains(actions, "settings.update") {
		t.Fatalf("audit %s: want the setting and the run", actions)
	}
}
