// Package handoff owns the conversation: its state, its transcript, the
// queue, teams, agents, presence and assignment. When the bot owns a
// conversation it asks a Responder for the next turn; it never imports bot.
package handoff

import (
	"encoding/json"
	"strings"
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
	ID         string   `json:"id"`
	State      State    `json:"state"`
	Customer   Customer `json:"customer"`
	Verified   bool     `json:"verified"`
	Team       string   `json:"team,omitempty"`
	Priority   int      `json:"priority"`
	Reason     string   `json:"reason,omitempty"`
	AssignedTo string   `json:"assigned_to,omitempty"`
	// AssigneeName is the assigned agent's display name, shown to the
	// customer.
	AssigneeName string `json:"assignee_name,omitempty"`
	Resolution   string `json:"resolution,omitempty"`
	// CSATPending says a satisfaction score is asked for (after close).
	CSATPending bool       `json:"csat_pending,omitempty"`
	LastSeq     int64      `json:"last_seq"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	QueuedAt    *time.Time `json:"queued_at,omitempty"`
	AssignedAt  *time.Time `json:"assigned_at,omitempty"`
	ClosedAt    *time.Time `json:"closed_at,omitempty"`

	// answeredAt is when the assigned agent first wrote since the assignment.
	answeredAt *time.Time
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
	// Attachments are the photos and files the message carries (present
	// only when it carries some); such a message may have no text.
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Event types sent to subscribers of a conversation.
const (
	EventMessage     = "message"
	EventState       = "state"
	EventTyping      = "typing"
	EventBotDelta    = "bot.delta"
	EventCSATRequest = "csat.request"
	// EventCSAT records the customer's satisfaction score in the transcript.
	EventCSAT = "csat"
)

// Event types sent to agents (on the topics below, and so on /ws/agent).
const (
	// EventQueue says a queue entry was added, updated or removed; Data is
	// {"change": "added"|"updated"|"removed", "entry": QueueEntry}.
	EventQueue = "queue"
	// EventAssigned tells an agent a conversation is now theirs; Data is
	// {"agent_id", "reason", "conversation": Conversation}.
	EventAssigned = "assigned"
	// EventUnassigned tells an agent a conversation left them; Data is
	// {"agent_id", "reason", "state"}.
	EventUnassigned = "unassigned"
	// EventSLA flags a queue entry waiting past its team's threshold; Data is
	// {"entry": QueueEntry}.
	EventSLA = "sla"
	// EventNote carries a private note; Data is a Note.
	EventNote = "note"
	// EventAgentStatus tells agents that an agent's presence changed; Data is
	// an Agent.
	EventAgentStatus = "agent.status"
)

// Hub topics besides conversation ids (a conversation's topic is its id).
const (
	// TopicAgents reaches every agent: queue changes, presence, and SLA
	// flags of conversations without a team.
	TopicAgents = "agents"
	// TopicAdmins reaches admins: every SLA flag.
	TopicAdmins = "admins"
)

// AgentTopic is the topic of one agent's assignments.
func AgentTopic(userID string) string { return "agent:" + userID }

// TeamTopic is the topic of a team's SLA flags.
func TeamTopic(name string) string { return "team:" + strings.ToLower(name) }

// StaffTopic is the topic of a conversation's staff-only events (notes).
func StaffTopic(conversationID string) string { return "staff:" + conversationID }

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
