package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// escalatingBot is the test Responder of these tests: "escalate team=T
// priority=N" escalates, anything else gets an answer. The real bot is
// tested on its own; here the point is what happens after it hands off.
type escalatingBot struct{}

var escalateRE = regexp.MustCompile(`escalate(?: team=(\S*))?(?: priority=(-?\d+))?`)

func (escalatingBot) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	m := escalateRE.FindStringSubmatch(turn.Message.Text)
	if m == nil {
		return handoff.Reply{Text: "A bot answer.", Meta: handoff.Meta{Decision: "answer"}}, nil
	}
	p, _ := strconv.Atoi(m[2])
	return handoff.Reply{Text: "Let me find a person for you.", Meta: handoff.Meta{Decision: "escalate", Reason: "customer_asked"},
		Escalate: &handoff.Escalation{Reason: "customer_asked", Team: m[1], Priority: p, Summary: "Wants a person about a refund.",
			Intent: "talk_to_human", Confidence: 0.91, LastAnswer: "Refunds take 5 days.",
			Sources: []handoff.Source{{DocumentID: "d1", Title: "Refunds", ChunkID: "c1"}}}}, nil
}

// testRouting ticks fast and has a short grace period.
var testRouting = handoff.Routing{Tick: 50 * time.Millisecond, Grace: time.Second,
	Heartbeat: 100 * time.Millisecond, DefaultSLA: time.Hour}

// startHandoffServer is startServer with the escalating test bot and the
// given routing, set before the server runs.
func startHandoffServer(t *testing.T, dbURL string, r handoff.Routing) *server {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL": dbURL, "TANDEM_ADDR": "127.0.0.1:0", "TANDEM_SECRET": testSecret,
		"TANDEM_DATA_DIR": t.TempDir(), "TANDEM_WAIT_TIMEOUT": "5s", "TANDEM_DB_MAX_CONNS": "8",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if err := cfg.ResolveLocal(); err != nil {
		t.Fatalf("ResolveLocal: %v", err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := NewMain(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("NewMain: %v", err)
	}
	m.Conv.SetResponder(escalatingBot{})
	m.Conv.SetRouting(r)
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("Run: %v", err)
	}
	s := &server{Main: m, t: t, hc: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		s.hc.CloseIdleConnections()
	})
	return s
}

// staff adds a staff user straight into the database and opens an API
// session for them, skipping the password hash (sign-in is tested
// elsewhere). It returns the user's id and token.
func (s *server) staff(t testing.TB, name string, roles ...string) (string, string) {
	t.Helper()
	ctx := context.Background()
	var id string
	email := strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@example.com"
	if err := s.Pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles) VALUES ($1, $2, 'x', $3)
		RETURNING id`, email, name, roles).Scan(&id); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Auth.NewSession(ctx, id, "api")
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

// hframe is any frame on a customer or agent socket.
type hframe struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	State          string          `json:"state"`
	Role           string          `json:"role"`
	Message        *apiMessage     `json:"message"`
	Data           json.RawMessage `json:"data"`
	ClientMsgID    string          `json:"client_msg_id"`
	CSAT           bool            `json:"csat"`
	Agent          *handoff.Agent  `json:"agent"`
	Queue          []struct {
		ID string `json:"id"`
	} `json:"queue"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func (f hframe) String() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// dialWS opens a WebSocket at path (with the query) and closes it when the
