package llmfake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/internal/llmfake"
)

func newClient(t *testing.T) (*llmfake.Server, *openai.Client) {
	t.Helper()
	s := llmfake.New()
	t.Cleanup(s.Close)
	cfg := openai.DefaultConfig("test-key")
	cfg.BaseURL = s.URL()
	return s, openai.NewClientWithConfig(cfg)
}

func chatRequest(text string) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model: "fake-chat",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You are helpful."},
			{Role: openai.ChatMessageRoleUser, Content: text},
		},
	}
}

func TestChat(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, c := newClient(t)
		resp, err := c.CreateChatCompletion(context.Background(), chatRequest("hello <there> & 你好"))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != "fake reply: hello <there> & 你好" {
			t.Errorf("reply = %q", got)
		}
		if resp.Choices[0].FinishReason != openai.FinishReasonStop || resp.Usage.TotalTokens == 0 {
			t.Errorf("finish = %q, usage = %+v", resp.Choices[0].FinishReason, resp.Usage)
		}
		reqs := s.Requests()
		if len(reqs) != 1 || reqs[0].Chat == nil || reqs[0].Path != "/v1/chat/completions" {
			t.Fatalf("requests = %+v", reqs)
		}
		if reqs[0].Model != "fake-chat" || reqs[0].Header.Get("Authorization") != "Bearer test-key" {
			t.Errorf("model = %q, auth = %q", reqs[0].Model, reqs[0].Header.Get("Authorization"))
		}
		// go-openai escapes <, > and &; Contains still finds the text.
		if !reqs[0].Contains("<there> & 你好") || reqs[0].Contains("4111 1111") {
			t.Error("Contains disagrees with the body")
		}
		if got := s.ChatRequests(); len(got) != 1 || got[0].Messages[1].Content != "hello <there> & 你好" {
			t.Errorf("chat requests = %+v", got)
		}
		s.ResetRequests()
		if len(s.Requests()) != 0 {
			t.Error("ResetRequests kept requests")
		}
	})
	t.Run("SetReply", func(t *testing.T) {
		s, c := newClient(t)
		s.SetReply(func(req openai.ChatCompletionRequest) string {
			return strings.ToUpper(req.Messages[len(req.Messages)-1].Content)
		})
		resp, err := c.CreateChatCompletion(context.Background(), chatRequest("shout"))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != "SHOUT" {
			t.Errorf("reply = %q", got)
		}
	})
	t.Run("ErrStall", func(t *testing.T) {
		s, c := newClient(t)
		s.SetReply(func(openai.ChatCompletionRequest) string { return "one two three four" })
		s.StallNextStream(2)
		req := chatRequest("x")
		req.Stream = true
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		stream, err := c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		text, _, finish, err := collect(stream)
		if err == nil || ctx.Err() == nil {
			t.Errorf("stream ended with %q, %v before the client gave up; want it held open", text, err)
		}
		if text != "one two" || finish != "" {
			t.Errorf("text = %q, finish = %q before the stall", text, finish)
		}
		// The stall applies once.
		stream2, err := c.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream2.Close()
		if text, _, _, err := collect(stream2); err != nil || text != "one two three four" {
			t.Errorf("second stream = %q, %v", text, err)
		}
	})
	t.Run("ErrFailNext", func(t *testing.T) {
		s, c := newClient(t)
		s.FailNext(2, http.StatusTooManyRequests)
		for i := range 2 {
			_, err := c.CreateChatCompletion(context.Background(), chatRequest("x"))
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusTooManyRequests {
				t.Fatalf("call %d: err = %v, want an APIError with status 429", i, err)
			}
		}
		if _, err := c.CreateChatCompletion(context.Background(), chatRequest("x")); err != nil {
			t.Fatalf("third call: %v", err)
		}
		if n := len(s.Requests()); n != 3 {
			t.Errorf("recorded %d requests, want 3 (failures count)", n)
		}
	})
	t.Run("ErrLatency", func(t *testing.T) {
		s, c := newClient(t)
		s.SetLatency(200 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := c.CreateChatCompletion(ctx, chatRequest("x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a deadline", err)
		}
	})
	t.Run("ErrKey", func(t *testing.T) {
		s, c := newClient(t)
		s.RequireKey("other-key")
		_, err := c.CreateChatCompletion(context.Background(), chatRequest("x"))
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusUnauthorized {
			t.Errorf("err = %v, want 401", err)
		}
	})
	t.Run("ErrNoMessages", func(t *testing.T) {
		_, c := newClient(t)
		_, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m"})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
			t.Errorf("err = %v, want 400", err)
		}
	})
}

// collect reads a stream to its end and returns the content, the number of
// content chunks, the finish reason and the error that ended it (nil for a
// clean end).
func collect(stream *openai.ChatCompletionStream) (text string, chunks int, finish openai.FinishReason, err error) {
	var b strings.Builder
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), chunks, finish, nil
		}
		if err != nil {
			return b.String(), chunks, finish, err
		}
		for _, ch := range resp.Choices {
			if ch.Delta.Content != "" {
				chunks++
				b.WriteString(ch.Delta.Content)
			}
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
}

