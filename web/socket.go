package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/metrics"
)

// WebSocket limits and timings.
const (
	maxFrameBytes  = 32 << 10          // a frame over this closes the socket (policy violation)
	readLimitBytes = 2 * maxFrameBytes // the library refuses larger frames outright (message too big)
	pongWait       = 60 * time.Second
	pingEvery      = 25 * time.Second
	writeWait      = 10 * time.Second
	sendBuffer     = 256 // events a socket may fall behind before it is dropped
	replayPage     = 500
	typingEvery    = 500 * time.Millisecond // typing frames closer than this are ignored
	closeTryAgain  = 1013                   // RFC 6455 registry: Try Again Later
	closeGoingAway = websocket.CloseGoingAway
	closePolicy    = websocket.ClosePolicyViolation
	closeNormal    = websocket.CloseNormalClosure
	closeInternal  = websocket.CloseInternalServerErr
)

// socket is one open WebSocket: a reader loop in the handler's goroutine and
// one writer goroutine that owns every data write.
type socket struct {
	// conn is the library's connection, not contrib/websocket's wrapper,
	// which goes back to its pool when the upgrade handler returns (detach).
	conn *fws.Conn
	kind string
	user string      // the staff user of a staff socket
	out  chan []byte // agent sockets: frames from the reader (acks, errors) for the writer
	// sink takes the reader's frames instead of out (conversation sockets).
	sink func([]byte)
	done chan struct{}
	once sync.Once
	// deadlineMu orders write's deadline against close's: without it a
	// writer could set its deadline just after close expired it and stay
	// blocked on a client that reads nothing for writeWait.
	deadlineMu sync.Mutex
}

func (k *socket) close(code int, reason string) {
	k.once.Do(func() {
		// WriteControl may be called concurrently with the writer.
		_ = k.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		k.deadlineMu.Lock()
		defer k.deadlineMu.Unlock()
		close(k.done)
		// Closing a hijacked connection is left to fasthttp, once the
		// handler returns; expired deadlines end the reader's read and the
		// writer's write now, so a client that reads or writes nothing
		// cannot keep the socket (and its goroutines) alive.
		if nc := k.conn.NetConn(); nc != nil {
			_ = nc.SetDeadline(time.Now())
		}
		_ = k.conn.Close()
	})
}

func (k *socket) goAway() { k.close(closeGoingAway, "server shutting down; reconnect") }

// send queues a frame for the writer without blocking; a socket that cannot
// keep up loses the frame (events are resumable by seq; acks are advisory).
func (k *socket) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if k.sink != nil {
		k.sink(b)
		return
	}
	select {
	case k.out <- b:
	default:
	}
}

func (k *socket) write(b []byte) error {
	k.deadlineMu.Lock()
	select {
	case <-k.done:
		k.deadlineMu.Unlock()
		return net.ErrClosed
	default:
	}
	_ = k.conn.SetWriteDeadline(time.Now().Add(writeWait))
	k.deadlineMu.Unlock()
	return k.conn.WriteMessage(websocket.TextMessage, b)
}

func (s *Server) track(conn *fws.Conn, kind, user string) *socket {
	k := &socket{conn: conn, kind: kind, user: user, done: make(chan struct{})}
	s.socketsMu.Lock()
	defer s.socketsMu.Unlock()
	if s.closing {
		k.goAway()
		return nil
	}
	s.sockets[k] = struct{}{}
	metrics.WebSockets.WithLabelValues(kind).Inc()
	return k
}

func (s *Server) untrack(k *socket) {
	s.socketsMu.Lock()
	delete(s.sockets, k)
	s.socketsMu.Unlock()
	metrics.WebSockets.WithLabelValues(k.kind).Dec()
}

// detach runs a tracked socket's life, serve, and then closes and untracks
// it; a panic in serve is logged and closes the socket (1011).
//
// When it can, serve runs in a goroutine of its own and detach returns at
// once, ending the upgrade handler: fasthttp then returns the upgrade
// request's context (request and response with their headers, the locals)
// to its pool, and contrib/websocket its wrapper with the copies it made
// of the headers, query, params and locals. At 10,000 idle sockets these
// were 6–7 KB of each socket's 10–11 KB of heap. The server keeps such
// connections open (KeepHijackedConns, set in New) and the socket closes
// its own.
//
// It cannot when fasthttp handed the socket, instead of the raw
// connection, the request reader holding bytes the client sent after its
// upgrade request without waiting for the answer: fasthttp takes that
// reader back for other connections once the handler returns, so serve
// then runs in the handler, as long as the socket lives.
func (s *Server) detach(k *socket, serve func()) {
	run := func() {
		defer s.untrack(k)
		defer k.close(closeNormal, "")
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("ws: panic", "kind", k.kind, "error", fmt.Sprint(v), "stack", string(debug.Stack()))
				k.close(closeInternal, "internal error")
			}
		}()
		serve()
	}
	if rawHijack(k.conn.NetConn()) {
		go run()
		return
	}
	run()
}

