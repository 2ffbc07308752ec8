package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/soak"
)

// traffic sends messages in one conversation from several senders until
// stopped, and keeps what was acknowledged (client_msg_id → seq).
type traffic struct {
	t     *testing.T
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[string]int64
	errs  []error
}

func newTraffic(t *testing.T) *traffic {
	return &traffic{t: t, stop: make(chan struct{}), acked: map[string]int64{}}
}

// sender runs send with ids prefix-0, prefix-1, … until stopped; each send
// retries through faults until acknowledged.
func (tr *traffic) sender(ctx context.Context, prefix string, send func(ctx context.Context, text, id string) (int64, error)) {
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			id := fmt.Sprintf("%s-%d", prefix, i)
			seq, err := send(ctx, "message "+id, id)
			tr.mu.Lock()
			if err != nil {
				tr.errs = append(tr.errs, fmt.Errorf("%s: %w", id, err))
			} else {
				tr.acked[id] = seq
			}
			tr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

func (tr *traffic) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.acked)
}

// waitMore waits until n more messages than now are acknowledged.
func (tr *traffic) waitMore(n int) {
	tr.t.Helper()
	target := tr.count() + n
	pollUntilFor(tr.t, fmt.Sprintf("%d acknowledged messages", target), 30*time.Second, func() bool { return tr.count() >= target })
}

// finish stops the senders and returns what was acknowledged.
func (tr *traffic) finish() map[string]int64 {
	tr.t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	for _, err := range tr.errs {
		tr.t.Errorf("sender: %v", err)
	}
	return tr.acked
}

// pollUntilFor is pollUntil with its own bound.
func pollUntilFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify checks a conversation end to end: every acknowledged message is in
// the transcript exactly once, at its seq; the stream received every seq
// exactly once; and each customer message has its reply.
func verify(t *testing.T, ctx context.Context, cli *soak.Client, conv soak.Conversation, st *soak.Stream, acked map[string]int64, replies bool) []soak.Message {
	t.Helper()
	var msgs []soak.Message
	var last int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		msgs, last, err = cli.Transcript(ctx, conv.ID, conv.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !replies {
			break
		}
		// The customer is never left waiting: a reply follows the last
		// customer message. (Each message normally gets its own turn; one
		// whose acknowledgement was lost, and that was resent, gets none,
		// and the next message's turn answers both.)
		if len(msgs) > 0 && msgs[len(msgs)-1].Role != "customer" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last customer message (seq %d) has no answer after 30 s", msgs[len(msgs)-1].Seq)
		}
		time.Sleep(50 * time.Millisecond)
	}
	found, lost, dups, problems := soak.Check(msgs, acked)
	if lost != 0 || dups != 0 || found != len(acked) || len(problems) > 0 {
		t.Fatalf("%d acknowledged, %d found, %d lost, %d duplicated: %s", len(acked), found, lost, dups, strings.Join(problems, "; "))
	}
	if err := st.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	missing, dup, problems := st.Received(last)
	if missing != 0 || dup != 0 || len(problems) > 0 {
		t.Fatalf("socket: %d missing, %d duplicated of %d: %s", missing, dup, last, strings.Join(problems, "; "))
	}
	return msgs
}

