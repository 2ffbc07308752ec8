package auth_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/errs"
)

// clock is a settable time for tests of expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSessions checks, with a controlled clock, that cookie sessions end
// after CookieTTL and API tokens after APITTL, that logout and revocation
// end them at once, and that only a hash of each token is stored.
func TestSessions(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	store := auth.NewStore(pool).WithClock(clk.now)
	u, err := store.CreateUser(ctx, auth.NewUser{Email: "agent@example.com", Password: "session-password", Roles: []string{auth.RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	valid := func(tok string) bool {
		t.Helper()
		_, err := store.Authenticate(ctx, tok)
		if err != nil && !errs.Is(err, errs.Unauthorized) {
			t.Fatal(err)
		}
		return err == nil
	}

	t.Run("Expire", func(t *testing.T) {
		cookie, _ := store.NewSession(ctx, u.ID, "cookie")
		api, _ := store.NewSession(ctx, u.ID, "api")
		clk.add(auth.CookieTTL - time.Minute)
		if !valid(cookie) || !valid(api) {
			t.Fatal("sessions ended early")
		}
		clk.add(2 * time.Minute)
		if valid(cookie) {
			t.Fatal("the cookie session outlived CookieTTL")
		}
		if !valid(api) {
			t.Fatal("the API token ended with the cookie session")
		}
		clk.add(auth.APITTL)
		if valid(api) {
			t.Fatal("the API token outlived APITTL")
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		a, _ := store.NewSession(ctx, u.ID, "cookie")
		b, _ := store.NewSession(ctx, u.ID, "api")
		if err := store.Logout(ctx, a); err != nil || valid(a) || !valid(b) {
			t.Fatalf("logout: %v; a valid %v, b valid %v", err, valid(a), valid(b))
		}
		n, err := store.RevokeSessions(ctx, u.ID)
		if err != nil || n != 1 || valid(b) {
			t.Fatalf("revoke: %d sessions, %v; b valid %v", n, err, valid(b))
		}
	})

	t.Run("HashedAtRest", func(t *testing.T) {
		tok, _ := store.NewSession(ctx, u.ID, "api")
		sum := sha256.Sum256([]byte(tok))
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE token_hash = $1`, sum[:]).Scan(&n); err != nil || n != 1 {
			t.Fatalf("sessions with the token's hash: %d, %v", n, err)
		}
		var dump string
		if err := pool.QueryRow(ctx, `SELECT string_agg(t::text, ' ') FROM sessions t`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(dump, strings.TrimPrefix(tok, "tdm_")) {
			t.Fatal("a token is stored in the clear")
		}
		var hash string
		if err := pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, u.ID).Scan(&hash); err != nil || !strings.HasPrefix(hash, "$argon2id$") {
			t.Fatalf("password stored as %q", hash)
		}
	})
}
