package handoff

import (
	"slices"
	"sync"
)

// Hub fans events out to subscribers in this process. It knows nothing of
// WebSockets. Publish never blocks: a subscriber whose buffer is full is
// dropped (its channel closed and Dropped set) and resumes later from its
// last seq.
type Hub struct {
	mu sync.RWMutex
	// subs lists each topic's subscriptions in no order. A slice rather
	// than a set: most topics are one conversation with one socket, and
	// a map per topic cost each idle socket ~150 bytes more; the topics
	// with many (all agents) change only as agents come and go.
	subs map[string][]*Subscription
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string][]*Subscription{}} }

// Subscription receives a topic's events on C until Close or a drop; a
// subscription made with SubscribeFunc has no C and gets its events by
// call instead.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	fn      func(Event) bool
	onDrop  func() // SubscribeFunc's dropped
	topic   string
	hub     *Hub
	once    sync.Once
	mu      sync.Mutex
	dropped bool
}

// Subscribe registers interest in topic with a buffer of size buf.
func (h *Hub) Subscribe(topic string, buf int) *Subscription {
	if buf < 1 {
		buf = 1
	}
	c := make(chan Event, buf)
	s := &Subscription{C: c, c: c, topic: topic, hub: h}
	h.add(s)
	return s
}

// SubscribeFunc registers fn for topic's events: Publish calls it, in
// publishing order, and it must not block. When it returns false (its
// owner cannot keep up), the subscription is dropped, as a full channel
// drops one. Whenever the hub drops it (that, or DropAll), it calls
// dropped, which must not block either, so that the owner resumes by seq;
// Close does not call it. It holds no buffer of its own, which matters for the tens of
// thousands of idle customer sockets an instance keeps: the caller queues
// only what is waiting.
func (h *Hub) SubscribeFunc(topic string, fn func(Event) bool, dropped func()) *Subscription {
	s := &Subscription{fn: fn, onDrop: dropped, topic: topic, hub: h}
	h.add(s)
	return s
}

func (h *Hub) add(s *Subscription) {
	h.mu.Lock()
	h.subs[s.topic] = append(h.subs[s.topic], s)
	h.mu.Unlock()
}

// Close unsubscribes; it is safe to call more than once.
func (s *Subscription) Close() { s.hub.remove(s, false) }

// Dropped reports whether the hub dropped this subscription because it fell
// behind (as opposed to Close).
func (s *Subscription) Dropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

func (h *Hub) remove(s *Subscription, dropped bool) {
	s.once.Do(func() {
		h.mu.Lock()
		l := h.subs[s.topic]
		if i := slices.Index(l, s); i >= 0 {
			last := len(l) - 1
			l[i], l[last] = l[last], nil
			if last == 0 {
				delete(h.subs, s.topic)
			} else {
				h.subs[s.topic] = l[:last]
			}
		}
		h.mu.Unlock()
		s.mu.Lock()
		s.dropped = dropped
		s.mu.Unlock()
		if s.c != nil {
			close(s.c)
		}
		if dropped && s.onDrop != nil {
			s.onDrop()
		}
	})
}

// Publish delivers ev to every subscriber of topic without blocking.
func (h *Hub) Publish(topic string, ev Event) {
	var slow []*Subscription
	h.mu.RLock()
	for _, s := range h.subs[topic] {
		if s.fn != nil {
			if !s.fn(ev) {
				slow = append(slow, s)
			}
			continue
		}
		select {
		case s.c <- ev:
		default:
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	for _, s := range slow {
		h.remove(s, true)
	}
}

// DropAll drops every subscriber, so that each resumes from its last seq.
// Used when this process may have missed events (the LISTEN connection was
// lost).
func (h *Hub) DropAll() {
	h.mu.RLock()
	var all []*Subscription
	for _, l := range h.subs {
		all = append(all, l...)
	}
	h.mu.RUnlock()
	for _, s := range all {
		h.remove(s, true)
	}
}

// Subscribers returns how many subscriptions topic has.
func (h *Hub) Subscribers(topic string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[topic])
}
