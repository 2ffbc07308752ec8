// Package auth is staff accounts: users with roles, password hashing,
// sessions for the consoles and bearer tokens for the API.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/audit"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/errs"
)

// Staff roles; a user may hold several.
const (
	RoleAgent  = "agent"
	RoleEditor = "editor"
	RoleAdmin  = "admin"
)

// ValidRoles lists every role.
var ValidRoles = []string{RoleAgent, RoleEditor, RoleAdmin}

// User is a staff account.
type User struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Roles       []string  `json:"roles"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"created_at"`
}

// Has reports whether the user holds role; admins hold every role.
func (u *User) Has(role string) bool {
	return slices.Contains(u.Roles, role) || slices.Contains(u.Roles, RoleAdmin)
}

// Session lengths.
const (
	CookieTTL = 12 * time.Hour
	APITTL    = 30 * 24 * time.Hour
)

// Store keeps users and sessions in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, now: time.Now} }

// WithClock returns a Store over the same pool that reads the time from
// now, for tests of expiry.
func (s *Store) WithClock(now func() time.Time) *Store { return &Store{pool: s.pool, now: now} }

// NewUser is what CreateUser needs.
type NewUser struct {
	Email, Password, DisplayName string
	Roles                        []string
}

// CreateUser adds a staff account. Returns Invalid or Conflict.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	return s.createUser(ctx, nil, nu)
}

// CreateUserBy is CreateUser on behalf of a staff user, recorded in the
// audit log. Returns Invalid or Conflict.
func (s *Store) CreateUserBy(ctx context.Context, by Actor, nu NewUser) (*User, error) {
	return s.createUser(ctx, &by, nu)
}