// TestDatabaseRestart restarts PostgreSQL under traffic, once as an
// operator does (fast) and once as a crash does (immediate): while it is
// down, requests fail with 503 and code unavailable and /readyz is not
// ready; then everything recovers on its own (the pool reconnects, the
// LISTEN connection is back, sockets resume by seq), and no acknowledged
// message is lost or stored twice. The database is a private cluster: the
// shared one is never restarted.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	cl := dbtest.NewCluster(t)
	s := startEnv(t, cl.URL(), false, map[string]string{"TANDEM_RATE_MESSAGES": "0", "TANDEM_DB_MAX_CONNS": "6",
		// Turns left unanswered are run again after 9 s.
		"TANDEM_BOT_TURN_TIMEOUT": "2s"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := soak.NewClient(soak.NewInstances(s.URL()))
	conv, err := cli.NewConversation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	st := cli.NewStream(conv.ID, conv.Token)
	go st.Run(runCtx)

	tr := newTraffic(t)
	tr.sender(ctx, "rest", func(ctx context.Context, text, id string) (int64, error) {
		return cli.Post(ctx, conv.ID, conv.Token, text, id)
	})
	tr.sender(ctx, "ws", st.Send)
	tr.waitMore(20)

	for _, immediate := range []bool{false, true} {
		if err := cl.Stop(immediate); err != nil {
			t.Fatal(err)
		}
		// Down: a clear 503, and not ready.
		r := s.do(t, "POST", "/api/v1/conversations", "", nil)
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "unavailable" || !strings.Contains(string(r.body), "database") {
			t.Fatalf("with the database down: %d %s; want 503 unavailable naming the database", r.status, r.body)
		}
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		r = s.do(t, "GET", "/api/v1/conversations/"+conv.ID+"/messages", conv.Token, nil)
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "unavailable" {
			t.Fatalf("reading with the database down: %d %s", r.status, r.body)
		}
		if r := s.do(t, "GET", "/readyz", "", nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not ready") {
			t.Fatalf("/readyz with the database down: %d %s", r.status, r.body)
		}
		if err := cl.Start(); err != nil {
			t.Fatal(err)
		}
		// Up again, on its own.
		pollUntilFor(t, "/readyz ready again", 30*time.Second, func() bool {
			return s.do(t, "GET", "/readyz", "", nil).status == http.StatusOK
		})
		tr.waitMore(20)
	}

	// The LISTEN connection is back: a message posted now reaches an open
	// socket live, without a reconnect.
	reconnects := cli.Stats.Reconnects.Load()
	seq, err := cli.Post(ctx, conv.ID, conv.Token, "after the restarts", "final")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if n := cli.Stats.Reconnects.Load(); n != reconnects {
		t.Logf("the socket reconnected %d times while the last message was delivered", n-reconnects)
	}
	acked := tr.finish()
	acked["final"] = seq
	verify(t, ctx, cli, conv, st, acked, true)
	t.Logf("%d messages acknowledged; %d answers 503, %d refused connections, %d socket reconnects, %d resends",
		len(acked), cli.Stats.Unavailable.Load(), cli.Stats.Refused.Load(), cli.Stats.Reconnects.Load(), cli.Stats.Resent.Load())
	if cli.Stats.Reconnects.Load() == 0 {
		t.Error("the socket never reconnected: the restarts did not reach it")
	}
}

// childEnv, when set, makes the test binary run the gateway instead of
// the tests: TestInstanceKilled's instance A, a process of its own that
// the test kills with SIGKILL.
const childEnv = "TANDEM_TEST_CHILD_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childServe())
	}
	os.Exit(m.Run())
}

// childServe is `tandem serve` with the placeholder responder, as
// startPlaceholderServer wires it: one reply per customer message.
func childServe() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger := newLogger(cfg, os.Stderr)
	m, err := NewMain(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m.Conv.SetResponder(handoff.Unconfigured{})
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger.Info("tandem serving", "url", m.URL())
	<-ctx.Done()
	m.Close()
	return 0
}

// child is a gateway running in a process of its own.
type child struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan struct{}
}

// startChild runs `tandem serve` on 127.0.0.1:0 over dbURL in a child
// process, and kills it when the test ends.
func startChild(t *testing.T, dbURL string, extra ...string) *child {
	t.Helper()
	c := &child{logs: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childEnv+"=1", "DATABASE_URL="+dbURL, "TANDEM_ADDR=127.0.0.1:0",
		"TANDEM_SECRET="+testSecret, "TANDEM_DATA_DIR="+t.TempDir(), "TANDEM_LOG_LEVEL=info",
		"LLM_BASE_URL=", "EMBEDDING_MODEL=", "TANDEM_ALLOWED_ORIGINS=")
	c.cmd.Env = append(c.cmd.Env, extra...)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout = c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			c.logs.Write([]byte(line + "\n"))
			if i := strings.Index(line, "url=http://"); !sent && strings.Contains(line, "tandem serving") && i >= 0 {
				urls <- strings.Fields(line[i+4:])[0]
				sent = true
			}
		}
		c.cmd.Wait()
	}()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("instance A's log:\n%s", c.logs.String())
		}
	})
	select {
	case c.url = <-urls:
	case <-c.done:
		t.Fatalf("instance A exited: %s", c.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("instance A did not start: %s", c.logs.String())
	}
	return c
}

