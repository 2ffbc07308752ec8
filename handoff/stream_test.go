package handoff

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// events collects what a deltaStream publishes.
type events struct {
	mu   sync.Mutex
	got  []string
	more chan struct{}
}

func newEvents() *events { return &events{more: make(chan struct{}, 100)} }

func (e *events) publish(s string) {
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
	e.more <- struct{}{}
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// TestDeltaStreamGathers: the first delta leaves at once, the ones within
// the interval wait and leave together, in order, stop sends what is
// still pending, and nothing leaves after it.
func TestDeltaStreamGathers(t *testing.T) {
	ev := newEvents()
	d := newDeltaStream(time.Hour, ev.publish)
	d.add("Returns ")
	d.add("")
	d.add("are ")
	d.add("free.")
	if got := ev.list(); len(got) != 1 || got[0] != "Returns " {
		t.Fatalf("published %q: want the first delta at once and the rest held", got)
	}
	d.stop()
	d.add("late")
	if got := ev.list(); len(got) != 2 || got[1] != "are free." {
		t.Fatalf("published %q: want what was pending sent at stop, and nothing after", got)
	}
}

// TestDeltaStreamDue: held deltas leave together when the interval has
// passed, without another delta to carry them, and nothing is lost or
// reordered.
func TestDeltaStreamDue(t *testing.T) {
	ev := newEvents()
	d := newDeltaStream(5*time.Millisecond, ev.publish)
	words := strings.Fields("Standard shipping in the US costs $6.95 and is free on orders of $75 or more")
	for _, w := range words {
		d.add(w + " ")
	}
	want := strings.Join(words, " ") + " "
	deadline := time.After(10 * time.Second)
	for strings.Join(ev.list(), "") != want {
		select {
		case <-ev.more:
		case <-deadline:
			t.Fatalf("published %q: want %q in the end", ev.list(), want)
		}
	}
	if got := ev.list(); len(got) < 2 || len(got) > len(words) {
		t.Fatalf("published %d events for %d deltas: want the first alone and the rest gathered", len(got), len(words))
	}
	d.stop()
}

// TestDeltaStreamHeld: a held stream publishes nothing, timer or not, and
// on open sends everything pending at once, in order.
func TestDeltaStreamHeld(t *testing.T) {
	ev := newEvents()
	d := newDeltaStream(time.Millisecond, ev.publish)
	d.hold()
	d.add("Standard ")
	d.add("shipping ")
	time.Sleep(20 * time.Millisecond) // many intervals
	if got := ev.list(); len(got) != 0 {
		t.Fatalf("published %q while held", got)
	}
	d.open()
	if got := ev.list(); len(got) != 1 || got[0] != "Standard shipping " {
		t.Fatalf("published %q on open: want the held text in one event", got)
	}
	d.stop()

	// Stopped while still held (its message not stored): nothing leaves.
	ev = newEvents()
	d = newDeltaStream(time.Millisecond, ev.publish)
	d.hold()
	d.add("Never ")
	d.add("seen")
	d.stop()
	d.open()
	if got := ev.list(); len(got) != 0 {
		t.Fatalf("a stream stopped while held published %q", got)
	}
}