// test ends.
func (s *server) dialWS(t *testing.T, path string, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial("ws://"+s.Addr()+path, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// agentSocket opens /ws/agent and reads its hello frame.
func (s *server) agentSocket(t *testing.T, token string) (*websocket.Conn, hframe) {
	t.Helper()
	conn := s.dialWS(t, "/ws/agent?token="+url.QueryEscape(token), nil)
	hello := next(t, conn, func(f hframe) bool { return true })
	if hello.Type != "hello" || hello.Agent == nil {
		t.Fatalf("first frame %s, want hello", hello)
	}
	return conn, hello
}

// next reads frames until one satisfies ok, failing after the wait.
func next(t *testing.T, conn *websocket.Conn, ok func(hframe) bool) hframe {
	t.Helper()
	deadline := time.Now().Add(wait)
	var seen []string
	for {
		_ = conn.SetReadDeadline(deadline)
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v; frames so far: %s", err, strings.Join(seen, "\n"))
		}
		var f hframe
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		if ok(f) {
			return f
		}
		seen = append(seen, string(data))
	}
}

// isMessage matches a message frame of role whose text contains text.
func isMessage(role, text string) func(hframe) bool {
	return func(f hframe) bool {
		return f.Type == "message" && f.Message != nil && f.Message.Role == role && strings.Contains(f.Message.Text, text)
	}
}

// escalateOver posts the escalating message over REST and waits for the
// bot's turn; it returns the state then.
func (s *server) escalateOver(t *testing.T, c conversation, team string, priority int) string {
	t.Helper()
	var out struct {
		State string `json:"state"`
	}
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages?wait=true", c.Token,
		map[string]string{"text": fmt.Sprintf("I want a person: escalate team=%s priority=%d", team, priority)}).
		expect(t, http.StatusCreated).decode(t, &out)
	return out.State
}

// conversationState reads a conversation's state as its customer.
func (s *server) conversationState(t *testing.T, c conversation) string {
	t.Helper()
	var out struct{ State string }
	s.do(t, "GET", "/api/v1/conversations/"+c.ID, c.Token, nil).expect(t, http.StatusOK).decode(t, &out)
	return out.State
}

// pollUntil polls cond until it holds.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandoffEscalateClaimReplyCloseCSAT(t *testing.T) {
	t.Parallel()
	s := startHandoffServer(t, dbtest.New(t), testRouting)
	_, alex := s.staff(t, "Alex Agent", "agent")
	_, sam := s.staff(t, "Sam Agent", "agent")
	_, editor := s.staff(t, "Eddie Editor", "editor")

	var c conversation
	s.do(t, "POST", "/api/v1/conversations", "", map[string]any{"customer": map[string]string{"name": "Chris", "email": "chris@example.com"}}).
		expect(t, http.StatusCreated).decode(t, &c)
	cws := s.dialWS(t, fmt.Sprintf("/ws/conversations/%s?token=%s&after=0", c.ID, url.QueryEscape(c.Token)), nil)

	// Nobody is online: the conversation waits as a ticket.
	if st := s.escalateOver(t, c, "", 1); st != "queued" {
		t.Fatalf("state after escalation %q, want queued", st)
	}
	next(t, cws, func(f hframe) bool { return f.Type == "state" && f.State == "queued" })
	next(t, cws, isMessage("system", "No one from our team is online"))

	var q struct {
		Conversations []handoff.QueueEntry `json:"conversations"`
	}
	s.do(t, "GET", "/api/v1/queue", alex, nil).expect(t, http.StatusOK).decode(t, &q)
	if len(q.Conversations) != 1 || q.Conversations[0].ID != c.ID || q.Conversations[0].Reason != "customer_asked" ||
		q.Conversations[0].Priority != 1 || !strings.Contains(q.Conversations[0].Preview, "I want a person") {
		t.Fatalf("queue %+v", q.Conversations)
	}
	s.do(t, "GET", "/api/v1/queue", editor, nil).expect(t, http.StatusForbidden)
	s.do(t, "GET", "/api/v1/queue", c.Token, nil).expect(t, http.StatusUnauthorized)
	s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/transcript", c.Token, nil).expect(t, http.StatusUnauthorized)

	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/claim", alex, nil).expect(t, http.StatusOK)
	if code := s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/claim", sam, nil).expect(t, http.StatusConflict).errorCode(t); code != "conflict" {
		t.Fatalf("code %q", code)
	}
	next(t, cws, isMessage("system", "Alex Agent has joined"))

	var tr handoff.Transcript
	s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/transcript", alex, nil).expect(t, http.StatusOK).decode(t, &tr)
	if tr.Handoff == nil || tr.Handoff.Reason != "customer_asked" || tr.Handoff.LastAnswer != "Refunds take 5 days." ||
		tr.Customer.Email != "chris@example.com" || len(tr.Messages) < 3 || len(tr.Events) < 2 {
		t.Fatalf("transcript %+v", tr)
	}

	// Only the assignee replies; the customer sees it live.
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", sam, map[string]string{"text": "Sam here"}).expect(t, http.StatusConflict)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", alex, map[string]string{"text": "Hi Chris, Alex here."}).expect(t, http.StatusCreated)
	next(t, cws, isMessage("agent", "Alex here"))

	// A private note stays with the staff.
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/notes", alex, map[string]string{"text": "secret: check order 42"}).expect(t, http.StatusCreated)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/notes", c.Token, map[string]string{"text": "x"}).expect(t, http.StatusUnauthorized)
	s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/notes", c.Token, nil).expect(t, http.StatusUnauthorized)
	if r := s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/messages", c.Token, nil).expect(t, http.StatusOK); strings.Contains(string(r.body), "order 42") {
		t.Fatalf("the customer sees the note: %s", r.body)
	}

	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", sam, map[string]string{"resolution": "resolved"}).expect(t, http.StatusForbidden)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", alex, map[string]string{"resolution": "resolved"}).expect(t, http.StatusOK)
	req := next(t, cws, func(f hframe) bool { return f.Type == "csat.request" || strings.Contains(string(f.Data), "order 42") })
	if req.Type != "csat.request" {
		t.Fatalf("the customer's socket carried the note: %s", req)
	}
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/csat", alex, map[string]any{"score": 5}).expect(t, http.StatusForbidden)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/csat", c.Token, map[string]any{"score": 9}).expect(t, http.StatusBadRequest)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/csat", c.Token, map[string]any{"score": 5, "comment": "quick"}).expect(t, http.StatusCreated)
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/csat", c.Token, map[string]any{"score": 4}).expect(t, http.StatusConflict)

	// Writing again reopens it with the bot.
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages?wait=true", c.Token, map[string]string{"text": "one more thing"}).expect(t, http.StatusCreated)
	if st := s.conversationState(t, c); st != "bot" {
		t.Fatalf("state after the customer wrote again %q, want bot", st)
	}
	s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/transcript", alex, nil).expect(t, http.StatusOK).decode(t, &tr)
	if len(tr.CSAT) != 1 || tr.CSAT[0].Score != 5 || len(tr.Notes) != 1 {
		t.Fatalf("transcript csat %+v notes %+v", tr.CSAT, tr.Notes)
	}
	var audit struct {
		Records []handoff.AuditRecord `json:"records"`
	}
	s.do(t, "GET", "/api/v1/audit?subject_id="+c.ID, alex, nil).expect(t, http.StatusForbidden)
	_, admin := s.staff(t, "Ada Admin", "admin")
	s.do(t, "GET", "/api/v1/audit?subject_id="+c.ID, admin, nil).expect(t, http.StatusOK).decode(t, &audit)
	if len(audit.Records) < 5 {
		t.Fatalf("audit %+v", audit.Records)
	}
}

