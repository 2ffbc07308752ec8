package bot_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image/jpeg"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/imaging/imagetest"
	"github.com/tandem-chat/tandem/internal/llmfake"
)

var (
	photoAtt = handoff.Attachment{ID: "a1", Name: "zipper.jpg", Type: "image/jpeg", Size: 1000, Width: 500, Height: 1000}
	pdfAtt   = handoff.Attachment{ID: "a2", Name: "invoice.pdf", Type: "application/pdf", Size: 300}
	// photo is a 2000×1000 JPEG stored sideways (orientation 6), with GPS.
	photo = imagetest.JPEG(imagetest.Pattern(2000, 1000), 6)
)

// attTurn is a turn whose message is attachments only.
func attTurn(atts []handoff.Attachment, history ...handoff.Message) handoff.Turn {
	m := handoff.Message{Role: handoff.RoleCustomer, Attachments: atts}
	return handoff.Turn{History: append(append([]handoff.Message(nil), history...), m), Message: m,
		ReadAttachment: func(ctx context.Context, a handoff.Attachment) ([]byte, error) {
			if a.ID == photoAtt.ID {
				return photo, nil
			}
			return nil, errors.New("no such attachment")
		}}
}

func botIntent(intent string) handoff.Message {
	return handoff.Message{Role: handoff.RoleBot, Text: "An answer.", Meta: handoff.Meta{Intent: intent, Decision: bot.DecisionAnswer}}
}

const offer = "Talk to a person"

func TestAttachmentsLocal(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	b := startBot(t, pool, demoSearch(), nil)

	for _, tc := range []struct {
		name    string
		turn    handoff.Turn
		says    string
		offers  bool
		english bool
	}{
		{"PhotoAlone", attTurn([]handoff.Attachment{photoAtt}), "your photo", false, true},
		{"FileAlone", attTurn([]handoff.Attachment{pdfAtt}), "your file “invoice.pdf”", false, true},
		{"Several", attTurn([]handoff.Attachment{photoAtt, pdfAtt}), "your 2 files", false, true},
		{"AfterAReturnQuestion", attTurn([]handoff.Attachment{photoAtt}, customer("The strap broke, can I return it?"), botSaid("Returns are free.", "answer")), "your photo", true, true},
		{"AfterAnAfterSalesIntent", attTurn([]handoff.Attachment{photoAtt}, customer("see below"), botIntent("refund")), "your photo", true, true},
		{"AfterSmallTalk", attTurn([]handoff.Attachment{photoAtt}, customer("hello"), botIntent("greeting")), "your photo", false, true},
		{"Chinese", attTurn([]handoff.Attachment{photoAtt}, customer("鞋子坏了，可以退货吗？")), "照片", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := respond(t, b, tc.turn)
			if r.Meta.Decision != bot.DecisionAcknowledge || r.Meta.Reason != bot.ReasonAttachment || r.Escalate != nil {
				t.Fatalf("reply %+v: want an acknowledgement, no handoff", r)
			}
			if !strings.Contains(r.Text, tc.says) {
				t.Errorf("reply %q does not say %q", r.Text, tc.says)
			}
			offered := strings.Contains(r.Text, offer) || strings.Contains(r.Text, "转人工客服")
			if offered != tc.offers {
				t.Errorf("reply %q: offers a person %v, want %v", r.Text, offered, tc.offers)
			}
		})
	}

	t.Run("AdminsAfterSalesIntents", func(t *testing.T) {
		p := bot.DefaultPolicy
		p.AfterSalesIntents = []string{"strap_issue"}
		if err := bot.SavePolicy(context.Background(), pool, p, ""); err != nil {
			t.Fatal(err)
		}
		if err := b.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = bot.SavePolicy(context.Background(), pool, bot.DefaultPolicy, "")
			_ = b.Refresh(context.Background())
		})
		r := respond(t, b, attTurn([]handoff.Attachment{photoAtt}, customer("look"), botIntent("strap_issue")))
		if !strings.Contains(r.Text, offer) || r.Meta.Intent != "strap_issue" {
			t.Errorf("reply %q (intent %q): want the offer of a person for the admin's intent", r.Text, r.Meta.Intent)
		}
	})
}