// kill ends the process at once (SIGKILL): no shutdown, no close frames,
// bot turns in flight lost.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// TestInstanceKilled: customers and an agent are connected to instance A
// when it is killed (SIGKILL); they reconnect to instance B with after=
// their last seq and, across the switch and with messages sent while they
// reconnect, every acknowledged message is stored once and every event
// reaches each socket exactly once. Bot turns A took with it are answered
// by B's sweep, so no customer is left without an answer.
func TestInstanceKilled(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	extra := []string{"TANDEM_RATE_MESSAGES=0", "TANDEM_BOT_TURN_TIMEOUT=2s"}
	a := startChild(t, dbURL, extra...)
	b := startEnv(t, dbURL, false, map[string]string{"TANDEM_RATE_MESSAGES": "0", "TANDEM_BOT_TURN_TIMEOUT": "2s"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst := soak.NewInstances(a.url) // everyone starts on A
	cli := soak.NewClient(inst)
	runCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()

	// Three customers with the bot, and one whose conversation an agent
	// took over.
	type party struct {
		conv    soak.Conversation
		cust    *soak.Stream
		agent   *soak.Stream
		traffic *traffic
	}
	var parties []*party
	for range 4 {
		conv, err := cli.NewConversation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := &party{conv: conv, cust: cli.NewStream(conv.ID, conv.Token), traffic: newTraffic(t)}
		go p.cust.Run(runCtx)
		parties = append(parties, p)
	}
	_, agentToken := b.staff(t, "Kill Agent", "agent")
	taken := parties[3]
	if _, err := cli.Post(ctx, taken.conv.ID, agentToken, "Hello, I am taking over.", "agent-hello"); err != nil {
		t.Fatal(err)
	}
	taken.agent = cli.NewStream(taken.conv.ID, agentToken)
	go taken.agent.Run(runCtx)
	agentWS := dialRaw(t, a.url, "/ws/agent?token="+agentToken)
	if f := readHFrame(t, agentWS); f.Type != "hello" {
		t.Fatalf("agent socket on A: first frame %s", f)
	}

	for i, p := range parties {
		p.traffic.sender(ctx, fmt.Sprintf("c%d-ws", i), p.cust.Send)
		conv := p.conv
		p.traffic.sender(ctx, fmt.Sprintf("c%d-rest", i), func(ctx context.Context, text, id string) (int64, error) {
			return cli.Post(ctx, conv.ID, conv.Token, text, id)
		})
		if p.agent != nil {
			p.traffic.sender(ctx, "agent-ws", p.agent.Send)
		}
		p.traffic.waitMore(10)
	}

	a.kill()
	inst.Set(a.url, b.URL()) // A refuses; clients move on to B
	// The agent's console reconnects to B and is told what it holds.
	agentWS = dialRaw(t, b.URL(), "/ws/agent?token="+agentToken)
	_ = agentWS.SetReadDeadline(time.Now().Add(wait))
	_, hello, err := agentWS.ReadMessage()
	if err != nil || !strings.Contains(string(hello), `"type":"hello"`) || !strings.Contains(string(hello), taken.conv.ID) {
		t.Fatalf("agent socket on B: %s %v; want a hello listing the conversation it holds", hello, err)
	}
	for _, p := range parties {
		p.traffic.waitMore(10)
	}
	for i, p := range parties {
		acked := p.traffic.finish()
		verify(t, ctx, cli, p.conv, p.cust, acked, p.agent == nil)
		if p.agent != nil {
			verify(t, ctx, cli, p.conv, p.agent, acked, false)
		}
		t.Logf("conversation %d: %d messages acknowledged", i, len(acked))
	}
	t.Logf("%d refused connections, %d answers 503, %d socket reconnects, %d resends",
		cli.Stats.Refused.Load(), cli.Stats.Unavailable.Load(), cli.Stats.Reconnects.Load(), cli.Stats.Resent.Load())
	if cli.Stats.Reconnects.Load() < int64(len(parties)) {
		t.Errorf("%d reconnects for %d sockets: the kill did not reach them", cli.Stats.Reconnects.Load(), len(parties)+1)
	}
}

// dialRaw opens a WebSocket at base+path and closes it when the test ends.
func dialRaw(t *testing.T, base, path string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(strings.Replace(base, "http://", "ws://", 1)+path, nil)
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

func readHFrame(t *testing.T, conn *websocket.Conn) hframe {
	t.Helper()
	return next(t, conn, func(hframe) bool { return true })
}