func TestAgentSocket(t *testing.T) {
	t.Parallel()
	s := startHandoffServer(t, dbtest.New(t), testRouting)
	alexID, alex := s.staff(t, "Alex Agent", "agent")
	_, editor := s.staff(t, "Eddie Editor", "editor")

	t.Run("Refused", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: wait}
		for name, tc := range map[string]struct {
			path   string
			header http.Header
			status int
		}{
			"NoToken":     {"/ws/agent", nil, http.StatusUnauthorized},
			"Editor":      {"/ws/agent?token=" + editor, nil, http.StatusForbidden},
			"OtherOrigin": {"/ws/agent?token=" + alex, http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		} {
			_, resp, err := d.Dial("ws://"+s.Addr()+tc.path, tc.header)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Fatalf("%s: dial err %v status %d, want %d", name, err, status, tc.status)
			}
		}
		// The session cookie works too.
		conn := s.dialWS(t, "/ws/agent", http.Header{"Cookie": {"tandem_session=" + alex}})
		conn.Close()
	})

	s.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "busy"}).expect(t, http.StatusBadRequest)
	var st struct{ Agent handoff.Agent }
	s.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "online"}).expect(t, http.StatusOK).decode(t, &st)
	if st.Agent.Status != "online" || st.Agent.Capacity != 3 {
		t.Fatalf("status %+v, want online with the default capacity 3", st.Agent)
	}
	aws, hello := s.agentSocket(t, alex)
	if hello.Agent.ID != alexID || hello.Agent.Status != "online" {
		t.Fatalf("hello %s", hello)
	}

	c := s.createConversation(t)
	cws := s.dialWS(t, fmt.Sprintf("/ws/conversations/%s?token=%s&after=0", c.ID, url.QueryEscape(c.Token)), nil)
	s.escalateOver(t, c, "", 0)
	// Assigned automatically; the agent is told, the customer learns who.
	as := next(t, aws, func(f hframe) bool { return f.Type == "assigned" && f.ConversationID == c.ID })
	if !strings.Contains(string(as.Data), `"reason":"auto_assigned"`) {
		t.Fatalf("assigned frame %s", as)
	}
	next(t, cws, isMessage("system", "Alex Agent has joined"))

	// Customer messages and typing reach the agent's socket.
	sendFrame(t, cws, map[string]string{"type": "typing"})
	next(t, aws, func(f hframe) bool { return f.Type == "typing" && f.ConversationID == c.ID && f.Role == "customer" })
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", c.Token, map[string]string{"text": "My order is late"}).expect(t, http.StatusCreated)
	next(t, aws, isMessage("customer", "My order is late"))

	// The agent types and answers over their socket.
	sendFrame(t, aws, map[string]string{"type": "typing", "conversation_id": c.ID})
	next(t, cws, func(f hframe) bool { return f.Type == "typing" && f.Role == "agent" })
	sendFrame(t, aws, map[string]string{"type": "message", "conversation_id": c.ID, "text": "Let me check.", "client_msg_id": "a1"})
	ack := next(t, aws, func(f hframe) bool { return f.Type == "ack" })
	if ack.ClientMsgID != "a1" || ack.Seq == 0 {
		t.Fatalf("ack %s", ack)
	}
	next(t, cws, isMessage("agent", "Let me check."))

	// A note reaches the agent's socket, never the customer's.
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/notes", alex, map[string]string{"text": "private: order 42"}).expect(t, http.StatusCreated)
	next(t, aws, func(f hframe) bool { return f.Type == "note" && strings.Contains(string(f.Data), "order 42") })

	// Close; the customer scores over the socket.
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", alex, map[string]string{"resolution": "answered"}).expect(t, http.StatusOK)
	next(t, aws, func(f hframe) bool { return f.Type == "unassigned" && f.ConversationID == c.ID })
	if f := next(t, cws, func(f hframe) bool { return f.Type == "csat.request" || strings.Contains(string(f.Data), "order 42") }); f.Type != "csat.request" {
		t.Fatalf("the customer's socket carried the note: %s", f)
	}
	sendFrame(t, cws, map[string]any{"type": "csat", "score": 0})
	if f := next(t, cws, func(f hframe) bool { return f.Type == "error" }); f.Error == nil || f.Error.Code != "invalid" {
		t.Fatalf("bad score answered %s", f)
	}
	sendFrame(t, cws, map[string]any{"type": "csat", "score": 4, "comment": "fine"})
	// The event reaches this instance's sockets at commit, so it may come
	// before or after the ack: wait for both, in either order.
	var acked, scored bool
	for !acked || !scored {
		f := next(t, cws, func(f hframe) bool { return (f.Type == "ack" && f.CSAT) || f.Type == "csat" })
		acked, scored = acked || f.Type == "ack", scored || f.Type == "csat"
	}

	// Queue changes reach every agent.
	s.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "online", "capacity": 0}).expect(t, http.StatusOK)
	c2 := s.createConversation(t)
	s.escalateOver(t, c2, "", 0)
	next(t, aws, func(f hframe) bool {
		return f.Type == "queue" && f.ConversationID == c2.ID && strings.Contains(string(f.Data), `"change":"added"`)
	})
	s.do(t, "POST", "/api/v1/conversations/"+c2.ID+"/claim", alex, nil).expect(t, http.StatusOK)
	next(t, aws, func(f hframe) bool {
		return f.Type == "queue" && f.ConversationID == c2.ID && strings.Contains(string(f.Data), `"change":"removed"`)
	})
}

