package handoff_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db"
)

// hangingBot never answers until released, like an instance that died in
// the middle of a turn.
type hangingBot struct{ release chan struct{} }

func (h hangingBot) Respond(ctx context.Context, turn handoff.Turn) (handoff.Reply, error) {
	<-h.release
	return handoff.Reply{Text: "too late"}, nil
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestOwedTurns: a customer message whose turn never finished (its
// instance died) is answered by another instance once the grace has
// passed, exactly once; an answered message, a conversation an agent took
// over and a message over an hour old are left alone.
func TestOwedTurns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	poolA, err := db.Open(ctx, e.url, 4)
	if err != nil {
		t.Fatal(err)
	}
	hang := hangingBot{release: make(chan struct{})}
	a := handoff.NewService(poolA, hang, handoff.Options{Now: clk.now, TurnGrace: time.Minute})
	b := handoff.NewService(e.pool, escalator{}, handoff.Options{Now: clk.now, TurnGrace: time.Minute})
	t.Cleanup(func() {
		close(hang.release)
		cctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		a.Close(cctx)
		b.Close(cctx)
		poolA.Close()
	})
	sweep := func(want int) {
		t.Helper()
		n, err := b.SweepTurns(ctx, time.Hour)
		if err != nil || n != want {
			t.Fatalf("SweepTurns: %d, %v; want %d turns started", n, err, want)
		}
	}
	conv, _, err := a.CreateConversation(ctx, handoff.Customer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleCustomer}, "where is my parcel?", "m1"); err != nil {
		t.Fatal(err)
	}
	sweep(0) // not yet due: instance A may still be thinking
	clk.add(2 * time.Minute)
	sweep(1)
	eventually(t, "instance B answers the message A left", func() bool { return lastText(t, b, conv.ID) == "A bot answer." })
	sweep(0)
	clk.add(2 * time.Minute)
	sweep(0) // answered: never run again

	// A message answered in the normal way owes nothing.
	res, err := b.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleCustomer}, "thanks, and the invoice?", "m2")
	if err != nil {
		t.Fatal(err)
	}
	<-res.Turn
	clk.add(2 * time.Minute)
	sweep(0)
	msgs := messages(t, b, conv.ID)
	if len(msgs) != 4 || msgs[1].Role != handoff.RoleBot || msgs[3].Role != handoff.RoleBot {
		t.Fatalf("transcript %+v: want each message answered once", msgs)
	}

	// A conversation that left the bot owes no turn.
	other, _, err := a.CreateConversation(ctx, handoff.Customer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PostMessage(ctx, other.ID, handoff.Author{Role: handoff.RoleCustomer}, "hello?", ""); err != nil {
		t.Fatal(err)
	}
	agent := e.user("Owed Agent")
	if _, err := b.PostMessage(ctx, other.ID, handoff.Author{Role: handoff.RoleAgent, ID: agent}, "Hi, I am here.", ""); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	sweep(0)

	// A message unanswered for over an hour is left alone.
	old, _, err := a.CreateConversation(ctx, handoff.Customer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PostMessage(ctx, old.ID, handoff.Author{Role: handoff.RoleCustomer}, "anyone?", ""); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Hour)
	sweep(0)
}
