// Package llmfake is an OpenAI-compatible HTTP server for tests, so the real
// client code (go-openai, timeouts, retries, streaming) runs against
// something that answers like an LLM, fails on demand and records what
// reached it.
//
// It serves POST /v1/chat/completions (plain and "stream": true),
// POST /v1/embeddings and GET /v1/models. Every knob is safe to change while
// requests are in flight.
package llmfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	openai "github.com/sashabaranov/go-openai"
)

// DefaultEmbeddingDim is the length of the vectors /v1/embeddings returns
// until SetEmbeddingDim changes it.
const DefaultEmbeddingDim = 64

// Recorded is one request the server received, including those it was told
// to fail.
type Recorded struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte // the raw request body
	Time   time.Time

	// Chat is the decoded body of a chat completion request, nil otherwise.
	Chat *openai.ChatCompletionRequest
	// Inputs are the texts of an embeddings request, nil otherwise.
	Inputs []string
	// Model is the "model" of a chat or embeddings request.
	Model string
}

// Contains reports whether s occurs anywhere in the raw request body, for
// checks such as "no card number reached the LLM". JSON escaping applies:
// search for plain text, not for quotes or control characters.
func (r Recorded) Contains(s string) bool {
	if bytes.Contains(r.Body, []byte(s)) {
		return true
	}
	// Non-ASCII text may arrive \u-escaped; compare the decoded strings too.
	var v any
	if json.Unmarshal(r.Body, &v) != nil {
		return false
	}
	found := false
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			found = found || strings.Contains(v, s)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return found
}

// Images returns the URLs of the images a chat request showed the model
// (image_url parts of multi-part messages), in order.
func (r Recorded) Images() []string {
	if r.Chat == nil {
		return nil
	}
	var out []string
	for _, m := range r.Chat.Messages {
		for _, p := range m.MultiContent {
			if p.Type == openai.ChatMessagePartTypeImageURL && p.ImageURL != nil {
				out = append(out, p.ImageURL.URL)
			}
		}
	}
	return out
}