func TestHandoffAcrossInstances(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	a := startHandoffServer(t, dbURL, testRouting)
	b := startHandoffServer(t, dbURL, testRouting)
	_, alex := b.staff(t, "Alex Agent", "agent")
	b.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "online"}).expect(t, http.StatusOK)
	aws, _ := b.agentSocket(t, alex)

	// The customer is on instance A, the agent on B.
	c := a.createConversation(t)
	cws := a.dialWS(t, fmt.Sprintf("/ws/conversations/%s?token=%s&after=0", c.ID, url.QueryEscape(c.Token)), nil)
	a.escalateOver(t, c, "", 0)
	next(t, aws, func(f hframe) bool { return f.Type == "assigned" && f.ConversationID == c.ID })
	next(t, cws, isMessage("system", "Alex Agent has joined"))

	a.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", c.Token, map[string]string{"text": "Hello from A"}).expect(t, http.StatusCreated)
	next(t, aws, isMessage("customer", "Hello from A"))
	sendFrame(t, cws, map[string]string{"type": "typing"})
	next(t, aws, func(f hframe) bool { return f.Type == "typing" && f.Role == "customer" })

	b.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", alex, map[string]string{"text": "Hello from B"}).expect(t, http.StatusCreated)
	next(t, cws, isMessage("agent", "Hello from B"))
	b.do(t, "POST", "/api/v1/conversations/"+c.ID+"/close", alex, nil).expect(t, http.StatusOK)
	next(t, cws, func(f hframe) bool { return f.Type == "csat.request" })
	a.do(t, "POST", "/api/v1/conversations/"+c.ID+"/csat", c.Token, map[string]any{"score": 5}).expect(t, http.StatusCreated)
}

