// Package auth is staff accounts: users with roles, password hashing,
// sessions for the consoles and bearer tokens for the API.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// NewUser is what CreateUser needs.
type NewUser struct {
	Email, Password, DisplayName string
	Roles                        []string
}

// CreateUser adds a staff account. Returns Invalid or Conflict.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	nu.Email = strings.TrimSpace(nu.Email)
	if a, err := mail.ParseAddress(nu.Email); err != nil || a.Address != nu.Email {
		return nil, errs.Errorf(errs.Invalid, "email %q is not a valid address", nu.Email)
	}
	if utf8.RuneCountInString(nu.Password) < 8 {
		return nil, errs.Errorf(errs.Invalid, "password must be at least 8 characters")
	}
	if len(nu.Roles) == 0 {
		return nil, errs.Errorf(errs.Invalid, "a user needs at least one role (%s)", strings.Join(ValidRoles, ", "))
	}
	for _, r := range nu.Roles {
		if !slices.Contains(ValidRoles, r) {
			return nil, errs.Errorf(errs.Invalid, "role %q is not one of %s", r, strings.Join(ValidRoles, ", "))
		}
	}
	if nu.DisplayName == "" {
		nu.DisplayName = strings.Split(nu.Email, "@")[0]
		if nu.DisplayName != "" {
			nu.DisplayName = strings.ToUpper(nu.DisplayName[:1]) + nu.DisplayName[1:]
		}
	}
	hash, err := HashPassword(nu.Password)
	if err != nil {
		return nil, err
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
		VALUES ($1, $2, $3, $4) RETURNING `+userColumns, nu.Email, nu.DisplayName, hash, nu.Roles)
	u, _, err := scanUser(row)
	if err != nil {
		if errs.Is(err, errs.Conflict) {
			return nil, errs.Errorf(errs.Conflict, "a user with email %s already exists", nu.Email)
		}
		return nil, err
	}
	return u, nil
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
// as long as for a known user with a wrong password.
var dummyHash, _ = HashPassword("tandem-dummy-password")

// Login checks the credentials and opens a session of kind "cookie" or
// "api". Returns Unauthorized with one message for every failure, so the
// answer does not tell which e-mails exist.
func (s *Store) Login(ctx context.Context, email, password, kind string) (*User, string, error) {
	u, hash, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, strings.TrimSpace(email)))
	if err != nil && !errs.Is(err, errs.NotFound) {
		return nil, "", err
	}
	if u == nil {
		CheckPassword(dummyHash, password)
		return nil, "", errs.Errorf(errs.Unauthorized, "wrong e-mail or password")
	}
	if !CheckPassword(hash, password) || u.Disabled {
		return nil, "", errs.Errorf(errs.Unauthorized, "wrong e-mail or password")
	}
	token, err := s.NewSession(ctx, u.ID, kind)
	if err != nil {
		return nil, "", err
	}
	return u, token, nil
}

// NewSession opens a session for a user and returns its token.
func (s *Store) NewSession(ctx context.Context, userID, kind string) (string, error) {
	ttl := APITTL
	if kind == "cookie" {
		ttl = CookieTTL
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := "tdm_" + base64.RawURLEncoding.EncodeToString(b[:])
	if _, err := s.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, kind, expires_at) VALUES ($1, $2, $3, $4)`,
		hashToken(token), userID, kind, s.now().Add(ttl)); err != nil {
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

// Logout revokes a session token.
func (s *Store) Logout(ctx context.Context, token string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL`, hashToken(token), s.now())
	return db.Translate(err, "session")
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
