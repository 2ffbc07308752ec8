package handoff

import (
	"context"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Suggestion is a reply the bot drafts for an agent from the knowledge
// base; the agent edits it before sending. Nothing is stored or sent.
type Suggestion struct {
	Text       string   `json:"text"`
	Sources    []Source `json:"sources"`
	Intent     string   `json:"intent,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"`
	// Decision is the bot's own decision on the customer's last message
	// ("answer", "escalate", ...); with "escalate" the text is the bot's
	// last attempted answer, if any.
	Decision string `json:"decision,omitempty"`
}

// Suggest asks the Responder for a draft answer to the customer's latest
// message, marking the turn as a draft (Turn.Draft) so the bot records
// nothing. Returns NotFound, Invalid (no customer message yet) or
// Unavailable (the bot failed).
func (s *Service) Suggest(ctx context.Context, convID string) (*Suggestion, error) {
	conv, err := s.store.conversation(ctx, s.pool, convID)
	if err != nil {
		return nil, err
	}
	history, err := s.store.lastMessages(ctx, convID, s.opt.HistorySize)
	if err != nil {
		return nil, err
	}
	last := -1
	for i := range history {
		if history[i].Role == RoleCustomer {
			last = i
		}
	}
	if last < 0 {
		return nil, errs.Errorf(errs.Invalid, "the customer has not written yet; there is nothing to answer")
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.TurnTimeout)
	defer cancel()
	reply, err := s.responder.Respond(ctx, Turn{Conversation: *conv, History: history[:last+1], Message: history[last], Draft: true})
	if err != nil {
		s.log.Warn("handoff: suggestion", "conversation_id", convID, "error", err)
		return nil, errs.Errorf(errs.Unavailable, "the assistant could not draft a reply; try again")
	}
	sg := &Suggestion{Text: reply.Text, Sources: reply.Meta.Sources, Intent: reply.Meta.Intent,
		Confidence: reply.Meta.Confidence, Decision: reply.Meta.Decision}
	if e := reply.Escalate; e != nil {
		sg.Decision = "escalate"
		sg.Text, sg.Sources = e.LastAnswer, e.Sources
		if sg.Intent == "" {
			sg.Intent = e.Intent
		}
	}
	if sg.Sources == nil {
		sg.Sources = []Source{}
	}
	return sg, nil
}