var netConnType = reflect.TypeFor[net.Conn]()

// rawHijack reports whether nc, the connection fasthttp hands an upgraded
// socket (its hijackConn), reads the network connection itself rather than
// fasthttp's request reader. fasthttp says so nowhere public, so this reads
// the type of its field r; anything unexpected answers false, which is
// safe (the socket keeps the upgrade handler). TestSocketDetach fails if a
// newer fasthttp changes this.
func rawHijack(nc net.Conn) bool {
	v := reflect.ValueOf(nc)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().String() != "*fasthttp.hijackConn" {
		return false
	}
	r := v.Elem().FieldByName("r")
	return r.IsValid() && r.Kind() == reflect.Interface && !r.IsNil() && r.Elem().Type().Implements(netConnType)
}

// originAllowed accepts requests without an Origin (apps, not browsers), the
// server's own origin, the public URL's origin and the configured ones.
func (s *Server) originAllowed(c *fiber.Ctx) bool {
	if s.sameOrigin(c) {
		return true
	}
	origin := strings.TrimRight(c.Get(fiber.HeaderOrigin), "/")
	for _, o := range s.deps.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

func (s *Server) customerSocketUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "this is a WebSocket endpoint")
	}
	if !s.originAllowed(c) {
		return errs.Errorf(errs.Forbidden, "origin %s is not allowed", c.Get(fiber.HeaderOrigin))
	}
	id := c.Params("id")
	a, err := s.authorizeConversation(c.UserContext(), c, id, c.Query("token"))
	if err != nil {
		return err
	}
	after, err := seqParam(c, "after")
	if err != nil {
		return err
	}
	// A client ahead of the conversation (after past its last seq) wants
	// live events only; left as is, it would skip them too.
	if conv, err := s.deps.Conversations.Conversation(c.UserContext(), id); err != nil {
		return err
	} else if after > conv.LastSeq {
		after = conv.LastSeq
	}
	c.Locals("conv_id", id)
	c.Locals("after", after)
	c.Locals("access", a)
	return c.Next()
}

// clientFrame is what a client may send.
type clientFrame struct {
	Type        string   `json:"type"`
	Text        string   `json:"text"`
	ClientMsgID string   `json:"client_msg_id"`
	Attachments []string `json:"attachments"` // ids of uploads (POST …/attachments)
	Score       int      `json:"score"`
	Comment     string   `json:"comment"`
}

func errorFrame(err error, clientMsgID string) fiber.Map {
	return fiber.Map{"type": "error", "client_msg_id": clientMsgID,
		"error": fiber.Map{"code": errs.CodeOf(err), "message": errs.MessageOf(err)}}
}

// limitedFrame is the error frame of a message over the rate limit; it
// says when to try again, as Retry-After does over REST.
func limitedFrame(wait time.Duration, clientMsgID string) fiber.Map {
	f := errorFrame(rateLimited(nil, wait, "messages in this conversation"), clientMsgID)
	f["retry_after"] = retryAfter(wait)
	return f
}

// throttle reports whether an event of a kind that may be dropped (typing)
// is due: at most one per typingEvery.
type throttle struct{ last time.Time }

func (t *throttle) due() bool {
	now := time.Now()
	if now.Sub(t.last) < typingEvery {
		return false
	}
	t.last = now
	return true
}

// writeBuffers lends sockets a write buffer only while they write, so an
// idle socket holds none.
var writeBuffers = &sync.Pool{}

// socketConfig is the WebSocket configuration of both endpoints: a small
// read buffer (clients' frames are small, and a frame larger than the
// buffer is read straight into the message; the library needs room for a
// control frame, 125 bytes) and pooled write buffers. At 10,000 idle
// sockets a 1 KB read buffer was 11 MB of the heap.
var socketConfig = websocket.Config{ReadBufferSize: 256, WriteBufferSize: 4096, WriteBufferPool: writeBuffers}

