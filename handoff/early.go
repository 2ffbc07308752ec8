package handoff

import (
	"context"
	"errors"
	"sync"
)

// ErrNoTurn is why a turn started ahead of its message is cancelled when
// the message was not stored for the bot (a repeat, or a person holds the
// conversation). A Responder that finds it as its context's cause
// (context.Cause) should stop without side effects: no fallback answer, no
// records, no warnings; nothing it returns is used.
var ErrNoTurn = errors.New("handoff: no turn: the message was not stored for the bot")

// An earlyTurn is a bot turn started when its customer's message arrives,
// while the message is still being stored: the turn reads the transcript,
// searches and asks the LLM meanwhile, and the commit, which a turn used to
// wait for first, now passes during the LLM's own time. Nothing of the turn
// leaves before the commit: its streamed tokens are held until the message
// is stored, and its reply is stored after it. A message that is not stored
// (a repeat, a conversation that turned out closed) or that a person holds
// cancels the turn, which then writes and publishes nothing.
//
// A turn starts early only when the responder prepares a head start (see
// prepare: where this instance last saw the bot hold the conversation, the
// responder has a slow step to hide the commit behind, and few turns are
// ahead already); elsewhere it starts after the commit as before.
type earlyTurn struct {
	s      *Service
	once   sync.Once
	stored chan struct{} // closed once the message's fate is known
	msg    *Message      // set before stored closes: the stored message, or nil for no turn
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the turn has ended
	// deltas is the turn's stream, held until the message is stored.
	deltas *deltaStream
}

// settle tells the turn what became of its message: m is the stored message
// when the bot holds the conversation, nil when no turn is to run. Only the
// first call counts.
func (e *earlyTurn) settle(m *Message) {
	e.once.Do(func() {
		e.s.early.Add(-1)
		e.msg = m
		close(e.stored)
		if m == nil {
			e.cancel(ErrNoTurn)
		} else {
			e.deltas.open() // after the message's own event
		}
	})
}

// settled waits for e's message to be settled and returns it: the stored
// message, or nil when there is to be no turn (or the service stops). It
// does not wait on the turn's own deadline: a stored message gets its
// reply even when the turn ran out of time.
func (s *Service) settled(e *earlyTurn) *Message {
	select {
	case <-e.stored:
		return e.msg
	case <-s.turnCtx.Done():
		return nil
	}
}

// startEarly starts the turn of a customer's message text that is about to
// be stored in convID, with pre, the responder's head start (or nil), which
// it owns. The caller must settle it.
func (s *Service) startEarly(convID, text, clientMsgID string, pre Prepared) *earlyTurn {
	cctx, cancel := context.WithCancelCause(s.turnCtx)
	ctx, cancelTimeout := context.WithTimeout(cctx, s.opt.TurnTimeout)
	e := &earlyTurn{s: s, stored: make(chan struct{}), cancel: cancel, done: make(chan struct{}), deltas: s.turnStream(convID)}
	e.deltas.hold()
	s.early.Add(1)
	msg := Message{ConversationID: convID, Role: RoleCustomer, Text: text, ClientMsgID: clientMsgID}
	s.turns.Add(1)
	go func() {
		defer s.turns.Done()
		defer close(e.done)
		defer cancel(nil)
		defer cancelTimeout()
		unlock := s.lockConv(convID)
		defer unlock()
		if err := s.runTurn(ctx, convID, msg, pre, e); err != nil {
			s.log.Error("handoff: bot turn", "conversation_id", convID, "error", err)
		}
	}()
	return e
}

// withMessage returns the transcript read for an early turn, ending with
// its message: the read ran beside the message's insert and may or may not
// have seen it.
func withMessage(history []Message, m Message) []Message {
	if n := len(history); n > 0 {
		last := history[n-1]
		if last.Role == RoleCustomer && last.Text == m.Text && last.ClientMsgID == m.ClientMsgID {
			return history
		}
	}
	return append(history, m)
}
