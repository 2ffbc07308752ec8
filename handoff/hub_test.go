package handoff_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
)

func event(seq int64) handoff.Event {
	return handoff.Event{Type: handoff.EventMessage, ConversationID: "c1", Seq: seq}
}

// receive reads one event, failing after a bounded wait.
func receive(t *testing.T, s *handoff.Subscription) (handoff.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.C:
		return ev, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return handoff.Event{}, false
	}
}

// publishBounded publishes from another goroutine and fails if Publish
// blocks.
func publishBounded(t *testing.T, h *handoff.Hub, topic string, evs ...handoff.Event) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ev := range evs {
			h.Publish(topic, ev)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked")
	}
}

func TestHub(t *testing.T) {
	t.Run("DeliversInOrder", func(t *testing.T) {
		h := handoff.NewHub()
		a := h.Subscribe("c1", 100)
		b := h.Subscribe("c1", 100)
		other := h.Subscribe("c2", 100)
		defer a.Close()
		defer b.Close()
		defer other.Close()
		for i := int64(1); i <= 100; i++ {
			h.Publish("c1", event(i))
		}
		for _, s := range []*handoff.Subscription{a, b} {
			for want := int64(1); want <= 100; want++ {
				ev, ok := receive(t, s)
				if !ok || ev.Seq != want {
					t.Fatalf("got seq %d (open %v), want %d", ev.Seq, ok, want)
				}
			}
		}
		if n := len(other.C); n != 0 {
			t.Fatalf("a subscriber of another topic got %d events", n)
		}
		if a.Dropped() || b.Dropped() {
			t.Fatal("a subscriber that kept up was dropped")
		}
	})

	t.Run("CloseOneOfSeveral", func(t *testing.T) {
		h := handoff.NewHub()
		subs := []*handoff.Subscription{h.Subscribe("c1", 10), h.Subscribe("c1", 10), h.Subscribe("c1", 10), h.Subscribe("c1", 10)}
		subs[1].Close()
		subs[3].Close()
		if n := h.Subscribers("c1"); n != 2 {
			t.Fatalf("%d subscribers after closing 2 of 4", n)
		}
		h.Publish("c1", event(1))
		for _, s := range []*handoff.Subscription{subs[0], subs[2]} {
			if ev, ok := receive(t, s); !ok || ev.Seq != 1 {
				t.Fatalf("got seq %d (open %v), want 1", ev.Seq, ok)
			}
		}
		subs[0].Close()
		subs[2].Close()
		if n := h.Subscribers("c1"); n != 0 {
			t.Fatalf("%d subscribers after closing all", n)
		}
	})

	t.Run("SlowSubscriberDropped", func(t *testing.T) {
		h := handoff.NewHub()
		slow := h.Subscribe("c1", 2)
		fast := h.Subscribe("c1", 10)
		defer fast.Close()
		// Nobody reads slow: the third event overflows its buffer.
		publishBounded(t, h, "c1", event(1), event(2), event(3), event(4))
		if !slow.Dropped() {
			t.Fatal("slow subscriber not marked dropped")
		}
		for want := int64(1); want <= 2; want++ {
			if ev, ok := receive(t, slow); !ok || ev.Seq != want {
				t.Fatalf("slow got seq %d (open %v), want its buffered %d", ev.Seq, ok, want)
			}
		}
		if ev, ok := receive(t, slow); ok {
			t.Fatalf("slow subscriber's channel still open, got %+v", ev)
		}
		for want := int64(1); want <= 4; want++ {
			if ev, ok := receive(t, fast); !ok || ev.Seq != want {
				t.Fatalf("fast got seq %d (open %v), want %d", ev.Seq, ok, want)
			}
		}
		if fast.Dropped() {
			t.Fatal("fast subscriber dropped")
		}
		if n := h.Subscribers("c1"); n != 1 {
			t.Fatalf("%d subscribers left, want 1", n)
		}
		slow.Close() // closing a dropped subscription is harmless
		if !slow.Dropped() {
			t.Fatal("Close after a drop cleared Dropped")
		}
	})

	t.Run("CloseIdempotent", func(t *testing.T) {
		h := handoff.NewHub()
		s := h.Subscribe("c1", 4)
		s.Close()
		s.Close()
		if _, ok := receive(t, s); ok {
			t.Fatal("channel open after Close")
		}
		if s.Dropped() {
			t.Fatal("Close reported as a drop")
		}
		if n := h.Subscribers("c1"); n != 0 {
			t.Fatalf("%d subscribers after Close", n)
		}
		publishBounded(t, h, "c1", event(1)) // no one left; must not panic
	})

	t.Run("DropAll", func(t *testing.T) {
		h := handoff.NewHub()
		subs := []*handoff.Subscription{h.Subscribe("c1", 4), h.Subscribe("c1", 4), h.Subscribe("c2", 4)}
		h.DropAll()
		for i, s := range subs {
			if !s.Dropped() {
				t.Fatalf("subscription %d not dropped", i)
			}
			if _, ok := receive(t, s); ok {
				t.Fatalf("subscription %d still open", i)
			}
		}
		if h.Subscribers("c1")+h.Subscribers("c2") != 0 {
			t.Fatal("subscribers left after DropAll")
		}
		// The hub keeps working for new subscribers.
		s := h.Subscribe("c1", 4)
		defer s.Close()
		h.Publish("c1", event(9))
		if ev, ok := receive(t, s); !ok || ev.Seq != 9 {
			t.Fatalf("after DropAll got %+v (open %v)", ev, ok)
		}
	})

	t.Run("ConcurrentPublishAndClose", func(t *testing.T) {
		// Run with -race: closing or dropping while others publish must
		// neither race nor send on a closed channel.
		h := handoff.NewHub()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int64(1); ; i++ {
					select {
					case <-stop:
						return
					default:
						h.Publish("c1", event(i))
					}
				}
			}()
		}
		for i := range 200 {
			s := h.Subscribe("c1", 1+i%3)
			if i%2 == 0 {
				s.Close()
			} else {
				h.DropAll()
			}
			for range s.C { // drains, then ends: the channel is closed
			}
		}
		close(stop)
		wg.Wait()
		if n := h.Subscribers("c1"); n != 0 {
			t.Fatalf("%d subscribers left", n)
		}
	})
}

