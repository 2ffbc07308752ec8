package web

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
)

// handoffRoutes are the agents' and admins' side of the handoff: the
// queue, working a conversation, presence, teams, canned replies, the audit
// log, and the customer's satisfaction score.
func (s *Server) handoffRoutes(api fiber.Router) {
	agent := s.requireStaff(auth.RoleAgent)
	admin := s.requireStaff(auth.RoleAdmin)
	api.Get("/queue", agent, s.queue)
	api.Post("/conversations/:id/claim", agent, s.claim)
	api.Post("/conversations/:id/release", agent, s.release)
	api.Post("/conversations/:id/transfer", agent, s.transfer)
	api.Post("/conversations/:id/close", agent, s.closeConversation)
	api.Get("/conversations/:id/transcript", agent, s.transcript)
	api.Post("/conversations/:id/suggest", agent, s.suggest)
	api.Get("/conversations/:id/notes", agent, s.listNotes)
	api.Post("/conversations/:id/notes", agent, s.addNote)
	api.Post("/conversations/:id/csat", s.conversationAccess, s.submitCSAT)

	api.Get("/agents", agent, s.listAgents)
	api.Get("/agents/me", agent, s.agentMe)
	api.Put("/agents/me/status", agent, s.setMyStatus)

	api.Get("/teams", agent, s.listTeams)
	api.Post("/teams", admin, s.createTeam)
	api.Get("/teams/:name", agent, s.getTeam)
	api.Put("/teams/:name", admin, s.updateTeam)
	api.Put("/teams/:name/members/:user", admin, s.addTeamMember)
	api.Delete("/teams/:name/members/:user", admin, s.removeTeamMember)

	api.Get("/canned-replies", agent, s.listCanned)
	api.Post("/canned-replies", admin, s.createCanned)
	api.Put("/canned-replies/:id", admin, s.updateCanned)
	api.Delete("/canned-replies/:id", admin, s.deleteCanned)

	api.Get("/audit", admin, s.auditLog)
}

// actor is the staff user of the request as a handoff.Actor.
func actor(c *fiber.Ctx) handoff.Actor {
	u := c.Locals("staff").(*auth.User)
	return handoff.AgentActor(u.ID, u.Has(auth.RoleAdmin))
}

func (s *Server) queue(c *fiber.Ctx) error {
	entries, err := s.deps.Conversations.Queue(c.UserContext(), handoff.QueueFilter{Team: c.Query("team")})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversations": entries})
}

func (s *Server) claim(c *fiber.Ctx) error {
	conv, err := s.deps.Conversations.Claim(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}

type noteRequest struct {
	Note string `json:"note"`
	Text string `json:"text"`
}

func (s *Server) release(c *fiber.Ctx) error {
	var req noteRequest
	if err := parseJSON(c, &req, true); err != nil {
		return err
	}
	conv, err := s.deps.Conversations.Release(c.UserContext(), actor(c), c.Params("id"), req.Note)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}

func (s *Server) transfer(c *fiber.Ctx) error {
	var req handoff.Transfer
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	conv, err := s.deps.Conversations.Transfer(c.UserContext(), actor(c), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}

type closeRequest struct {
	Resolution string `json:"resolution"`
}

func (s *Server) closeConversation(c *fiber.Ctx) error {
	var req closeRequest
	if err := parseJSON(c, &req, true); err != nil {
		return err
	}
	conv, err := s.deps.Conversations.CloseConversation(c.UserContext(), actor(c), c.Params("id"), req.Resolution)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}

func (s *Server) transcript(c *fiber.Ctx) error {
	t, err := s.deps.Conversations.Transcript(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *Server) suggest(c *fiber.Ctx) error {
	sg, err := s.deps.Conversations.Suggest(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"suggestion": sg})
}

func (s *Server) listNotes(c *fiber.Ctx) error {
	if _, err := s.deps.Conversations.Conversation(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	notes, err := s.deps.Conversations.Notes(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"notes": notes})
}

func (s *Server) addNote(c *fiber.Ctx) error {
	var req noteRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	n, err := s.deps.Conversations.AddNote(c.UserContext(), actor(c), c.Params("id"), req.Text)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"note": n})
}

