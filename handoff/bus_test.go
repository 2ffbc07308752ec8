package handoff_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem/handoff"
)

// recorder collects the events a subscription receives.
type recorder struct {
	mu  sync.Mutex
	evs []handoff.Event
}

func (r *recorder) push(ev handoff.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return true
}

// count returns how many events match.
func (r *recorder) count(match func(handoff.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if match(ev) {
			n++
		}
	}
	return n
}

// TestPublishOnceEverywhere: an instance delivers its own events to its own
// subscribers at once and does not deliver them again when its NOTIFY comes
// back; the other instance gets them through NOTIFY, once. Streamed tokens
// (which may linger before they are sent) and stored messages alike.
func TestPublishOnceEverywhere(t *testing.T) {
	e := newEnv(t)
	a, b := e.service(fastRouting), e.service(fastRouting)
	ctx := context.Background()
	conv, _, err := a.CreateConversation(ctx, handoff.Customer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var onA, onB recorder
	subA := a.SubscribeFunc(conv.ID, onA.push, nil)
	defer subA.Close()
	subB := b.SubscribeFunc(conv.ID, onB.push, nil)
	defer subB.Close()

	typing := func(ev handoff.Event) bool { return ev.Type == handoff.EventTyping && ev.Role == handoff.RoleCustomer }
	if err := a.Typing(ctx, conv.ID, handoff.RoleCustomer); err != nil {
		t.Fatal(err)
	}
	if onA.count(typing) != 1 {
		t.Fatalf("instance A has %d typing events right after publishing, want 1 (delivered locally at once)", onA.count(typing))
	}
	res, err := a.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleAgent, ID: e.user("Marker Agent")}, "a message", "m1")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(ev handoff.Event) bool { return ev.Type == handoff.EventMessage && ev.Seq == res.Message.Seq }
	eventually(t, "B got A's typing and message by NOTIFY", func() bool { return onB.count(typing) == 1 && onB.count(msg) == 1 })

	// B now publishes a marker. PostgreSQL delivers notifications in commit
	// order, so when A has B's marker, A's own notifications (sent before)
	// have reached A's listener too: a second copy would be here by now.
	marker := func(ev handoff.Event) bool { return ev.Type == handoff.EventTyping && ev.Role == handoff.RoleAgent }
	if err := b.Typing(ctx, conv.ID, handoff.RoleAgent); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A got B's marker", func() bool { return onA.count(marker) == 1 })
	if n := onA.count(typing); n != 1 {
		t.Errorf("instance A delivered its own typing event %d times, want 1", n)
	}
	if n := onA.count(msg); n != 1 {
		t.Errorf("instance A delivered its own message %d times, want 1", n)
	}
	if n := onB.count(marker); n != 1 {
		t.Errorf("instance B delivered its own marker %d times, want 1", n)
	}
}
