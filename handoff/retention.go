package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Retention modes: what happens to a closed conversation past its time.
const (
	// RetentionDelete deletes the conversation with everything that hangs
	// off it (messages, events, notes, scores, attachments, webhook
	// deliveries), through foreign keys.
	RetentionDelete = "delete"
	// RetentionAnonymise keeps the conversation for the figures (counts,
	// states, times, intents, scores) and removes what says who the
	// customer is or what they wrote: customer details, external id,
	// message texts, notes, score comments, the handoff summary, and the
	// same in the audit log.
	RetentionAnonymise = "anonymise"
)

// Retention is the retention setting: closed conversations older than Days
// (since they were closed) are deleted or anonymised; 0 days keeps
// everything.
type Retention struct {
	Days int    `json:"days"`
	Mode string `json:"mode"`
}

// RetentionRun is what one run did.
type RetentionRun struct {
	At         time.Time `json:"at"`
	Cutoff     time.Time `json:"cutoff"`
	Mode       string    `json:"mode"`
	Deleted    int       `json:"deleted"`
	Anonymised int       `json:"anonymised"`
}

const (
	retentionKey    = "retention"
	retentionRunKey = "retention.last_run"
	retentionBatch  = 200 // conversations per transaction
)

// Validate checks the setting and normalises the mode. Returns Invalid.
func (r *Retention) Validate() error {
	r.Mode = strings.ToLower(strings.TrimSpace(r.Mode))
	if r.Mode == "anonymize" {
		r.Mode = RetentionAnonymise
	}
	if r.Mode == "" {
		r.Mode = RetentionDelete
	}
	if r.Mode != RetentionDelete && r.Mode != RetentionAnonymise {
		return errs.Errorf(errs.Invalid, "mode must be %s or %s", RetentionDelete, RetentionAnonymise)
	}
	if r.Days < 0 || r.Days > 36500 {
		return errs.Errorf(errs.Invalid, "days must be 0 (keep everything) to 36500")
	}
	return nil
}

// RetentionPolicy returns the retention setting (0 days, delete, when none
// is stored) and the last run, if any.
func (s *Service) RetentionPolicy(ctx context.Context) (Retention, *RetentionRun, error) {
	r := Retention{Mode: RetentionDelete}
	var last *RetentionRun
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM settings WHERE key = ANY($1)`, []string{retentionKey, retentionRunKey})
	if err != nil {
		return r, nil, db.Translate(err, "settings")
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			return r, nil, db.Translate(err, "settings")
		}
		switch key {
		case retentionKey:
			if err := json.Unmarshal(raw, &r); err != nil {
				return r, nil, err
			}
		case retentionRunKey:
			last = &RetentionRun{}
			if err := json.Unmarshal(raw, last); err != nil {
				return r, nil, err
			}
		}
	}
	return r, last, db.Translate(rows.Err(), "settings")
}

// SetRetention stores the retention setting, in the audit log as
// settings.update. Returns Invalid.
func (s *Service) SetRetention(ctx context.Context, actor Actor, r Retention) (Retention, error) {
	if err := r.Validate(); err != nil {
		return r, err
	}
	var by *string
	if actor.ID != "" {
		by = &actor.ID
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return r, db.Translate(err, "settings")
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET value = $2, updated_by = $3, updated_at = $4`, retentionKey, rawJSON(r), by, s.opt.Now()); err != nil {
		return r, db.Translate(err, "settings")
	}
	if err := s.store.insertAudit(ctx, tx, actor, "settings.update", "setting", retentionKey, map[string]any{"days": r.Days, "mode": r.Mode}); err != nil {
		return r, err
	}
	return r, db.Translate(tx.Commit(ctx), "settings")
}

// RunRetention applies r at now: every conversation closed before now
// minus r.Days is deleted or anonymised, in batches, each in its own
// transaction with its rows locked (SKIP LOCKED: instances running at once
// share the work; a conversation its customer reopens meanwhile is
// skipped, since it is no longer closed). The run is in the audit log.
// With dryRun it only counts. Returns Invalid for a bad setting.
func (s *Service) RunRetention(ctx context.Context, r Retention, now time.Time, dryRun bool) (RetentionRun, error) {
	run := RetentionRun{At: now, Mode: r.Mode}
	if err := r.Validate(); err != nil {
		return run, err
	}
	run.Mode = r.Mode
	if r.Days == 0 {
		return run, nil
	}
	run.Cutoff = now.Add(-time.Duration(r.Days) * 24 * time.Hour)
	if dryRun {
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM conversations
			WHERE state = 'closed' AND closed_at < $1 AND anonymised_at IS NULL`, run.Cutoff).Scan(&n)
		if r.Mode == RetentionDelete {
			run.Deleted = n
		} else {
			run.Anonymised = n
		}
		return run, db.Translate(err, "conversations")
	}
	attachments, err := s.hasAttachments(ctx)
	if err != nil {
		return run, err
	}
	for {
		n, err := s.retentionBatch(ctx, r.Mode, run.Cutoff, now, attachments)
		if err != nil {
			return run, err
		}
		if r.Mode == RetentionDelete {
			run.Deleted += n
		} else {
			run.Anonymised += n
		}
		if n < retentionBatch {
			break
		}
	}
	err = s.store.insertAudit(ctx, s.pool, systemActor, "retention.run", "setting", retentionKey, map[string]any{
		"mode": run.Mode, "days": r.Days, "cutoff": run.Cutoff, "deleted": run.Deleted, "anonymised": run.Anonymised})
	return run, err
}

// hasAttachments reports whether the attachments table exists (it comes
// with attachments support), so anonymising can remove their files.
func (s *Service) hasAttachments(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT to_regclass('attachments') IS NOT NULL
		AND EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'attachments')`).Scan(&ok)
	return ok, db.Translate(err, "attachments")
}

