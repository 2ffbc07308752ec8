package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// ackWait is how long a sent frame waits for its ack before it is sent
// again (same client_msg_id, so it is stored once).
const ackWait = 5 * time.Second

// Stream follows one conversation over WebSocket as its customer (with the
// conversation's token) or a staff member (with a staff token), as the
// widget and the console do: it keeps a socket open, reconnecting to any
// instance with after= the last seq it has, and counts every sequenced
// event it receives, so that a gap or a duplicate shows. It sends messages
// as frames and resends any without an ack after a reconnect.
type Stream struct {
	c      *Client
	ConvID string
	Token  string

	writeMu sync.Mutex // one writer per socket
	mu      sync.Mutex
	conn    *websocket.Conn
	gone    chan struct{} // closed when conn's reader ends
	up      chan struct{} // closed when a socket is open; replaced when it ends
	last    int64
	seen    map[int64]int
	dups    int
	gaps    []string
	waiters map[string]chan frameReply
}

type frameReply struct {
	seq int64
	err *APIError
}

// NewStream returns a stream of conversation convID; Run starts it.
func (c *Client) NewStream(convID, token string) *Stream {
	return &Stream{c: c, ConvID: convID, Token: token, up: make(chan struct{}),
		seen: map[int64]int{}, waiters: map[string]chan frameReply{}}
}

// Run keeps the stream's socket open until ctx ends.
func (s *Stream) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := s.dial(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		gone := make(chan struct{})
		s.mu.Lock()
		s.conn, s.gone = conn, gone
		close(s.up)
		s.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		s.read(conn)
		stop()
		conn.Close()
		s.mu.Lock()
		s.conn = nil
		s.up = make(chan struct{})
		close(gone)
		s.mu.Unlock()
		if ctx.Err() == nil {
			s.c.Stats.Reconnects.Add(1)
		}
	}
}

func (s *Stream) dial(ctx context.Context) (*websocket.Conn, error) {
	base := s.c.Inst.Pick()
	s.mu.Lock()
	after := s.last
	s.mu.Unlock()
	u := strings.Replace(base, "http://", "ws://", 1) + fmt.Sprintf("/ws/conversations/%s?token=%s&after=%d",
		s.ConvID, url.QueryEscape(s.Token), after)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		switch {
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
			s.c.Stats.Unavailable.Add(1)
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			s.c.Stats.RateLimited.Add(1)
		case resp != nil:
			s.c.Stats.note("dial %s: status %d", s.ConvID, resp.StatusCode)
		default:
			s.c.Stats.Refused.Add(1)
		}
		return nil, err
	}
	return conn, nil
}

// frame is any server frame.
type frame struct {
	Type        string `json:"type"`
	Seq         int64  `json:"seq"`
	ClientMsgID string `json:"client_msg_id"`
	RetryAfter  int    `json:"retry_after"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *Stream) read(conn *websocket.Conn) {
	for {
		_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			s.c.Stats.note("frame %q: %v", data, err)
			continue
		}
		switch {
		case f.Type == "ack" && f.ClientMsgID != "":
			s.reply(f.ClientMsgID, frameReply{seq: f.Seq})
		case f.Type == "error":
			e := &APIError{Code: "unknown", RetryAfter: time.Duration(f.RetryAfter) * time.Second}
			if f.Error != nil {
				e.Code, e.Message = f.Error.Code, f.Error.Message
			}
			if f.ClientMsgID == "" || !s.reply(f.ClientMsgID, frameReply{err: e}) {
				s.c.Stats.note("error frame %s", data)
			}
		case f.Seq > 0:
			s.c.Stats.SocketEvents.Add(1)
			s.mu.Lock()
			s.seen[f.Seq]++
			switch {
			case f.Seq <= s.last:
				s.dups++
			case f.Seq != s.last+1:
				s.gaps = append(s.gaps, fmt.Sprintf("seq %d after %d", f.Seq, s.last))
			}
			s.last = max(s.last, f.Seq)
			s.mu.Unlock()
		}
	}
}

func (s *Stream) reply(clientMsgID string, r frameReply) bool {
	s.mu.Lock()
	ch := s.waiters[clientMsgID]
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- r:
	default:
	}
	return true
}

// current waits for an open socket.
func (s *Stream) current(ctx context.Context) (*websocket.Conn, chan struct{}, error) {
	for {
		s.mu.Lock()
		conn, gone, up := s.conn, s.gone, s.up
		s.mu.Unlock()
		if conn != nil {
			return conn, gone, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-up:
		}
	}
}

// Send sends a message frame and returns its seq once acknowledged; it
// resends it (same client_msg_id) after a reconnect, an ack that does not
// come, or an unavailable or rate-limited error.
func (s *Stream) Send(ctx context.Context, text, clientMsgID string) (int64, error) {
	s.c.Stats.Sent.Add(1)
	ch := make(chan frameReply, 4)
	s.mu.Lock()
	s.waiters[clientMsgID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, clientMsgID)
		s.mu.Unlock()
	}()
	b, _ := json.Marshal(map[string]string{"type": "message", "text": text, "client_msg_id": clientMsgID})
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.c.Stats.Resent.Add(1)
		}
		conn, gone, err := s.current(ctx)
		if err != nil {
			return 0, err
		}
		s.writeMu.Lock()
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err = conn.WriteMessage(websocket.TextMessage, b)
		s.writeMu.Unlock()
		if err != nil {
			select { // the reader will notice; wait for the next socket
			case <-gone:
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case r := <-ch:
			if r.err == nil {
				s.c.Stats.Acked.Add(1)
				return r.seq, nil
			}
			switch r.err.Code {
			case "unavailable":
				s.c.Stats.Unavailable.Add(1)
				sleep(ctx, 200*time.Millisecond)
			case "rate_limited":
				s.c.Stats.RateLimited.Add(1)
				sleep(ctx, max(r.err.RetryAfter, time.Second))
			default:
				return 0, r.err
			}
		case <-gone:
		case <-time.After(ackWait):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Last returns the last seq received.
func (s *Stream) Last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// WaitFor waits until the stream has received seq, or ctx ends.
func (s *Stream) WaitFor(ctx context.Context, seq int64) error {
	for s.Last() < seq {
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("stream %s: at seq %d, waiting for %d: %w", s.ConvID, s.Last(), seq, ctx.Err())
		}
	}
	return nil
}

// Received checks what the socket delivered against the conversation's
// last seq: each of 1..last exactly once, in order. missing counts seqs
// never received, duplicates those received more than once.
func (s *Stream) Received(last int64) (missing, duplicates int, problems []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq := int64(1); seq <= last; seq++ {
		switch n := s.seen[seq]; {
		case n == 0:
			missing++
			if missing <= 5 {
				problems = append(problems, fmt.Sprintf("seq %d never arrived on the socket", seq))
			}
		case n > 1:
			duplicates += n - 1
			problems = append(problems, fmt.Sprintf("seq %d arrived %d times", seq, n))
		}
	}
	if s.dups > 0 && duplicates == 0 {
		problems = append(problems, fmt.Sprintf("%d events arrived at or below the last seq", s.dups))
		duplicates = s.dups
	}
	if len(s.gaps) > 0 {
		problems = append(problems, "out of order: "+strings.Join(s.gaps[:min(len(s.gaps), 5)], "; "))
	}
	return missing, duplicates, problems
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Drop closes the stream's socket abruptly, as a lost network does; Run
// reconnects with the last seq.
func (s *Stream) Drop() bool {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return false
	}
	if nc := conn.NetConn(); nc != nil {
		_ = nc.Close()
	}
	return true
}
