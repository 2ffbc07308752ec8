package handoff

import (
	"encoding/json"
	"sync"
	"time"
)

// peers tells the publisher whether any other instance can be listening.
//
// Most deployments run one instance, and there a NOTIFY reaches nobody
// but its own sender, which drops it: at 200 bot turns a second the three
// notifications of each turn (the customer's message, the streamed
// tokens, the answer) were a round trip each on the publisher's
// connection, a wake-up of the listening backend and of this instance's
// listener, and they added 1 to 2 ms to a turn's median and more to its
// tail (loadgen bot, alternating runs). So instances say hello: each
// listener announces itself on the channel when its LISTEN is in place,
// before the instance serves anything, and again every beat; an instance
// that has listened for a whole window without hearing another one sends
// no notifications until it does.
//
// Safe by construction: while this instance's own LISTEN is down, or has
// been up for less than a window, it notifies everything, and another
// instance beats several times a window. The one race, an instance that
// starts while this one is alone and whose clients subscribe before this
// one's listener has read its hello, is closed by the replay: what this
// instance left unsent in the last replayWindow goes out when it hears a
// new peer, and subscribers drop what they have by seq.
type peers struct {
	window time.Duration
	beat   time.Duration

	mu    sync.Mutex
	since time.Time // this instance's LISTEN has been up since; zero while down
	heard time.Time // last notification from another instance
	// joined is signalled when another instance is heard after a quiet
	// window: the publisher replays what it did not send.
	joined chan struct{}
}

// replayWindow is how far back the publisher keeps what it did not send,
// for an instance that has just said hello; far beyond the time a
// listener takes to read a notification.
const replayWindow = 2 * time.Second

// defaultPeerWindow is how long an instance must have heard no other
// before it stops notifying.
const defaultPeerWindow = 10 * time.Second

func newPeers(window time.Duration) *peers {
	if window <= 0 {
		window = defaultPeerWindow
	}
	return &peers{window: window, beat: window / 4, joined: make(chan struct{}, 1)}
}

// up records this instance's LISTEN in place at now.
func (p *peers) up(now time.Time) {
	p.mu.Lock()
	p.since = now
	p.mu.Unlock()
}

// down records this instance's LISTEN lost.
func (p *peers) down() {
	p.mu.Lock()
	p.since = time.Time{}
	p.mu.Unlock()
}

// hear records a notification from another instance at now.
func (p *peers) hear(now time.Time) {
	p.mu.Lock()
	quiet := now.Sub(p.heard) >= p.window
	p.heard = now
	p.mu.Unlock()
	if quiet {
		select {
		case p.joined <- struct{}{}:
		default:
		}
	}
}

// alone reports whether no other instance can be listening at now: this
// one has listened for a whole window and heard nobody in it.
func (p *peers) alone(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.since.IsZero() && now.Sub(p.since) >= p.window && now.Sub(p.heard) >= p.window
}

// helloPayload is an instance's hello: an envelope with no event, which
// listeners of any version skip after noting who sent it.
func helloPayload(origin string) string {
	b, _ := json.Marshal([]envelope{{Origin: origin}})
	return string(b)
}

// unsent keeps the events the publisher did not send for replayWindow,
// oldest first.
type unsent struct {
	at   []time.Time
	envs []envelope
}

func (u *unsent) add(now time.Time, env envelope) {
	u.trim(now)
	u.at = append(u.at, now)
	u.envs = append(u.envs, env)
}

// trim forgets what is older than replayWindow.
func (u *unsent) trim(now time.Time) {
	n := 0
	for n < len(u.at) && now.Sub(u.at[n]) > replayWindow {
		n++
	}
	if n > 0 {
		u.at = append(u.at[:0], u.at[n:]...)
		m := copy(u.envs, u.envs[n:])
		clear(u.envs[m:]) // let the events go
		u.envs = u.envs[:m]
	}
}

// take returns what is still within replayWindow and forgets it.
func (u *unsent) take(now time.Time) []envelope {
	u.trim(now)
	out := u.envs
	u.at, u.envs = nil, nil
	return out
}
