package web

import (
	"bufio"
	"bytes"
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
)

type previewRequest struct {
	Text string `json:"text"`
}

func (s *Server) previewBot(c *fiber.Ctx) error {
	var req previewRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	if len([]rune(req.Text)) > s.deps.MaxTextRunes {
		return errs.Errorf(errs.TooLarge, "text is longer than %d characters", s.deps.MaxTextRunes)
	}
	d, err := s.deps.Bot.Preview(c.UserContext(), req.Text)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (s *Server) getIntents(c *fiber.Ctx) error {
	ins, err := s.deps.Bot.Intents().List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"intents": ins})
}

type intentsRequest struct {
	Intents []bot.Intent `json:"intents"`
}

func (s *Server) putIntents(c *fiber.Ctx) error {
	var req intentsRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := s.deps.Bot.Intents().Replace(ctx, req.Intents); err != nil {
		return err
	}
	if err := s.deps.Bot.Refresh(ctx); err != nil {
		return err
	}
	return s.getIntents(c)
}

// importIntents takes JSONL records {text, intent} as the request body.
func (s *Server) importIntents(c *fiber.Ctx) error {
	ex, err := bot.LoadExamplesJSONL(bufio.NewReader(bytes.NewReader(c.Body())))
	if err != nil {
		return errs.Errorf(errs.Invalid, "%v", err)
	}
	ctx := c.UserContext()
	n, err := s.deps.Bot.Intents().Import(ctx, ex)
	if err != nil {
		return err
	}
	if err := s.deps.Bot.Refresh(ctx); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"imported": n})
}

func (s *Server) unanswered(c *fiber.Ctx) error {
	groups, err := s.deps.Bot.Unanswered().Report(c.UserContext(), c.QueryInt("limit", 100))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"questions": groups})
}

func (s *Server) resolveUnanswered(c *fiber.Ctx) error {
	if err := s.deps.Bot.Unanswered().Resolve(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) getPolicy(c *fiber.Ctx) error {
	return c.JSON(s.deps.Bot.Policy())
}

func (s *Server) putPolicy(c *fiber.Ctx) error {
	// Fields left out keep their values. The per-intent thresholds are
	// decoded into a fresh map: the policy in force shares its map with the
	// turns in flight, and thresholds sent replace the old ones (so one can
	// be removed) rather than merging into them.
	p := s.deps.Bot.Policy()
	old := p.IntentThresholds
	p.IntentThresholds = nil
	if err := parseJSON(c, &p, false); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(c.Body(), &fields) == nil {
		if _, sent := fields["intent_thresholds"]; !sent {
			p.IntentThresholds = old
		}
	}
	userID := ""
	if u, ok := c.Locals("staff").(*auth.User); ok {
		userID = u.ID
	}
	ctx := c.UserContext()
	if err := bot.SavePolicy(ctx, s.deps.Pool, p, userID); err != nil {
		return err
	}
	if err := s.deps.Bot.Refresh(ctx); err != nil {
		return err
	}
	return c.JSON(s.deps.Bot.Policy())
}
