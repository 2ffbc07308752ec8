package handoff

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// CannedReply is a prepared answer agents insert and edit; Team "" means
// every team.
type CannedReply struct {
	ID        string    `json:"id"`
	Team      string    `json:"team"`
	Title     string    `json:"title"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const cannedSelect = `SELECT r.id, coalesce(t.name, ''), r.title, r.text, r.created_at, r.updated_at
	FROM canned_replies r LEFT JOIN teams t ON t.id = r.team_id`

func collectCanned(rows pgx.Rows) ([]CannedReply, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CannedReply, error) {
		var c CannedReply
		err := r.Scan(&c.ID, &c.Team, &c.Title, &c.Text, &c.CreatedAt, &c.UpdatedAt)
		return c, err
	})
	if out == nil {
		out = []CannedReply{}
	}
	return out, db.Translate(err, "canned replies")
}

// CannedReplies lists the replies an agent may use: those of every team
// plus those of the agent's teams. With all set (admins), every reply.
func (s *Service) CannedReplies(ctx context.Context, userID string, all bool) ([]CannedReply, error) {
	rows, err := s.pool.Query(ctx, cannedSelect+` WHERE $2 OR r.team_id IS NULL
		OR r.team_id IN (SELECT team_id FROM team_members WHERE user_id::text = $1)
		ORDER BY coalesce(lower(t.name), ''), lower(r.title)`, userID, all)
	if err != nil {
		return nil, db.Translate(err, "canned replies")
	}
	return collectCanned(rows)
}

func (s *Service) validCanned(ctx context.Context, q db.Querier, c *CannedReply) (*string, error) {
	c.Title, c.Text = strings.TrimSpace(c.Title), strings.TrimSpace(c.Text)
	if c.Title == "" || utf8.RuneCountInString(c.Title) > 200 || !utf8.ValidString(c.Title) {
		return nil, errs.Errorf(errs.Invalid, "title must be 1 to 200 characters")
	}
	if c.Text == "" || utf8.RuneCountInString(c.Text) > s.opt.MaxTextRunes || !utf8.ValidString(c.Text) {
		return nil, errs.Errorf(errs.Invalid, "text must be 1 to %d characters", s.opt.MaxTextRunes)
	}
	if strings.TrimSpace(c.Team) == "" {
		c.Team = ""
		return nil, nil
	}
	t, err := s.store.teamByName(ctx, q, c.Team)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.Errorf(errs.Invalid, "there is no team named %q", c.Team)
	} else if err != nil {
		return nil, err
	}
	c.Team = t.Name
	return &t.ID, nil
}

// CreateCannedReply adds a canned reply. Returns Invalid.
func (s *Service) CreateCannedReply(ctx context.Context, actor Actor, c CannedReply) (*CannedReply, error) {
	teamID, err := s.validCanned(ctx, s.pool, &c)
	if err != nil {
		return nil, err
	}
	var author *string
	if actor.ID != "" {
		author = &actor.ID
	}
	c.CreatedAt = s.opt.Now()
	c.UpdatedAt = c.CreatedAt
	if err := s.pool.QueryRow(ctx, `INSERT INTO canned_replies (team_id, title, text, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`, teamID, c.Title, c.Text, author, c.CreatedAt).Scan(&c.ID); err != nil {
		return nil, db.Translate(err, "canned reply")
	}
	return &c, s.store.insertAudit(ctx, s.pool, actor, "canned_reply.create", "canned_reply", c.ID, map[string]any{"team": c.Team, "title": c.Title})
}

// UpdateCannedReply replaces a canned reply. Returns Invalid or NotFound.
func (s *Service) UpdateCannedReply(ctx context.Context, actor Actor, id string, c CannedReply) (*CannedReply, error) {
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "canned reply not found")
	}
	teamID, err := s.validCanned(ctx, s.pool, &c)
	if err != nil {
		return nil, err
	}
	c.ID = id
	c.UpdatedAt = s.opt.Now()
	if err := s.pool.QueryRow(ctx, `UPDATE canned_replies SET team_id = $2, title = $3, text = $4, updated_at = $5
		WHERE id = $1 RETURNING created_at`, id, teamID, c.Title, c.Text, c.UpdatedAt).Scan(&c.CreatedAt); err != nil {
		return nil, db.Translate(err, "canned reply")
	}
	return &c, s.store.insertAudit(ctx, s.pool, actor, "canned_reply.update", "canned_reply", c.ID, map[string]any{"team": c.Team, "title": c.Title})
}

// DeleteCannedReply removes a canned reply. Returns NotFound.
func (s *Service) DeleteCannedReply(ctx context.Context, actor Actor, id string) error {
	if !db.ValidID(id) {
		return errs.Errorf(errs.NotFound, "canned reply not found")
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM canned_replies WHERE id = $1`, id)
	if err != nil {
		return db.Translate(err, "canned reply")
	}
	if tag.RowsAffected() == 0 {
		return errs.Errorf(errs.NotFound, "canned reply not found")
	}
	return s.store.insertAudit(ctx, s.pool, actor, "canned_reply.delete", "canned_reply", id, nil)
}