func TestHubSubscribeFunc(t *testing.T) {
	t.Run("DeliversInOrder", func(t *testing.T) {
		h := handoff.NewHub()
		var got []int64
		s := h.SubscribeFunc("c1", func(ev handoff.Event) bool { got = append(got, ev.Seq); return true }, nil)
		defer s.Close()
		publishBounded(t, h, "c1", event(1), event(2), event(3))
		publishBounded(t, h, "c2", event(9))
		if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Fatalf("got %v, want [1 2 3]", got)
		}
	})
	t.Run("FalseDrops", func(t *testing.T) {
		h := handoff.NewHub()
		calls, drops := 0, 0
		s := h.SubscribeFunc("c1", func(handoff.Event) bool { calls++; return calls < 2 }, func() { drops++ })
		publishBounded(t, h, "c1", event(1), event(2), event(3))
		if calls != 2 || !s.Dropped() || h.Subscribers("c1") != 0 || drops != 1 {
			t.Fatalf("calls %d, dropped %v (told %d times), subscribers %d; want 2, true (once), 0", calls, s.Dropped(), drops, h.Subscribers("c1"))
		}
		s.Close() // after a drop, still safe
		if drops != 1 {
			t.Fatalf("Close after a drop told the owner again")
		}
	})
	t.Run("CloseStops", func(t *testing.T) {
		h := handoff.NewHub()
		calls, drops := 0, 0
		s := h.SubscribeFunc("c1", func(handoff.Event) bool { calls++; return true }, func() { drops++ })
		s.Close()
		publishBounded(t, h, "c1", event(1))
		if calls != 0 || s.Dropped() || drops != 0 {
			t.Fatalf("calls %d, dropped %v, told %d times after Close; want 0, false, 0", calls, s.Dropped(), drops)
		}
	})
	t.Run("DropAllTellsTheOwner", func(t *testing.T) {
		// After the LISTEN connection is lost, events may have been
		// missed: every owner must learn it and resume by seq.
		h := handoff.NewHub()
		dropped := make(chan struct{}, 2)
		a := h.SubscribeFunc("c1", func(handoff.Event) bool { return true }, func() { dropped <- struct{}{} })
		b := h.SubscribeFunc("c2", func(handoff.Event) bool { return true }, func() { dropped <- struct{}{} })
		h.DropAll()
		if len(dropped) != 2 || !a.Dropped() || !b.Dropped() || h.Subscribers("c1")+h.Subscribers("c2") != 0 {
			t.Fatalf("%d owners told, dropped %v %v", len(dropped), a.Dropped(), b.Dropped())
		}
	})
}
