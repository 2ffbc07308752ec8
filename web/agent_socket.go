package web

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
	"github.com/tandem-chat/tandem/internal/metrics"
)

// agentSocketUpgrade authenticates GET /ws/agent: a staff token in ?token=
// or the session cookie, the agent role, and an allowed Origin.
func (s *Server) agentSocketUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "this is a WebSocket endpoint")
	}
	if !s.originAllowed(c) {
		return errs.Errorf(errs.Forbidden, "origin %s is not allowed", c.Get(fiber.HeaderOrigin))
	}
	u, err := s.currentStaff(c)
	if err != nil {
		return err
	}
	if u == nil {
		return errs.Errorf(errs.Unauthorized, "sign in first: pass the staff token as ?token= or the session cookie")
	}
	if !u.Has(auth.RoleAgent) {
		return errs.Errorf(errs.Forbidden, "this needs the agent role")
	}
	return c.Next()
}

// agentFrame is what an agent's console may send.
type agentFrame struct {
	Type           string   `json:"type"`
	ConversationID string   `json:"conversation_id"`
	Text           string   `json:"text"`
	ClientMsgID    string   `json:"client_msg_id"`
	Attachments    []string `json:"attachments"`
}

// agentSocket is GET /ws/agent. It first sends a "hello" frame with the
// agent, their conversations and the queue; then, live: queue changes,
// presence, assignments and unassignments, SLA flags of the agent's teams
// (every team's for admins), and every event of the conversations assigned
// to the agent (customer messages, typing, state changes, private notes).
// Events are not replayed: after a reconnect the console starts from the
// new hello frame and fetches transcripts. The agent's sockets keep them
// present: when all have been gone for the grace period, they become away.
func (s *Server) agentSocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		u := conn.Locals("staff").(*auth.User)
		admin := u.Has(auth.RoleAdmin)
		k := s.track(conn.Conn, "agent", u.ID)
		if k == nil {
			return
		}
		k.out = make(chan []byte, 32)
		s.detach(k, func() {

			svc := s.deps.Conversations
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			socketID, err := svc.AgentConnected(ctx, u.ID)
			if err != nil {
				s.log.Warn("ws: agent presence", "agent_id", u.ID, "error", err)
				k.close(closeTryAgain, "temporarily unavailable; reconnect")
				return
			}
			defer svc.AgentDisconnected(socketID)

			a := &agentStream{srv: s, k: k, svc: svc, me: u.ID, in: make(chan handoff.Event, sendBuffer),
				subs: map[string][]*handoff.Subscription{}}
			defer a.closeAll()
			a.subscribe("", handoff.TopicAgents, handoff.AgentTopic(u.ID))
			if admin {
				a.subscribe("", handoff.TopicAdmins)
			}
			writerDone := make(chan struct{})
			go func() {
				defer close(writerDone)
				a.write(ctx, admin)
			}()

			typing := map[string]*throttle{}
			readFrames(k, func(f agentFrame) {
				switch f.Type {
				case "message":
					res, err := svc.Post(ctx, f.ConversationID, handoff.Author{Role: handoff.RoleAgent, ID: u.ID, Admin: admin},
						handoff.NewMessage{Text: f.Text, ClientMsgID: f.ClientMsgID, Attachments: f.Attachments})
					if err != nil {
						k.send(errorFrame(err, f.ClientMsgID))
						return
					}
					k.send(fiber.Map{"type": "ack", "conversation_id": f.ConversationID, "client_msg_id": f.ClientMsgID,
						"seq": res.Message.Seq, "message_id": res.Message.ID})
				case "typing":
					if a.holds(f.ConversationID) {
						th := typing[f.ConversationID]
						if th == nil {
							th = &throttle{}
							typing[f.ConversationID] = th
						}
						if th.due() {
							_ = svc.Typing(ctx, f.ConversationID, handoff.RoleAgent)
						}
					}
				case "ping":
					k.send(fiber.Map{"type": "pong"})
				default:
					k.send(errorFrame(errs.Errorf(errs.Invalid, "unknown frame type %q", f.Type), ""))
				}
			})
			cancel()
			k.close(closeNormal, "")
			<-writerDone
		})
	}, socketConfig)
}

