package web

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/errs"
)

// usersRoutes are the admins' user management: staff accounts and their
// roles. Every change is in the audit log.
func (s *Server) usersRoutes(api fiber.Router) {
	admin := s.requireStaff(auth.RoleAdmin)
	api.Get("/users", admin, s.listUsers)
	api.Post("/users", admin, s.createUser)
	api.Patch("/users/:id", admin, s.updateUser)
}

// userView is a user as the users API shows it: the account and the names
// of the teams they work in.
type userView struct {
	auth.User
	Teams []string `json:"teams"`
}

// teamsByUser maps user ids to the names of their teams.
func (s *Server) teamsByUser(c *fiber.Ctx) (map[string][]string, error) {
	teams, err := s.deps.Conversations.Teams(c.UserContext())
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, t := range teams {
		for _, m := range t.Members {
			out[m.ID] = append(out[m.ID], t.Name)
		}
	}
	return out, nil
}

func userViewOf(u *auth.User, teams map[string][]string) userView {
	v := userView{User: *u, Teams: teams[u.ID]}
	if v.Teams == nil {
		v.Teams = []string{}
	}
	return v
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	users, err := s.deps.Auth.Users(c.UserContext())
	if err != nil {
		return err
	}
	teams, err := s.teamsByUser(c)
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(users))
	for i := range users {
		out = append(out, userViewOf(&users[i], teams))
	}
	return c.JSON(fiber.Map{"users": out})
}

type createUserRequest struct {
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	DisplayName string   `json:"display_name"`
	Roles       []string `json:"roles"`
}

// staffActor is the signed-in admin as an auth.Actor.
func staffActor(c *fiber.Ctx) auth.Actor {
	return auth.Actor{User: c.Locals("staff").(*auth.User), Token: staffToken(c)}
}

func (s *Server) createUser(c *fiber.Ctx) error {
	var req createUserRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	u, err := s.deps.Auth.CreateUserBy(c.UserContext(), staffActor(c), auth.NewUser{
		Email: req.Email, Password: req.Password, DisplayName: req.DisplayName, Roles: req.Roles})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"user": userViewOf(u, nil)})
}

type updateUserRequest struct {
	DisplayName *string  `json:"display_name"`
	Roles       []string `json:"roles"`
	Disabled    *bool    `json:"disabled"`
	Password    *string  `json:"password"`
}

// updatableUserFields are the fields PATCH /users/{id} accepts; anything
// else (an e-mail, say) is refused rather than silently ignored.
var updatableUserFields = []string{"display_name", "roles", "disabled", "password"}

func (s *Server) updateUser(c *fiber.Ctx) error {
	var fields map[string]json.RawMessage
	if err := parseJSON(c, &fields, false); err != nil {
		return err
	}
	var unknown []string
	for k := range fields {
		if !slices.Contains(updatableUserFields, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return errs.Errorf(errs.Invalid, "cannot change %s: a user's %s may be changed",
			strings.Join(unknown, ", "), strings.Join(updatableUserFields, ", "))
	}
	var req updateUserRequest
	if err := parseJSON(c, &req, false); err != nil {
		return err
	}
	ctx := c.UserContext()
	by := staffActor(c)
	id := c.Params("id")
	old, err := s.deps.Auth.User(ctx, id)
	if err != nil {
		return err
	}
	ch := auth.UserChange{DisplayName: req.DisplayName, Roles: req.Roles, Disabled: req.Disabled, Password: req.Password}
	if err := ch.Check(); err != nil {
		return err
	}

	// A user who stops working chats (disabled, or no longer an agent)
	// hands their chats back to the queue first: afterwards handoff no
	// longer counts them as an agent. UpdateUser checks the rest (the
	// self-rules, the actor still an admin) again under lock.
	next := auth.User{Roles: old.Roles, Disabled: old.Disabled}
	if ch.Roles != nil {
		next.Roles = ch.Roles
	}
	if ch.Disabled != nil {
		next.Disabled = *ch.Disabled
	}
	stops := !old.Disabled && old.Has(auth.RoleAgent) && (next.Disabled || !next.Has(auth.RoleAgent))
	if stops && id != by.User.ID {
		if err := s.signOffAgent(c, by, id); err != nil {
			return err
		}
	}

	u, err := s.deps.Auth.UpdateUser(ctx, by, id, ch)
	if err != nil {
		return err
	}
	revoked := (u.Disabled && !old.Disabled) || !slices.Equal(u.Roles, old.Roles) || req.Password != nil
	if revoked && id != by.User.ID {
		// Their sessions are revoked; their open agent sockets on this
		// instance close too (on other instances they fail at reconnect).
		s.closeUserSockets(id)
	}
	teams, err := s.teamsByUser(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": userViewOf(u, teams)})
}

// signOffAgent sets an agent offline, which sends their chats back to the
// queue, unless they are offline with no chats already.
func (s *Server) signOffAgent(c *fiber.Ctx, by auth.Actor, id string) error {
	ctx := c.UserContext()
	a, err := s.deps.Conversations.Agent(ctx, id)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.Status == handoff.StatusOffline && a.OpenChats == 0 {
		return nil
	}
	_, err = s.deps.Conversations.SetStatus(ctx, handoff.AgentActor(by.User.ID, true), id, handoff.StatusOffline, nil)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	return err
}

// closeUserSockets closes the open staff sockets of a user on this instance
// with a policy-violation code, after their sessions were revoked.
func (s *Server) closeUserSockets(userID string) {
	s.socketsMu.Lock()
	var mine []*socket
	for k := range s.sockets {
		if k.user == userID {
			mine = append(mine, k)
		}
	}
	s.socketsMu.Unlock()
	for _, k := range mine {
		k.close(closePolicy, "signed out: the account was changed by an admin")
	}
}
