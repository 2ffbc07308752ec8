package handoff_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/errs"
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// escalator is a test Responder: a message "escalate team=T priority=N"
// escalates with that team and priority; anything else gets an answer.
type escalator struct{}

var escalateRE = regexp.MustCompile(`escalate(?: team=(\S*))?(?: priority=(-?\d+))?`)

func (escalator) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	m := escalateRE.FindStringSubmatch(turn.Message.Text)
	if m == nil {
		return handoff.Reply{Text: "A bot answer.", Meta: handoff.Meta{Decision: "answer"}}, nil
	}
	p, _ := strconv.Atoi(m[2])
	return handoff.Reply{Text: "Let me find a person for you.", Meta: handoff.Meta{Decision: "escalate", Reason: "customer_asked"},
		Escalate: &handoff.Escalation{Reason: "customer_asked", Team: m[1], Priority: p, Summary: "The customer wants a person.",
			Intent: "talk_to_human", Confidence: 0.93, LastAnswer: "I can help with returns.",
			Sources: []handoff.Source{{DocumentID: "d1", Title: "Returns", ChunkID: "c1"}}}}, nil
}

// env is a database with services over it.
type env struct {
	t    *testing.T
	url  string
	pool *pgxpool.Pool
	n    atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := dbtest.New(t)
	pool, err := db.Open(context.Background(), url, 24)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{t: t, url: url, pool: pool}
}

// fastRouting makes the routers tick often, for tests.
var fastRouting = handoff.Routing{Tick: 50 * time.Millisecond, Grace: 300 * time.Millisecond,
	Heartbeat: 50 * time.Millisecond, DefaultSLA: time.Hour}

// service starts a Service on its own pool (like another instance) and
// stops it when the test ends.
func (e *env) service(r handoff.Routing) *handoff.Service {
	e.t.Helper()
	return e.serviceWith(handoff.Options{Routing: r})
}

// serviceWith is service with more options.
func (e *env) serviceWith(opt handoff.Options) *handoff.Service {
	t := e.t
	t.Helper()
	pool, err := db.Open(context.Background(), e.url, 24)
	if err != nil {
		t.Fatal(err)
	}
	opt.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc := handoff.NewService(pool, escalator{}, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	select {
	case <-svc.Ready():
	case <-time.After(wait):
		t.Fatal("listener did not start")
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), wait)
		defer ccancel()
		svc.Close(cctx)
		cancel()
		<-done
		pool.Close()
	})
	return svc
}

// testWriter sends a service's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "level=ERROR") {
		// Deadlocks, serialisation failures and the like surface here.
		w.t.Errorf("service logged an error: %s", line)
	} else {
		w.t.Log(line)
	}
	return len(p), nil
}

// user adds a staff user straight into the database (no password hashing:
// these users never sign in) and returns its id.
func (e *env) user(name string, roles ...string) string {
	e.t.Helper()
	if len(roles) == 0 {
		roles = []string{"agent"}
	}
	var id string
	email := fmt.Sprintf("%s-%d@example.com", strings.ToLower(strings.ReplaceAll(name, " ", ".")), e.n.Add(1))
	if err := e.pool.QueryRow(context.Background(), `INSERT INTO users (email, display_name, password_hash, roles)
		VALUES ($1, $2, 'x', $3) RETURNING id`, email, name, roles).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// escalate starts a conversation and makes the bot escalate it to team
// with priority; it returns once the bot's turn has finished.
func escalate(t *testing.T, svc *handoff.Service, cust handoff.Customer, team string, priority int) string {
	t.Helper()
	id, err := tryEscalate(svc, cust, team, priority)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryEscalate is escalate for goroutines other than the test's.
func tryEscalate(svc *handoff.Service, cust handoff.Customer, team string, priority int) (string, error) {
	ctx := context.Background()
	conv, _, err := svc.CreateConversation(ctx, cust, false)
	if err != nil {
		return "", err
	}
	text := "I want a person, escalate team=" + team + " priority=" + strconv.Itoa(priority)
	res, err := svc.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleCustomer}, text, "")
	if err != nil {
		return "", err
	}
	select {
	case <-res.Turn:
	case <-time.After(wait):
		return "", fmt.Errorf("bot turn did not finish")
	}
	return conv.ID, nil
}

// customerSays posts text as the customer of convID (client_msg_id
// client) and waits for the bot's turn it starts, if any.
func customerSays(t *testing.T, svc *handoff.Service, convID, text, client string) *handoff.PostResult {
	t.Helper()
	res, err := svc.PostMessage(context.Background(), convID, handoff.Author{Role: handoff.RoleCustomer}, text, client)
	if err != nil {
		t.Fatal(err)
	}
	if res.Turn != nil {
		select {
		case <-res.Turn:
		case <-time.After(wait):
			t.Fatal("the bot's turn did not end")
		}
	}
	return res
}

// conv reads a conversation.
func conv(t *testing.T, svc *handoff.Service, id string) *handoff.Conversation {
	t.Helper()
	c, err := svc.Conversation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond until it holds or the wait runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code errs.Code) {
	t.Helper()
	if !errs.Is(err, code) {
		t.Fatalf("err %v, want %s", err, code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// online sets an agent online with capacity.
func online(t *testing.T, svc *handoff.Service, id string, capacity int) {
	t.Helper()
	if _, err := svc.SetStatus(context.Background(), handoff.AgentActor(id, false), id, handoff.StatusOnline, &capacity); err != nil {
		t.Fatal(err)
	}
}

// messages returns a conversation's messages.
func messages(t *testing.T, svc *handoff.Service, id string) []handoff.Message {
	t.Helper()
	msgs, err := svc.Messages(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// lastText is the newest message's text.
func lastText(t *testing.T, svc *handoff.Service, id string) string {
	t.Helper()
	msgs := messages(t, svc, id)
	if len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1].Text
}