func (s *Store) createUser(ctx context.Context, by *Actor, nu NewUser) (*User, error) {
	nu.Email = strings.TrimSpace(nu.Email)
	if a, err := mail.ParseAddress(nu.Email); err != nil || a.Address != nu.Email {
		return nil, errs.Errorf(errs.Invalid, "email %q is not a valid address", nu.Email)
	}
	if err := checkPassword(nu.Password); err != nil {
		return nil, err
	}
	roles, err := checkRoles(nu.Roles)
	if err != nil {
		return nil, err
	}
	nu.Roles = roles
	nu.DisplayName = strings.TrimSpace(nu.DisplayName)
	if nu.DisplayName == "" {
		nu.DisplayName = strings.Split(nu.Email, "@")[0]
		if nu.DisplayName != "" {
			nu.DisplayName = strings.ToUpper(nu.DisplayName[:1]) + nu.DisplayName[1:]
		}
	}
	if err := checkDisplayName(nu.DisplayName); err != nil {
		return nil, err
	}
	hash, err := HashPassword(nu.Password)
	if err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "user")
	}
	defer tx.Rollback(ctx)
	row := tx.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
		VALUES ($1, $2, $3, $4) RETURNING `+userColumns, nu.Email, nu.DisplayName, hash, nu.Roles)
	u, _, err := scanUser(row)
	if err != nil {
		if errs.Is(err, errs.Conflict) {
			return nil, errs.Errorf(errs.Conflict, "a user with email %s already exists", nu.Email)
		}
		return nil, err
	}
	if by != nil {
		if err := s.audit(ctx, tx, *by, "user.create", u.ID, map[string]any{
			"email": u.Email, "display_name": u.DisplayName, "roles": u.Roles}); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "user")
	}
	return u, nil
}

// checkRoles validates roles and returns them without duplicates, in the
// order of ValidRoles.
func checkRoles(roles []string) ([]string, error) {
	if len(roles) == 0 {
		return nil, errs.Errorf(errs.Invalid, "a user needs at least one role (%s)", strings.Join(ValidRoles, ", "))
	}
	for _, r := range roles {
		if !slices.Contains(ValidRoles, r) {
			return nil, errs.Errorf(errs.Invalid, "role %q is not one of %s", r, strings.Join(ValidRoles, ", "))
		}
	}
	out := make([]string, 0, len(roles))
	for _, r := range ValidRoles {
		if slices.Contains(roles, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func checkPassword(password string) error {
	if utf8.RuneCountInString(password) < 8 {
		return errs.Errorf(errs.Invalid, "password must be at least 8 characters")
	}
	// argon2 takes any length, but hashing megabytes on every sign-in is a
	// cheap way to load the server.
	if len(password) > 1024 {
		return errs.Errorf(errs.Invalid, "password must be at most 1024 bytes")
	}
	return nil
}

// maxDisplayName bounds a display name in runes.
const maxDisplayName = 100

func checkDisplayName(name string) error {
	if name == "" {
		return errs.Errorf(errs.Invalid, "display name must not be empty")
	}
	if utf8.RuneCountInString(name) > maxDisplayName {
		return errs.Errorf(errs.Invalid, "display name must be at most %d characters", maxDisplayName)
	}
	return nil
}

// Actor is the staff user who changes accounts: the audit log names them,
// the rules against locking oneself out apply to their own account, and
// the session they act with (Token, if any) survives changes to their own
// password or roles.
type Actor struct {
	User  *User
	Token string
}

// UserChange changes a user; nil fields stay as they are.
type UserChange struct {
	DisplayName *string
	Roles       []string
	Disabled    *bool
	Password    *string
}

// Check validates the change and normalises it (display name trimmed,
// roles without duplicates in the order of ValidRoles). Returns Invalid.
func (ch *UserChange) Check() error {
	if ch.DisplayName != nil {
		name := strings.TrimSpace(*ch.DisplayName)
		if err := checkDisplayName(name); err != nil {
			return err
		}
		ch.DisplayName = &name
	}
	if ch.Roles != nil {
		roles, err := checkRoles(ch.Roles)
		if err != nil {
			return err
		}
		ch.Roles = roles
	}
	if ch.Password != nil {
		if err := checkPassword(*ch.Password); err != nil {
			return err
		}
	}
	return nil
}

// UpdateUser changes a user on behalf of by, in one transaction with its
// audit record. Disabling a user, changing their roles or setting their
// password revokes their sessions (but not by's own session). by may not
// remove their own admin role or disable themselves, and must still be an
// enabled admin when the change is made. Returns Invalid, NotFound,
// Conflict (locking oneself out) or Forbidden.
func (s *Store) UpdateUser(ctx context.Context, by Actor, id string, ch UserChange) (*User, error) {
	if by.User == nil {
		return nil, errs.Errorf(errs.Forbidden, "changing a user needs a signed-in admin")
	}
	if !db.ValidID(id) {
		return nil, errs.Errorf(errs.NotFound, "user %s not found", id)
	}
	if err := ch.Check(); err != nil {
		return nil, err
	}
	var hash string
	if ch.Password != nil {
		var err error
		if hash, err = HashPassword(*ch.Password); err != nil {
			return nil, err
		}
	}
	self := id == by.User.ID
	if self && ch.Disabled != nil && *ch.Disabled {
		return nil, errs.Errorf(errs.Conflict, "you cannot disable your own account; ask another admin")
	}
	if self && ch.Roles != nil && !slices.Contains(ch.Roles, RoleAdmin) {
		return nil, errs.Errorf(errs.Conflict, "you cannot remove your own admin role; ask another admin")
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, db.Translate(err, "user")
	}
	defer tx.Rollback(ctx)
	// Lock the actor's and the target's rows in one order, so that two
	// admins demoting each other at once cannot deadlock, and the second
	// sees that it is no longer an admin.
	rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
		[]string{by.User.ID, id})
	if err != nil {
		return nil, db.Translate(err, "user")
	}
	var actor, old *User
	for rows.Next() {
		u, _, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		if u.ID == by.User.ID {
			actor = u
		}
		if u.ID == id {
			old = u
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Translate(err, "user")
	}
	if actor == nil || actor.Disabled || !actor.Has(RoleAdmin) {
		return nil, errs.Errorf(errs.Forbidden, "changing a user needs the admin role")
	}
	if old == nil {
		return nil, errs.Errorf(errs.NotFound, "user %s not found", id)
	}

	u := *old
	data := map[string]any{}
	revoke := false
	if ch.DisplayName != nil && *ch.DisplayName != old.DisplayName {
		u.DisplayName = *ch.DisplayName
		data["display_name"] = map[string]any{"from": old.DisplayName, "to": u.DisplayName}
	}
	if ch.Roles != nil && !slices.Equal(ch.Roles, old.Roles) {
		u.Roles = ch.Roles
		data["roles"] = map[string]any{"from": old.Roles, "to": u.Roles}
		revoke = true
	}
	if ch.Disabled != nil && *ch.Disabled != old.Disabled {
		u.Disabled = *ch.Disabled
		data["disabled"] = map[string]any{"from": old.Disabled, "to": u.Disabled}
		revoke = revoke || u.Disabled
	}
	if ch.Password != nil {
		data["password"] = "reset" // never the password or its hash
		revoke = true
	}
	if len(data) == 0 {
		return old, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE users SET display_name = $2, roles = $3, disabled = $4,
		password_hash = CASE WHEN $5 = '' THEN password_hash ELSE $5 END, updated_at = $6 WHERE id = $1`,
		u.ID, u.DisplayName, u.Roles, u.Disabled, hash, s.now()); err != nil {
		return nil, db.Translate(err, "user")
	}
	if revoke {
		keep := ""
		if self {
			keep = by.Token
		}
		n, err := s.revokeSessions(ctx, tx, u.ID, keep)
		if err != nil {
			return nil, err
		}
		data["sessions_revoked"] = n
	}
	if err := s.audit(ctx, tx, by, "user.update", u.ID, data); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, db.Translate(err, "user")
	}
	return &u, nil
}

