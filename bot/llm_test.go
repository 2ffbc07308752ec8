package bot_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/llmfake"
)

// llmAnswer is the fake model's streamed answer to shipping questions.
const llmAnswer = "Standard shipping costs $6.95 [1] and is free from $75 [2]."

// fakeModel answers a warranty question with NO_ANSWER, anything else with
// llmAnswer, and summaries (the only calls that do not stream) with a fixed
// text.
func fakeModel(req openai.ChatCompletionRequest) string {
	if !req.Stream {
		return "The customer wants a person."
	}
	last := strings.ToLower(req.Messages[len(req.Messages)-1].Content)
	switch {
	case strings.Contains(last, "warranty"):
		return "NO_ANSWER"
	case strings.Contains(last, "carbon"):
		return "The passages do not say whether shipping is carbon neutral. NO_ANSWER"
	}
	return llmAnswer
}

// deltas collects streamed text.
type deltas struct {
	mu  sync.Mutex
	got []string
}

func (d *deltas) add(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, s)
}

func (d *deltas) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.got...)
}

func streamed(text string, history ...handoff.Message) (handoff.Turn, *deltas) {
	tr := turn(text, history...)
	d := &deltas{}
	tr.Stream = d.add
	return tr, d
}

// chats counts the chat requests the fake received.
func chats(f *llmfake.Server) int { return len(f.ChatRequests()) }

