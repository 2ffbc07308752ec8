package handoff_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/handoff"
)

// TestConcurrentAssignment runs two services (two instances) on one
// database, each with its router, while escalations arrive on both and
// extra goroutines run assignment rounds on both: no conversation may be
// assigned twice, none may be lost, no agent may go over capacity.
func TestConcurrentAssignment(t *testing.T) {
	t.Parallel()
	const (
		agents      = 16
		capacity    = 8
		perWorker   = 20
		workers     = 8
		assigners   = 4
		wantQueued  = workers*perWorker - agents*capacity
		wantHandled = agents * capacity
	)
	e := newEnv(t)
	a, b := e.service(fastRouting), e.service(fastRouting)
	svcs := []*handoff.Service{a, b}
	ctx := context.Background()
	ids := make([]string, agents)
	for i := range ids {
		ids[i] = e.user(fmt.Sprintf("Agent %02d", i))
		online(t, svcs[i%2], ids[i], capacity)
	}

	stop := make(chan struct{})
	var hammer sync.WaitGroup
	for i := range assigners {
		hammer.Add(1)
		go func() {
			defer hammer.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := svcs[i%2].AssignQueued(ctx); err != nil {
					t.Errorf("AssignQueued: %v", err)
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	convs := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id, err := tryEscalate(svcs[(w+i)%2], handoff.Customer{}, "", (w+i)%3)
				if err != nil {
					t.Errorf("escalate: %v", err)
					return
				}
				convs <- id
			}
		}()
	}
	wg.Wait()
	close(convs)

	count := func(state string) int {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE state = $1`, state).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, fmt.Sprintf("%d conversations assigned", wantHandled), func() bool { return count("assigned") == wantHandled })
	close(stop)
	hammer.Wait()
	time.Sleep(3 * fastRouting.Tick) // let the routers run a few more rounds
	if n := count("assigned"); n != wantHandled {
		t.Fatalf("%d assigned, want %d", n, wantHandled)
	}
	if n := count("queued"); n != wantQueued {
		t.Fatalf("%d still queued, want %d: none may be lost", n, wantQueued)
	}
	seen := 0
	for range convs {
		seen++
	}
	if seen != workers*perWorker {
		t.Fatalf("%d conversations escalated", seen)
	}

	// Each conversation was assigned by exactly one transaction.
	var twice int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT conversation_id FROM conversation_events
		WHERE type = 'state' AND data->>'state' = 'assigned' GROUP BY conversation_id HAVING count(*) > 1) d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Fatalf("%d conversations assigned more than once", twice)
	}
	var waits int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM queue_waits`).Scan(&waits); err != nil {
		t.Fatal(err)
	}
	if waits != wantHandled {
		t.Fatalf("%d recorded waits, want %d", waits, wantHandled)
	}
	// Every agent is full, and the counter agrees with the conversations.
	rows, err := e.pool.Query(ctx, `SELECT a.user_id, a.open_chats, a.capacity,
		(SELECT count(*) FROM conversations c WHERE c.state = 'assigned' AND c.assigned_to = a.user_id)
		FROM agents a`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var open, capa, held int
		if err := rows.Scan(&id, &open, &capa, &held); err != nil {
			t.Fatal(err)
		}
		if open != held || held > capa || held != capacity {
			t.Fatalf("agent %s: counter %d, holds %d, capacity %d", id, open, held, capa)
		}
	}
}
