package dbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

// TestCluster: a private cluster holds a migrated database with pgvector,
// keeps committed rows across a fast and an immediate restart, and refuses
// connections while stopped.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := dbtest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, c.URL(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE kept (v vector(3))`); err != nil {
		t.Fatalf("pgvector: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO kept VALUES ('[1,2,3]')`); err != nil {
		t.Fatal(err)
	}
	for _, immediate := range []bool{false, true} {
		if err := c.Restart(immediate); err != nil {
			t.Fatal(err)
		}
		var n int
		// The pool's connections died with the server; it opens new ones.
		for i := 0; ; i++ {
			err = pool.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n)
			if err == nil || i == 3 {
				break
			}
		}
		if err != nil || n != 1 {
			t.Fatalf("after restart (immediate %v): %d rows, %v", immediate, n, err)
		}
	}
	if err := c.Stop(false); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server stopped")
	}
	if pending, err := db.Pending(ctx, pool); err == nil {
		t.Fatalf("pending %v with the server stopped", pending)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("ping after start: %v", err)
	}
}