// TestLLMTurn runs the bot against the OpenAI-compatible fake, through the
// real client: streaming, NO_ANSWER, retries, errors, timeouts, a stream
// cut mid-answer, and what personal data leaves the process. Whatever the
// model does, the customer gets an answer or a handoff.
func TestLLMTurn(t *testing.T) {
	t.Parallel()
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	fake.SetReply(fakeModel)
	pool := testPool(t)
	b := startBot(t, pool, demoSearch(), bot.NewLLM(bot.LLMConfig{BaseURL: fake.URL(), Model: "fake-chat", Timeout: 20 * time.Second}))
	localAnswer := shippingHit.Text + "\n\nSource: FAQ"

	t.Run("StreamsCitedAnswer", func(t *testing.T) {
		fake.ResetRequests()
		tr, d := streamed("How much does shipping cost?")
		r := respond(t, b, tr)
		expectDecision(t, r, bot.DecisionAnswer)
		got := d.all()
		if r.Text != llmAnswer || strings.Join(got, "") != llmAnswer || len(got) < 3 {
			t.Fatalf("reply %q after deltas %q: want the model's answer, streamed in pieces", r.Text, got)
		}
		if len(r.Meta.Sources) != 2 || r.Meta.Sources[0].ChunkID != shippingHit.ChunkID || r.Meta.Sources[1].ChunkID != freeHit.ChunkID {
			t.Fatalf("sources %+v: want the two cited passages", r.Meta.Sources)
		}
		if n := chats(fake); n != 1 {
			t.Fatalf("%d chat requests, want 1", n)
		}
		req := fake.ChatRequests()[0]
		if !req.Stream || !strings.Contains(req.Messages[1].Content, shippingHit.Text) {
			t.Fatalf("request %+v: want a streamed call with the passages", req)
		}
	})

	t.Run("NoAnswerEscalates", func(t *testing.T) {
		fake.ResetRequests()
		tr, d := streamed("Does the warranty cover a cracked shell?")
		r := respond(t, b, tr)
		e := expectEscalation(t, r, bot.ReasonNoAnswer)
		if got := d.all(); len(got) != 0 {
			t.Fatalf("NO_ANSWER reached the customer: %q", got)
		}
		if e.LastAnswer != warrantyHit.Text || len(e.Sources) != 1 {
			t.Fatalf("escalation %+v: want the passage the bot would have quoted", e)
		}
		// The LLM also wrote the agent's summary.
		if e.Summary != "The customer wants a person." || chats(fake) != 2 {
			t.Fatalf("summary %q after %d requests: want the model's summary", e.Summary, chats(fake))
		}
	})

	t.Run("NoAnswerAfterText", func(t *testing.T) {
		tr, _ := streamed("Is your shipping carbon neutral?")
		r := respond(t, b, tr)
		expectEscalation(t, r, bot.ReasonNoAnswer)
		if strings.Contains(r.Text, "NO_ANSWER") {
			t.Fatalf("the signal reached the customer: %q", r.Text)
		}
	})

	t.Run("RetriesServerError", func(t *testing.T) {
		fake.ResetRequests()
		fake.FailNext(1, http.StatusInternalServerError)
		r := respond(t, b, turn("How much does shipping cost?"))
		if r.Text != llmAnswer || chats(fake) != 2 {
			t.Fatalf("reply %q after %d requests: want the model's answer on the second attempt", r.Text, chats(fake))
		}
	})

	t.Run("RetriesRateLimit", func(t *testing.T) {
		fake.ResetRequests()
		fake.FailNext(2, http.StatusTooManyRequests)
		r := respond(t, b, turn("How much does shipping cost?"))
		if r.Text != llmAnswer || chats(fake) != 3 {
			t.Fatalf("reply %q after %d requests: want the model's answer on the third attempt", r.Text, chats(fake))
		}
	})

	t.Run("ServerErrorsFallBackToLocal", func(t *testing.T) {
		fake.ResetRequests()
		fake.FailNext(3, http.StatusServiceUnavailable)
		r := respond(t, b, turn("How much does shipping cost?"))
		expectDecision(t, r, bot.DecisionAnswer)
		if r.Text != localAnswer || chats(fake) != 3 {
			t.Fatalf("reply %q after %d requests: want the local answer after three attempts", r.Text, chats(fake))
		}
	})

	t.Run("BadRequestFallsBackAtOnce", func(t *testing.T) {
		fake.ResetRequests()
		fake.FailNext(1, http.StatusBadRequest)
		r := respond(t, b, turn("How much does shipping cost?"))
		if r.Text != localAnswer || chats(fake) != 1 {
			t.Fatalf("reply %q after %d requests: want the local answer without retrying", r.Text, chats(fake))
		}
	})

	t.Run("StreamCutMidAnswer", func(t *testing.T) {
		fake.ResetRequests()
		fake.CutNextStream(2)
		tr, d := streamed("How much does shipping cost?")
		r := respond(t, b, tr)
		expectDecision(t, r, bot.DecisionAnswer)
		if got := d.all(); len(got) == 0 {
			t.Fatal("nothing was streamed before the cut")
		}
		// Text already streamed cannot be retried; the final message is the
		// local answer, never the truncated one.
		if r.Text != localAnswer || chats(fake) != 1 {
			t.Fatalf("reply %q after %d requests: want the local answer", r.Text, chats(fake))
		}
	})

	t.Run("SummaryFallsBackToExtractive", func(t *testing.T) {
		fake.ResetRequests()
		fake.FailNext(1, http.StatusInternalServerError)
		r := respond(t, b, turn("I want to talk to a person"))
		e := expectEscalation(t, r, bot.ReasonCustomerRequest)
		if !strings.Contains(e.Summary, `Latest: "I want to talk to a person"`) {
			t.Fatalf("summary %q: want the extractive one", e.Summary)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		// Its own client with a short timeout, which bounds the whole answer:
		// the first attempt uses it up, and the local answer follows.
		slow := startBot(t, pool, demoSearch(), bot.NewLLM(bot.LLMConfig{BaseURL: fake.URL(), Model: "fake-chat", Timeout: 300 * time.Millisecond}))
		fake.ResetRequests()
		fake.SetLatency(time.Minute)
		defer fake.SetLatency(0)
		r := respond(t, slow, turn("How much does shipping cost?"))
		if r.Text != localAnswer || chats(fake) != 1 {
			t.Fatalf("reply %q after %d requests: want the local answer after one timed-out attempt", r.Text, chats(fake))
		}
	})

	t.Run("PersonalDataStaysHome", func(t *testing.T) {
		fake.ResetRequests()
		first := "My card 4111 1111 1111 1111 was charged twice, write to jane.doe@example.com or call +1 415 555 0134."
		r1 := respond(t, b, turn(first+" How much does shipping cost?"))
		h := []handoff.Message{customer(first + " How much does shipping cost?"), {Role: handoff.RoleBot, Text: r1.Text}}
		r2 := respond(t, b, turn("I want to talk to a person, my number is 415-555-0134 and card 4111-1111-1111-1111", h...))
		expectEscalation(t, r2, bot.ReasonCustomerRequest)
		reqs := fake.Requests()
		if len(reqs) < 2 {
			t.Fatalf("%d requests: want the answer and the summary", len(reqs))
		}
		for _, req := range reqs {
			for _, secret := range []string{"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
				"jane.doe@example.com", "555 0134", "555-0134"} {
				if req.Contains(secret) {
					t.Fatalf("%q reached the LLM: %s", secret, req.Body)
				}
			}
		}
		if !reqs[0].Contains("[card ending 1111]") || !reqs[0].Contains("[email]") || !reqs[0].Contains("[phone]") {
			t.Fatalf("request %s: want the masks in place of the data", reqs[0].Body)
		}
	})
}
