// Package dbtest gives each test a throwaway PostgreSQL database with every
// migration applied, on the server that `make test` starts.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/db"
)

// ServerURL returns the URL of the test server: TANDEM_TEST_DATABASE_URL,
// else DATABASE_URL, else the local cluster's URL that scripts/pg.sh wrote to
// .data/database_url in the checkout. It returns "" when there is none.
func ServerURL() string {
	for _, k := range []string{"TANDEM_TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	dir, _ := os.Getwd()
	for dir != "" && dir != "/" {
		if b, err := os.ReadFile(filepath.Join(dir, ".data", "database_url")); err == nil {
			return strings.TrimSpace(string(b))
		}
		dir = filepath.Dir(dir)
	}
	return ""
}

// New creates a fresh, migrated database, returns its URL, and drops it when
// the test ends. Without a server the test fails unless TANDEM_SKIP_DB is set.
func New(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	if server == "" {
		if os.Getenv("TANDEM_SKIP_DB") != "" {
			t.Skip("no PostgreSQL: TANDEM_SKIP_DB set")
		}
		t.Fatal("no PostgreSQL for tests: run `make test`, or set TANDEM_TEST_DATABASE_URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("dbtest: connect %s: %v", server, err)
	}
	defer admin.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "tandem_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		t.Fatal(err)
	}
	url := replaceDatabase(server, cfg.Database, name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
		}
	})
	pool, err := db.Open(ctx, url, 4)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	defer pool.Close()
	if _, err := db.Migrate(ctx, pool); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return url
}

// Pool is New plus an open pool that is closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := New(t)
	pool, err := db.Open(context.Background(), url, 16)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func replaceDatabase(url, from, to string) string {
	// URL form: postgres://user@host:port/db?params
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if j := strings.Index(rest, "/"); j >= 0 {
			tail := rest[j+1:]
			q := ""
			if k := strings.Index(tail, "?"); k >= 0 {
				q = tail[k:]
			}
			return url[:i+3] + rest[:j] + "/" + to + q
		}
	}
	// Key/value form.
	return fmt.Sprintf("%s dbname=%s", url, to)
}