func TestChatStream(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, c := newClient(t)
		s.SetReply(func(openai.ChatCompletionRequest) string { return "Your card ships in 3 days. 谢谢" })
		s.SetTokenDelay(time.Millisecond)
		req := chatRequest("when?")
		req.Stream = true
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		stream, err := c.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		text, chunks, finish, err := collect(stream)
		if err != nil {
			t.Fatal(err)
		}
		if text != "Your card ships in 3 days. 谢谢" || finish != openai.FinishReasonStop {
			t.Errorf("text = %q, finish = %q", text, finish)
		}
		if want := len(llmfake.Tokens(text)); chunks != want || chunks < 7 {
			t.Errorf("chunks = %d, want %d", chunks, want)
		}
		if r := s.ChatRequests(); len(r) != 1 || !r[0].Stream {
			t.Errorf("requests = %+v", r)
		}
	})
	t.Run("ErrCut", func(t *testing.T) {
		s, c := newClient(t)
		s.SetReply(func(openai.ChatCompletionRequest) string { return "one two three four" })
		s.CutNextStream(2)
		req := chatRequest("x")
		req.Stream = true
		stream, err := c.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		text, _, finish, err := collect(stream)
		if err == nil {
			t.Errorf("stream ended cleanly with %q, want an error", text)
		}
		if text != "one two" || finish != "" {
			t.Errorf("text = %q, finish = %q before the cut", text, finish)
		}

		// The cut applies once.
		stream2, err := c.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream2.Close()
		if text, _, _, err := collect(stream2); err != nil || text != "one two three four" {
			t.Errorf("second stream = %q, %v", text, err)
		}
	})
	t.Run("ErrFailNext", func(t *testing.T) {
		s, c := newClient(t)
		s.FailNext(1, http.StatusServiceUnavailable)
		req := chatRequest("x")
		req.Stream = true
		_, err := c.CreateChatCompletionStream(context.Background(), req)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusServiceUnavailable {
			t.Errorf("err = %v, want 503", err)
		}
	})
	t.Run("Paced", func(t *testing.T) {
		// Chunk i goes at the latency plus i delays after the request
		// arrived, never before; a slow start (here the reply takes
		// longer than two delays to make) does not push the later
		// chunks back, as sleeping a delay after each chunk would.
		s, c := newClient(t)
		const latency, delay = 50 * time.Millisecond, 100 * time.Millisecond
		s.SetLatency(latency)
		s.SetTokenDelay(delay)
		s.SetReply(func(openai.ChatCompletionRequest) string {
			time.Sleep(250 * time.Millisecond)
			return "one two three four"
		})
		req := chatRequest("x")
		req.Stream = true
		start := time.Now()
		stream, err := c.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var at []time.Duration
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) > 0 && resp.Choices[0].Delta.Content != "" {
				at = append(at, time.Since(start))
			}
		}
		if len(at) != 4 {
			t.Fatalf("got %d content chunks, want 4", len(at))
		}
		for i, d := range at {
			if due := latency + time.Duration(i+1)*delay; d < due {
				t.Errorf("chunk %d came %v after the request, before its time %v", i+1, d, due)
			}
		}
		// Sleeping after each chunk would end at 50+250+4*100 = 700 ms;
		// paced from the arrival the last chunk is due at 450 ms.
		if last := at[3]; last >= 650*time.Millisecond {
			t.Errorf("last chunk after %v: the slow start pushed the stream back", last)
		}
	})
	t.Run("ErrClientGone", func(t *testing.T) {
		s, c := newClient(t)
		s.SetTokenDelay(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		req := chatRequest("a long answer that takes a while")
		req.Stream = true
		stream, err := c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		if _, _, _, err := collect(stream); err == nil {
			t.Error("want an error once the context expires")
		}
	})
}

func TestEmbeddings(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, c := newClient(t)
		s.SetEmbeddingDim(16)
		req := openai.EmbeddingRequestStrings{Input: []string{"a", "b", "a"}, Model: "fake-embedding"}
		resp, err := c.CreateEmbeddings(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 3 {
			t.Fatalf("got %d embeddings", len(resp.Data))
		}
		for i, d := range resp.Data {
			if d.Index != i || len(d.Embedding) != 16 {
				t.Errorf("embedding %d: index %d, len %d", i, d.Index, len(d.Embedding))
			}
		}
		if !equal(resp.Data[0].Embedding, resp.Data[2].Embedding) || equal(resp.Data[0].Embedding, resp.Data[1].Embedding) {
			t.Error("want equal vectors for equal texts only")
		}
		if got := s.Requests()[0].Inputs; len(got) != 3 || got[1] != "b" {
			t.Errorf("recorded inputs = %q", got)
		}
	})
	t.Run("SetEmbed", func(t *testing.T) {
		s, c := newClient(t)
		s.SetEmbed(func(text string) []float32 { return []float32{float32(len(text)), 1} })
		resp, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequest{Input: "abc", Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		if !equal(resp.Data[0].Embedding, []float32{3, 1}) {
			t.Errorf("embedding = %v", resp.Data[0].Embedding)
		}
	})
	t.Run("ErrFailNext", func(t *testing.T) {
		s, c := newClient(t)
		s.FailNext(1, http.StatusInternalServerError)
		_, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusInternalServerError {
			t.Errorf("err = %v, want 500", err)
		}
	})
	t.Run("ErrEmptyInput", func(t *testing.T) {
		_, c := newClient(t)
		_, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{""}, Model: "m"})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
			t.Errorf("err = %v, want 400 like the real API", err)
		}
	})
}

func TestModelsAndUnknownRoute(t *testing.T) {
	s, c := newClient(t)
	models, err := c.ListModels(context.Background())
	if err != nil || len(models.Models) == 0 {
		t.Fatalf("models = %+v, err = %v", models, err)
	}
	resp, err := http.Get(s.URL() + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", resp.StatusCode)
	}
}

func TestTokens(t *testing.T) {
	for _, s := range []string{"", "one", " lead and  double  spaces ", "混合 text 和中文。", "tab\tand\nnewline"} {
		if got := strings.Join(llmfake.Tokens(s), ""); got != s {
			t.Errorf("Tokens(%q) joined = %q", s, got)
		}
	}
	if got := llmfake.Tokens("a bc 中文"); len(got) != 4 {
		t.Errorf("Tokens = %q, want 4 pieces", got)
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
