package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
)

// settingsRoutes are admins' settings that are not the bot's: retention.
func (s *Server) settingsRoutes(api fiber.Router) {
	admin := s.requireStaff(auth.RoleAdmin)
	api.Get("/settings/retention", admin, s.getRetention)
	api.Put("/settings/retention", admin, s.putRetention)
}

// getRetention answers {"days", "mode", "last_run"}.
func (s *Server) getRetention(c *fiber.Ctx) error {
	r, last, err := s.deps.Conversations.RetentionPolicy(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"days": r.Days, "mode": r.Mode, "last_run": last})
}

// putRetention sets {"days", "mode"}: closed conversations older than days
// are deleted or anonymised daily; 0 days keeps everything.
func (s *Server) putRetention(c *fiber.Ctx) error {
	var req handoff.Retention
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	if _, err := s.deps.Conversations.SetRetention(c.UserContext(), actor(c), req); err != nil {
		return err
	}
	return s.getRetention(c)
}