type csatRequest struct {
	Score   int    `json:"score"`
	Comment string `json:"comment"`
}

// submitCSAT stores the customer's score; only the customer's token may.
func (s *Server) submitCSAT(c *fiber.Ctx) error {
	a := c.Locals("access").(*access)
	if !a.customer {
		return errs.Errorf(errs.Forbidden, "only the customer scores a conversation")
	}
	if err := s.allowCustomerMessage(c, a, c.Params("id")); err != nil {
		return err
	}
	var req csatRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	r, err := s.deps.Conversations.SubmitCSAT(c.UserContext(), c.Params("id"), req.Score, req.Comment)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"csat": r})
}

func (s *Server) listAgents(c *fiber.Ctx) error {
	agents, err := s.deps.Conversations.Agents(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"agents": agents})
}

func (s *Server) agentMe(c *fiber.Ctx) error {
	me := actor(c).ID
	a, err := s.deps.Conversations.Agent(c.UserContext(), me)
	if err != nil {
		return err
	}
	convs, err := s.deps.Conversations.AgentConversations(c.UserContext(), me)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"agent": a, "conversations": convs})
}

type statusRequest struct {
	Status   string `json:"status"`
	Capacity *int   `json:"capacity"`
}

func (s *Server) setMyStatus(c *fiber.Ctx) error {
	var req statusRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	a, err := s.deps.Conversations.SetStatus(c.UserContext(), actor(c), actor(c).ID, req.Status, req.Capacity)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"agent": a})
}

func (s *Server) listTeams(c *fiber.Ctx) error {
	teams, err := s.deps.Conversations.Teams(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"teams": teams})
}

func (s *Server) getTeam(c *fiber.Ctx) error {
	t, err := s.deps.Conversations.Team(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"team": t})
}

type teamRequest struct {
	Name string `json:"name"`
	handoff.TeamSettings
}

func (s *Server) createTeam(c *fiber.Ctx) error {
	var req teamRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	t, err := s.deps.Conversations.CreateTeam(c.UserContext(), actor(c), req.Name, req.TeamSettings)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"team": t})
}

func (s *Server) updateTeam(c *fiber.Ctx) error {
	var req handoff.TeamSettings
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	t, err := s.deps.Conversations.UpdateTeam(c.UserContext(), actor(c), c.Params("name"), req)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"team": t})
}

func (s *Server) addTeamMember(c *fiber.Ctx) error {
	if err := s.deps.Conversations.AddTeamMember(c.UserContext(), actor(c), c.Params("name"), c.Params("user")); err != nil {
		return err
	}
	return s.getTeam(c)
}

func (s *Server) removeTeamMember(c *fiber.Ctx) error {
	if err := s.deps.Conversations.RemoveTeamMember(c.UserContext(), actor(c), c.Params("name"), c.Params("user")); err != nil {
		return err
	}
	return s.getTeam(c)
}

func (s *Server) listCanned(c *fiber.Ctx) error {
	a := actor(c)
	replies, err := s.deps.Conversations.CannedReplies(c.UserContext(), a.ID, a.Admin && c.QueryBool("all", false))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"canned_replies": replies})
}

func (s *Server) createCanned(c *fiber.Ctx) error {
	var req handoff.CannedReply
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	r, err := s.deps.Conversations.CreateCannedReply(c.UserContext(), actor(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"canned_reply": r})
}

func (s *Server) updateCanned(c *fiber.Ctx) error {
	var req handoff.CannedReply
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	r, err := s.deps.Conversations.UpdateCannedReply(c.UserContext(), actor(c), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"canned_reply": r})
}

func (s *Server) deleteCanned(c *fiber.Ctx) error {
	if err := s.deps.Conversations.DeleteCannedReply(c.UserContext(), actor(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) auditLog(c *fiber.Ctx) error {
	f := handoff.AuditFilter{SubjectID: c.Query("subject_id")}
	var err error
	if v := c.Query("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 0 {
			return errs.Errorf(errs.Invalid, "before must be an audit record id")
		}
	}
	if v := c.Query("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 500 {
			return errs.Errorf(errs.Invalid, "limit must be a whole number from 1 to 500")
		}
	}
	records, err := s.deps.Conversations.Audit(c.UserContext(), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"records": records})
}
