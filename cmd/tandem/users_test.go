package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"

	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// apiUser is a user as the users API shows it.
type apiUser struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	Roles       []string `json:"roles"`
	Disabled    bool     `json:"disabled"`
	Teams       []string `json:"teams"`
}

// TestUsersAPI covers GET, POST and PATCH /api/v1/users: who may call them,
// creating, duplicates, changes, and that disabling a user or changing
// their roles or password ends their sessions, while an admin cannot lock
// themselves out.
func TestUsersAPI(t *testing.T) {
	t.Parallel()
	s := startHandoffServer(t, dbtest.New(t), testRouting)
	adaID, ada := s.staff(t, "Ada Admin", "admin")
	alexID, alex := s.staff(t, "Alex Agent", "agent")
	_, eddie := s.staff(t, "Eddie Editor", "editor")
	const password = "correct horse battery"

	me := func(t *testing.T, token string) int {
		t.Helper()
		return s.do(t, "GET", "/api/v1/auth/me", token, nil).status
	}
	patch := func(t *testing.T, id string, body any) *response {
		t.Helper()
		return s.do(t, "PATCH", "/api/v1/users/"+id, ada, body)
	}
	signIn := func(t *testing.T, email, password string) string {
		t.Helper()
		var out struct{ Token string }
		s.login(t, email, password).expect(t, http.StatusOK).decode(t, &out)
		return out.Token
	}

	t.Run("RoleChecks", func(t *testing.T) {
		routes := []struct {
			method, path string
			body         any
			admin        int // what the admin gets with this body
		}{
			{"GET", "/api/v1/users", nil, http.StatusOK},
			{"POST", "/api/v1/users", map[string]any{"email": "not an address"}, http.StatusBadRequest},
			{"PATCH", "/api/v1/users/" + alexID, map[string]any{}, http.StatusOK},
		}
		callers := []struct {
			name, token string
			status      int
			code        string
		}{
			{"None", "", http.StatusUnauthorized, "unauthorized"},
			{"Agent", alex, http.StatusForbidden, "forbidden"},
			{"Editor", eddie, http.StatusForbidden, "forbidden"},
			{"Admin", ada, 0, ""},
		}
		for _, rt := range routes {
			for _, cl := range callers {
				t.Run(rt.method+"/"+cl.name, func(t *testing.T) {
					r := s.do(t, rt.method, rt.path, cl.token, rt.body)
					if cl.status == 0 {
						r.expect(t, rt.admin)
						return
					}
					if code := r.expect(t, cl.status).errorCode(t); code != cl.code {
						t.Fatalf("code %q, want %q", code, cl.code)
					}
				})
			}
		}
	})

	var nia apiUser
	t.Run("Create", func(t *testing.T) {
		r := s.do(t, "POST", "/api/v1/users", ada, map[string]any{"email": "nia@example.com", "password": password,
			"display_name": "Nia New", "roles": []string{"editor", "agent", "editor"}}).expect(t, http.StatusCreated)
		var out struct{ User apiUser }
		r.decode(t, &out)
		nia = out.User
		if nia.ID == "" || nia.Email != "nia@example.com" || nia.DisplayName != "Nia New" ||
			strings.Join(nia.Roles, ",") != "agent,editor" || nia.Disabled || nia.Teams == nil {
			t.Fatalf("created %s", r.body)
		}
		if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), password) {
			t.Fatalf("the answer shows the password or its hash: %s", r.body)
		}
		cheapenPassword(t, s.Pool, "nia@example.com", password)
		if tok := signIn(t, "nia@example.com", password); me(t, tok) != http.StatusOK {
			t.Fatal("the new user cannot use their session")
		}
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		for name, body := range map[string]map[string]any{
			"Duplicate":     {"email": "NIA@example.com", "password": password, "roles": []string{"agent"}},
			"BadEmail":      {"email": "nia", "password": password, "roles": []string{"agent"}},
			"ShortPassword": {"email": "short@example.com", "password": "short", "roles": []string{"agent"}},
			"NoRoles":       {"email": "none@example.com", "password": password, "roles": []string{}},
			"UnknownRole":   {"email": "owner@example.com", "password": password, "roles": []string{"owner"}},
			"RolesNotArray": {"email": "str@example.com", "password": password, "roles": "agent"},
		} {
			t.Run(name, func(t *testing.T) {
				want, code := http.StatusBadRequest, "invalid"
				if name == "Duplicate" {
					want, code = http.StatusConflict, "conflict"
				}
				if got := s.do(t, "POST", "/api/v1/users", ada, body).expect(t, want).errorCode(t); got != code {
					t.Fatalf("code %q, want %q", got, code)
				}
			})
		}
	})

	t.Run("ListWithTeams", func(t *testing.T) {
		s.do(t, "POST", "/api/v1/teams", ada, map[string]any{"name": "billing"}).expect(t, http.StatusCreated)
		s.do(t, "PUT", "/api/v1/teams/billing/members/"+nia.ID, ada, nil).expect(t, http.StatusOK)
		var out struct{ Users []apiUser }
		s.do(t, "GET", "/api/v1/users", ada, nil).expect(t, http.StatusOK).decode(t, &out)
		var emails []string
		for _, u := range out.Users {
			emails = append(emails, u.Email)
			if u.ID == nia.ID && (len(u.Teams) != 1 || u.Teams[0] != "billing") {
				t.Fatalf("nia's teams %v, want [billing]", u.Teams)
			}
		}
		if want := []string{"ada.admin@example.com", "alex.agent@example.com", "eddie.editor@example.com", "nia@example.com"}; !slices.Equal(emails, want) {
			t.Fatalf("users %v, want %v", emails, want)
		}
	})

	t.Run("UpdateInvalid", func(t *testing.T) {
		for name, tc := range map[string]struct {
			id     string
			body   any
			status int
		}{
			"EmptyRoles":   {nia.ID, map[string]any{"roles": []string{}}, http.StatusBadRequest},
			"UnknownRole":  {nia.ID, map[string]any{"roles": []string{"root"}}, http.StatusBadRequest},
			"EmptyName":    {nia.ID, map[string]any{"display_name": "  "}, http.StatusBadRequest},
			"ShortPass":    {nia.ID, map[string]any{"password": "short"}, http.StatusBadRequest},
			"Email":        {nia.ID, map[string]any{"email": "other@example.com"}, http.StatusBadRequest},
			"NotJSON":      {nia.ID, "{", http.StatusBadRequest},
			"UnknownID":    {"7b5f9f9e-2f0a-4c53-9a3e-3c7f0d2d1e42", map[string]any{"display_name": "X"}, http.StatusNotFound},
			"MalformedID":  {"nobody", map[string]any{"display_name": "X"}, http.StatusNotFound},
			"DisabledText": {nia.ID, map[string]any{"disabled": "yes"}, http.StatusBadRequest},
		} {
			t.Run(name, func(t *testing.T) {
				patch(t, tc.id, tc.body).expect(t, tc.status).errorCode(t)
			})
		}
	})

	t.Run("RenameKeepsSessions", func(t *testing.T) {
		tok := signIn(t, "nia@example.com", password)
		var out struct{ User apiUser }
		patch(t, nia.ID, map[string]any{"display_name": "  Nia Newer "}).expect(t, http.StatusOK).decode(t, &out)
		if out.User.DisplayName != "Nia Newer" || len(out.User.Teams) != 1 {
			t.Fatalf("renamed %+v", out.User)
		}
		if me(t, tok) != http.StatusOK {
			t.Fatal("a new display name ended the user's session")
		}
	})

	t.Run("RolesChangeRevokes", func(t *testing.T) {
		tok := signIn(t, "nia@example.com", password)
		var out struct{ User apiUser }
		patch(t, nia.ID, map[string]any{"roles": []string{"editor"}}).expect(t, http.StatusOK).decode(t, &out)
		if strings.Join(out.User.Roles, ",") != "editor" {
			t.Fatalf("roles %v", out.User.Roles)
		}
		if got := me(t, tok); got != http.StatusUnauthorized {
			t.Fatalf("old session after a role change: %d, want 401", got)
		}
		tok = signIn(t, "nia@example.com", password)
		s.do(t, "GET", "/api/v1/queue", tok, nil).expect(t, http.StatusForbidden)
		s.do(t, "GET", "/api/v1/knowledge/documents", tok, nil).expect(t, http.StatusOK)
	})

	t.Run("PasswordResetRevokes", func(t *testing.T) {
		tok := signIn(t, "nia@example.com", password)
		const fresh = "a brand new password"
		patch(t, nia.ID, map[string]any{"password": fresh}).expect(t, http.StatusOK)
		if got := me(t, tok); got != http.StatusUnauthorized {
			t.Fatalf("old session after a password reset: %d, want 401", got)
		}
		s.login(t, "nia@example.com", password).expect(t, http.StatusUnauthorized)
		signIn(t, "nia@example.com", fresh)
	})

	t.Run("DisableRevokesAndRequeues", func(t *testing.T) {
		s.do(t, "PUT", "/api/v1/agents/me/status", alex, map[string]any{"status": "online"}).expect(t, http.StatusOK)
		aws, _ := s.agentSocket(t, alex)
		c := s.createConversation(t)
		s.escalateOver(t, c, "", 0)
		next(t, aws, func(f hframe) bool { return f.Type == "assigned" && f.ConversationID == c.ID })

		var out struct{ User apiUser }
		patch(t, alexID, map[string]any{"disabled": true}).expect(t, http.StatusOK).decode(t, &out)
		if !out.User.Disabled {
			t.Fatalf("user %+v, want disabled", out.User)
		}
		if code := s.do(t, "GET", "/api/v1/queue", alex, nil).expect(t, http.StatusUnauthorized).errorCode(t); code != "unauthorized" {
			t.Fatalf("code %q", code)
		}
		expectClose(t, aws, websocket.ClosePolicyViolation)
		pollUntil(t, "the disabled agent's chat is queued again", func() bool { return s.conversationState(t, c) == "queued" })
		var agents struct{ Agents []struct{ ID string } }
		s.do(t, "GET", "/api/v1/agents", ada, nil).expect(t, http.StatusOK).decode(t, &agents)
		for _, a := range agents.Agents {
			if a.ID == alexID {
				t.Fatal("a disabled user is still listed as an agent")
			}
		}
		// A new session cannot be had either; enabling again does not
		// bring the old one back.
		tok, err := s.Auth.NewSession(context.Background(), alexID, "api")
		if err != nil {
			t.Fatal(err)
		}
		if got := me(t, tok); got != http.StatusUnauthorized {
			t.Fatalf("a disabled user's session: %d, want 401", got)
		}
		patch(t, alexID, map[string]any{"disabled": false}).expect(t, http.StatusOK)
		if me(t, alex) != http.StatusUnauthorized || me(t, tok) != http.StatusOK {
			t.Fatal("after enabling: the revoked session should stay revoked, the later one work")
		}
	})

	t.Run("NoSelfLockout", func(t *testing.T) {
		other, err := s.Auth.NewSession(context.Background(), adaID, "api")
		if err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]map[string]any{
			"Demote":  {"roles": []string{"agent", "editor"}},
			"Disable": {"disabled": true},
		} {
			t.Run(name, func(t *testing.T) {
				r := patch(t, adaID, body).expect(t, http.StatusConflict)
				var e apiError
				r.decode(t, &e)
				if e.Error.Code != "conflict" || !strings.Contains(e.Error.Message, "your own") {
					t.Fatalf("error %+v", e.Error)
				}
			})
		}
		if me(t, other) != http.StatusOK {
			t.Fatal("a refused change ended a session")
		}
		// Changing one's own roles otherwise works, and keeps the session
		// it was made with while ending the others.
		patch(t, adaID, map[string]any{"roles": []string{"admin", "editor"}}).expect(t, http.StatusOK)
		s.do(t, "GET", "/api/v1/users", ada, nil).expect(t, http.StatusOK)
		if got := me(t, other); got != http.StatusUnauthorized {
			t.Fatalf("the admin's other session after their role change: %d, want 401", got)
		}
	})

	t.Run("DemotedAdminLosesAccess", func(t *testing.T) {
		beaID, bea := s.staff(t, "Bea Boss", "admin")
		s.do(t, "GET", "/api/v1/users", bea, nil).expect(t, http.StatusOK)
		patch(t, beaID, map[string]any{"roles": []string{"agent"}}).expect(t, http.StatusOK)
		s.do(t, "GET", "/api/v1/users", bea, nil).expect(t, http.StatusUnauthorized)
		tok, err := s.Auth.NewSession(context.Background(), beaID, "api")
		if err != nil {
			t.Fatal(err)
		}
		s.do(t, "PATCH", "/api/v1/users/"+adaID, tok, map[string]any{"roles": []string{"agent"}}).expect(t, http.StatusForbidden)
	})

	t.Run("Audited", func(t *testing.T) {
		r := s.do(t, "GET", "/api/v1/audit?subject_id="+nia.ID, ada, nil).expect(t, http.StatusOK)
		var out struct {
			Records []struct {
				ActorID string `json:"actor_id"`
				Action  string
				Data    map[string]any
			}
		}
		r.decode(t, &out)
		var actions []string
		var records []struct {
			ActorID string `json:"actor_id"`
			Action  string
			Data    map[string]any
		}
		signIns := 0
		for _, a := range out.Records {
			if strings.HasPrefix(a.Action, "auth.") {
				// Nia's own sign-ins are hers.
				if a.ActorID != nia.ID {
					t.Fatalf("record %+v, want Nia as the actor of her sign-in", a)
				}
				signIns++
				continue
			}
			actions = append(actions, a.Action)
			records = append(records, a)
			if a.ActorID != adaID {
				t.Fatalf("record %+v, want Ada as the actor", a)
			}
		}
		out.Records = records
		if signIns == 0 {
			t.Fatalf("no auth.login record of Nia's sign-in: %s", r.body)
		}
		// Newest first: password, roles, rename, create.
		if want := []string{"user.update", "user.update", "user.update", "user.create"}; !slices.Equal(actions, want) {
			t.Fatalf("actions %v, want %v", actions, want)
		}
		if out.Records[0].Data["password"] != "reset" || out.Records[1].Data["roles"] == nil {
			t.Fatalf("records %s", r.body)
		}
		if strings.Contains(string(r.body), password) || strings.Contains(string(r.body), "argon2") {
			t.Fatalf("the audit log shows a password or its hash: %s", r.body)
		}
	})
}