// RevokeSessions ends every session and API token of a user, so that
// their next request needs a new sign-in. It returns how many it ended.
func (s *Store) RevokeSessions(ctx context.Context, userID string) (int64, error) {
	if !db.ValidID(userID) {
		return 0, errs.Errorf(errs.NotFound, "user %s not found", userID)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, db.Translate(err, "session")
	}
	defer tx.Rollback(ctx)
	n, err := s.revokeSessions(ctx, tx, userID, "")
	if err != nil {
		return 0, err
	}
	return n, db.Translate(tx.Commit(ctx), "session")
}

// revokeSessions ends a user's live sessions except the one of keepToken.
func (s *Store) revokeSessions(ctx context.Context, tx pgx.Tx, userID, keepToken string) (int64, error) {
	var keep []byte
	if keepToken != "" {
		keep = hashToken(keepToken)
	}
	tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $2
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND ($3::bytea IS NULL OR token_hash <> $3)`,
		userID, s.now(), keep)
	if err != nil {
		return 0, db.Translate(err, "session")
	}
	return tag.RowsAffected(), nil
}

// audit records a change to a user in the audit log that handoff keeps
// for conversations and teams (and admins read at /api/v1/audit).
func (s *Store) audit(ctx context.Context, tx pgx.Tx, by Actor, action, userID string, data map[string]any) error {
	return audit.Write(ctx, tx, s.now(), by.auditActor(), action, "user", userID, data)
}

// auditActor is the actor as the audit log names it.
func (a Actor) auditActor() audit.Actor {
	if a.User == nil {
		return audit.System
	}
	return audit.Actor{ID: a.User.ID, Role: audit.StaffRole(a.User.Roles)}
}

// EnsureUser creates the user unless one with the email exists, in which
// case it is returned unchanged.
func (s *Store) EnsureUser(ctx context.Context, nu NewUser) (*User, bool, error) {
	u, err := s.UserByEmail(ctx, nu.Email)
	if err == nil {
		return u, false, nil
	}
	if !errs.Is(err, errs.NotFound) {
		return nil, false, err
	}
	u, err = s.CreateUser(ctx, nu)
	return u, err == nil, err
}

const userColumns = `id, email, display_name, roles, disabled, created_at, password_hash`

func scanUser(row pgx.Row) (*User, string, error) {
	var u User
	var hash string
	if err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &u.Roles, &u.Disabled, &u.CreatedAt, &hash); err != nil {
		return nil, "", db.Translate(err, "user")
	}
	return &u, hash, nil
}

// UserByEmail returns a user. Returns NotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	u, _, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, email))
	return u, err
}

// User returns a user by id. Returns NotFound.
func (s *Store) User(ctx context.Context, id string) (*User, error) {
	u, _, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id::text = $1`, id))
	return u, err
}

// Users lists every staff account.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY email`)
	if err != nil {
		return nil, db.Translate(err, "users")
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, _, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, db.Translate(rows.Err(), "users")
}

// dummyHash is checked when the e-mail is unknown, so that the answer takes
// as long as for a known user with a wrong password. It is made on first
// use: made when the package loaded, it cost every process that imports
// auth (the server, each of its subcommands, each test binary) 64 MB of
// argon2 memory and its CPU at start-up, whether anyone signed in or not.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("tandem-dummy-password")
	return h
})

