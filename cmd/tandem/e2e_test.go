package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/argon2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/wstest"
)

// testSecret is the site secret of every test server.
const testSecret = "0123456789abcdef0123456789abcdef"

// wait bounds every wait for an event in these tests.
const wait = 5 * time.Second

// server is one running gateway under test, with an HTTP client for it.
type server struct {
	*Main
	t         testing.TB
	hc        *http.Client
	logs      *syncBuffer // the server's log, when the helper that started it keeps it
	closeOnce sync.Once
	closeErr  error
}

// syncBuffer collects a server's log, shown when the test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServer runs a gateway on 127.0.0.1:0 over the database at dbURL,
// wired as the binary wires it, and closes it when the test ends.
func startServer(t *testing.T, dbURL string) *server {
	t.Helper()
	return start(t, dbURL, true)
}

// startPlaceholderServer is startServer with the placeholder responder in
// place of the bot, so that every customer message gets exactly one reply
// and the conversation stays with the bot: for tests of the transport, not
// of the answers.
func startPlaceholderServer(t *testing.T, dbURL string) *server {
	t.Helper()
	return start(t, dbURL, false)
}

func start(t *testing.T, dbURL string, realBot bool) *server {
	t.Helper()
	return startEnv(t, dbURL, realBot, nil)
}

