package bot

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/imaging"
	"github.com/tandem-chat/tandem/internal/pii"
	"github.com/tandem-chat/tandem/retrieval"
)

// DecisionAcknowledge is the decision for a photo or file sent without a
// question: the bot says it has it, and does not guess what it is about.
const DecisionAcknowledge = "acknowledge"

// ReasonAttachment marks a turn whose message was attachments only.
const ReasonAttachment = "attachment_without_text"

// DefaultAfterSalesIntents name the intents after a purchase (returns,
// refunds, damage, warranty, complaints) for which a photo is best looked
// at by a person. An admin's own intents join through the policy.
var DefaultAfterSalesIntents = []string{IntentComplaint, "return", "returns", "refund", "refund_request",
	"return_or_refund", "exchange", "damaged_item", "damaged_or_defective", "defective_item", "wrong_item",
	"missing_item", "warranty", "warranty_claim", "repair", "order_problem"}

// afterSalesWords find the same topics in what the customer said when no
// intent was recognised (local mode knows few intents out of the box).
var afterSalesWords = []string{"return", "refund", "broken", "broke", "damaged", "damage", "defective", "faulty",
	"torn", "ripped", "cracked", "scratched", "stain", "warranty", "guarantee", "repair", "exchange", "replacement",
	"wrong item", "wrong size", "missing", "complaint",
	"退货", "退款", "换货", "坏了", "破损", "损坏", "破了", "质量问题", "保修", "维修", "投诉", "发错", "少发"}

// afterSales reports whether the conversation so far is about an order's
// aftermath: an earlier turn's intent is an after-sales one, or the
// customer's words are.
func afterSales(history []handoff.Message, policy Policy) (intent string, ok bool) {
	names := policy.AfterSalesIntents
	if names == nil {
		names = DefaultAfterSalesIntents
	}
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role != handoff.RoleBot || m.Meta.Intent == "" {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(m.Meta.Intent, n) {
				return m.Meta.Intent, true
			}
		}
	}
	for _, m := range history {
		if m.Role != handoff.RoleCustomer {
			continue
		}
		t := strings.ToLower(m.Text)
		for _, w := range afterSalesWords {
			if strings.Contains(t, w) {
				return "", true
			}
		}
	}
	return "", false
}

// conversationChinese reports whether the customer writes Chinese (or the
// widget said so).
func conversationChinese(turn handoff.Turn) bool {
	for i := len(turn.History) - 1; i >= 0; i-- {
		if m := turn.History[i]; m.Role == handoff.RoleCustomer && strings.TrimSpace(m.Text) != "" {
			return isChinese(m.Text)
		}
	}
	return strings.HasPrefix(strings.ToLower(turn.Conversation.Customer.Locale), "zh")
}

// attachmentsOnly reports whether a message is attachments without text.
func attachmentsOnly(m handoff.Message) bool {
	return len(m.Attachments) > 0 && strings.TrimSpace(m.Text) == ""
}

// acknowledge answers a message of attachments only, in local mode (or
// when the model cannot help): it confirms what arrived, and offers a
// person when the conversation is about a purchase's aftermath; otherwise
// it asks what the customer needs. It never guesses at the content.
func (b *Bot) acknowledge(turn handoff.Turn) Decision {
	policy := b.Policy()
	zh := conversationChinese(turn)
	d := Decision{Decision: DecisionAcknowledge, Reason: ReasonAttachment, Intent: IntentScore{Name: IntentNone},
		Sources: []handoff.Source{}, Mode: "local", Team: policy.DefaultTeam}
	atts := turn.Message.Attachments
	photos := 0
	for _, a := range atts {
		if a.IsImage() {
			photos++
		}
	}
	var got string
	switch {
	case zh && len(atts) == 1 && photos == 1:
		got = "谢谢，我已收到您的照片。"
	case zh && len(atts) == 1:
		got = fmt.Sprintf("谢谢，我已收到您的文件“%s”。", atts[0].Name)
	case zh && photos == len(atts):
		got = fmt.Sprintf("谢谢，我已收到您的 %d 张照片。", len(atts))
	case zh:
		got = fmt.Sprintf("谢谢，我已收到您的 %d 个文件。", len(atts))
	case len(atts) == 1 && photos == 1:
		got = "Thanks, I've got your photo."
	case len(atts) == 1:
		got = fmt.Sprintf("Thanks, I've got your file “%s”.", atts[0].Name)
	case photos == len(atts):
		got = fmt.Sprintf("Thanks, I've got your %d photos.", len(atts))
	default:
		got = fmt.Sprintf("Thanks, I've got your %d files.", len(atts))
	}
	intent, after := afterSales(turn.History, policy)
	if intent != "" {
		d.Intent = IntentScore{Name: intent, Confidence: 1}
	}
	switch {
	case after && zh:
		d.Reply = got + "这类问题最好由客服人员查看处理。如需人工客服，请点击“转人工客服”或直接告诉我，我会为您转接，客服能看到您发送的内容。"
	case after:
		d.Reply = got + " A member of our team is best placed to look at it with you: tap “Talk to a person” or just say so, and I'll bring one in. They will see what you sent."
	case zh:
		d.Reply = got + "我无法仅凭附件判断您需要什么帮助，请简单说明一下您的问题。"
	default:
		d.Reply = got + " I can't tell from it alone what you need: tell me in a few words and I'll help, or ask for a person."
	}
	return d
}

