package handoff

import (
	"strings"
	"sync"
	"time"
)

// streamEvery is the least time between two bot.delta events of one turn.
// An LLM streams a token every 10 to 30 ms, and each token as an event of
// its own cost more than the rest of the turn's own work: the event encoded
// for every viewer's socket and for the notification to other instances, a
// socket write and a frame for the client to read. The first token goes at
// once (the time to the first token is what a customer waits for); the
// ones that follow within streamEvery go together in the next event, 25
// updates a second at most, about as often as a screen redraws text that
// is being read. Measured at 200 turns a second (20 tokens 10 ms apart):
// docs/benchmarks.md.
const streamEvery = 40 * time.Millisecond

// deltaStream gathers a turn's streamed text into bot.delta events at most
// every streamEvery. Its methods are safe for concurrent use; publish is
// called with the stream's lock held, so events leave in order.
type deltaStream struct {
	publish func(delta string)
	every   time.Duration

	mu      sync.Mutex
	pending strings.Builder
	last    time.Time   // when the last event left
	timer   *time.Timer // set while an event is due
	held    bool        // nothing leaves until open
	stopped bool
}

func newDeltaStream(every time.Duration, publish func(string)) *deltaStream {
	return &deltaStream{publish: publish, every: every}
}

// add streams delta: at once when the last event left long enough ago,
// else with the next event.
func (d *deltaStream) add(delta string) {
	if delta == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.pending.WriteString(delta)
	if d.held {
		return // open sends it
	}
	if d.timer != nil {
		return // an event is due and takes this along
	}
	if wait := d.every - time.Since(d.last); wait > 0 {
		d.timer = time.AfterFunc(wait, d.due)
		return
	}
	d.send()
}

// due sends what is pending when its time has come.
func (d *deltaStream) due() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timer = nil
	if !d.stopped && !d.held {
		d.send()
	}
}

// send publishes the pending text; the caller holds d.mu.
func (d *deltaStream) send() {
	if d.pending.Len() == 0 {
		return
	}
	text := d.pending.String()
	d.pending.Reset()
	d.last = time.Now()
	d.publish(text)
}

// hold keeps what is streamed from leaving until open.
func (d *deltaStream) hold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = true
}

// open lets the stream's events leave, at once what is pending.
func (d *deltaStream) open() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = false
	if !d.stopped && d.timer == nil {
		d.send()
	}
}

// stop ends the stream, sending what is pending, so that the events of a
// stream add up to the text streamed (a client may show only them until
// the stored message comes). A held stream drops it instead: its message
// was not stored, or not yet, and then the stored message, which carries
// the whole answer, is all the customer sees of the turn.
func (d *deltaStream) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if !d.held {
		d.send()
	}
	d.stopped = true
	d.pending.Reset()
}