// Text returns a chat message's text: its content, or the text parts of a
// multi-part message joined by newlines.
func Text(m openai.ChatCompletionMessage) string {
	if m.Content != "" || len(m.MultiContent) == 0 {
		return m.Content
	}
	var parts []string
	for _, p := range m.MultiContent {
		if p.Type == openai.ChatMessagePartTypeText {
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Server is a running fake. The zero value is not usable; call New.
type Server struct {
	srv *httptest.Server

	mu         sync.Mutex
	reply      func(req openai.ChatCompletionRequest) string
	embed      func(text string) []float32
	dim        int
	latency    time.Duration
	tokenDelay time.Duration
	failN      int
	failStatus int
	cutAfter   int // chunks before the next stream is cut; -1 for none
	stallAfter int // chunks before the next stream stalls; -1 for none
	apiKey     string
	requests   []Recorded

	ids atomic.Int64
}

// New starts a fake on a local port. Close it when done, typically with
// t.Cleanup(s.Close).
func New() *Server {
	s := &Server{dim: DefaultEmbeddingDim, cutAfter: -1, stallAfter: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.record(r, nil, nil)
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// URL returns the base URL for an OpenAI client, ending in /v1.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close shuts the server down, breaking any open stream.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.requests...)
}

// ChatRequests returns the chat completion requests received so far.
func (s *Server) ChatRequests() []openai.ChatCompletionRequest {
	var out []openai.ChatCompletionRequest
	for _, r := range s.Requests() {
		if r.Chat != nil {
			out = append(out, *r.Chat)
		}
	}
	return out
}

// ResetRequests forgets the requests recorded so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// SetReply sets the function that writes the assistant's answer to a chat
// request. By default the answer is "fake reply: " followed by the last
// user message.
func (s *Server) SetReply(f func(req openai.ChatCompletionRequest) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = f
}

// SetEmbed sets the function that turns a text into its vector, for tests
// that want chosen similarities. By default vectors are pseudo-random but
// deterministic: the same text always gets the same vector, of length
// SetEmbeddingDim, and the vectors are deliberately not normalised.
func (s *Server) SetEmbed(f func(text string) []float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.embed = f
}

// SetEmbeddingDim sets the length of the default vectors.
func (s *Server) SetEmbeddingDim(dim int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dim = dim
}

// SetLatency makes every request wait d before it is answered (or failed),
// counted from the request's arrival. A client that gives up earlier sees
// a timeout.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetTokenDelay paces a streamed answer: content chunk i (from 1) goes at
// the latency plus i times d after the request arrived. The times are
// fixed from the arrival, not from the chunk before, so that a chunk
// written late (a busy machine) does not delay the ones after it: the
// stream keeps its rate, as a model's would on another machine.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// FailNext makes the next n requests, on any endpoint, fail with the given
// HTTP status and an OpenAI-style error body; a 429 also carries
// Retry-After: 0.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// CutNextStream makes the next streamed answer stop after it has sent
// chunks content chunks: the connection is dropped without a finish reason
// or "data: [DONE]", as when a provider dies mid-answer.
func (s *Server) CutNextStream(chunks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAfter = chunks
}

// StallNextStream makes the next streamed answer stop sending after it has
// sent chunks content chunks, and hold the connection open without a word
// until the client gives up: a provider that hangs mid-answer.
func (s *Server) StallNextStream(chunks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallAfter = chunks
}

// RequireKey makes the server answer 401 to requests that do not carry
// "Authorization: Bearer key". An empty key accepts anything (the default).
func (s *Server) RequireKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = key
}

// record stores a received request; fill, when not nil, adds what was
// decoded from its body.
func (s *Server) record(r *http.Request, body []byte, fill func(*Recorded)) {
	rec := Recorded{
		Method: r.Method,
		Path:   r.URL.Path,
		Header: r.Header.Clone(),
		Body:   body,
		Time:   time.Now(),
	}
	if fill != nil {
		fill(&rec)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

// gate applies the latency (from arrived), authorisation and FailNext
// knobs. It returns false when it has answered the request itself.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, arrived time.Time) bool {
	s.mu.Lock()
	latency, key := s.latency, s.apiKey
	fail := 0
	if s.failN > 0 {
		s.failN--
		fail = s.failStatus
	}
	s.mu.Unlock()

	if latency > 0 && !sleepUntil(r, arrived.Add(latency)) {
		return false
	}
	if key != "" && r.Header.Get("Authorization") != "Bearer "+key {
		writeError(w, http.StatusUnauthorized, "invalid api key")
		return false
	}
	if fail != 0 {
		if fail == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		writeError(w, fail, fmt.Sprintf("injected failure (%d)", fail))
		return false
	}
	return true
}

// sleepUntil waits until t or until the client goes away, and reports
// whether t was reached.
func sleepUntil(r *http.Request, until time.Time) bool {
	d := time.Until(until)
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(r.Body)
	var req openai.ChatCompletionRequest
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	s.record(r, body, func(rec *Recorded) {
		if err == nil {
			rec.Chat, rec.Model = &req, req.Model
		}
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	if !s.gate(w, r, arrived) {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "messages must not be empty")
		return
	}

	s.mu.Lock()
	replyFn, latency, tokenDelay := s.reply, s.latency, s.tokenDelay
	cut, stall := -1, -1
	if req.Stream {
		cut, s.cutAfter = s.cutAfter, -1
		stall, s.stallAfter = s.stallAfter, -1
	}
	s.mu.Unlock()
	if replyFn == nil {
		replyFn = defaultReply
	}
	reply := replyFn(req)
	id := fmt.Sprintf("chatcmpl-fake-%d", s.ids.Add(1))
	created := time.Now().Unix()
	tokens := Tokens(reply)
	// Usage only when the reply carries it: counting a long prompt's
	// tokens was a tenth of a load test's time in the fake.
	usage := func() openai.Usage {
		u := openai.Usage{PromptTokens: promptTokens(req), CompletionTokens: len(tokens)}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		return u
	}

	if !req.Stream {
		writeJSON(w, http.StatusOK, openai.ChatCompletionResponse{
			ID:      id,
			Object:  "chat.completion",
			Created: created,
			Model:   req.Model,
			Choices: []openai.ChatCompletionChoice{{
				Message:      openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: reply},
				FinishReason: openai.FinishReasonStop,
			}},
			Usage: usage(),
		})
		return
	}

	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	chunk := func(delta openai.ChatCompletionStreamChoiceDelta, finish openai.FinishReason) {
		writeEvent(w, openai.ChatCompletionStreamResponse{
			ID:      id,
			Object:  "chat.completion.chunk",
			Created: created,
			Model:   req.Model,
			Choices: []openai.ChatCompletionStreamChoice{{Delta: delta, FinishReason: finish}},
		})
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk(openai.ChatCompletionStreamChoiceDelta{Role: openai.ChatMessageRoleAssistant}, "")
	for i, tok := range tokens {
		if i == cut {
			// Drop the connection without the final chunk; net/http
			// aborts the response when a handler panics with this value.
			panic(http.ErrAbortHandler)
		}
		if i == stall {
			<-r.Context().Done()
			return
		}
		if tokenDelay > 0 && !sleepUntil(r, arrived.Add(latency+time.Duration(i+1)*tokenDelay)) {
			return
		}
		chunk(openai.ChatCompletionStreamChoiceDelta{Content: tok}, "")
	}
	if cut >= 0 {
		panic(http.ErrAbortHandler) // asked to cut after the whole answer
	}
	chunk(openai.ChatCompletionStreamChoiceDelta{}, openai.FinishReasonStop)
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := usage()
		writeEvent(w, openai.ChatCompletionStreamResponse{
			ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []openai.ChatCompletionStreamChoice{}, Usage: &u,
		})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(r.Body)
	var req struct {
		Input          json.RawMessage `json:"input"`
		Model          string          `json:"model"`
		EncodingFormat string          `json:"encoding_format"`
		Dimensions     int             `json:"dimensions"`
	}
	var inputs []string
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err == nil {
		inputs, err = decodeInputs(req.Input)
	}
	s.record(r, body, func(rec *Recorded) {
		if err == nil {
			rec.Inputs, rec.Model = inputs, req.Model
		}
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	if !s.gate(w, r, arrived) {
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" {
		writeError(w, http.StatusBadRequest, "only encoding_format float is supported")
		return
	}
	for _, in := range inputs {
		if in == "" {
			writeError(w, http.StatusBadRequest, "input cannot be an empty string")
			return
		}
	}

	s.mu.Lock()
	embed, dim := s.embed, s.dim
	s.mu.Unlock()
	if req.Dimensions > 0 {
		dim = req.Dimensions
	}
	if embed == nil {
		embed = func(text string) []float32 { return HashVector(text, dim) }
	}
	resp := openai.EmbeddingResponse{Object: "list", Model: openai.EmbeddingModel(req.Model)}
	tokens := 0
	for i, in := range inputs {
		resp.Data = append(resp.Data, openai.Embedding{Object: "embedding", Embedding: embed(in), Index: i})
		tokens += len(Tokens(in))
	}
	resp.Usage = openai.Usage{PromptTokens: tokens, TotalTokens: tokens}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil, nil)
	if !s.gate(w, r, time.Now()) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{
			{"id": "fake-chat", "object": "model", "owned_by": "llmfake"},
			{"id": "fake-embedding", "object": "model", "owned_by": "llmfake"},
		},
	})
}

// decodeInputs accepts the embeddings "input" forms made of text: a string
// or an array of strings.
func decodeInputs(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("input must be a string or an array of strings")
	}
	if len(many) == 0 {
		return nil, fmt.Errorf("input must not be empty")
	}
	return many, nil
}

// defaultReply answers with the last user message, so tests can see what
// the model was asked.
func defaultReply(req openai.ChatCompletionRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if m := req.Messages[i]; m.Role == openai.ChatMessageRoleUser {
			return "fake reply: " + Text(m)
		}
	}
	return "fake reply"
}

// HashVector is the default embedding: dim pseudo-random values in [-1, 1)
// seeded by text's FNV-1a hash, not normalised. Equal texts get equal
// vectors; different texts get nearly orthogonal ones.
func HashVector(text string, dim int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64() | 1
	v := make([]float32, dim)
	for i := range v {
		// xorshift64*: cheap, deterministic, good enough for test vectors.
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		r := x * 2685821657736338717
		v[i] = float32(float64(r>>11)/float64(1<<53)*2 - 1)
	}
	return v
}

// Tokens splits text into the pieces a streamed answer is sent in: each
// word with the spaces before it, and each character of scripts written
// without spaces. Joining them gives text back.
func Tokens(text string) []string {
	var toks []string
	start := 0
	inWord := false
	for i, r := range text {
		switch {
		case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r):
			end := i + len(string(r))
			toks = append(toks, text[start:end])
			start, inWord = end, false
		case unicode.IsSpace(r):
			if inWord {
				toks = append(toks, text[start:i])
				start, inWord = i, false
			}
		default:
			inWord = true
		}
	}
	if start < len(text) {
		toks = append(toks, text[start:])
	}
	return toks
}

func promptTokens(req openai.ChatCompletionRequest) int {
	n := 0
	for _, m := range req.Messages {
		n += len(Tokens(Text(m)))
		for _, p := range m.MultiContent {
			if p.Type == openai.ChatMessagePartTypeImageURL {
				n += 85 // what a low-detail image costs at OpenAI
			}
		}
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeEvent(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "data: %s\n\n", b)
}

// writeError answers in the OpenAI error format, which go-openai decodes
// into an *openai.APIError carrying the status code.
func writeError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status >= 500:
		typ = "server_error"
	}
	writeJSON(w, status, map[string]any{
		"error": map[string]any{"message": msg, "type": typ, "code": nil},
	})
}
