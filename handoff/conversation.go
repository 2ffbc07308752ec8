// Package handoff owns the conversation: its state, its transcript, and (as
// it grows) the queue, agents, presence and assignment. When the bot owns a
// conversation it asks a Responder for the next turn; it never imports bot.
package handoff

import (
	"encoding/json"
	"time"
)

// State is where a conversation stands.
type State string

// The conversation states; see DESIGN.md for the transitions.
const (
	StateBot      State = "bot"
	StateQueued   State = "queued"
	StateAssigned State = "assigned"
	StateClosed   State = "closed"
)

// Roles of a message's author.
const (
	RoleCustomer = "customer"
	RoleBot      = "bot"
	RoleAgent    = "agent"
	RoleSystem   = "system"
)

// Customer is what the widget or app tells about the person chatting.
type Customer struct {
	ExternalID string         `json:"external_id,omitempty"`
	Name       string         `json:"name,omitempty"`
	Email      string         `json:"email,omitempty"`
	Locale     string         `json:"locale,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Conversation is one customer's chat.
type Conversation struct {
	ID         string     `json:"id"`
	State      State      `json:"state"`
	Customer   Customer   `json:"customer"`
	Verified   bool       `json:"verified"`
	Team       string     `json:"team,omitempty"`
	Priority   int        `json:"priority"`
	Reason     string     `json:"reason,omitempty"`
	AssignedTo string     `json:"assigned_to,omitempty"`
	LastSeq    int64      `json:"last_seq"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
}

// Source is a knowledge chunk an answer came from.
type Source struct {
	DocumentID string  `json:"document_id"`
	Title      string  `json:"title"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score,omitempty"`
}

// Meta is what a bot message says about itself.
type Meta struct {
	Intent     string   `json:"intent,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"`
	Sources    []Source `json:"sources,omitempty"`
	Decision   string   `json:"decision,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// Message is one turn of the transcript.
type Message struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	Seq            int64     `json:"seq"`
	Role           string    `json:"role"`
	AuthorID       string    `json:"author_id,omitempty"`
	AuthorName     string    `json:"author_name,omitempty"`
	Text           string    `json:"text"`
	ClientMsgID    string    `json:"client_msg_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	Meta           Meta      `json:"meta"`
}

// Event types sent to subscribers of a conversation.
const (
	EventMessage     = "message"
	EventState       = "state"
	EventTyping      = "typing"
	EventBotDelta    = "bot.delta"
	EventCSATRequest = "csat.request"
)

// Event is what subscribers of a conversation receive. Message and state
// events carry the conversation's seq; typing and bot.delta are ephemeral
// and carry none.
type Event struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq,omitempty"`
	Message        *Message        `json:"message,omitempty"`
	State          State           `json:"state,omitempty"`
	Role           string          `json:"role,omitempty"`
	Delta          string          `json:"delta,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	CreatedAt      *time.Time      `json:"created_at,omitempty"`
}
