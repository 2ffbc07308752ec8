package web

import (
	"sync"
	"time"
)

// pingSlots is how many groups the conversation sockets' pings are spread
// over: one group is pinged every pingEvery/pingSlots.
const pingSlots = 25

// pings sends every conversation socket of a server a ping each pingEvery,
// from one goroutine, instead of a timer per socket (a timer was ~160 bytes
// of each idle socket's memory; a place in a slot is ~20). A socket joins
// the slot pinged last, so its first ping comes about pingEvery after it
// opened, and the next ones pingEvery apart. The goroutine runs while any
// socket is in a slot.
type pings struct {
	mu      sync.Mutex
	slots   [pingSlots]map[*convStream]struct{}
	next    int // the slot the next tick pings
	n       int // sockets in all slots
	running bool
	due     []*convStream // the tick's, reused; only the ticking goroutine touches it
	// ping replaces convStream.pingNow in tests.
	ping func(*convStream)
}

// add puts c in a slot and returns it, for remove.
func (p *pings) add(c *convStream) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := (p.next + pingSlots - 1) % pingSlots
	if p.slots[i] == nil {
		p.slots[i] = map[*convStream]struct{}{}
	}
	p.slots[i][c] = struct{}{}
	p.n++
	if !p.running {
		p.running = true
		go p.run()
	}
	return i
}

// remove takes c out of slot i.
func (p *pings) remove(c *convStream, i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.slots[i][c]; ok {
		delete(p.slots[i], c)
		p.n--
	}
}

func (p *pings) run() {
	t := time.NewTicker(pingEvery / pingSlots)
	defer t.Stop()
	for range t.C {
		if !p.tick() {
			return
		}
	}
}

// tick pings the sockets of the next slot; false when there are none left
// in any (and the goroutine is to end).
func (p *pings) tick() bool {
	p.mu.Lock()
	if p.n == 0 {
		p.running = false
		p.mu.Unlock()
		return false
	}
	p.due = p.due[:0]
	for c := range p.slots[p.next] {
		p.due = append(p.due, c)
	}
	p.next = (p.next + 1) % pingSlots
	due := p.due
	p.mu.Unlock()
	for _, c := range due {
		if p.ping != nil {
			p.ping(c)
		} else {
			c.pingNow()
		}
	}
	clear(due) // keep no closed socket alive
	return true
}
