package handoff

import (
	"context"
	"sync"
)

// A Preparer is a Responder that can start on a customer's message before
// the message is stored. The bot's search needs only the message's text, so
// it runs while the message commits and the turn reads the transcript,
// instead of after both: the three were a bot turn's longest wait in the
// database, one after the other.
type Preparer interface {
	Responder
	// Prepare starts work on text, the customer's message as it will be
	// stored, and returns it for the message's turn (Turn.Prepared), or
	// nil when a head start would not pay (the turn has no slow step, such
	// as an LLM's answer, to hide the commit behind). It must not block.
	// ctx bounds the work.
	Prepare(ctx context.Context, text string) Prepared
}

// Prepared is work a Preparer started for a turn.
type Prepared interface {
	// Release ends the work if it still runs and lets it go. It is called
	// once, after the turn, or instead of it when the message was not
	// stored or a person holds the conversation.
	Release()
}

// maxEarly bounds the turns started ahead of their messages' commits at
// once. A head start adds reads beside the message's insert; in a burst
// (500 messages a second, loadgen burst) they made the inserts queue
// behind them, and acknowledgements slow: past the bound, turns start
// after their commits as before.
const maxEarly = 8

// prepare starts the responder's work on a customer's message that is
// about to be stored, when this instance last saw the bot hold the
// conversation and fewer than maxEarly turns are ahead of their commits;
// otherwise (a person holds it, it is not known here, or the database is
// busy) the turn does all its work after the commit, as the work would be
// wasted if no turn came. It returns nil when nothing was started.
func (s *Service) prepare(convID, text string) Prepared {
	p, ok := s.responder.(Preparer)
	if !ok || !s.botHeld.has(convID) || s.early.Load() >= maxEarly {
		return nil
	}
	return p.Prepare(s.turnCtx, text)
}

// release lets p go; p may be nil.
func release(p Prepared) {
	if p != nil {
		p.Release()
	}
}

// maxBotHeld bounds the conversations botHeld remembers; past it, it
// starts again empty (a forgotten conversation's next turn only loses its
// head start).
const maxBotHeld = 100_000

// botConvs remembers the conversations this instance last saw the bot
// hold: created here, or a customer's message stored while the bot held
// it. A person taking over removes it. It is a hint for prepare, never a
// decision: the stored state decides whether a turn runs.
type botConvs struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

func (b *botConvs) set(id string, held bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !held {
		delete(b.ids, id)
		return
	}
	if b.ids == nil || len(b.ids) >= maxBotHeld {
		b.ids = make(map[string]struct{})
	}
	b.ids[id] = struct{}{}
}

func (b *botConvs) has(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.ids[id]
	return ok
}
