package handoff_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// TestNotifyOnlyWithPeers: an instance that has heard no other for a
// whole window sends no notifications (nobody would receive them), keeps
// saying hello, and when another instance says hello it sends what it
// left unsent in the last moments and notifies again from then on.
func TestNotifyOnlyWithPeers(t *testing.T) {
	e := newEnv(t)
	const window = 300 * time.Millisecond
	a, conv := e.windowed(window)
	ctx := context.Background()
	// A plain listener, which is not an instance: it says nothing.
	watch, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	if _, err := watch.Exec(ctx, "LISTEN tandem_events"); err != nil {
		t.Fatal(err)
	}
	// next returns the next notification within d, or "" when none came.
	next := func(d time.Duration) string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		n, err := watch.WaitForNotification(wctx)
		if err != nil {
			if wctx.Err() != nil {
				return ""
			}
			t.Fatal(err)
		}
		return n.Payload
	}
	hello := regexp.MustCompile(`^\[\{"o":"[^"]+","t":""\}\]$`)

	// Past the window A is alone. It still says hello, four times a window.
	hellos := 0
	for until := time.Now().Add(2 * window); time.Now().Before(until); {
		if p := next(time.Until(until)); hello.MatchString(p) {
			hellos++
		}
	}
	if hellos < 4 {
		t.Errorf("A said hello %d times in two windows, want at least 4", hellos)
	}
	// Alone, its events reach its own subscribers and nothing else.
	var onA recorder
	sub := a.SubscribeFunc(conv.ID, onA.push, nil)
	defer sub.Close()
	if err := a.Typing(ctx, conv.ID, handoff.RoleCustomer); err != nil {
		t.Fatal(err)
	}
	typing := func(ev handoff.Event) bool { return ev.Type == handoff.EventTyping }
	if onA.count(typing) != 1 {
		t.Fatalf("A's subscriber has %d typing events, want 1", onA.count(typing))
	}
	for until := time.Now().Add(window); time.Now().Before(until); {
		if p := next(time.Until(until)); p != "" && !hello.MatchString(p) {
			t.Fatalf("an instance alone sent %s", p)
		}
	}

	// Another instance says hello: A sends the typing it held back, and
	// notifies its next events.
	if _, err := watch.Exec(ctx, `SELECT pg_notify('tandem_events', '[{"o":"another-instance","t":""}]')`); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what, part string) {
		t.Helper()
		for until := time.Now().Add(wait); time.Now().Before(until); {
			if p := next(time.Until(until)); strings.Contains(p, part) && strings.Contains(p, conv.ID) {
				return
			}
		}
		t.Fatalf("no notification of %s", what)
	}
	waitFor("the typing held back", `"typing"`)
	res, err := a.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleAgent, ID: e.user("Peer Agent")}, "hello there", "p1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the next message", fmt.Sprintf(`"seq":%d`, res.Message.Seq))
}

// TestPeerStartsLate: an instance that has been alone long enough to stop
// notifying still gets its events to an instance that starts later: the
// newcomer's hello goes out before it is ready, and what the first sent
// meanwhile is replayed.
func TestPeerStartsLate(t *testing.T) {
	e := newEnv(t)
	const window = 200 * time.Millisecond
	a, conv := e.windowed(window)
	time.Sleep(3 * window) // A is alone now
	b := e.serviceWith(handoff.Options{Routing: fastRouting, PeerWindow: window})
	var onB recorder
	sub := b.SubscribeFunc(conv.ID, onB.push, nil)
	defer sub.Close()
	agent := handoff.Author{Role: handoff.RoleAgent, ID: e.user("Peer Agent")}
	reachesB := func(text, client string) {
		t.Helper()
		res, err := a.PostMessage(context.Background(), conv.ID, agent, text, client)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "B got A's message "+client, func() bool {
			return onB.count(func(ev handoff.Event) bool { return ev.Type == handoff.EventMessage && ev.Seq == res.Message.Seq }) == 1
		})
	}
	reachesB("first", "late1") // right away, before A may have read B's hello
	time.Sleep(3 * window)
	reachesB("second", "late2") // long after, with both beating
}

// windowed starts an instance with the given peer window, and a
// conversation on it.
func (e *env) windowed(window time.Duration) (*handoff.Service, *handoff.Conversation) {
	e.t.Helper()
	svc := e.serviceWith(handoff.Options{Routing: fastRouting, PeerWindow: window})
	conv, _, err := svc.CreateConversation(context.Background(), handoff.Customer{}, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return svc, conv
}
