package web

import "testing"

func TestPings(t *testing.T) {
	got := map[*convStream]int{}
	// running: the test ticks, no goroutine.
	p := &pings{running: true, ping: func(c *convStream) { got[c]++ }}
	a, b, c := &convStream{}, &convStream{}, &convStream{}
	ia, ib := p.add(a), p.add(b)
	ticks := func(n int) {
		t.Helper()
		for range n {
			if !p.tick() {
				t.Fatal("tick ended with sockets in the slots")
			}
		}
	}
	// The first ping comes a whole round after joining.
	ticks(pingSlots - 1)
	if len(got) != 0 {
		t.Fatalf("pinged before a round: %v", got)
	}
	ticks(1)
	if got[a] != 1 || got[b] != 1 {
		t.Fatalf("after a round: a %d, b %d pings; want 1 each", got[a], got[b])
	}
	ic := p.add(c) // joins a round from now
	p.remove(a, ia)
	p.remove(a, ia) // twice is harmless
	ticks(pingSlots)
	if got[a] != 1 || got[b] != 2 || got[c] != 1 {
		t.Fatalf("after two rounds: a %d, b %d, c %d pings; want 1, 2, 1", got[a], got[b], got[c])
	}
	p.remove(b, ib)
	p.remove(c, ic)
	if p.tick() || p.running {
		t.Fatal("still ticking with no sockets")
	}
}
