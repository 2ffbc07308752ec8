package handoff

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Team is a group of agents that escalations and transfers name. Its
// settings say when it is open (Hours in Timezone; none means always) and
// how long a customer may wait before the queue entry is flagged.
type Team struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Timezone   string            `json:"timezone"`
	Hours      map[string]string `json:"hours"`
	SLASeconds int               `json:"sla_seconds"`
	Members    []TeamMember      `json:"members"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// TeamMember is a staff user in a team.
type TeamMember struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// TeamSettings changes a team; nil fields stay as they are.
type TeamSettings struct {
	Timezone   *string           `json:"timezone"`
	Hours      map[string]string `json:"hours"`
	SLASeconds *int              `json:"sla_seconds"`
}

// defaultSLASeconds is a new team's waiting threshold.
const defaultSLASeconds = 300

const teamColumns = `t.id, t.name, t.timezone, t.hours, t.sla_seconds, t.created_at, t.updated_at`

func scanTeam(row pgx.Row) (*Team, error) {
	var t Team
	var hours []byte
	if err := row.Scan(&t.ID, &t.Name, &t.Timezone, &hours, &t.SLASeconds, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return nil, db.Translate(err, "team")
	}
	_ = json.Unmarshal(hours, &t.Hours)
	if t.Hours == nil {
		t.Hours = map[string]string{}
	}
	t.Members = []TeamMember{}
	return &t, nil
}

func validTeamName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\n\r\t") {
		return "", errs.Errorf(errs.Invalid, "a team name is 1 to 64 characters on one line")
	}
	return name, nil
}

// CreateTeam adds a team; an empty timezone is UTC, no hours is always
// open, no SLA is 300 seconds. Returns Invalid or Conflict.
func (s *Service) CreateTeam(ctx context.Context, actor Actor, name string, set TeamSettings) (*Team, error) {
	name, err := validTeamName(name)
	if err != nil {
		return nil, err
	}
	tz, hours, sla := "UTC", map[string]string{}, defaultSLASeconds
	if set.Timezone != nil && *set.Timezone != "" {
		tz = *set.Timezone
	}
	if set.Hours != nil {
		hours = set.Hours
	}
	if set.SLASeconds != nil {
		sla = *set.SLASeconds
	}
	if err := validateTeamSettings(tz, hours, sla); err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "team")
	}
	defer tx.Rollback(ctx)
	t, err := scanTeam(tx.QueryRow(ctx, `INSERT INTO teams AS t (name, timezone, hours, sla_seconds, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) RETURNING `+teamColumns, name, tz, rawJSON(hours), sla, s.opt.Now()))
	if err != nil {
		if errs.Is(err, errs.Conflict) {
			return nil, errs.Errorf(errs.Conflict, "a team named %q already exists", name)
		}
		return nil, err
	}
	if err := s.store.insertAudit(ctx, tx, actor, "team.create", "team", t.ID, map[string]any{"name": name, "timezone": tz, "hours": hours, "sla_seconds": sla}); err != nil {
		return nil, err
	}
	return t, db.Translate(tx.Commit(ctx), "team")
}

func validateTeamSettings(tz string, hours map[string]string, sla int) error {
	if _, err := parseHours(tz, hours); err != nil {
		return err
	}
	if sla < 1 || sla > 7*24*3600 {
		return errs.Errorf(errs.Invalid, "sla_seconds must be from 1 to 604800 (a week)")
	}
	return nil
}

// UpdateTeam changes a team's settings. Returns Invalid or NotFound.
func (s *Service) UpdateTeam(ctx context.Context, actor Actor, name string, set TeamSettings) (*Team, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "team")
	}
	defer tx.Rollback(ctx)
	t, err := scanTeam(tx.QueryRow(ctx, `SELECT `+teamColumns+` FROM teams t WHERE lower(t.name) = lower($1) FOR UPDATE`, strings.TrimSpace(name)))
	if err != nil {
		return nil, err
	}
	if set.Timezone != nil {
		t.Timezone = or(*set.Timezone, "UTC")
	}
	if set.Hours != nil {
		t.Hours = set.Hours
	}
	if set.SLASeconds != nil {
		t.SLASeconds = *set.SLASeconds
	}
	if err := validateTeamSettings(t.Timezone, t.Hours, t.SLASeconds); err != nil {
		return nil, err
	}
	t.UpdatedAt = s.opt.Now()
	if _, err := tx.Exec(ctx, `UPDATE teams SET timezone = $2, hours = $3, sla_seconds = $4, updated_at = $5 WHERE id = $1`,
		t.ID, t.Timezone, rawJSON(t.Hours), t.SLASeconds, t.UpdatedAt); err != nil {
		return nil, db.Translate(err, "team")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "team.update", "team", t.ID, map[string]any{"name": t.Name, "timezone": t.Timezone, "hours": t.Hours, "sla_seconds": t.SLASeconds}); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "team")
	}
	return s.Team(ctx, t.Name)
}

// Teams lists every team with its members.
func (s *Service) Teams(ctx context.Context) ([]Team, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+teamColumns+` FROM teams t ORDER BY lower(t.name)`)
	if err != nil {
		return nil, db.Translate(err, "teams")
	}
	teams, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Team, error) {
		t, err := scanTeam(r)
		if err != nil {
			return Team{}, err
		}
		return *t, nil
	})
	if err != nil {
		return nil, db.Translate(err, "teams")
	}
	byID := map[string]*Team{}
	for i := range teams {
		byID[teams[i].ID] = &teams[i]
	}
	rows, err = s.pool.Query(ctx, `SELECT m.team_id, u.id, u.display_name, u.email FROM team_members m
		JOIN users u ON u.id = m.user_id ORDER BY lower(u.display_name), u.email`)
	if err != nil {
		return nil, db.Translate(err, "team members")
	}
	defer rows.Close()
	for rows.Next() {
		var teamID string
		var m TeamMember
		if err := rows.Scan(&teamID, &m.ID, &m.Name, &m.Email); err != nil {
			return nil, db.Translate(err, "team members")
		}
		if t := byID[teamID]; t != nil {
			t.Members = append(t.Members, m)
		}
	}
	if teams == nil {
		teams = []Team{}
	}
	return teams, db.Translate(rows.Err(), "team members")
}

// Team returns one team by name (any case) with its members. Returns
// NotFound.
func (s *Service) Team(ctx context.Context, name string) (*Team, error) {
	teams, err := s.Teams(ctx)
	if err != nil {
		return nil, err
	}
	for i := range teams {
		if strings.EqualFold(teams[i].Name, strings.TrimSpace(name)) {
			return &teams[i], nil
		}
	}
	return nil, errs.Errorf(errs.NotFound, "team %q not found", name)
}

// teamByName finds a team by name (any case). Returns NotFound.
func (s *store) teamByName(ctx context.Context, q db.Querier, name string) (*Team, error) {
	return scanTeam(q.QueryRow(ctx, `SELECT `+teamColumns+` FROM teams t WHERE lower(t.name) = lower($1)`, strings.TrimSpace(name)))
}

// AddTeamMember puts a staff user in a team. Returns NotFound.
func (s *Service) AddTeamMember(ctx context.Context, actor Actor, team, userID string) error {
	return s.teamMember(ctx, actor, team, userID, true, false)
}

// RemoveTeamMember takes a staff user out of a team. Returns NotFound.
func (s *Service) RemoveTeamMember(ctx context.Context, actor Actor, team, userID string) error {
	return s.teamMember(ctx, actor, team, userID, false, false)
}

// JoinTeam puts a staff user in a team, creating the team (with default
// settings) if there is none of that name. It reports whether the team was
// created. Used by `tandem user create --team`.
func (s *Service) JoinTeam(ctx context.Context, userID, team string) (created bool, err error) {
	if _, err := validTeamName(team); err != nil {
		return false, err
	}
	if _, err := s.store.teamByName(ctx, s.pool, team); errs.Is(err, errs.NotFound) {
		_, err := s.CreateTeam(ctx, systemActor, team, TeamSettings{})
		if err != nil && !errs.Is(err, errs.Conflict) {
			return false, err
		}
		created = err == nil
	} else if err != nil {
		return false, err
	}
	return created, s.teamMember(ctx, systemActor, team, userID, true, true)
}

func (s *Service) teamMember(ctx context.Context, actor Actor, team, userID string, add, quiet bool) error {
	if !db.ValidID(userID) {
		return errs.Errorf(errs.NotFound, "user not found")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "team")
	}
	defer tx.Rollback(ctx)
	t, err := s.store.teamByName(ctx, tx, team)
	if err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&exists); err != nil {
		return db.Translate(err, "user")
	}
	if !exists {
		return errs.Errorf(errs.NotFound, "user not found")
	}
	action := "team.member.add"
	if add {
		_, err = tx.Exec(ctx, `INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, t.ID, userID)
	} else {
		action = "team.member.remove"
		_, err = tx.Exec(ctx, `DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, t.ID, userID)
	}
	if err != nil {
		return db.Translate(err, "team member")
	}
	if err := s.store.insertAudit(ctx, tx, actor, action, "team", t.ID, map[string]any{"user_id": userID, "team": t.Name}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return db.Translate(err, "team member")
	}
	if add && !quiet {
		s.Kick() // the new member may take the team's queue
	}
	return nil
}
