package handoff

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// notices are the system messages customers get about the handoff, in
// English and Chinese; the customer's locale picks one.
var notices = map[string]map[string]string{
	"en": {
		"connecting":   "Connecting you with a member of our %s now.",
		"position":     "You are number %d in the queue for our %s.",
		"wait":         " The estimated wait is %s.",
		"no_estimate":  " Someone will be with you as soon as possible.",
		"offline":      "No one from our %s is online right now. Leave your e-mail address or phone number here and we will get back to you; your conversation stays open as a ticket.",
		"out_of_hours": "Our %s is away right now%s. Leave your e-mail address or phone number here and we will get back to you; your conversation stays open as a ticket.",
		"back_at":      " and back %s",
		"joined":       "%s has joined the conversation.",
		"agent_left":   "%s had to step away. You keep your place in the queue and the next available person will continue.",
		"released":     "You are back with our automated assistant. Ask for a person at any time.",
		"transferred":  "You are being transferred to our %s. You keep your place in the queue.",
		"team":         "team",
		"named_team":   "%s team",
		"minute":       "less than a minute",
		"minutes":      "about %d minutes",
		"agent":        "Our agent",
	},
	"zh": {
		"connecting":   "正在为您转接%s的工作人员。",
		"position":     "您在%[2]s的排队位置是第 %[1]d 位。",
		"wait":         "预计等待%s。",
		"no_estimate":  "我们会尽快为您服务。",
		"offline":      "%s目前没有在线的工作人员。请在这里留下您的电子邮箱或电话号码，我们会尽快回复您；您的对话将作为工单保留。",
		"out_of_hours": "%s目前不在工作时间%s。请在这里留下您的电子邮箱或电话号码，我们会尽快回复您；您的对话将作为工单保留。",
		"back_at":      "，将于 %s 恢复服务",
		"joined":       "%s 已加入对话。",
		"agent_left":   "%s 暂时离开了。您的排队位置保持不变，下一位有空的工作人员会继续为您服务。",
		"released":     "您已回到智能助手。需要人工服务时随时告诉我们。",
		"transferred":  "正在将您转接到%s，您的排队位置保持不变。",
		"team":         "我们的团队",
		"named_team":   "%s团队",
		"minute":       "不到一分钟",
		"minutes":      "约 %d 分钟",
		"agent":        "工作人员",
	},
}

func lang(locale string) string {
	if strings.HasPrefix(strings.ToLower(locale), "zh") {
		return "zh"
	}
	return "en"
}

// notice renders one notice in the customer's language.
func notice(locale, key string, args ...any) string {
	l := lang(locale)
	for i, a := range args {
		if s, ok := a.(string); ok && s == "" && (key == "joined" || key == "agent_left") {
			args[i] = notices[l]["agent"]
		}
	}
	return fmt.Sprintf(notices[l][key], args...)
}

// teamPhrase names a team for the customer ("team", "billing team").
func teamPhrase(locale, team string) string {
	l := lang(locale)
	if team == "" {
		return notices[l]["team"]
	}
	return fmt.Sprintf(notices[l]["named_team"], team)
}

// systemMessage stores a system message for the customer.
func (s *Service) systemMessage(ctx context.Context, tx pgx.Tx, conv *Conversation, text, reason string, out *outbox) error {
	m := &Message{ConversationID: conv.ID, Role: RoleSystem, Text: text, Meta: Meta{Decision: "handoff", Reason: reason}}
	if err := s.insertMessage(ctx, tx, m, out); err != nil {
		return err
	}
	out.add(messageEvent(m))
	return nil
}