func (s *Server) customerSocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		id := conn.Locals("conv_id").(string)
		after := conn.Locals("after").(int64)
		a := conn.Locals("access").(*access)
		kind, user := "customer", ""
		author := handoff.Author{Role: handoff.RoleCustomer}
		if a.staff != nil {
			kind, user = "agent", a.staff.ID
			author = handoff.Author{Role: handoff.RoleAgent, ID: a.staff.ID}
		}
		k := s.track(conn.Conn, kind, user)
		if k == nil {
			return
		}
		s.detach(k, func() {
			svc := s.deps.Conversations
			// The reader's calls finish before it reads on, so nothing of
			// theirs is left to cancel when the socket ends.
			ctx := context.Background()
			cs := newConvStream(s, k, id, author.Role, after)
			defer cs.stop()

			var typing throttle
			// limited reports (with an error frame) a customer's message over
			// the conversation's rate limit.
			limited := func(clientMsgID string) bool {
				if author.Role != handoff.RoleCustomer {
					return false
				}
				if ok, wait := s.customerMessages.Allow(id); !ok {
					k.send(limitedFrame(wait, clientMsgID))
					return true
				}
				return false
			}
			readFrames(k, func(f clientFrame) {
				switch f.Type {
				case "message":
					if limited(f.ClientMsgID) {
						return
					}
					res, err := svc.Post(ctx, id, author, handoff.NewMessage{Text: f.Text, ClientMsgID: f.ClientMsgID, Attachments: f.Attachments})
					if err != nil {
						k.send(errorFrame(err, f.ClientMsgID))
						return
					}
					k.send(fiber.Map{"type": "ack", "client_msg_id": f.ClientMsgID, "seq": res.Message.Seq, "message_id": res.Message.ID})
				case "typing":
					if typing.due() {
						_ = svc.Typing(ctx, id, author.Role)
					}
				case "csat":
					if author.Role != handoff.RoleCustomer {
						k.send(errorFrame(errs.Errorf(errs.Forbidden, "only the customer scores a conversation"), ""))
						return
					}
					if limited("") {
						return
					}
					if _, err := svc.SubmitCSAT(ctx, id, f.Score, f.Comment); err != nil {
						k.send(errorFrame(err, ""))
						return
					}
					k.send(fiber.Map{"type": "ack", "csat": true})
				default:
					k.send(errorFrame(errs.Errorf(errs.Invalid, "unknown frame type %q", f.Type), ""))
				}
			})
			// Close before the deferred stop waits for the writer, so a
			// writer blocked on a client that reads nothing ends now.
			k.close(closeNormal, "")
		})
	}, socketConfig)
}

// readFrames is a socket's reader loop: a read limit, a deadline that each
// frame and pong extends, a policy-violation close for a frame over
// maxFrameBytes, and an error frame for one that is not JSON. Every other
// frame goes to handle, decoded into a fresh T. It returns when the
// connection ends.
func readFrames[T any](k *socket, handle func(f T)) {
	conn := k.conn
	conn.SetReadLimit(readLimitBytes)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
		if len(data) > maxFrameBytes {
			k.close(closePolicy, "frame too large")
			return
		}
		var f T
		if err := json.Unmarshal(data, &f); err != nil {
			k.send(errorFrame(errs.Errorf(errs.Invalid, "frame is not valid JSON"), ""))
			continue
		}
		handle(f)
	}
}

// convStream feeds one socket of a conversation (the customer's, or a
// staff member's). Live events from the hub and the reader's frames (acks,
// errors) queue here, and a writer goroutine runs only while there is
// something to write: first the replay of what the client missed after
// `after`, then each live event exactly once, in seq order, with pings
// between. An idle socket thus costs its reader goroutine and a few small
// structs, which is what lets one instance hold tens of thousands.
type convStream struct {
	srv      *Server
	k        *socket
	id       string
	role     string
	sub      *handoff.Subscription
	pingSlot int            // its slot in srv.pings
	wg       sync.WaitGroup // the running writer

	mu      sync.Mutex
	events  []handoff.Event
	frames  [][]byte
	replay  bool // the replay is still to be sent
	pingDue bool
	tooSlow bool // more than sendBuffer events waited: close, the client resumes by seq
	running bool
	closed  bool
	// query is the running writer's context for its queries (the replay),
	// made when it first needs one and cancelled when it ends or at stop.
	// An idle socket holds none: a context that has been given to pgx
	// keeps a map of the watchers it had, a few hundred bytes.
	query       context.Context
	cancelQuery context.CancelFunc
	last        int64 // the last seq sent; only the running writer touches it
}

func newConvStream(s *Server, k *socket, id, role string, after int64) *convStream {
	c := &convStream{srv: s, k: k, id: id, role: role, last: after, replay: true}
	k.sink = c.frame
	// Subscribe first, then replay, so nothing falls between; what both
	// bring is sent once, by seq.
	c.sub = s.deps.Conversations.SubscribeFunc(id, c.push, c.dropped)
	c.mu.Lock()
	c.kick()
	c.mu.Unlock()
	c.pingSlot = s.pings.add(c)
	return c
}

// push queues a live event; it never blocks (the hub calls it).
func (c *convStream) push(ev handoff.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	if len(c.events) >= sendBuffer {
		c.tooSlow = true
		c.kick()
		return false
	}
	c.events = append(c.events, ev)
	c.kick()
	return true
}

