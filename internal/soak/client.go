// Package soak drives Tandem the way its clients do while faults are
// injected, and checks afterwards that nothing acknowledged was lost or
// duplicated. Its clients behave like the widget and the agent console:
// they resend what was not acknowledged with the same client_msg_id, follow
// a conversation over WebSocket and reconnect (to any instance) with the
// last seq they have. The fault tests of cmd/tandem use them, and so does
// `tandem soak` (make soak), which runs many of them for minutes while it
// kills and restarts gateway instances and the database.
package soak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-chat/tandem/internal/loadgen"
)

// Instances are the gateway base URLs (http://host:port) clients may use.
// A client that fails on one moves on to the next, as it would behind a
// load balancer that takes a dead instance out.
type Instances struct {
	mu   sync.Mutex
	urls []string
	next int
}

// NewInstances returns the set of urls.
func NewInstances(urls ...string) *Instances { return &Instances{urls: urls} }

// Pick returns the next instance, round robin.
func (in *Instances) Pick() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.urls) == 0 {
		return ""
	}
	u := in.urls[in.next%len(in.urls)]
	in.next++
	return u
}

// Set replaces the instances.
func (in *Instances) Set(urls ...string) {
	in.mu.Lock()
	in.urls = append([]string(nil), urls...)
	in.mu.Unlock()
}

// Stats counts what the clients did and saw; every field is safe for
// concurrent use.
type Stats struct {
	Sent         atomic.Int64 // messages handed to a client to send
	Acked        atomic.Int64 // of those, acknowledged (201/200 or an ack frame)
	Resent       atomic.Int64 // attempts after the first, same client_msg_id
	Unavailable  atomic.Int64 // 503 answers and unavailable error frames
	RateLimited  atomic.Int64 // 429 answers and rate_limited error frames
	Refused      atomic.Int64 // transport errors (connection refused or reset)
	OtherErrors  atomic.Int64 // any other error answer
	Reconnects   atomic.Int64 // WebSocket reconnections
	SocketEvents atomic.Int64 // sequenced events received over WebSockets

	mu       sync.Mutex
	examples []string
}

// note keeps a few examples of unexpected errors for the report.
func (s *Stats) note(format string, args ...any) {
	s.OtherErrors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.examples) < 10 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// Examples returns up to ten unexpected errors seen.
func (s *Stats) Examples() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.examples...)
}

// Client calls a set of instances over HTTP.
type Client struct {
	HTTP  *http.Client
	Inst  *Instances
	Stats *Stats
}

// NewClient returns a client of inst with its own connection pool.
func NewClient(inst *Instances) *Client {
	return &Client{
		HTTP:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Inst:  inst,
		Stats: &Stats{},
	}
}

// APIError is an error answer of the contract.
type APIError = loadgen.APIError

// try sends one request to base and decodes a 2xx answer into out.
func (c *Client) try(ctx context.Context, base, method, path, token string, body, out any) (int, error) {
	return loadgen.Request(ctx, c.HTTP, base, method, path, token, body, out)
}

// Call sends a request, retrying on another instance after a transport
// error, a 503 or a 429 (after its Retry-After), until an answer that is
// final or ctx ends. It returns the status of the final answer.
func (c *Client) Call(ctx context.Context, method, path, token string, body, out any) (int, error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		status, err := c.try(ctx, c.Inst.Pick(), method, path, token, body, out)
		if err == nil {
			return status, nil
		}
		if ctx.Err() != nil {
			return status, ctx.Err()
		}
		wait := backoff
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
			c.Stats.Unavailable.Add(1)
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			c.Stats.RateLimited.Add(1)
			wait = max(wait, ae.RetryAfter)
		case errors.As(err, &ae):
			return status, err
		default:
			c.Stats.Refused.Add(1)
		}
		select {
		case <-ctx.Done():
			return status, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// Message is a message as the API shows it.
type Message struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	Seq            int64     `json:"seq"`
	Role           string    `json:"role"`
	Text           string    `json:"text"`
	ClientMsgID    string    `json:"client_msg_id"`
	CreatedAt      time.Time `json:"created_at"`
}

// Conversation is a conversation a customer started.
type Conversation struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// NewConversation starts a conversation as a new customer.
func (c *Client) NewConversation(ctx context.Context) (Conversation, error) {
	var conv Conversation
	_, err := c.Call(ctx, "POST", "/api/v1/conversations", "", map[string]any{}, &conv)
	return conv, err
}

// Post sends one message over REST as the holder of token and returns its
// seq once acknowledged, resending (same client_msg_id) through faults.
func (c *Client) Post(ctx context.Context, convID, token, text, clientMsgID string) (int64, error) {
	c.Stats.Sent.Add(1)
	var out struct {
		Message Message `json:"message"`
	}
	_, err := c.Call(ctx, "POST", "/api/v1/conversations/"+convID+"/messages", token,
		map[string]string{"text": text, "client_msg_id": clientMsgID}, &out)
	if err != nil {
		return 0, err
	}
	if out.Message.ClientMsgID != clientMsgID || out.Message.Seq <= 0 {
		return 0, fmt.Errorf("post %s: acknowledged as %+v", clientMsgID, out.Message)
	}
	c.Stats.Acked.Add(1)
	return out.Message.Seq, nil
}

// Transcript returns every message of a conversation, paging by seq.
func (c *Client) Transcript(ctx context.Context, convID, token string) ([]Message, int64, error) {
	var all []Message
	var after int64
	for {
		var out struct {
			Messages []Message `json:"messages"`
		}
		if _, err := c.Call(ctx, "GET", fmt.Sprintf("/api/v1/conversations/%s/messages?after=%d&limit=1000", convID, after), token, nil, &out); err != nil {
			return nil, 0, err
		}
		all = append(all, out.Messages...)
		if len(out.Messages) < 1000 {
			break
		}
		after = out.Messages[len(out.Messages)-1].Seq
	}
	var conv struct {
		LastSeq int64 `json:"last_seq"`
	}
	if _, err := c.Call(ctx, "GET", "/api/v1/conversations/"+convID, token, nil, &conv); err != nil {
		return nil, 0, err
	}
	return all, conv.LastSeq, nil
}

// Check compares a conversation's transcript with what was acknowledged
// (client_msg_id → seq): each acknowledged message must be stored exactly
// once, at its seq. found counts the acknowledged messages present.
func Check(transcript []Message, acked map[string]int64) (found, lost, duplicates int, problems []string) {
	byID := map[string][]Message{}
	seqs := map[int64]int{}
	for _, m := range transcript {
		if m.ClientMsgID != "" {
			byID[m.ClientMsgID] = append(byID[m.ClientMsgID], m)
		}
		seqs[m.Seq]++
	}
	for seq, n := range seqs {
		if n > 1 {
			duplicates += n - 1
			problems = append(problems, fmt.Sprintf("seq %d stored %d times", seq, n))
		}
	}
	for id, seq := range acked {
		ms := byID[id]
		switch {
		case len(ms) == 0:
			lost++
			problems = append(problems, fmt.Sprintf("%s (acknowledged as seq %d) is not in the transcript", id, seq))
			continue
		case len(ms) > 1:
			duplicates += len(ms) - 1
			problems = append(problems, fmt.Sprintf("%s stored %d times", id, len(ms)))
		}
		found++
		if ms[0].Seq != seq {
			problems = append(problems, fmt.Sprintf("%s acknowledged as seq %d, stored as %d", id, seq, ms[0].Seq))
		}
	}
	return found, lost, duplicates, problems
}
