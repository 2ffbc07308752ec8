package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
)

type createConversationRequest struct {
	Customer handoff.Customer `json:"customer"`
	UserHash string           `json:"user_hash"`
}

func (s *Server) createConversation(c *fiber.Ctx) error {
	if ok, wait := s.newConversations.Allow(s.clientIP(c)); !ok {
		return rateLimited(c, wait, "new conversations from this address")
	}
	var req createConversationRequest
	if err := parseJSON(c, &req, true); err != nil {
		return err
	}
	// The hash is checked on the external id as it is stored (trimmed), so
	// " 42" signed for one customer cannot open "42"'s history.
	req.Customer.ExternalID = strings.TrimSpace(req.Customer.ExternalID)
	verified := false
	if req.UserHash != "" {
		if req.Customer.ExternalID == "" {
			return errs.Errorf(errs.Invalid, "user_hash needs customer.external_id")
		}
		if !VerifyUserHash(s.deps.Secret, req.Customer.ExternalID, req.UserHash) {
			return errs.Errorf(errs.Forbidden, "user_hash does not match customer.external_id")
		}
		verified = true
	}
	conv, token, err := s.deps.Conversations.CreateConversation(c.UserContext(), req.Customer, verified)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"id": conv.ID, "token": token, "state": conv.State, "conversation": conv,
	})
}

// UserHash is the HMAC-SHA256 of externalID with the site secret, in hex:
// what a site's back end computes so the widget can prove who the customer is.
func UserHash(secret, externalID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(externalID))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyUserHash checks a user_hash in constant time.
func VerifyUserHash(secret, externalID, hash string) bool {
	want := UserHash(secret, externalID)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(hash)))
}

// access is who a request acts as on a conversation.
type access struct {
	customer bool
	staff    *auth.User
}

// conversationAccess authorises the request for the :id conversation: its
// customer (by conversation token) or an agent.
func (s *Server) conversationAccess(c *fiber.Ctx) error {
	a, err := s.authorizeConversation(c.UserContext(), c, c.Params("id"), bearer(c))
	if err != nil {
		return err
	}
	c.Locals("access", a)
	return c.Next()
}

func (s *Server) authorizeConversation(ctx context.Context, c *fiber.Ctx, id, tok string) (*access, error) {
	// A customer token is the request's credential even when the browser
	// also holds a staff session cookie (staff trying the widget on the
	// same site chat as the customer, not as themselves).
	if tok == "" || strings.HasPrefix(tok, staffTokenPrefix) {
		u, err := s.currentStaff(c)
		if err != nil {
			return nil, err
		}
		if u != nil {
			if !u.Has(auth.RoleAgent) {
				return nil, errs.Errorf(errs.Forbidden, "this needs the agent role")
			}
			if _, err := s.deps.Conversations.Conversation(ctx, id); err != nil {
				return nil, err
			}
			return &access{staff: u}, nil
		}
		if tok == "" {
			return nil, errs.Errorf(errs.Unauthorized, "a conversation token is required (Authorization: Bearer <token>)")
		}
	}
	if err := s.deps.Conversations.AuthorizeCustomer(ctx, id, tok); err != nil {
		return nil, err
	}
	return &access{customer: true}, nil
}

func (s *Server) getConversation(c *fiber.Ctx) error {
	conv, err := s.deps.Conversations.Conversation(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(conv)
}

func (s *Server) listMessages(c *fiber.Ctx) error {
	after, err := seqParam(c, "after")
	if err != nil {
		return err
	}
	limit := 1000
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return errs.Errorf(errs.Invalid, "limit must be a whole number from 1 to 1000")
		}
	}
	msgs, err := s.deps.Conversations.Messages(c.UserContext(), c.Params("id"), after, limit)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []handoff.Message{}
	}
	return c.JSON(fiber.Map{"messages": msgs})
}

func seqParam(c *fiber.Ctx, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errs.Errorf(errs.Invalid, "%s must be a sequence number (0 or more)", name)
	}
	return n, nil
}

