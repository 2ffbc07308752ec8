package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// expectLimited checks a 429 with a Retry-After of at least a second and
// the contract's error body.
func expectLimited(t *testing.T, r *response) {
	t.Helper()
	r.expect(t, http.StatusTooManyRequests)
	if code := r.errorCode(t); code != "rate_limited" {
		t.Fatalf("code %q, want rate_limited", code)
	}
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Fatalf("Retry-After %q: want whole seconds, 1 to 60", r.header.Get("Retry-After"))
	}
}

// TestRateLimits: conversations started per client address and customer
// messages per conversation (REST and WebSocket together) are limited,
// with 429 and Retry-After over REST and an error frame over the socket;
// staff are not limited, and a forwarded address counts only from a
// trusted proxy, read from the right.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := startEnv(t, dbtest.New(t), false, map[string]string{
		"TANDEM_RATE_NEW_CONVERSATIONS": "3",
		"TANDEM_RATE_MESSAGES":          "4",
		"TANDEM_TRUSTED_PROXIES":        "127.0.0.1",
	})
	create := func(forwarded string) *response {
		var h []string
		if forwarded != "" {
			h = []string{"X-Forwarded-For", forwarded}
		}
		return s.do(t, "POST", "/api/v1/conversations", "", nil, h...)
	}

	t.Run("NewConversationsPerAddress", func(t *testing.T) {
		for range 3 {
			create("203.0.113.5").expect(t, http.StatusCreated)
		}
		expectLimited(t, create("203.0.113.5"))
		// A client cannot pose as another by prepending an address: the
		// proxy appends the real one, which is what counts.
		expectLimited(t, create("198.51.100.77, 203.0.113.5"))
		// Another client behind the same proxy has its own allowance.
		create("203.0.113.6").expect(t, http.StatusCreated)
		// And the proxy's own requests (no header) are the proxy's.
		create("").expect(t, http.StatusCreated)
	})

	c := s.createConversation(t)
	path := "/api/v1/conversations/" + c.ID + "/messages"
	t.Run("MessagesPerConversation", func(t *testing.T) {
		for i := range 3 {
			s.post(t, c, fmt.Sprintf("message %d", i), fmt.Sprintf("m%d", i))
		}
		conn := s.dial(t, c, 0)
		sendFrame(t, conn, map[string]string{"type": "message", "text": "over the socket", "client_msg_id": "ws-1"})
		for f := readFrame(t, conn); f.Type != "ack"; f = readFrame(t, conn) {
			if f.Type == "error" {
				t.Fatalf("4th message refused: %+v", f.Error)
			}
		}
		// The 5th, over REST then over the socket, is refused.
		expectLimited(t, s.do(t, "POST", path, c.Token, map[string]string{"text": "one too many", "client_msg_id": "m9"}))
		sendFrame(t, conn, map[string]string{"type": "message", "text": "one too many", "client_msg_id": "ws-2"})
		for {
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			_, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var f struct {
				Type        string `json:"type"`
				ClientMsgID string `json:"client_msg_id"`
				RetryAfter  int    `json:"retry_after"`
				Error       *struct{ Code, Message string }
			}
			if err := json.Unmarshal(data, &f); err != nil {
				t.Fatal(err)
			}
			if f.Type == "ack" {
				t.Fatalf("5th message acknowledged: %s", data)
			}
			if f.Type != "error" {
				continue
			}
			if f.Error == nil || f.Error.Code != "rate_limited" || f.Error.Message == "" || f.ClientMsgID != "ws-2" || f.RetryAfter < 1 {
				t.Fatalf("error frame %s: want rate_limited for ws-2 with retry_after", data)
			}
			break
		}
		// The socket stays open: typing still goes through, and the
		// limit is per conversation.
		sendFrame(t, conn, map[string]string{"type": "typing"})
		other := s.createConversation(t)
		s.post(t, other, "a different conversation", "o1")

		customer := 0
		for _, m := range s.settle(t, c) {
			if m.Role == "customer" {
				customer++
			}
		}
		if customer != 4 {
			t.Fatalf("%d customer messages stored, want the 4 allowed", customer)
		}
	})

	t.Run("StaffNotLimited", func(t *testing.T) {
		_, agent := s.staff(t, "Lim Agent", "agent")
		for i := range 6 {
			s.do(t, "POST", path, agent, map[string]string{"text": fmt.Sprintf("agent reply %d", i)}).expect(t, http.StatusCreated)
		}
	})
}

