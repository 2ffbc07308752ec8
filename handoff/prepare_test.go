package handoff_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem/handoff"
)

// preparer is escalator with a head start: it records what it was asked
// to prepare, what each turn was handed and what was released.
type preparer struct {
	escalator
	mu       sync.Mutex
	prepared []string         // texts, in order
	handed   map[string]bool  // text → its turn got its own prepared work
	released map[*prepped]int // releases of each
	all      map[string]*prepped
}

type prepped struct {
	p    *preparer
	text string
}

func (x *prepped) Release() {
	x.p.mu.Lock()
	defer x.p.mu.Unlock()
	x.p.released[x]++
}

func newPreparer() *preparer {
	return &preparer{handed: map[string]bool{}, released: map[*prepped]int{}, all: map[string]*prepped{}}
}

func (p *preparer) Prepare(ctx context.Context, text string) handoff.Prepared {
	p.mu.Lock()
	defer p.mu.Unlock()
	x := &prepped{p: p, text: text}
	p.prepared = append(p.prepared, text)
	p.all[text] = x
	return x
}

func (p *preparer) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	p.mu.Lock()
	x, ok := turn.Prepared.(*prepped)
	p.handed[turn.Message.Text] = ok && x.text == turn.Message.Text
	p.mu.Unlock()
	return p.escalator.Respond(ctx, turn)
}

// state reports whether text was prepared, whether its turn was handed
// the work, and how often the work was released.
func (p *preparer) state(text string) (prepared, handed bool, releases int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x := p.all[text]
	if x == nil {
		return false, p.handed[text], 0
	}
	return true, p.handed[text], p.released[x]
}

// TestPrepare: a customer's message in a conversation the bot holds gets
// the responder's head start, handed to its turn and released once, also
// when the message is a repeat that starts no turn; a message in a
// conversation a person holds, or one this instance has not seen, gets
// none, and its turn runs without.
func TestPrepare(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc, other := e.service(fastRouting), e.service(fastRouting)
	p := newPreparer()
	svc.SetResponder(p)
	ctx := context.Background()
	post := func(convID, text, client string) *handoff.PostResult {
		t.Helper()
		return customerSays(t, svc, convID, text, client)
	}
	released := func(text string) {
		t.Helper()
		eventually(t, "the work for "+text+" released once", func() bool {
			ok, _, n := p.state(text)
			return ok && n == 1
		})
	}

	c, _, err := svc.CreateConversation(ctx, handoff.Customer{Name: "Ada"}, false)
	if err != nil {
		t.Fatal(err)
	}
	post(c.ID, "Where is my parcel?", "q1")
	if ok, handed, _ := p.state("Where is my parcel?"); !ok || !handed {
		t.Fatalf("prepared %v, handed to the turn %v: want both", ok, handed)
	}
	released("Where is my parcel?")

	// A repeat stores nothing and starts no turn: its work is let go.
	if res := post(c.ID, "Where is my parcel, again?", "q1"); res.Created {
		t.Fatal("a repeated client_msg_id stored a second message")
	}
	released("Where is my parcel, again?")

	// The bot hands over; the next message waits for a person, unprepared.
	post(c.ID, "escalate team= priority=0", "q2")
	released("escalate team= priority=0")
	if got := conv(t, svc, c.ID).State; got != handoff.StateQueued {
		t.Fatalf("state %s, want queued", got)
	}
	post(c.ID, "Hello? Anyone there?", "q3")
	if ok, _, _ := p.state("Hello? Anyone there?"); ok {
		t.Fatal("a message to a queued conversation was prepared for a bot turn")
	}

	// Started on another instance: unknown here, so no head start, and
	// the turn runs all the same.
	c2, _, err := other.CreateConversation(ctx, handoff.Customer{Name: "Grace"}, false)
	if err != nil {
		t.Fatal(err)
	}
	res := post(c2.ID, "Do you ship to Norway?", "")
	if res.Turn == nil {
		t.Fatal("no bot turn for a conversation the bot holds")
	}
	if ok, _, _ := p.state("Do you ship to Norway?"); ok {
		t.Fatal("prepared a message of a conversation this instance never saw")
	}
	// Its stored state is now known here: the next message gets one.
	post(c2.ID, "And to Iceland?", "")
	if ok, handed, _ := p.state("And to Iceland?"); !ok || !handed {
		t.Fatalf("prepared %v, handed %v: want both once the conversation is known", ok, handed)
	}
	released("And to Iceland?")
}