// allowCustomerMessage applies the per-conversation message limit to a
// customer (staff are not limited); c, when not nil, gets Retry-After.
func (s *Server) allowCustomerMessage(c *fiber.Ctx, a *access, convID string) error {
	if a.staff != nil {
		return nil
	}
	if ok, wait := s.customerMessages.Allow(convID); !ok {
		return rateLimited(c, wait, "messages in this conversation")
	}
	return nil
}

type postMessageRequest struct {
	Text        string   `json:"text"`
	ClientMsgID string   `json:"client_msg_id"`
	Attachments []string `json:"attachments"` // ids from POST …/attachments
}

func (s *Server) postMessage(c *fiber.Ctx) error {
	var req postMessageRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	a := c.Locals("access").(*access)
	author := handoff.Author{Role: handoff.RoleCustomer}
	if a.staff != nil {
		author = handoff.Author{Role: handoff.RoleAgent, ID: a.staff.ID}
	}
	id := c.Params("id")
	if err := s.allowCustomerMessage(c, a, id); err != nil {
		return err
	}
	wait := c.QueryBool("wait", false)
	var sub *handoff.Subscription
	if wait {
		// Subscribe before posting, so the reply cannot slip past.
		sub = s.deps.Conversations.Subscribe(id, 64)
		defer sub.Close()
	}
	res, err := s.deps.Conversations.Post(c.UserContext(), id, author,
		handoff.NewMessage{Text: req.Text, ClientMsgID: req.ClientMsgID, Attachments: req.Attachments})
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if !res.Created {
		status = fiber.StatusOK
	}
	if !wait {
		return c.Status(status).JSON(fiber.Map{"message": res.Message})
	}
	if res.Turn == nil && res.State != handoff.StateBot {
		// A person handles this conversation: there is no bot turn to wait
		// for, and a person's reply comes when it comes (WebSocket).
		return c.Status(status).JSON(fiber.Map{"message": res.Message, "reply": nil, "state": res.State})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.deps.WaitTimeout)
	defer cancel()
	reply, state, err := s.deps.Conversations.WaitReply(ctx, id, res.Message.Seq, sub, res.Turn)
	if err != nil {
		return err
	}
	return c.Status(status).JSON(fiber.Map{"message": res.Message, "reply": reply, "state": state})
}

// customerFromToken is the conversation of the request's customer token.
func (s *Server) customerFromToken(c *fiber.Ctx) (*handoff.Conversation, error) {
	tok := bearer(c)
	if tok == "" || strings.HasPrefix(tok, staffTokenPrefix) {
		return nil, errs.Errorf(errs.Unauthorized, "a conversation token is required (Authorization: Bearer <token>)")
	}
	return s.deps.Conversations.ConversationByToken(c.UserContext(), tok)
}

// customerHistory is GET /api/v1/customers/me/conversations: the verified
// customer's conversations (their conversation token proves who they are;
// the conversation must have been started with a valid user_hash).
func (s *Server) customerHistory(c *fiber.Ctx) error {
	conv, err := s.customerFromToken(c)
	if err != nil {
		return err
	}
	list, err := s.deps.Conversations.History(c.UserContext(), conv, c.QueryInt("limit", 50))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"external_id": conv.Customer.ExternalID, "conversations": list})
}

// customerHistoryMessages is GET
// /api/v1/customers/me/conversations/{id}/messages: the messages of one of
// the verified customer's conversations, read-only.
func (s *Server) customerHistoryMessages(c *fiber.Ctx) error {
	conv, err := s.customerFromToken(c)
	if err != nil {
		return err
	}
	after, err := seqParam(c, "after")
	if err != nil {
		return err
	}
	msgs, err := s.deps.Conversations.HistoryMessages(c.UserContext(), conv, c.Params("id"), after, 1000)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []handoff.Message{}
	}
	return c.JSON(fiber.Map{"messages": msgs})
}
