package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
)

// webhookRoutes are the admins' outbound webhooks: endpoints that receive
// signed events (see handoff.WebhookEvents), and their deliveries.
func (s *Server) webhookRoutes(api fiber.Router) {
	admin := s.requireStaff(auth.RoleAdmin)
	api.Get("/webhooks", admin, s.listWebhooks)
	api.Post("/webhooks", admin, s.createWebhook)
	api.Get("/webhooks/:id", admin, s.getWebhook)
	api.Patch("/webhooks/:id", admin, s.updateWebhook)
	api.Delete("/webhooks/:id", admin, s.deleteWebhook)
}

func (s *Server) listWebhooks(c *fiber.Ctx) error {
	hooks, err := s.deps.Conversations.Webhooks(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhooks": hooks, "events": handoff.WebhookEvents})
}

// createWebhook answers with the endpoint and its signing secret, which is
// never shown again (PATCH a new one to rotate it).
func (s *Server) createWebhook(c *fiber.Ctx) error {
	var req handoff.WebhookChange
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	w, secret, err := s.deps.Conversations.CreateWebhook(c.UserContext(), actor(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"webhook": w, "secret": secret})
}

func (s *Server) getWebhook(c *fiber.Ctx) error {
	ctx := c.UserContext()
	w, err := s.deps.Conversations.Webhook(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	ds, err := s.deps.Conversations.Deliveries(ctx, w.ID, c.QueryInt("limit", 50))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhook": w, "deliveries": ds})
}

func (s *Server) updateWebhook(c *fiber.Ctx) error {
	var req handoff.WebhookChange
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	w, err := s.deps.Conversations.UpdateWebhook(c.UserContext(), actor(c), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhook": w})
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	if err := s.deps.Conversations.DeleteWebhook(c.UserContext(), actor(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
