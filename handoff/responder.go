package handoff

import "context"

// Turn is what a Responder sees: the conversation, its recent transcript
// (oldest first, ending with the customer's new message) and a way to stream
// partial reply text to the customer.
type Turn struct {
	Conversation Conversation
	History      []Message
	Message      Message
	// Stream sends partial reply text as bot.delta events; it may be nil.
	Stream func(delta string)
	// ReadAttachment returns the bytes of one of the conversation's
	// attachments (Message.Attachments, or the history's); it may be nil.
	ReadAttachment func(ctx context.Context, a Attachment) ([]byte, error)
	// Prepared is the Responder's own head start on Message (see
	// Preparer), or nil.
	Prepared Prepared
	// Draft marks a turn whose reply goes to an agent as a suggestion, not
	// to the customer: the Responder should record nothing (no unanswered
	// questions, no metrics of decisions).
	Draft bool
}

// Escalation asks for a person, with what the bot knew.
type Escalation struct {
	Reason     string   `json:"reason"`
	Team       string   `json:"team,omitempty"`
	Priority   int      `json:"priority"`
	Summary    string   `json:"summary,omitempty"`
	Intent     string   `json:"intent,omitempty"`
	Confidence float64  `json:"confidence"`
	LastAnswer string   `json:"last_answer,omitempty"`
	Sources    []Source `json:"sources,omitempty"`
}

// Reply is a Responder's turn: a message for the customer and, when the bot
// hands the conversation to a person, an Escalation.
type Reply struct {
	Role     string // RoleBot (default) or RoleSystem
	Text     string
	Meta     Meta
	Escalate *Escalation
}

// Responder answers a customer in a conversation that the bot owns.
// An error is treated as the bot being unavailable: the customer is told
// and the conversation goes to a person.
type Responder interface {
	Respond(ctx context.Context, turn Turn) (Reply, error)
}

// Unconfigured is the placeholder Responder used until a bot is wired in: it
// says plainly that the assistant is not configured. It never pretends to
// answer.
type Unconfigured struct{}

// Respond implements Responder.
func (Unconfigured) Respond(ctx context.Context, turn Turn) (Reply, error) {
	return Reply{
		Role: RoleSystem,
		Text: "The automated assistant is not configured yet. Ask for a person and a member of our team will help you.",
		Meta: Meta{Decision: "unconfigured"},
	}, nil
}