// imagesOf decodes the images a chat request showed the model.
func imagesOf(t *testing.T, rec llmfake.Recorded) [][]byte {
	t.Helper()
	var out [][]byte
	for _, u := range rec.Images() {
		const prefix = "data:image/jpeg;base64,"
		if !strings.HasPrefix(u, prefix) {
			t.Fatalf("image URL %.40q…: want a JPEG data URL", u)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(u, prefix))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestAttachmentsVision(t *testing.T) {
	t.Parallel()
	fake := llmfake.New()
	t.Cleanup(fake.Close)
	const seen = "I can see a jacket with a zipper that has come apart. What would you like help with?"
	fake.SetReply(func(req openai.ChatCompletionRequest) string {
		if !req.Stream {
			return "A summary."
		}
		for _, m := range req.Messages {
			if len(m.MultiContent) > 0 {
				return seen
			}
		}
		return llmAnswer
	})
	pool := testPool(t)
	llm := bot.NewLLM(bot.LLMConfig{BaseURL: fake.URL(), Model: "fake-vision", Timeout: 20 * time.Second, Retries: -1})
	b := bot.New(pool, demoSearch(), bot.Options{LLM: llm, Vision: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("PhotoAloneIsShownToTheModel", func(t *testing.T) {
		fake.ResetRequests()
		r := respond(t, b, attTurn([]handoff.Attachment{photoAtt}))
		if r.Text != seen || r.Meta.Decision != bot.DecisionAnswer {
			t.Fatalf("reply %q (%+v): want the model's words", r.Text, r.Meta)
		}
		reqs := fake.Requests()
		if len(reqs) != 1 || reqs[0].Chat == nil {
			t.Fatalf("%d requests, want one chat request", len(reqs))
		}
		last := reqs[0].Chat.Messages[len(reqs[0].Chat.Messages)-1]
		if last.Role != openai.ChatMessageRoleUser || llmfake.Text(last) != "(photos only, no words)" {
			t.Errorf("last message %+v", last)
		}
		if !reqs[0].Contains("Do not guess what they want") {
			t.Error("the model was not told that the photo came without words")
		}
		imgs := imagesOf(t, reqs[0])
		if len(imgs) != 1 {
			t.Fatalf("%d images shown, want 1", len(imgs))
		}
		if bytes.Contains(imgs[0], []byte(imagetest.Secret)) || reqs[0].Contains(imagetest.Secret) {
			t.Error("the photo's metadata reached the model")
		}
		img, err := jpeg.Decode(bytes.NewReader(imgs[0]))
		if err != nil {
			t.Fatal(err)
		}
		if bd := img.Bounds(); bd.Dx() != 512 || bd.Dy() != 1024 {
			t.Errorf("the model saw %dx%d, want 512x1024 (upright, at most 1024)", bd.Dx(), bd.Dy())
		}
	})

	t.Run("AfterSalesOffersAPersonToo", func(t *testing.T) {
		fake.ResetRequests()
		r := respond(t, b, attTurn([]handoff.Attachment{photoAtt}, customer("My shipping box arrived damaged"), botSaid("Sorry to hear that.", "answer")))
		if !strings.HasPrefix(r.Text, seen) || !strings.Contains(r.Text, offer) {
			t.Errorf("reply %q: want the model's words, then the offer of a person", r.Text)
		}
		// The passages about what the customer said before went along.
		if reqs := fake.Requests(); len(reqs) != 1 || !reqs[0].Contains("<passage id=\"1\"") {
			t.Errorf("the model got no passages for the photo's topic")
		}
	})

	t.Run("TextAndPhoto", func(t *testing.T) {
		fake.ResetRequests()
		m := handoff.Message{Role: handoff.RoleCustomer, Text: "How much does shipping cost for this?", Attachments: []handoff.Attachment{photoAtt, pdfAtt}}
		tr := attTurn(nil)
		tr.Message, tr.History = m, []handoff.Message{m}
		r := respond(t, b, tr)
		if r.Meta.Decision != bot.DecisionAnswer {
			t.Fatalf("reply %+v", r)
		}
		reqs := fake.Requests()
		if len(reqs) != 1 || len(imagesOf(t, reqs[0])) != 1 || !reqs[0].Contains("How much does shipping cost for this?") {
			t.Errorf("the model did not get the question with the one photo")
		}
	})

	t.Run("ModelDownAcknowledges", func(t *testing.T) {
		fake.FailNext(5, 500)
		t.Cleanup(func() { fake.FailNext(0, 0) })
		r := respond(t, b, attTurn([]handoff.Attachment{photoAtt}))
		if r.Meta.Decision != bot.DecisionAcknowledge || !strings.Contains(r.Text, "your photo") {
			t.Errorf("reply %q (%+v): want the local acknowledgement", r.Text, r.Meta)
		}
	})

	t.Run("WithoutVisionNoImageLeaves", func(t *testing.T) {
		plain := startBot(t, pool, demoSearch(), llm)
		fake.ResetRequests()
		r := respond(t, plain, attTurn([]handoff.Attachment{photoAtt}))
		if r.Meta.Decision != bot.DecisionAcknowledge {
			t.Errorf("reply %+v", r)
		}
		for _, rec := range fake.Requests() {
			if len(rec.Images()) > 0 {
				t.Fatal("a photo went to a model not marked as taking images")
			}
		}
	})
}