// rawPost sends a POST that declares a body of length bytes but sends
// only its first bytes, and reads the answer: a route refuses a body over
// its limit from the headers alone, before reading any of it.
func (s *server) rawPost(t *testing.T, path, token string, length int) *response {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, s.Addr(), length)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n{\"text\": \""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestBodyLimits: each route refuses a body over its own limit with 413
// and the contract's error, from its declared length, before reading it;
// other routes are not held to the smallest limit.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	s := startPlaceholderServer(t, dbtest.New(t))
	c := s.createConversation(t)
	msgs := "/api/v1/conversations/" + c.ID + "/messages"
	for _, tc := range []struct {
		name, path, token string
		length            int
		mention           string
	}{
		{"NewConversation", "/api/v1/conversations", "", 65 << 10, "64 KB"},
		{"Message", msgs, c.Token, 65 << 10, "64 KB"},
		{"MessageUnauthenticated", msgs, "", 1 << 30, "64 KB"},
		{"CSAT", "/api/v1/conversations/" + c.ID + "/csat", c.Token, 100 << 10, "64 KB"},
		{"Login", "/api/v1/auth/login", "", 2 << 20, "1 MB"},
		{"IntentsImport", "/api/v1/intents/import", "", 17 << 20, "16 MB"},
		{"KnowledgeUpload", "/api/v1/knowledge/documents", "", 23 << 20, "22 MB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.rawPost(t, tc.path, tc.token, tc.length).expect(t, http.StatusRequestEntityTooLarge)
			var e apiError
			r.decode(t, &e)
			if e.Error.Code != "too_large" || !strings.Contains(e.Error.Message, tc.mention) {
				t.Fatalf("error %+v: want too_large mentioning %q", e.Error, tc.mention)
			}
		})
	}
	t.Run("WithinLimit", func(t *testing.T) {
		// A whole body within its route's limit reaches the handler: a
		// long message is refused for its length in characters, and a
		// large import for want of a staff session.
		long, _ := json.Marshal(map[string]string{"text": strings.Repeat("é", 20000)}) // 40 KB
		if code := s.do(t, "POST", msgs, c.Token, string(long)).expect(t, http.StatusRequestEntityTooLarge).errorCode(t); code != "too_large" {
			t.Fatal(code)
		}
		big, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", 4<<20)})
		s.do(t, "POST", "/api/v1/intents/import", "", string(big)).expect(t, http.StatusUnauthorized)
	})
	if n := len(s.messages(t, c, 0)); n != 0 {
		t.Fatalf("%d messages stored from refused bodies", n)
	}
	// The server is still fine after refusing.
	s.post(t, c, "still here", "")
}

// TestSlowSocketDropped: a client that stops reading is dropped once its
// queue of events is full, instead of holding the server's memory; it
// resumes by seq with nothing lost.
func TestSlowSocketDropped(t *testing.T) {
	t.Parallel()
	s := startEnv(t, dbtest.New(t), false, map[string]string{"TANDEM_RATE_MESSAGES": "0"})
	c := s.createConversation(t)
	// A client that never reads, with a modest receive buffer (loopback
	// would otherwise buffer tens of megabytes): the kernel's buffers
	// fill, the server's writer blocks, the event queue fills and the hub
	// drops the subscription.
	d := websocket.Dialer{HandshakeTimeout: wait, NetDial: func(network, addr string) (net.Conn, error) {
		conn, err := net.Dial(network, addr)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetReadBuffer(256 << 10)
		}
		return conn, err
	}}
	conn, _, err := d.Dial(s.wsURL(c.ID, c.Token, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pollUntil(t, "the socket subscribed", func() bool { return s.Conv.Hub().Subscribers(c.ID) == 1 })
	text := strings.Repeat("慢", 4000) // 12 KB per event
	posted := 0
	for s.Conv.Hub().Subscribers(c.ID) > 0 {
		if posted == 3000 {
			t.Fatal("the server kept a socket that read nothing through 3,000 messages")
		}
		s.post(t, c, text, fmt.Sprintf("f%d", posted))
		posted++
	}
	t.Logf("dropped after %d messages", posted)

	// What arrived before the drop is in order, then the socket ends:
	// with a close frame (1013) when the writer was between frames, or
	// abruptly when it was cut off mid-frame.
	var seen int64
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the socket is still open after seq %d: %v", seen, err)
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != 1013 && ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("close code %d, want 1013 (try again later)", ce.Code)
			}
			break
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if f.Seq > 0 {
			if f.Seq != seen+1 {
				t.Fatalf("seq %d after %d before the drop", f.Seq, seen)
			}
			seen = f.Seq
		}
	}
	final := int64(len(s.settle(t, c)))
	if seen >= final {
		t.Fatalf("the slow client got all %d events: nothing was dropped", final)
	}
	re := s.dial(t, c, seen)
	events, _ := readUntil(t, re, final)
	checkGapless(t, events, seen, final)
}