// Login checks the credentials and opens a session of kind "cookie" or
// "api". Returns Unauthorized with one message for every failure, so the
// answer does not tell which e-mails exist.
func (s *Store) Login(ctx context.Context, email, password, kind string) (*User, string, error) {
	return s.LoginFrom(ctx, email, password, kind, "")
}

// LoginFrom is Login from a client address, which the audit log records
// with the sign-in (auth.login) or, for an existing account, the failure
// (auth.login_failed). Failures for unknown e-mails are not recorded: they
// name no account, and recording them would let anyone fill the log.
func (s *Store) LoginFrom(ctx context.Context, email, password, kind, addr string) (*User, string, error) {
	u, hash, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, strings.TrimSpace(email)))
	if err != nil && !errs.Is(err, errs.NotFound) {
		return nil, "", err
	}
	if u == nil {
		CheckPassword(dummyHash(), password)
		return nil, "", errs.Errorf(errs.Unauthorized, "wrong e-mail or password")
	}
	if ok := CheckPassword(hash, password); !ok || u.Disabled {
		reason := "password"
		if ok {
			reason = "disabled"
		}
		if err := audit.Write(ctx, s.pool, s.now(), audit.Actor{ID: u.ID, Role: audit.StaffRole(u.Roles)},
			"auth.login_failed", "user", u.ID, map[string]any{"address": addr, "reason": reason}); err != nil {
			return nil, "", err
		}
		return nil, "", errs.Errorf(errs.Unauthorized, "wrong e-mail or password")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, "", db.Translate(err, "session")
	}
	defer tx.Rollback(ctx)
	token, err := s.newSession(ctx, tx, u.ID, kind)
	if err != nil {
		return nil, "", err
	}
	if err := audit.Write(ctx, tx, s.now(), audit.Actor{ID: u.ID, Role: audit.StaffRole(u.Roles)},
		"auth.login", "user", u.ID, map[string]any{"address": addr, "kind": kind}); err != nil {
		return nil, "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, "", db.Translate(err, "session")
	}
	return u, token, nil
}

// NewSession opens a session for a user and returns its token.
func (s *Store) NewSession(ctx context.Context, userID, kind string) (string, error) {
	return s.newSession(ctx, s.pool, userID, kind)
}

func (s *Store) newSession(ctx context.Context, q audit.Execer, userID, kind string) (string, error) {
	ttl := APITTL
	if kind == "cookie" {
		ttl = CookieTTL
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := "tdm_" + base64.RawURLEncoding.EncodeToString(b[:])
	if _, err := q.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hashToken(token), userID, kind, s.now(), s.now().Add(ttl)); err != nil {
		return "", db.Translate(err, "session")
	}
	return token, nil
}

// Authenticate returns the user a session token belongs to. Returns
// Unauthorized for an unknown, expired or revoked token.
func (s *Store) Authenticate(ctx context.Context, token string) (*User, error) {
	if !strings.HasPrefix(token, "tdm_") {
		return nil, errs.Errorf(errs.Unauthorized, "the token is not valid")
	}
	u, _, err := scanUser(s.pool.QueryRow(ctx, `SELECT u.id, u.email, u.display_name, u.roles, u.disabled, u.created_at, u.password_hash
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2`, hashToken(token), s.now()))
	if errs.Is(err, errs.NotFound) || (err == nil && u.Disabled) {
		return nil, errs.Errorf(errs.Unauthorized, "the session has expired or is not valid; sign in again")
	}
	return u, err
}

// Logout revokes a session token, recorded in the audit log as
// auth.logout. An unknown or already revoked token is not an error.
func (s *Store) Logout(ctx context.Context, token string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return db.Translate(err, "session")
	}
	defer tx.Rollback(ctx)
	var userID string
	var roles []string
	err = tx.QueryRow(ctx, `UPDATE sessions s SET revoked_at = $2 FROM users u
		WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND u.id = s.user_id
		RETURNING u.id, u.roles`, hashToken(token), s.now()).Scan(&userID, &roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return db.Translate(err, "session")
	}
	if err := audit.Write(ctx, tx, s.now(), audit.Actor{ID: userID, Role: audit.StaffRole(roles)},
		"auth.logout", "user", userID, nil); err != nil {
		return err
	}
	return db.Translate(tx.Commit(ctx), "session")
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