// retentionBatch deletes or anonymises up to retentionBatch conversations
// closed before cutoff, in one transaction, and returns how many.
func (s *Service) retentionBatch(ctx context.Context, mode string, cutoff, now time.Time, attachments bool) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, db.Translate(err, "conversations")
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT id::text FROM conversations
		WHERE state = 'closed' AND closed_at < $1 AND anonymised_at IS NULL
		ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED`, cutoff, retentionBatch)
	if err != nil {
		return 0, db.Translate(err, "conversations")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return 0, db.Translate(err, "conversations")
	}
	// The audit log keeps who did what, not what the customer said: notes
	// and handoff packets (summary, last answer, customer) go.
	if _, err := tx.Exec(ctx, `UPDATE audit_log SET data = data - 'note' - 'escalation' - 'comment'
		WHERE subject_type = 'conversation' AND subject_id = ANY($1)`, ids); err != nil {
		return 0, db.Translate(err, "audit log")
	}
	steps := []string{
		// Deliveries not yet sent carry the messages.
		`DELETE FROM webhook_deliveries WHERE conversation_id = ANY($1::uuid[])`,
	}
	if mode == RetentionDelete {
		// Messages, events, notes, scores, attachments and deliveries go
		// with their conversation (ON DELETE CASCADE).
		steps = append(steps, `DELETE FROM conversations WHERE id = ANY($1::uuid[])`)
	} else {
		if attachments {
			steps = append(steps, `DELETE FROM attachments WHERE conversation_id = ANY($1::uuid[])`,
				`UPDATE messages SET attachments = '[]' WHERE conversation_id = ANY($1::uuid[]) AND attachments <> '[]'`)
		}
		steps = append(steps,
			`UPDATE messages SET text = '', client_msg_id = NULL WHERE conversation_id = ANY($1::uuid[])`,
			`DELETE FROM conversation_notes WHERE conversation_id = ANY($1::uuid[])`,
			`UPDATE csat_responses SET comment = '' WHERE conversation_id = ANY($1::uuid[]) AND comment <> ''`,
			`UPDATE conversation_events SET data = data - 'comment' - 'note' WHERE conversation_id = ANY($1::uuid[]) AND (data ? 'comment' OR data ? 'note')`,
			// The customer's details go but their language; the token no
			// longer opens anything; the packet keeps its reason, intent
			// and team.
			`UPDATE conversations SET customer = jsonb_strip_nulls(jsonb_build_object('locale', customer->'locale')),
				external_id = NULL, token_hash = sha256(convert_to(gen_random_uuid()::text || id::text, 'UTF8')),
				escalation = CASE WHEN escalation IS NULL THEN NULL ELSE jsonb_strip_nulls(jsonb_build_object(
					'reason', escalation->'reason', 'intent', escalation->'intent', 'team', escalation->'team',
					'priority', escalation->'priority', 'confidence', escalation->'confidence')) END,
				anonymised_at = $2 WHERE id = ANY($1::uuid[])`,
		)
	}
	for _, q := range steps {
		args := []any{ids}
		if strings.Contains(q, "$2") {
			args = append(args, now)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return 0, db.Translate(err, "retention")
		}
	}
	return len(ids), db.Translate(tx.Commit(ctx), "retention")
}

// retentionDaily runs the stored retention policy once a day across all
// instances: every check, one instance claims the day's run by moving the
// last-run time forward in one statement (the others find it recent and
// skip), then runs it.
func (s *Service) retentionDaily(ctx context.Context, check time.Duration) {
	every(ctx, check, true, func() {
		if _, err := s.RetentionDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention: run failed", "error", err)
		}
	})
}

// RetentionDue runs the stored policy if it is on and no instance ran it
// in the last 23 hours, and reports whether it ran.
func (s *Service) RetentionDue(ctx context.Context) (bool, error) {
	r, _, err := s.RetentionPolicy(ctx)
	if err != nil || r.Days == 0 {
		return false, err
	}
	now := s.opt.Now()
	var claimed bool
	err = s.pool.QueryRow(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3
			WHERE (settings.value->>'at')::timestamptz <= $4
		RETURNING true`, retentionRunKey, rawJSON(RetentionRun{At: now, Mode: r.Mode}), now, now.Add(-23*time.Hour)).Scan(&claimed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // another instance, or this one, ran it within the day
	}
	if err != nil {
		return false, db.Translate(err, "settings")
	}
	run, err := s.RunRetention(ctx, r, now, false)
	if err != nil {
		return false, err
	}
	s.log.Info("retention: ran", "mode", run.Mode, "deleted", run.Deleted, "anonymised", run.Anonymised, "cutoff", run.Cutoff)
	_, err = s.pool.Exec(ctx, `UPDATE settings SET value = $2 WHERE key = $1`, retentionRunKey, rawJSON(run))
	return true, db.Translate(err, "settings")
}
