// Package audit writes the audit log that admins read at /api/v1/audit:
// who did what to what. A record is written in the transaction of the
// change it describes, so there is no change without its record.
package audit

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-chat/tandem/internal/db"
)

// Actor is who acts: a staff user (ID and their role), or the customer, the
// bot or the system (no ID).
type Actor struct {
	ID   string
	Role string
}

// System is the actor of changes nobody in particular made (the CLI,
// scheduled jobs).
var System = Actor{Role: "system"}

// StaffRole is the role an audit record names for a staff user with roles:
// admin when they are one, their roles otherwise.
func StaffRole(roles []string) string {
	if slices.Contains(roles, "admin") {
		return "admin"
	}
	if len(roles) == 0 {
		return "staff"
	}
	return strings.Join(roles, ",")
}

type actorKey struct{}

// WithActor returns ctx carrying the actor of the request, so that stores
// deeper down record who made a change without every signature naming it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorOf returns the actor ctx carries, or System.
func ActorOf(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Role != "" {
		return a
	}
	return System
}

// Execer is what a transaction and a pool have in common for writes.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Write records one action at at (now when zero) inside q, normally the
// transaction of the change. data is any JSON-able detail; never put a
// password, a token or a secret in it.
func Write(ctx context.Context, q Execer, at time.Time, a Actor, action, subjectType, subjectID string, data any) error {
	if at.IsZero() {
		at = time.Now()
	}
	var actor *string
	if a.ID != "" {
		actor = &a.ID
	}
	role := a.Role
	if role == "" {
		role = System.Role
	}
	raw := []byte("{}")
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		if string(b) != "null" {
			raw = b
		}
	}
	_, err := q.Exec(ctx, `INSERT INTO audit_log (at, actor_id, actor_role, action, subject_type, subject_id, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, at, actor, role, action, subjectType, subjectID, json.RawMessage(raw))
	return db.Translate(err, "audit record")
}