// agentStream merges the hub topics one agent socket follows into one
// channel for its writer.
type agentStream struct {
	srv *Server
	k   *socket
	svc *handoff.Service
	me  string
	in  chan handoff.Event

	mu   sync.Mutex
	subs map[string][]*handoff.Subscription // by conversation id ("" for the fixed topics)
}

// subscribe follows topics on behalf of conversation convID ("" for the
// agent's fixed topics). Each subscription forwards into a.in; a socket
// that cannot keep up is closed with try-again-later, and the console
// reconnects.
func (a *agentStream) subscribe(convID string, topics ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if convID != "" && a.subs[convID] != nil {
		return
	}
	for _, t := range topics {
		sub := a.svc.Hub().Subscribe(t, sendBuffer)
		a.subs[convID] = append(a.subs[convID], sub)
		go func() {
			for ev := range sub.C {
				select {
				case a.in <- ev:
				case <-a.k.done:
					return
				default:
					metrics.WebSocketDrops.Inc()
					a.k.close(closeTryAgain, "too slow; reconnect")
					return
				}
			}
			if sub.Dropped() {
				metrics.WebSocketDrops.Inc()
				a.k.close(closeTryAgain, "too slow; reconnect")
			}
		}()
	}
}

// follow subscribes to a conversation the agent now holds.
func (a *agentStream) follow(convID string) {
	a.subscribe(convID, convID, handoff.StaffTopic(convID))
}

// unfollow stops following a conversation that left the agent.
func (a *agentStream) unfollow(convID string) {
	a.mu.Lock()
	subs := a.subs[convID]
	delete(a.subs, convID)
	a.mu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
}

func (a *agentStream) holds(convID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return convID != "" && a.subs[convID] != nil
}

func (a *agentStream) closeAll() {
	a.mu.Lock()
	all := a.subs
	a.subs = map[string][]*handoff.Subscription{}
	a.mu.Unlock()
	for _, subs := range all {
		for _, sub := range subs {
			sub.Close()
		}
	}
}

// write sends the hello frame, then live events and the reader's frames,
// with pings between; it owns every data write.
func (a *agentStream) write(ctx context.Context, admin bool) {
	k := a.k
	agent, err := a.svc.Agent(ctx, a.me)
	if err != nil {
		k.close(closeTryAgain, "temporarily unavailable; reconnect")
		return
	}
	if !admin {
		for _, t := range agent.Teams {
			a.subscribe("", handoff.TeamTopic(t))
		}
	}
	// Follow first, then read the state, so nothing falls between.
	convs, err := a.svc.AgentConversations(ctx, a.me)
	if err == nil {
		for _, c := range convs {
			a.follow(c.ID)
		}
		convs, err = a.svc.AgentConversations(ctx, a.me)
	}
	var queue []handoff.QueueEntry
	if err == nil {
		queue, err = a.svc.Queue(ctx, handoff.QueueFilter{})
	}
	if err != nil {
		k.close(closeTryAgain, "temporarily unavailable; reconnect")
		return
	}
	hello, _ := json.Marshal(fiber.Map{"type": "hello", "agent": agent, "conversations": convs, "queue": queue})
	if k.write(hello) != nil {
		k.close(closeNormal, "")
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-ctx.Done():
			return
		case b := <-k.out:
			if err := k.write(b); err != nil {
				k.close(closeNormal, "")
				return
			}
		case ev := <-a.in:
			switch {
			case ev.Type == handoff.EventAssigned && ev.ConversationID != "":
				a.follow(ev.ConversationID)
			case ev.Type == handoff.EventUnassigned && ev.ConversationID != "":
				a.unfollow(ev.ConversationID)
			case ev.Type == handoff.EventTyping && ev.Role == handoff.RoleAgent:
				continue // the agent's own typing
			}
			b, _ := json.Marshal(ev)
			if err := k.write(b); err != nil {
				k.close(closeNormal, "")
				return
			}
		case <-ping.C:
			if err := k.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				k.close(closeNormal, "")
				return
			}
		}
	}
}
