package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// frameSocket feeds fuzzed frames to one live socket of a real server, and
// after each, a probe frame that always gets an answer: the socket must
// answer the probe (it is still in step and alive), every error frame
// before it must carry a user-facing code and message (never internal),
// and a frame over the size limit must close the socket as a policy
// violation. The server is real: frames that make sense are stored.
type frameSocket struct {
	url   string // without after=
	agent bool   // an agent socket: a hello frame first
	conn  *websocket.Conn
	last  int64
	n     int
}

func (fs *frameSocket) dial(t *testing.T) {
	t.Helper()
	u := fs.url
	if !fs.agent {
		u += fmt.Sprintf("&after=%d", fs.last)
	}
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	fs.conn = conn
	if fs.agent {
		if f := fs.read(t); f.Type != "hello" {
			t.Fatalf("first agent frame %+v, want hello", f)
		}
	}
}

type fuzzFrame struct {
	Type  string `json:"type"`
	Seq   int64  `json:"seq"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw string
}

func (fs *frameSocket) read(t *testing.T) fuzzFrame {
	t.Helper()
	_ = fs.conn.SetReadDeadline(time.Now().Add(wait))
	_, data, err := fs.conn.ReadMessage()
	if err != nil {
		t.Fatalf("the socket ended: %v", err)
	}
	var f fuzzFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("server frame %q is not JSON: %v", data, err)
	}
	f.raw = string(data)
	if f.Seq > fs.last && f.Type != "ack" {
		fs.last = f.Seq
	}
	return f
}

func (fs *frameSocket) check(t *testing.T, frame []byte) {
	if fs.conn == nil {
		fs.dial(t)
	}
	_ = fs.conn.SetWriteDeadline(time.Now().Add(wait))
	if err := fs.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatalf("write: %v", err)
	}
	if len(frame) > 32<<10 {
		// Too large: closed as a policy violation (or, past the read
		// limit, as too big), after whatever was on its way.
		for {
			_ = fs.conn.SetReadDeadline(time.Now().Add(wait))
			if _, _, err := fs.conn.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || (ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseMessageTooBig) {
					t.Fatalf("a %d-byte frame ended the socket with %v, want close 1008 or 1009", len(frame), err)
				}
				fs.conn.Close()
				fs.conn = nil
				return
			}
		}
	}
	fs.n++
	probe := fmt.Sprintf("probe-%d", fs.n)
	_ = fs.conn.SetWriteDeadline(time.Now().Add(wait))
	if err := fs.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"`+probe+`"}`)); err != nil {
		t.Fatalf("write probe: %v", err)
	}
	for {
		f := fs.read(t)
		if f.Type != "error" {
			continue
		}
		if f.Error == nil || f.Error.Code == "" || f.Error.Code == "internal" || f.Error.Message == "" {
			t.Fatalf("error frame %s after %q: want a user-facing code and message", f.raw, frame)
		}
		if strings.Contains(f.Error.Message, probe) {
			return
		}
	}
}

// frameSeeds are frames of every kind, well-formed and not.
var frameSeeds = []string{
	`{"type":"message","text":"Where is my parcel?","client_msg_id":"f-1"}`,
	`{"type":"message","text":"Where is my parcel?","client_msg_id":"f-1"}`,
	`{"type":"message","text":""}`,
	`{"type":"message","text":"   "}`,
	`{"type":"message","text":"a\u0000b"}`,
	`{"type":"message","text":"\ud800"}`,
	`{"type":"message","text":"hi","client_msg_id":"` + strings.Repeat("x", 200) + `"}`,
	`{"type":"message","text":"` + strings.Repeat("長", 4001) + `"}`,
	`{"type":"message","text":42}`,
	`{"type":"typing"}`,
	`{"type":"csat","score":5,"comment":"great"}`,
	`{"type":"csat","score":99}`,
	`{"type":"csat","score":3,"comment":"a\u0000"}`,
	`{"type":"ping"}`,
	`{"type":""}`,
	`{}`,
	`[]`,
	`null`,
	`"message"`,
	`{"type":"message","text":"x"`,
	"\xff\xfe",
	``,
	`{"type":"message","text":"` + strings.Repeat("x", 33<<10) + `"}`,
}

// FuzzCustomerFrame fuzzes the frames a customer's socket accepts.
func FuzzCustomerFrame(f *testing.F) {
	s := startEnv(f, dbtest.New(f), false, map[string]string{"TANDEM_RATE_MESSAGES": "0"})
	var c conversation
	r := s.do(f, "POST", "/api/v1/conversations", "", nil)
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &c) != nil {
		f.Fatalf("create: %d %s", r.status, r.body)
	}
	fs := &frameSocket{url: strings.TrimSuffix(s.wsURL(c.ID, c.Token, 0), "&after=0")}
	for _, seed := range frameSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) { fs.check(t, frame) })
}

// FuzzAgentFrame fuzzes the frames an agent's console socket accepts; the
// word $CONV in a frame stands for a real conversation, so that the fuzzer
// reaches the paths past the lookup.
func FuzzAgentFrame(f *testing.F) {
	s := startEnv(f, dbtest.New(f), false, map[string]string{"TANDEM_RATE_MESSAGES": "0"})
	var c conversation
	r := s.do(f, "POST", "/api/v1/conversations", "", nil)
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &c) != nil {
		f.Fatalf("create: %d %s", r.status, r.body)
	}
	_, token := s.staff(f, "Fuzz Agent", "agent")
	fs := &frameSocket{url: "ws://" + s.Addr() + "/ws/agent?token=" + token, agent: true}
	for _, seed := range frameSeeds {
		f.Add([]byte(strings.Replace(seed, `{"type":`, `{"conversation_id":"$CONV","type":`, 1)))
	}
	f.Add([]byte(`{"type":"message","conversation_id":"$CONV","text":"Hello, I can help.","client_msg_id":"a-1"}`))
	f.Add([]byte(`{"type":"typing","conversation_id":"$CONV"}`))
	f.Add([]byte(`{"type":"message","conversation_id":"not-a-uuid","text":"x"}`))
	f.Add([]byte(`{"type":"message","conversation_id":"7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42","text":"x"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		fs.check(t, []byte(strings.ReplaceAll(string(frame), "$CONV", c.ID)))
	})
}
