package handoff_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
)

// streamer is escalator that streams its answer first, and records the
// transcript each turn was given.
type streamer struct {
	escalator
	mu      sync.Mutex
	history map[string][]handoff.Message // message text → the turn's transcript
	calls   map[string]int
}

func (s *streamer) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	s.mu.Lock()
	s.history[turn.Message.Text] = turn.History
	s.calls[turn.Message.Text]++
	s.mu.Unlock()
	if turn.Stream != nil {
		for _, d := range []string{"A ", "bot ", "answer."} {
			turn.Stream(d)
		}
	}
	return s.escalator.Respond(ctx, turn)
}

// Prepare asks for an early start (the bot does so when it has an LLM).
func (s *streamer) Prepare(ctx context.Context, text string) handoff.Prepared { return nopPrepared{} }

type nopPrepared struct{}

func (nopPrepared) Release() {}

func (s *streamer) seen(text string) (int, []handoff.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[text], s.history[text]
}

// collect gathers a subscription's events until quiet for a while.
func collect(sub *handoff.Subscription, quiet time.Duration) []handoff.Event {
	var evs []handoff.Event
	for {
		select {
		case ev := <-sub.C:
			evs = append(evs, ev)
		case <-time.After(quiet):
			return evs
		}
	}
}

// TestEarlyTurn: a turn that starts while its message is being stored
// shows nothing before the message (no token, no reply), sees the message
// once at the end of its transcript, and leaves no trace when the message
// is a repeat or a person holds the conversation.
func TestEarlyTurn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc, other := e.service(fastRouting), e.service(fastRouting)
	r := &streamer{history: map[string][]handoff.Message{}, calls: map[string]int{}}
	svc.SetResponder(r)
	ctx := context.Background()
	c, _, err := svc.CreateConversation(ctx, handoff.Customer{Name: "Ada"}, false)
	if err != nil {
		t.Fatal(err)
	}
	post := func(svc *handoff.Service, text, client string) *handoff.PostResult {
		t.Helper()
		return customerSays(t, svc, c.ID, text, client)
	}

	for i, q := range []string{"Where is my parcel?", "And my refund?"} {
		sub := svc.Subscribe(c.ID, 64)
		res := post(svc, q, "q"+string(rune('1'+i)))
		evs := collect(sub, 300*time.Millisecond)
		sub.Close()
		// The customer's message first, then what was streamed of the
		// answer (nothing, when the answer was ready before the message
		// was stored), then the stored reply.
		var kinds []string
		for _, ev := range evs {
			switch {
			case ev.Type == handoff.EventMessage:
				kinds = append(kinds, ev.Message.Role)
			case ev.Type == handoff.EventBotDelta:
				kinds = append(kinds, "delta")
			}
		}
		ordered := len(kinds) >= 2 && kinds[0] == "customer" && kinds[len(kinds)-1] == "bot"
		for i := 1; ordered && i < len(kinds)-1; i++ {
			ordered = kinds[i] == "delta"
		}
		if !ordered {
			t.Fatalf("%q: events %v: want the message, what was streamed, then the reply", q, kinds)
		}
		if evs[len(evs)-1].Message.Seq <= res.Message.Seq {
			t.Fatalf("%q: reply seq %d, message seq %d", q, evs[len(evs)-1].Message.Seq, res.Message.Seq)
		}
		n, history := r.seen(q)
		if n != 1 || len(history) == 0 || history[len(history)-1].Text != q {
			t.Fatalf("%q: %d turns, transcript %+v: want one turn whose transcript ends with the message", q, n, history)
		}
		for _, m := range history[:len(history)-1] {
			if m.Text == q {
				t.Fatalf("%q: the message twice in the transcript %+v", q, history)
			}
		}
	}

	// A repeat is not stored again and gets no second answer.
	sub := svc.Subscribe(c.ID, 64)
	if res := post(svc, "Where is my parcel?", "q1"); res.Created {
		t.Fatal("a repeated client_msg_id was stored")
	}
	if evs := collect(sub, 300*time.Millisecond); len(evs) != 0 {
		t.Fatalf("a repeat published %+v", evs)
	}
	sub.Close()

	// Another instance hands the conversation to the queue: this one still
	// thinks the bot holds it, starts early, and must say nothing.
	post(other, "escalate team= priority=0", "")
	if got := conv(t, svc, c.ID).State; got != handoff.StateQueued {
		t.Fatalf("state %s, want queued", got)
	}
	sub = svc.Subscribe(c.ID, 64)
	res := post(svc, "Hello? Anyone there?", "")
	if res.Turn != nil {
		t.Fatal("a turn for a queued conversation")
	}
	// (The other instance's escalation may still be arriving here: only
	// what comes after the message counts.)
	for _, ev := range collect(sub, 300*time.Millisecond) {
		if ev.Type == handoff.EventBotDelta || (ev.Type == handoff.EventMessage && ev.Message.Role != handoff.RoleCustomer &&
			ev.Message.Seq > res.Message.Seq) {
			t.Fatalf("the bot spoke in a queued conversation: %+v", ev)
		}
	}
	sub.Close()
	if n, _ := r.seen("Hello? Anyone there?"); n != 0 {
		t.Fatalf("the responder was asked %d times about a queued conversation's message", n)
	}
}