func TestAgentDisconnectRequeues(t *testing.T) {
	t.Parallel()
	s := startHandoffServer(t, dbtest.New(t), testRouting)
	_, alex := s.staff(t, "Alex Agent", "agent")
	s.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "online"}).expect(t, http.StatusOK)
	aws, _ := s.agentSocket(t, alex)

	answered, unanswered := s.createConversation(t), s.createConversation(t)
	for _, c := range []conversation{answered, unanswered} {
		s.escalateOver(t, c, "", 0)
		next(t, aws, func(f hframe) bool { return f.Type == "assigned" && f.ConversationID == c.ID })
	}
	s.do(t, "POST", "/api/v1/conversations/"+answered.ID+"/messages", alex, map[string]string{"text": "On it"}).expect(t, http.StatusCreated)
	aws.Close()

	var me struct {
		Agent         handoff.Agent
		Conversations []handoff.Conversation
	}
	pollUntil(t, "the agent is away once the grace period has passed", func() bool {
		s.do(t, "GET", "/api/v1/agents/me", alex, nil).expect(t, http.StatusOK).decode(t, &me)
		return me.Agent.Status == "away"
	})
	pollUntil(t, "the unanswered chat is queued again", func() bool { return s.conversationState(t, unanswered) == "queued" })
	if st := s.conversationState(t, answered); st != "assigned" {
		t.Fatalf("the answered chat is %s, want still assigned", st)
	}
	msgs := s.messages(t, unanswered, 0)
	if last := msgs[len(msgs)-1]; last.Role != "system" || !strings.Contains(last.Text, "had to step away") {
		t.Fatalf("the customer was told %+v", last)
	}
}

func TestUserCreateWithTeam(t *testing.T) {
	dbURL := dbtest.New(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("TANDEM_SECRET", testSecret)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	var stdout, stderr strings.Builder
	args := []string{"user", "create", "--email", "bea@example.com", "--password", "long enough", "--name", "Bea", "--team", "Billing, Returns"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "created team Billing") || !strings.Contains(out, "joined team Returns") {
		t.Fatalf("stdout %q", out)
	}
	s := startHandoffServer(t, dbURL, testRouting)
	_, admin := s.staff(t, "Ada Admin", "admin")
	var out struct{ Team handoff.Team }
	s.do(t, "GET", "/api/v1/teams/billing", admin, nil).expect(t, http.StatusOK).decode(t, &out)
	if len(out.Team.Members) != 1 || out.Team.Members[0].Email != "bea@example.com" {
		t.Fatalf("team %+v", out.Team)
	}
}
