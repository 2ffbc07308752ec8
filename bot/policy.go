package bot

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/audit"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Policy is the bot's escalation policy, a setting admins change at run time.
type Policy struct {
	// AnswerThreshold is the least retrieval score (calibrated, 0–1) at
	// which the bot answers; below it the turn is low-confidence.
	AnswerThreshold float64 `json:"answer_threshold"`
	// IntentThresholds override AnswerThreshold per intent.
	IntentThresholds map[string]float64 `json:"intent_thresholds,omitempty"`
	// LowTurns is how many low-confidence turns in a row escalate; the ones
	// before ask a clarifying question.
	LowTurns int `json:"low_turns"`
	// IntentThreshold is the least classifier confidence at which an
	// intent's action (say, escalate) is taken.
	IntentThreshold float64 `json:"intent_threshold"`
	// DefaultTeam receives escalations whose intent names no team.
	DefaultTeam string `json:"default_team"`
	// AfterSalesIntents are the intents (returns, refunds, damage,
	// warranty…) after which a photo sent without words gets the offer of
	// a person; nil means DefaultAfterSalesIntents.
	AfterSalesIntents []string `json:"after_sales_intents,omitempty"`
}

// DefaultPolicy measured well on the demo knowledge base and FAQ data
// (docs/benchmarks.md).
var DefaultPolicy = Policy{AnswerThreshold: 0.5, LowTurns: 2, IntentThreshold: 0.8, DefaultTeam: "support"}

// Validate explains what is wrong. Returns Invalid.
func (p Policy) Validate() error {
	in01 := func(v float64) bool { return v >= 0 && v <= 1 }
	if !in01(p.AnswerThreshold) || !in01(p.IntentThreshold) {
		return errs.Errorf(errs.Invalid, "thresholds must be between 0 and 1")
	}
	for k, v := range p.IntentThresholds {
		if !in01(v) {
			return errs.Errorf(errs.Invalid, "threshold of intent %q must be between 0 and 1", k)
		}
	}
	if p.LowTurns < 1 || p.LowTurns > 10 {
		return errs.Errorf(errs.Invalid, "low_turns must be between 1 and 10")
	}
	return nil
}

// threshold is the answer threshold for an intent.
func (p Policy) threshold(intent string) float64 {
	if v, ok := p.IntentThresholds[intent]; ok {
		return v
	}
	return p.AnswerThreshold
}

const policyKey = "bot.policy"

// LoadPolicy reads the stored policy, or DefaultPolicy when none is stored.
func LoadPolicy(ctx context.Context, pool *pgxpool.Pool) (Policy, error) {
	var raw []byte
	err := pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, policyKey).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultPolicy, nil
	}
	if err != nil {
		return DefaultPolicy, db.Translate(err, "settings")
	}
	p := DefaultPolicy
	if err := json.Unmarshal(raw, &p); err != nil {
		return DefaultPolicy, err
	}
	return p, nil
}

// SavePolicy validates and stores p. Returns Invalid.
func SavePolicy(ctx context.Context, pool *pgxpool.Pool, p Policy, userID string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	raw, _ := json.Marshal(p)
	var by *string
	if userID != "" {
		by = &userID
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "settings")
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (key) DO UPDATE SET value = $2, updated_by = $3, updated_at = now()`, policyKey, raw, by); err != nil {
		return db.Translate(err, "settings")
	}
	if err := audit.Write(ctx, tx, time.Time{}, actorOf(ctx, userID), "settings.update", "setting", policyKey, p); err != nil {
		return err
	}
	return db.Translate(tx.Commit(ctx), "settings")
}

// actorOf is who changes the bot's settings: the request's staff user, or
// the user named by the caller.
func actorOf(ctx context.Context, userID string) audit.Actor {
	a := audit.ActorOf(ctx)
	if a.ID == "" && userID != "" {
		return audit.Actor{ID: userID, Role: "admin"}
	}
	return a
}