// maxVisionImages bounds the photos of one message shown to the model.
const maxVisionImages = 4

// visionSide bounds the photos shown to the model, in pixels: enough to see
// a torn seam, and a fraction of the tokens of a full-size photo.
const visionSide = 1024

// images returns the photos of the turn's message as a vision model sees
// them (scaled, upright, without metadata), when the bot has one; nil
// otherwise.
func (b *Bot) images(ctx context.Context, turn handoff.Turn) []ImageInput {
	if !b.vision || turn.ReadAttachment == nil || turn.Draft {
		return nil
	}
	var out []ImageInput
	for _, a := range turn.Message.Attachments {
		if !a.IsImage() || len(out) == maxVisionImages {
			continue
		}
		data, err := turn.ReadAttachment(ctx, a)
		if err != nil {
			b.log.Warn("bot: read a photo for the model", "conversation_id", turn.Conversation.ID, "error", err)
			continue
		}
		small, typ, _, _, err := imaging.Preview(data, visionSide)
		if err != nil {
			b.log.Warn("bot: scale a photo for the model", "conversation_id", turn.Conversation.ID, "error", err)
			continue
		}
		out = append(out, ImageInput{URL: "data:" + typ + ";base64," + base64.StdEncoding.EncodeToString(small)})
	}
	return out
}

// attachmentTurn answers a message of attachments only. With a vision
// model the photos are shown to it, with the passages about what the
// customer said before; it says what it sees and asks what they need.
// Without one, or when the model fails or has nothing to say, the bot
// acknowledges them (acknowledge). After an after-sales topic a person is
// offered either way.
func (b *Bot) attachmentTurn(ctx context.Context, turn handoff.Turn) Decision {
	images := b.images(ctx, turn)
	if len(images) == 0 {
		return b.acknowledge(turn)
	}
	var topic string
	for i := len(turn.History) - 1; i >= 0 && topic == ""; i-- {
		if m := turn.History[i]; m.Role == handoff.RoleCustomer {
			topic = strings.TrimSpace(pii.Redact(m.Text))
		}
	}
	var hits []retrieval.Hit
	if topic != "" {
		var err error
		if hits, err = b.search.Search(ctx, retrieval.SearchRequest{Text: topic, K: 3}); err != nil {
			b.log.Warn("bot: search for a photo's topic", "error", err)
			hits = nil
		}
	}
	ans, err := b.llm.Answer(ctx, "", turn.History, hits, turn.Stream, images...)
	if err != nil || ans.NoAnswer {
		if err != nil {
			b.log.Warn("bot: LLM failed on a photo; acknowledging it", "error", err)
			llmFallbacks.Inc()
		}
		return b.acknowledge(turn)
	}
	policy := b.Policy()
	d := Decision{Decision: DecisionAnswer, Reply: ans.Text, Intent: IntentScore{Name: IntentNone},
		Sources: sourcesOf(ans.Cited), Mode: "llm", Team: policy.DefaultTeam}
	if intent, after := afterSales(turn.History, policy); after {
		if intent != "" {
			d.Intent = IntentScore{Name: intent, Confidence: 1}
		}
		if conversationChinese(turn) {
			d.Reply += "\n\n如需人工客服查看，请点击“转人工客服”或直接告诉我。"
		} else {
			d.Reply += "\n\nIf you would like a member of our team to look at it, tap “Talk to a person” or just say so."
		}
	}
	return d
}
