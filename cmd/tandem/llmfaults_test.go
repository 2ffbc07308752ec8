package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/llmfake"
)

// metricValue reads an unlabelled counter from /metrics.
func (s *server) metricValue(t *testing.T, name string) float64 {
	t.Helper()
	r := s.do(t, "GET", "/metrics", "", nil).expect(t, http.StatusOK)
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// fallbacks counts the fallbacks to local mode in the server's log.
func (s *server) fallbacks() int {
	return strings.Count(s.logs.String(), "LLM failed; answering in local mode")
}

// TestLLMFaults: whatever the LLM endpoint does (slow but in time, 429s,
// 500s, a stream that hangs half-way, the embeddings endpoint down), the
// customer gets an answer from the model, a local answer, or a person;
// never silence. Each fallback is logged and counted in
// tandem_llm_fallbacks_total.
func TestLLMFaults(t *testing.T) {
	t.Parallel()
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	fake.SetReply(func(req openai.ChatCompletionRequest) string {
		if !req.Stream {
			return "The customer asked about shipping."
		}
		return llmReply
	})
	fake.SetTokenDelay(time.Millisecond)
	s := startBotServer(t, dbtest.New(t), map[string]string{
		"LLM_BASE_URL": fake.URL(), "LLM_API_KEY": "sk-test", "LLM_MODEL": "fake-chat", "LLM_TIMEOUT": "2s",
	})
	loadKB(t, s, "examples/en/faq.csv")
	const local = "Standard shipping (3–5 business days) is $6.95"

	// fellBack checks that the reply is the local answer, and that the
	// fallback was logged and counted.
	fellBack := func(t *testing.T, res waitResult, logged int, counted float64) {
		t.Helper()
		expectBot(t, res, "answer", "", "bot")
		if !strings.Contains(res.Reply.Text, local) || !strings.Contains(res.Reply.Text, "Source:") {
			t.Fatalf("reply %q: want the local answer with its source", res.Reply.Text)
		}
		if n := s.fallbacks(); n != logged+1 {
			t.Fatalf("%d fallbacks logged, want %d", n, logged+1)
		}
		if v := s.metricValue(t, "tandem_llm_fallbacks_total"); v < counted+1 {
			t.Fatalf("tandem_llm_fallbacks_total %v, want at least %v", v, counted+1)
		}
	}

	t.Run("SlowButInTime", func(t *testing.T) {
		fake.SetLatency(500 * time.Millisecond)
		defer fake.SetLatency(0)
		logged := s.fallbacks()
		res := s.ask(t, s.createConversation(t), "How much does shipping cost?")
		if res.Reply.Text != llmReply || s.fallbacks() != logged {
			t.Fatalf("reply %q: want the model's answer, slow but in time", res.Reply.Text)
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		logged, counted := s.fallbacks(), s.metricValue(t, "tandem_llm_fallbacks_total")
		fake.ResetRequests()
		fake.FailNext(100, http.StatusTooManyRequests)
		defer fake.FailNext(0, 0)
		res := s.ask(t, s.createConversation(t), "How much does shipping cost?")
		fellBack(t, res, logged, counted)
		if n := len(fake.ChatRequests()); n < 2 {
			t.Fatalf("%d requests: want retries before the fallback", n)
		}
	})

	t.Run("StreamHangsHalfWay", func(t *testing.T) {
		logged, counted := s.fallbacks(), s.metricValue(t, "tandem_llm_fallbacks_total")
		fake.StallNextStream(3)
		c := s.createConversation(t)
		conn := s.dial(t, c, 0)
		sendFrame(t, conn, map[string]string{"type": "message", "text": "How much does shipping cost?", "client_msg_id": "q1"})
		deltas, reply := botTurnFrames(t, conn)
		if len(deltas) == 0 || strings.Join(deltas, "") == llmReply {
			t.Fatalf("deltas %q: want part of the answer before the stream hung", deltas)
		}
		if meta(reply, "decision") != "answer" || !strings.Contains(reply.Text, local) {
			t.Fatalf("final message %+v: want the local answer after the hang", reply)
		}
		if s.fallbacks() != logged+1 || s.metricValue(t, "tandem_llm_fallbacks_total") < counted+1 {
			t.Fatal("the fallback was not logged and counted")
		}
	})

	t.Run("DownWithNothingLocal", func(t *testing.T) {
		// The model is down and the knowledge base has nothing close:
		// the bot asks to rephrase, then hands over; a reply every time.
		fake.FailNext(1000, http.StatusInternalServerError)
		defer fake.FailNext(0, 0)
		c := s.createConversation(t)
		first := s.ask(t, c, "Can you tune my grand piano next Tuesday?")
		if d := meta(first.Reply, "decision"); d != "clarify" && d != "escalate" {
			t.Fatalf("reply %q (%s): want a question back or a handoff", first.Reply.Text, d)
		}
		if first.State == "bot" {
			expectBot(t, s.ask(t, c, "And do you repair harpsichords on Sundays?"), "escalate", "low_confidence", "queued")
		}
	})
}

// TestEmbeddingsDown: with remote embeddings, an endpoint that fails after
// the knowledge base was built leaves the bot unable to search: the
// customer is handed to a person at once, with the reason in the packet.
func TestEmbeddingsDown(t *testing.T) {
	t.Parallel()
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	s := startBotServer(t, dbtest.New(t), map[string]string{
		"LLM_BASE_URL": fake.URL(), "LLM_API_KEY": "sk-test", "LLM_MODEL": "fake-chat", "LLM_TIMEOUT": "2s",
		"EMBEDDING_MODEL": "fake-embed",
	})
	loadKB(t, s, "examples/en/faq.csv")
	fake.FailNext(1000, http.StatusInternalServerError)
	defer fake.FailNext(0, 0)
	c := s.createConversation(t)
	res := s.ask(t, c, "How much does shipping cost?")
	expectBot(t, res, "escalate", "knowledge_unavailable", "queued")
	_, agent := s.staff(t, "Emb Agent", "agent")
	if p := s.handoffPacket(t, agent, c); p.Reason != "knowledge_unavailable" {
		t.Fatalf("packet %+v", p)
	}
}