// dropped is called when the hub lets this stream go: it fell behind
// (push refused an event), or this instance lost its LISTEN connection and
// may have missed events. Either way the client must resume by seq, so the
// socket is closed at once, even while the writer is blocked on a slow
// client. The hub calls it from a publisher's goroutine, which must not
// wait on this socket.
func (c *convStream) dropped() {
	metrics.WebSocketDrops.Inc()
	go c.k.close(closeTryAgain, "fell behind; reconnect with the last seq you have")
}

// frame queues a frame from the reader; a socket that is this far behind
// loses it (acks are advisory, events resumable by seq).
func (c *convStream) frame(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.frames) >= 32 {
		return
	}
	c.frames = append(c.frames, b)
	c.kick()
}

// pingNow has the writer send a ping (srv.pings calls it).
func (c *convStream) pingNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.pingDue = true
	c.kick()
}

// kick starts the writer unless it runs; the caller holds c.mu.
func (c *convStream) kick() {
	if c.running || c.closed {
		return
	}
	c.running = true
	c.wg.Add(1)
	go c.write()
}

// stop ends the stream and waits for the writer, which must not touch the
// connection once the handler has returned.
func (c *convStream) stop() {
	c.mu.Lock()
	c.closed = true
	if c.cancelQuery != nil {
		c.cancelQuery()
	}
	c.mu.Unlock()
	c.sub.Close()
	c.srv.pings.remove(c, c.pingSlot)
	c.wg.Wait()
}

func (c *convStream) write() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		evs, frames, replay, ping, slow := c.events, c.frames, c.replay, c.pingDue, c.tooSlow
		c.events, c.frames, c.replay, c.pingDue = nil, nil, false, false
		if c.closed || (len(evs) == 0 && len(frames) == 0 && !replay && !ping && !slow) {
			c.idle()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if slow || !c.flush(replay, frames, evs, ping) {
			// A slow stream was dropped by the hub, and dropped closes it.
			c.mu.Lock()
			c.closed = true
			c.idle()
			c.mu.Unlock()
			return
		}
	}
}

// idle marks the writer as ended and lets its query context go; the
// caller holds c.mu.
func (c *convStream) idle() {
	c.running = false
	if c.cancelQuery != nil {
		c.cancelQuery()
		c.query, c.cancelQuery = nil, nil
	}
}

// queryCtx is the running writer's context for its queries.
func (c *convStream) queryCtx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.query == nil {
		c.query, c.cancelQuery = context.WithCancel(context.Background())
		if c.closed {
			c.cancelQuery()
		}
	}
	return c.query
}

// flush writes what the writer took from the queue; false when the socket
// is closed.
func (c *convStream) flush(replay bool, frames [][]byte, evs []handoff.Event, ping bool) bool {
	k := c.k
	select {
	case <-k.done:
		return false
	default:
	}
	if replay && !c.srv.fill(c.queryCtx(), k, c.id, &c.last) {
		return false
	}
	for _, b := range frames {
		if err := k.write(b); err != nil {
			k.close(closeNormal, "")
			return false
		}
	}
	for _, ev := range evs {
		if ev.Seq > 0 && ev.Seq <= c.last {
			continue // already sent by the replay
		}
		if ev.Seq > c.last+1 {
			// Events are published after commit, so one may overtake
			// another; fill the gap from the database, in order.
			if !c.srv.fill(c.queryCtx(), k, c.id, &c.last) {
				return false
			}
			if ev.Seq <= c.last {
				continue
			}
		}
		if ev.Type == handoff.EventTyping && ev.Role == c.role {
			continue // one's own typing
		}
		b, _ := json.Marshal(ev)
		if err := k.write(b); err != nil {
			k.close(closeNormal, "")
			return false
		}
		if ev.Seq > 0 {
			c.last = ev.Seq
		}
	}
	if ping {
		if err := k.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
			k.close(closeNormal, "")
			return false
		}
	}
	return true
}

// fill sends every stored event after *last, in order, advancing *last. It
// reports false when the socket was closed.
func (s *Server) fill(ctx context.Context, k *socket, id string, last *int64) bool {
	for {
		evs, err := s.deps.Conversations.Replay(ctx, id, *last, replayPage)
		if err != nil {
			s.log.Warn("ws: replay", "conversation_id", id, "error", err)
			k.close(closeTryAgain, "temporarily unavailable; reconnect")
			return false
		}
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			if err := k.write(b); err != nil {
				k.close(closeNormal, "")
				return false
			}
			*last = ev.Seq
		}
		if len(evs) < replayPage {
			return true
		}
	}
}