// startEnv is start with more environment variables (or other values).
func startEnv(t testing.TB, dbURL string, realBot bool, extra map[string]string) *server {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":        dbURL,
		"TANDEM_ADDR":         "127.0.0.1:0",
		"TANDEM_SECRET":       testSecret,
		"TANDEM_DATA_DIR":     t.TempDir(),
		"TANDEM_WAIT_TIMEOUT": "5s",
		"TANDEM_DB_MAX_CONNS": "8",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if err := cfg.ResolveLocal(); err != nil {
		t.Fatalf("ResolveLocal: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := NewMain(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("NewMain: %v", err)
	}
	if !realBot {
		m.Conv.SetResponder(handoff.Unconfigured{})
	}
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

// close shuts the server down once and returns Close's error.
func (s *server) close() error {
	s.closeOnce.Do(func() { s.closeErr = s.Main.Close() })
	return s.closeErr
}

// response is an HTTP answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// apiError is the contract's error shape.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the error code of an error answer.
func (r *response) errorCode(t *testing.T) string {
	t.Helper()
	var e apiError
	r.decode(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error answer without code or message: %s", r.body)
	}
	return e.Error.Code
}

// do sends a request; body is sent as is when it is a string, as JSON
// otherwise. headers come in name, value pairs.
func (s *server) do(t testing.TB, method, path, token string, body any, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// expect fails the test unless the answer has the given status.
func (r *response) expect(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// apiMessage is a message as the API shows it.
type apiMessage struct {
	ID             string         `json:"id"`
	ConversationID string         `json:"conversation_id"`
	Seq            int64          `json:"seq"`
	Role           string         `json:"role"`
	AuthorID       string         `json:"author_id"`
	Text           string         `json:"text"`
	ClientMsgID    string         `json:"client_msg_id"`
	CreatedAt      time.Time      `json:"created_at"`
	Meta           map[string]any `json:"meta"`
}

type conversation struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	State string `json:"state"`
}

func (s *server) createConversation(t *testing.T) conversation {
	t.Helper()
	var c conversation
	s.do(t, "POST", "/api/v1/conversations", "", nil).expect(t, http.StatusCreated).decode(t, &c)
	if c.ID == "" || c.Token == "" || c.State != "bot" {
		t.Fatalf("created conversation %+v: want an id, a token and state bot", c)
	}
	return c
}

// post sends a customer message and returns the stored message.
func (s *server) post(t *testing.T, c conversation, text, clientMsgID string) apiMessage {
	t.Helper()
	var out struct {
		Message apiMessage `json:"message"`
	}
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", c.Token,
		map[string]string{"text": text, "client_msg_id": clientMsgID}).expect(t, http.StatusCreated).decode(t, &out)
	return out.Message
}

type waitResult struct {
	Message apiMessage  `json:"message"`
	Reply   *apiMessage `json:"reply"`
	State   string      `json:"state"`
}

// postWait sends a customer message with ?wait=true and returns the message
// and the reply it waited for.
func (s *server) postWait(t *testing.T, c conversation, text string) waitResult {
	t.Helper()
	var out waitResult
	s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages?wait=true", c.Token,
		map[string]string{"text": text}).expect(t, http.StatusCreated).decode(t, &out)
	if out.Reply == nil {
		t.Fatalf("?wait=true returned no reply to %q", text)
	}
	return out
}

// messages lists a conversation's messages after seq.
func (s *server) messages(t *testing.T, c conversation, after int64) []apiMessage {
	t.Helper()
	var out struct {
		Messages []apiMessage `json:"messages"`
	}
	s.do(t, "GET", fmt.Sprintf("/api/v1/conversations/%s/messages?after=%d", c.ID, after), c.Token, nil).
		expect(t, http.StatusOK).decode(t, &out)
	return out.Messages
}

// lastSeq returns the conversation's last_seq.
func (s *server) lastSeq(t *testing.T, c conversation) int64 {
	t.Helper()
	var out struct {
		LastSeq int64 `json:"last_seq"`
	}
	s.do(t, "GET", "/api/v1/conversations/"+c.ID, c.Token, nil).expect(t, http.StatusOK).decode(t, &out)
	return out.LastSeq
}

// settle waits (bounded) until every customer message has its reply, so
// the transcript no longer changes, and returns it.
func (s *server) settle(t *testing.T, c conversation) []apiMessage {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		msgs := s.messages(t, c, 0)
		customers, others := 0, 0
		for _, m := range msgs {
			if m.Role == "customer" {
				customers++
			} else {
				others++
			}
		}
		if customers == others {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot replies still missing after %v: %d customer messages, %d replies", wait, customers, others)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// frame is any server frame on a conversation WebSocket.
type frame struct {
	Type        string      `json:"type"`
	Seq         int64       `json:"seq"`
	ClientMsgID string      `json:"client_msg_id"`
	MessageID   string      `json:"message_id"`
	Message     *apiMessage `json:"message"`
	State       string      `json:"state"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *server) wsURL(convID, token string, after int64) string {
	return fmt.Sprintf("ws://%s/ws/conversations/%s?token=%s&after=%d", s.Addr(), convID, url.QueryEscape(token), after)
}

// dial opens a conversation WebSocket, closed when the test ends.
func (s *server) dial(t *testing.T, c conversation, after int64) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(s.wsURL(c.ID, c.Token, after), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFrame(t *testing.T, conn *websocket.Conn) frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

// readUntil reads frames until a sequenced event (a message or state event)
// with seq last arrives; it returns the sequenced events and the other
// frames (acks, typing) apart.
func readUntil(t *testing.T, conn *websocket.Conn, last int64) (events, others []frame) {
	t.Helper()
	for {
		f := readFrame(t, conn)
		if f.Seq == 0 || (f.Type != "message" && f.Type != "state") {
			others = append(others, f)
			continue
		}
		if f.Type == "message" && (f.Message == nil || f.Message.Seq != f.Seq) {
			t.Fatalf("message event without its message: %+v", f)
		}
		events = append(events, f)
		if f.Seq > last {
			t.Fatalf("got seq %d while waiting for %d: a gap or an unexpected event", f.Seq, last)
		}
		if f.Seq == last {
			return events, others
		}
	}
}

// checkGapless fails unless events are exactly seq after+1 … last, in order.
func checkGapless(t *testing.T, events []frame, after, last int64) {
	t.Helper()
	var seqs []int64
	for _, e := range events {
		seqs = append(seqs, e.Seq)
	}
	if int64(len(events)) != last-after {
		t.Fatalf("got %d events %v after seq %d, want %d up to %d", len(events), seqs, after, last-after, last)
	}
	for i, e := range events {
		if want := after + 1 + int64(i); e.Seq != want {
			t.Fatalf("event %d has seq %d, want %d (all: %v)", i, e.Seq, want, seqs)
		}
	}
}

func sendFrame(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	_ = conn.SetWriteDeadline(time.Now().Add(wait))
	if err := conn.WriteJSON(v); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// expectClose reads until the server closes the socket and checks the code.
func expectClose(t *testing.T, conn *websocket.Conn, code int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue // replayed or live events before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("socket ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return
	}
}

func TestConversations(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))

	t.Run("Create", func(t *testing.T) {
		c := s.createConversation(t)
		if c2 := s.createConversation(t); c2.ID == c.ID || c2.Token == c.Token {
			t.Fatalf("two conversations share id or token: %+v %+v", c, c2)
		}
		if got := s.lastSeq(t, c); got != 0 {
			t.Fatalf("new conversation has last_seq %d", got)
		}
	})

	t.Run("WaitForPlaceholderReply", func(t *testing.T) {
		c := s.createConversation(t)
		res := s.postWait(t, c, "Where is my parcel?")
		if res.Message.Role != "customer" || res.Message.Seq != 1 || res.Message.Text != "Where is my parcel?" || res.Message.ConversationID != c.ID {
			t.Fatalf("stored message %+v", res.Message)
		}
		if res.Reply.Role != "system" || res.Reply.Seq != 2 || !strings.Contains(res.Reply.Text, "not configured") {
			t.Fatalf("reply %+v: want the system placeholder saying the assistant is not configured", res.Reply)
		}
		if res.State != "bot" {
			t.Fatalf("state %q, want bot", res.State)
		}
	})

	t.Run("OrderingManyMessages", func(t *testing.T) {
		c := s.createConversation(t)
		const sequential, writers, perWriter = 20, 4, 5
		var prev int64
		for i := range sequential {
			m := s.post(t, c, fmt.Sprintf("seq-%02d", i), "")
			if m.Seq <= prev {
				t.Fatalf("message %d got seq %d after %d", i, m.Seq, prev)
			}
			prev = m.Seq
		}
		// Concurrent writers: each message stored once, seqs unique.
		var wg sync.WaitGroup
		errc := make(chan error, writers*perWriter)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					body := fmt.Sprintf(`{"text": "w%d-%d", "client_msg_id": "w%d-%d"}`, w, i, w, i)
					req, _ := http.NewRequest("POST", s.URL()+"/api/v1/conversations/"+c.ID+"/messages", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+c.Token)
					resp, err := s.hc.Do(req)
					if err != nil {
						errc <- err
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						errc <- fmt.Errorf("w%d-%d: status %d", w, i, resp.StatusCode)
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		total := int64(2 * (sequential + writers*perWriter)) // each with its reply
		msgs := s.settle(t, c)
		if int64(len(msgs)) != total || s.lastSeq(t, c) != total {
			t.Fatalf("%d messages, last_seq %d; want %d", len(msgs), s.lastSeq(t, c), total)
		}

		// The whole transcript, replayed over the WebSocket: 1…total.
		conn := s.dial(t, c, 0)
		events, _ := readUntil(t, conn, total)
		checkGapless(t, events, 0, total)
		seen := map[string]int{}
		var order []string
		for _, e := range events {
			if e.Message.Role == "customer" {
				seen[e.Message.Text]++
				if strings.HasPrefix(e.Message.Text, "seq-") {
					order = append(order, e.Message.Text)
				}
			}
		}
		for text, n := range seen {
			if n != 1 {
				t.Errorf("%q replayed %d times", text, n)
			}
		}
		if len(seen) != sequential+writers*perWriter {
			t.Errorf("%d distinct customer messages replayed, want %d", len(seen), sequential+writers*perWriter)
		}
		for i, text := range order {
			if want := fmt.Sprintf("seq-%02d", i); text != want {
				t.Fatalf("sequential message %d is %q, want %q (order %v)", i, text, want, order)
			}
		}
		// Nothing else is pending on the socket: the next event is the next seq.
		s.post(t, c, "sentinel", "")
		next, _ := readUntil(t, conn, total+1)
		checkGapless(t, next, total, total+1)
		if next[0].Message.Text != "sentinel" {
			t.Fatalf("event after the replay is %+v, want the sentinel", next[0].Message)
		}
	})

	t.Run("IdempotentRetry", func(t *testing.T) {
		c := s.createConversation(t)
		path := "/api/v1/conversations/" + c.ID + "/messages"
		body := map[string]string{"text": "hello", "client_msg_id": "retry-1"}
		var first, second struct {
			Message apiMessage `json:"message"`
		}
		s.do(t, "POST", path, c.Token, body).expect(t, http.StatusCreated).decode(t, &first)
		s.do(t, "POST", path, c.Token, body).expect(t, http.StatusOK).decode(t, &second)
		if first.Message.ID != second.Message.ID || first.Message.Seq != second.Message.Seq {
			t.Fatalf("retry stored a new message: %+v then %+v", first.Message, second.Message)
		}
		// A retry with another text is still the same message.
		var third struct {
			Message apiMessage `json:"message"`
		}
		s.do(t, "POST", path, c.Token, map[string]string{"text": "hello again", "client_msg_id": "retry-1"}).
			expect(t, http.StatusOK).decode(t, &third)
		if third.Message.ID != first.Message.ID || third.Message.Text != "hello" {
			t.Fatalf("retry with another text: %+v", third.Message)
		}
		msgs := s.settle(t, c)
		if len(msgs) != 2 {
			t.Fatalf("transcript %+v: want the message once and one reply", msgs)
		}
	})

	t.Run("ConcurrentDuplicates", func(t *testing.T) {
		c := s.createConversation(t)
		const n = 12
		type result struct {
			status int
			id     string
			err    error
		}
		results := make(chan result, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				req, _ := http.NewRequest("POST", s.URL()+"/api/v1/conversations/"+c.ID+"/messages",
					strings.NewReader(`{"text": "only once", "client_msg_id": "dup-1"}`))
				req.Header.Set("Authorization", "Bearer "+c.Token)
				resp, err := s.hc.Do(req)
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				var out struct {
					Message apiMessage `json:"message"`
				}
				err = json.NewDecoder(resp.Body).Decode(&out)
				results <- result{status: resp.StatusCode, id: out.Message.ID, err: err}
			}()
		}
		close(start)
		created, ids := 0, map[string]bool{}
		for range n {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			switch r.status {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Fatalf("status %d", r.status)
			}
			ids[r.id] = true
		}
		if created != 1 || len(ids) != 1 {
			t.Fatalf("%d answers said created, %d distinct ids; want exactly one message", created, len(ids))
		}
		msgs := s.settle(t, c)
		stored := 0
		for _, m := range msgs {
			if m.ClientMsgID == "dup-1" {
				stored++
			}
		}
		if stored != 1 || len(msgs) != 2 {
			t.Fatalf("stored %d copies, transcript of %d; want 1 and 2", stored, len(msgs))
		}
	})

	t.Run("MessagesAfter", func(t *testing.T) {
		c := s.createConversation(t)
		for i := range 3 {
			s.postWait(t, c, fmt.Sprintf("question %d", i))
		}
		all := s.messages(t, c, 0)
		if len(all) != 6 {
			t.Fatalf("%d messages, want 6", len(all))
		}
		for i, m := range all {
			if m.Seq != int64(i+1) {
				t.Fatalf("message %d has seq %d", i, m.Seq)
			}
		}
		after := s.messages(t, c, 4)
		if len(after) != 2 || after[0].Seq != 5 || after[1].Seq != 6 || after[0].ID != all[4].ID {
			t.Fatalf("after=4: %+v", after)
		}
		if rest := s.messages(t, c, 6); len(rest) != 0 {
			t.Fatalf("after=6: %+v, want none", rest)
		}
		var raw map[string]json.RawMessage
		s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/messages?after=6", c.Token, nil).expect(t, http.StatusOK).decode(t, &raw)
		if string(raw["messages"]) != "[]" {
			t.Fatalf("empty list is %s, want []", raw["messages"])
		}
		for _, bad := range []string{"-1", "abc"} {
			r := s.do(t, "GET", "/api/v1/conversations/"+c.ID+"/messages?after="+bad, c.Token, nil).expect(t, http.StatusBadRequest)
			if code := r.errorCode(t); code != "invalid" {
				t.Fatalf("after=%s: code %q", bad, code)
			}
		}
	})
}

func TestBotWired(t *testing.T) {
	t.Parallel()
	s := startServer(t, dbtest.New(t))
	c := s.createConversation(t)
	res := s.postWait(t, c, "Hello")
	if res.Reply.Role == "customer" || strings.TrimSpace(res.Reply.Text) == "" || res.Reply.Seq <= res.Message.Seq {
		t.Fatalf("reply %+v: want the bot's turn after the message", res.Reply)
	}
	if strings.Contains(res.Reply.Text, "not configured") {
		t.Fatalf("the binary still answers with the placeholder: %q", res.Reply.Text)
	}
	// The turn's phases are timed in /metrics (the registry is the
	// process's, shared with the tests beside this one: at least this
	// turn's).
	s.postWait(t, c, "How much does shipping cost?")
	body := string(s.do(t, "GET", "/metrics", "", nil).expect(t, http.StatusOK).body)
	for _, phase := range []string{"message", "context", "search", "reply"} {
		if !regexp.MustCompile(`(?m)^tandem_bot_turn_phase_seconds_count\{phase="` + phase + `"\} [1-9]`).MatchString(body) {
			t.Fatalf("tandem_bot_turn_phase_seconds counts no %s phase:\n%s", phase, body)
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	c := s.createConversation(t)
	other := s.createConversation(t)
	s.postWait(t, c, "first question")
	before := s.messages(t, c, 0)
	beforeSeq := s.lastSeq(t, c)

	path := "/api/v1/conversations/" + c.ID + "/messages"
	long := strings.Repeat("a", 4001)
	longRunes := strings.Repeat("é", 4001) // 8002 bytes, 4001 characters
	unknown := "7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42"
	tests := []struct {
		name   string
		path   string
		token  string
		body   any
		status int
		code   string
	}{
		{"MalformedJSON", path, c.Token, `{"text": "hi"`, http.StatusBadRequest, "invalid"},
		{"WrongJSONType", path, c.Token, `{"text": 42}`, http.StatusBadRequest, "invalid"},
		{"NoBody", path, c.Token, "", http.StatusBadRequest, "invalid"},
		{"EmptyText", path, c.Token, map[string]string{"text": ""}, http.StatusBadRequest, "invalid"},
		{"BlankText", path, c.Token, map[string]string{"text": " \n\t "}, http.StatusBadRequest, "invalid"},
		{"TextTooLong", path, c.Token, map[string]string{"text": long}, http.StatusRequestEntityTooLarge, "too_large"},
		{"TextTooLongInCharacters", path, c.Token, map[string]string{"text": longRunes}, http.StatusRequestEntityTooLarge, "too_large"},
		{"UnknownConversation", "/api/v1/conversations/" + unknown + "/messages", c.Token, map[string]string{"text": "hi"}, http.StatusNotFound, "not_found"},
		{"MalformedConversationID", "/api/v1/conversations/not-a-uuid/messages", c.Token, map[string]string{"text": "hi"}, http.StatusNotFound, "not_found"},
		{"MissingToken", path, "", map[string]string{"text": "hi"}, http.StatusUnauthorized, "unauthorized"},
		{"WrongToken", path, "not-a-token", map[string]string{"text": "hi"}, http.StatusUnauthorized, "unauthorized"},
		{"WrongStaffToken", path, "tdm_forged", map[string]string{"text": "hi"}, http.StatusUnauthorized, "unauthorized"},
		{"AnotherConversationsToken", path, other.Token, map[string]string{"text": "hi"}, http.StatusForbidden, "forbidden"},
		{"ReadWithAnotherConversationsToken", path, other.Token, nil, http.StatusForbidden, "forbidden"},
		{"ReadWithoutToken", path, "", nil, http.StatusUnauthorized, "unauthorized"},
		{"GetUnknownConversation", "/api/v1/conversations/" + unknown, c.Token, nil, http.StatusNotFound, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.body == nil {
				method = "GET"
			}
			r := s.do(t, method, tc.path, tc.token, tc.body).expect(t, tc.status)
			if code := r.errorCode(t); code != tc.code {
				t.Fatalf("code %q, want %q", code, tc.code)
			}
		})
	}

	t.Run("TranscriptUnchanged", func(t *testing.T) {
		after := s.messages(t, c, 0)
		if len(after) != len(before) || s.lastSeq(t, c) != beforeSeq {
			t.Fatalf("transcript changed: %d messages (last_seq %d), before %d (last_seq %d)", len(after), s.lastSeq(t, c), len(before), beforeSeq)
		}
		for i := range before {
			if after[i].ID != before[i].ID || after[i].Text != before[i].Text {
				t.Fatalf("message %d changed: %+v, was %+v", i, after[i], before[i])
			}
		}
		if msgs := s.messages(t, other, 0); len(msgs) != 0 {
			t.Fatalf("the other conversation got %d messages", len(msgs))
		}
	})
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))

	t.Run("EchoReplyAndReconnect", func(t *testing.T) {
		c := s.createConversation(t)
		conn := s.dial(t, c, 0)
		sendFrame(t, conn, map[string]string{"type": "message", "text": "hello over ws", "client_msg_id": "ws-1"})
		events, others := readUntil(t, conn, 2)
		checkGapless(t, events, 0, 2)
		if m := events[0].Message; m.Role != "customer" || m.Text != "hello over ws" || m.ClientMsgID != "ws-1" {
			t.Fatalf("echo %+v", m)
		}
		if m := events[1].Message; m.Role != "system" || !strings.Contains(m.Text, "not configured") {
			t.Fatalf("reply %+v", m)
		}
		// The ack may come before or after the echo.
		var ack *frame
		for i := range others {
			if others[i].Type == "ack" {
				ack = &others[i]
			}
		}
		if ack == nil {
			ack = new(frame)
			*ack = readFrame(t, conn)
		}
		if ack.Type != "ack" || ack.ClientMsgID != "ws-1" || ack.Seq != 1 || ack.MessageID != events[0].Message.ID {
			t.Fatalf("ack %+v", ack)
		}

		// A resent frame is acknowledged with the same message, not stored again.
		sendFrame(t, conn, map[string]string{"type": "message", "text": "hello over ws", "client_msg_id": "ws-1"})
		if f := readFrame(t, conn); f.Type != "ack" || f.Seq != 1 {
			t.Fatalf("ack of the resent frame: %+v", f)
		}
		// A bad frame gets an error frame and the socket stays open.
		sendFrame(t, conn, map[string]string{"type": "message", "text": "  "})
		if f := readFrame(t, conn); f.Type != "error" || f.Error == nil || f.Error.Code != "invalid" {
			t.Fatalf("error frame for empty text: %+v", f)
		}

		// Disconnect, then the conversation goes on over REST.
		conn.Close()
		for i := range 3 {
			s.postWait(t, c, fmt.Sprintf("while away %d", i))
		}
		last := s.lastSeq(t, c)
		if last != 8 {
			t.Fatalf("last_seq %d, want 8", last)
		}
		conn = s.dial(t, c, 2)
		events, _ = readUntil(t, conn, last)
		checkGapless(t, events, 2, last)
		for i, e := range events {
			want := "customer"
			if i%2 == 1 {
				want = "system"
			}
			if e.Message.Role != want {
				t.Fatalf("replayed seq %d has role %s, want %s", e.Seq, e.Message.Role, want)
			}
		}
		if events[0].Message.Text != "while away 0" {
			t.Fatalf("first replayed message %+v", events[0].Message)
		}
		// Then live events, none repeated: the next one is last+1.
		s.post(t, c, "back again", "")
		live, _ := readUntil(t, conn, last+2)
		checkGapless(t, live, last, last+2)
		if live[0].Message.Text != "back again" || live[1].Message.Role != "system" {
			t.Fatalf("live events %+v %+v", live[0].Message, live[1].Message)
		}
	})

	// A client that sends its first frame with the upgrade request, without
	// waiting for the answer, leaves it in fasthttp's request reader: the
	// socket keeps that reader (web's Server.detach) and reads the frame.
	t.Run("FrameWithTheUpgrade", func(t *testing.T) {
		c := s.createConversation(t)
		first, _ := json.Marshal(map[string]string{"type": "message", "text": "sent early", "client_msg_id": "early-1"})
		d := websocket.Dialer{HandshakeTimeout: wait, NetDial: func(network, addr string) (net.Conn, error) {
			nc, err := net.Dial(network, addr)
			return &wstest.EarlyFrameConn{Conn: nc, Frame: wstest.MaskedTextFrame(first)}, err
		}}
		conn, _, err := d.Dial(s.wsURL(c.ID, c.Token, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		events, others := readUntil(t, conn, 2)
		checkGapless(t, events, 0, 2)
		if m := events[0].Message; m.Text != "sent early" || m.ClientMsgID != "early-1" {
			t.Fatalf("echo %+v", m)
		}
		var ack frame // before or after the echo
		for _, f := range others {
			if f.Type == "ack" {
				ack = f
			}
		}
		for ack.Type != "ack" {
			ack = readFrame(t, conn)
		}
		if ack.ClientMsgID != "early-1" || ack.Seq != 1 {
			t.Fatalf("ack %+v", ack)
		}
		// The socket goes on as any other.
		sendFrame(t, conn, map[string]string{"type": "message", "text": "and later", "client_msg_id": "early-2"})
		events, _ = readUntil(t, conn, 4)
		if events[0].Message.Text != "and later" {
			t.Fatalf("echo %+v", events[0].Message)
		}
	})

	t.Run("FrameTooLarge", func(t *testing.T) {
		c := s.createConversation(t)
		conn := s.dial(t, c, 0)
		big, _ := json.Marshal(map[string]string{"type": "message", "text": strings.Repeat("x", 33<<10)})
		_ = conn.SetWriteDeadline(time.Now().Add(wait))
		if err := conn.WriteMessage(websocket.TextMessage, big); err != nil {
			t.Fatal(err)
		}
		expectClose(t, conn, websocket.ClosePolicyViolation)
		if n := len(s.messages(t, c, 0)); n != 0 {
			t.Fatalf("%d messages stored from an oversized frame", n)
		}
	})

	t.Run("RefusedAtHandshake", func(t *testing.T) {
		c := s.createConversation(t)
		other := s.createConversation(t)
		for _, tc := range []struct {
			name   string
			url    string
			status int
		}{
			{"WrongToken", s.wsURL(c.ID, "not-a-token", 0), http.StatusUnauthorized},
			{"NoToken", fmt.Sprintf("ws://%s/ws/conversations/%s", s.Addr(), c.ID), http.StatusUnauthorized},
			{"AnotherConversationsToken", s.wsURL(c.ID, other.Token, 0), http.StatusForbidden},
			{"BadAfter", s.wsURL(c.ID, c.Token, 0) + "x", http.StatusBadRequest},
			{"ForeignOrigin", s.wsURL(c.ID, c.Token, 0), http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := websocket.Dialer{HandshakeTimeout: wait}
				var h http.Header
				if tc.name == "ForeignOrigin" {
					h = http.Header{"Origin": {"https://evil.example"}}
				}
				conn, resp, err := d.Dial(tc.url, h)
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded")
				}
				if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tc.status {
					status := 0
					if resp != nil {
						status = resp.StatusCode
					}
					t.Fatalf("dial: %v, status %d; want a refused handshake with %d", err, status, tc.status)
				}
			})
		}
	})
}

func TestTwoInstancesShareEvents(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	a := startPlaceholderServer(t, dbURL)
	b := startPlaceholderServer(t, dbURL)
	c := a.createConversation(t)
	conn := a.dial(t, c, 0)
	m := b.post(t, c, "posted to instance B", "b-1")
	if m.Seq != 1 {
		t.Fatalf("seq %d", m.Seq)
	}
	events, _ := readUntil(t, conn, 2)
	checkGapless(t, events, 0, 2)
	if got := events[0].Message; got.ID != m.ID || got.Text != "posted to instance B" {
		t.Fatalf("instance A's socket got %+v, want the message posted to B", got)
	}
	if events[1].Message.Role != "system" {
		t.Fatalf("reply %+v", events[1].Message)
	}
	// And the other way round: a message over A's socket is seen through B.
	sendFrame(t, conn, map[string]string{"type": "message", "text": "via A", "client_msg_id": "a-1"})
	readUntil(t, conn, 4)
	msgs := b.settle(t, c)
	if len(msgs) != 4 || msgs[2].Text != "via A" {
		t.Fatalf("instance B sees %+v", msgs)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	c := s.createConversation(t)
	s.postWait(t, c, "before shutdown")
	conn := s.dial(t, c, 0)
	readUntil(t, conn, 2) // the socket is live and replayed

	closed := make(chan error, 1)
	go func() { closed <- s.close() }()
	expectClose(t, conn, websocket.CloseGoingAway)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Fatal("the server still accepts requests after Close")
	}
}

func TestOperations(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))

	t.Run("Healthz", func(t *testing.T) {
		s.do(t, "GET", "/healthz", "", nil).expect(t, http.StatusOK)
	})
	t.Run("Readyz", func(t *testing.T) {
		var out struct{ Status string }
		s.do(t, "GET", "/readyz", "", nil).expect(t, http.StatusOK).decode(t, &out)
		if out.Status != "ready" {
			t.Fatalf("status %q", out.Status)
		}
	})
	t.Run("UnknownRoute", func(t *testing.T) {
		r := s.do(t, "GET", "/api/v1/nowhere", "", nil).expect(t, http.StatusNotFound)
		if code := r.errorCode(t); code != "not_found" {
			t.Fatalf("code %q", code)
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		c := s.createConversation(t)
		s.dial(t, c, 0) // the gauge counts it while it is open
		deadline := time.Now().Add(wait)
		var body string
		for {
			body = string(s.do(t, "GET", "/metrics", "", nil).expect(t, http.StatusOK).body)
			if m := regexp.MustCompile(`(?m)^tandem_websockets_open\{kind="customer"\} (\S+)$`).FindStringSubmatch(body); m != nil {
				if v, _ := strconv.ParseFloat(m[1], 64); v >= 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no open customer socket counted in /metrics:\n%s", body)
			}
			time.Sleep(20 * time.Millisecond) // the socket is tracked just after the handshake
		}
		if !regexp.MustCompile(`(?m)^tandem_http_requests_total\{method="POST",route="/api/v1/conversations",status="201"\} [1-9]`).MatchString(body) {
			t.Fatalf("tandem_http_requests_total does not count the conversation created:\n%s", body)
		}
	})
}

// login signs in over the API and returns the answer.
func (s *server) login(t *testing.T, email, password string) *response {
	t.Helper()
	return s.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
}

// cheapenPassword replaces a user's stored hash with an argon2id hash of the
// same password at minimal cost. CheckPassword reads the cost from the hash,
// and at the production cost every sign-in takes about a second under the
// race detector; the real cost is covered by TestUserCreateCommand.
func cheapenPassword(t *testing.T, pool *pgxpool.Pool, email, password string) {
	t.Helper()
	salt := []byte("cheap-test-salt!")
	key := argon2.IDKey([]byte(password), salt, 1, 8, 1, 32)
	hash := fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	tag, err := pool.Exec(context.Background(), `UPDATE users SET password_hash = $1 WHERE email = $2`, hash, email)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("cheapen password of %s: %v (%d rows)", email, err, tag.RowsAffected())
	}
}

func TestStaffAuth(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	ctx := context.Background()
	store := auth.NewStore(s.Pool)
	const password = "correct horse battery"
	agent, err := store.CreateUser(ctx, auth.NewUser{Email: "agent@example.com", Password: password, DisplayName: "Alex Agent", Roles: []string{auth.RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateUser(ctx, auth.NewUser{Email: "editor@example.com", Password: password, Roles: []string{auth.RoleEditor}}); err != nil {
		t.Fatal(err)
	}
	cheapenPassword(t, s.Pool, "agent@example.com", password)
	cheapenPassword(t, s.Pool, "editor@example.com", password)
	token := func(t *testing.T, email string) string {
		var out struct{ Token string }
		s.login(t, email, password).expect(t, http.StatusOK).decode(t, &out)
		return out.Token
	}

	t.Run("LoginMeLogout", func(t *testing.T) {
		r := s.login(t, "Agent@Example.com", password).expect(t, http.StatusOK)
		var out struct {
			Token string
			User  struct{ Email string }
		}
		r.decode(t, &out)
		if !strings.HasPrefix(out.Token, "tdm_") || out.User.Email != "agent@example.com" {
			t.Fatalf("login answer %s", r.body)
		}
		var cookie *http.Cookie
		for _, ck := range (&http.Response{Header: r.header}).Cookies() {
			if ck.Name == "tandem_session" {
				cookie = ck
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.Value != out.Token || cookie.Path != "/" {
			t.Fatalf("session cookie %+v, want HttpOnly tandem_session with the token", cookie)
		}

		var me struct {
			User struct {
				Email string
				Roles []string
			}
		}
		s.do(t, "GET", "/api/v1/auth/me", out.Token, nil).expect(t, http.StatusOK).decode(t, &me)
		if me.User.Email != "agent@example.com" || len(me.User.Roles) != 1 || me.User.Roles[0] != "agent" {
			t.Fatalf("me %+v", me)
		}
		s.do(t, "GET", "/api/v1/auth/me", "", nil, "Cookie", "tandem_session="+out.Token).expect(t, http.StatusOK)
		s.do(t, "GET", "/api/v1/auth/me", "", nil).expect(t, http.StatusUnauthorized)

		s.do(t, "POST", "/api/v1/auth/logout", out.Token, nil).expect(t, http.StatusNoContent)
		s.do(t, "GET", "/api/v1/auth/me", out.Token, nil).expect(t, http.StatusUnauthorized)
		s.do(t, "GET", "/api/v1/auth/me", "", nil, "Cookie", "tandem_session="+out.Token).expect(t, http.StatusUnauthorized)
	})

	t.Run("WrongPasswordLikeUnknownEmail", func(t *testing.T) {
		wrong := s.login(t, "agent@example.com", "not the password").expect(t, http.StatusUnauthorized)
		unknown := s.login(t, "nobody@example.com", password).expect(t, http.StatusUnauthorized)
		var a, b apiError
		wrong.decode(t, &a)
		unknown.decode(t, &b)
		if a != b || a.Error.Code != "unauthorized" {
			t.Fatalf("wrong password says %+v, unknown e-mail says %+v; want the same", a, b)
		}
		if len(wrong.header.Values("Set-Cookie")) != 0 {
			t.Fatal("a failed login set a cookie")
		}
	})

	t.Run("AgentPostsToConversation", func(t *testing.T) {
		c := s.createConversation(t)
		tok := token(t, "agent@example.com")
		var out struct {
			Message apiMessage `json:"message"`
		}
		s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", tok, map[string]string{"text": "Hi, Alex here."}).
			expect(t, http.StatusCreated).decode(t, &out)
		if out.Message.Role != "agent" || out.Message.AuthorID != agent.ID {
			t.Fatalf("agent message %+v", out.Message)
		}
		// The customer sees it, and no bot turn answers an agent.
		if msgs := s.messages(t, c, 0); len(msgs) != 1 || msgs[0].Role != "agent" {
			t.Fatalf("customer sees %+v", msgs)
		}
		unknown := "/api/v1/conversations/7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42/messages"
		s.do(t, "POST", unknown, tok, map[string]string{"text": "hi"}).expect(t, http.StatusNotFound)
	})

	t.Run("EditorForbiddenOnConversation", func(t *testing.T) {
		c := s.createConversation(t)
		tok := token(t, "editor@example.com")
		r := s.do(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", tok, map[string]string{"text": "hi"}).expect(t, http.StatusForbidden)
		if code := r.errorCode(t); code != "forbidden" {
			t.Fatalf("code %q", code)
		}
		if msgs := s.messages(t, c, 0); len(msgs) != 0 {
			t.Fatalf("editor's message stored: %+v", msgs)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	// A server of its own: the limiter also counts failures per client IP.
	s := startPlaceholderServer(t, dbtest.New(t))
	const password = "correct horse battery"
	if _, err := auth.NewStore(s.Pool).CreateUser(context.Background(), auth.NewUser{Email: "agent@example.com", Password: password, Roles: []string{auth.RoleAgent}}); err != nil {
		t.Fatal(err)
	}
	cheapenPassword(t, s.Pool, "agent@example.com", password)
	for i := 1; i <= 10; i++ {
		if r := s.login(t, "agent@example.com", "wrong password"); r.status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status %d, want 401: %s", i, r.status, r.body)
		}
	}
	r := s.login(t, "agent@example.com", "wrong password").expect(t, http.StatusTooManyRequests)
	if code := r.errorCode(t); code != "rate_limited" {
		t.Fatalf("code %q", code)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs <= 0 {
		t.Fatalf("Retry-After %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
	// Locked out even with the right password, until the window passes.
	s.login(t, "agent@example.com", password).expect(t, http.StatusTooManyRequests)
}

func TestUserCreateCommand(t *testing.T) {
	dbURL := dbtest.New(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("TANDEM_SECRET", testSecret)
	t.Setenv("TANDEM_DATA_DIR", t.TempDir())
	ctx := context.Background()
	args := []string{"user", "create", "--email", "ops@example.com", "--password", "long enough", "--role", "agent,editor", "--name", "Olly Ops"}

	t.Run("Created", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "created ops@example.com") {
			t.Fatalf("stdout %q", stdout.String())
		}
	})

	t.Run("CanSignIn", func(t *testing.T) {
		s := startPlaceholderServer(t, dbURL)
		var out struct {
			User struct {
				DisplayName string `json:"display_name"`
				Roles       []string
			}
		}
		s.login(t, "ops@example.com", "long enough").expect(t, http.StatusOK).decode(t, &out)
		if out.User.DisplayName != "Olly Ops" || strings.Join(out.User.Roles, ",") != "agent,editor" {
			t.Fatalf("user %+v", out.User)
		}
	})

	t.Run("DuplicateFails", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 1 {
			t.Fatalf("exit %d, want 1; stdout %q", code, stdout.String())
		}
		if msg := stderr.String(); !strings.Contains(msg, "already exists") || !strings.Contains(msg, "ops@example.com") {
			t.Fatalf("stderr %q: want it to say the user already exists", msg)
		}
	})

	t.Run("InvalidRole", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		bad := []string{"user", "create", "--email", "x@example.com", "--password", "long enough", "--role", "boss"}
		if code := run(ctx, bad, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `role "boss"`) {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	})
}
