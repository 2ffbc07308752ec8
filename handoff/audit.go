package handoff

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
)

// AuditRecord is one entry of the audit log: who did what to what.
type AuditRecord struct {
	ID          int64           `json:"id"`
	At          time.Time       `json:"at"`
	ActorID     string          `json:"actor_id,omitempty"`
	ActorName   string          `json:"actor_name,omitempty"`
	ActorRole   string          `json:"actor_role"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Data        json.RawMessage `json:"data"`
}

// AuditFilter narrows the audit log: one subject, records before an id
// (paging back), at most Limit (default and cap 500).
type AuditFilter struct {
	SubjectID string
	Before    int64
	Limit     int
}

// Audit lists audit records, newest first.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.at, coalesce(a.actor_id::text, ''), coalesce(u.display_name, ''),
		a.actor_role, a.action, a.subject_type, a.subject_id, a.data
		FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
		WHERE ($1 = '' OR a.subject_id = $1) AND ($2 = 0 OR a.id < $2)
		ORDER BY a.id DESC LIMIT $3`, f.SubjectID, f.Before, f.Limit)
	if err != nil {
		return nil, db.Translate(err, "audit log")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRecord, error) {
		var a AuditRecord
		err := r.Scan(&a.ID, &a.At, &a.ActorID, &a.ActorName, &a.ActorRole, &a.Action, &a.SubjectType, &a.SubjectID, &a.Data)
		return a, err
	})
	if out == nil {
		out = []AuditRecord{}
	}
	return out, db.Translate(err, "audit log")
}
