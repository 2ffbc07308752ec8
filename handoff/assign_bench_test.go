package handoff_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
)

const (
	benchAgents   = 50
	benchConvs    = 1000
	benchCapacity = benchConvs / benchAgents // every conversation fits
	benchClients  = 32                       // customers escalating at once
)

// benchService is one instance with its router, over a fresh database.
func benchService(b *testing.B) (*handoff.Service, *pgxpool.Pool, func()) {
	url := dbtest.New(b)
	pool, err := db.Open(context.Background(), url, 32)
	if err != nil {
		b.Fatal(err)
	}
	svc := handoff.NewService(pool, escalator{}, handoff.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	<-svc.Ready()
	return svc, pool, func() {
		svc.Close(context.Background())
		cancel()
		<-done
		pool.Close()
	}
}

func benchAgentsOnline(b *testing.B, svc *handoff.Service, pool *pgxpool.Pool) {
	ctx := context.Background()
	capacity := benchCapacity
	for i := range benchAgents {
		var id string
		if err := pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
			VALUES ($1, $2, 'x', '{agent}') RETURNING id`, fmt.Sprintf("agent%d@example.com", i), fmt.Sprintf("Agent %d", i)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		if _, err := svc.SetStatus(ctx, handoff.AgentActor(id, false), id, handoff.StatusOnline, &capacity); err != nil {
			b.Fatal(err)
		}
	}
}

// escalateAll escalates benchConvs conversations from benchClients
// concurrent customers, with priorities 0 to 2.
func escalateAll(b *testing.B, svc *handoff.Service) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := tryEscalate(svc, handoff.Customer{}, "", i%3); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range benchConvs {
		next <- i
	}
	close(next)
	wg.Wait()
}

// waitAssigned waits until every conversation is assigned and returns each
// one's time from since (or from its own queued_at when since is zero) to
// its assignment.
func waitAssigned(b *testing.B, pool *pgxpool.Pool, since time.Time) []time.Duration {
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE state = 'assigned'`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == benchConvs {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d assigned after 5 minutes", n, benchConvs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rows, err := pool.Query(ctx, `SELECT queued_at, assigned_at FROM conversations`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var q, a time.Time
		if err := rows.Scan(&q, &a); err != nil {
			b.Fatal(err)
		}
		if !since.IsZero() {
			q = since
		}
		out = append(out, a.Sub(q))
	}
	return out
}

// reportLatencies reports the 50th and 99th percentiles and, when elapsed
// is not zero, the assignments per second.
func reportLatencies(b *testing.B, all []time.Duration, elapsed time.Duration) {
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if elapsed > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "assigned/s")
	}
}

// BenchmarkEscalationToAssignment: 50 agents online (capacity 20 each);
// 1,000 conversations escalate from 32 concurrent customers; the figure is
// each conversation's time from its escalation's commit to its
// assignment's commit.
func BenchmarkEscalationToAssignment(b *testing.B) {
	var all []time.Duration
	var elapsed time.Duration
	b.StopTimer()
	for range b.N {
		svc, pool, stop := benchService(b)
		benchAgentsOnline(b, svc, pool)
		start := time.Now()
		b.StartTimer()
		escalateAll(b, svc)
		lat := waitAssigned(b, pool, time.Time{})
		b.StopTimer()
		elapsed += time.Since(start)
		all = append(all, lat...)
		stop()
	}
	reportLatencies(b, all, elapsed)
}

// BenchmarkDrainQueue: 1,000 conversations wait in the queue with nobody
// online; then 50 agents (capacity 20 each) come online. The figure is each
// conversation's time from the first agent coming online to its
// assignment.
func BenchmarkDrainQueue(b *testing.B) {
	var all []time.Duration
	var elapsed time.Duration
	b.StopTimer()
	for range b.N {
		svc, pool, stop := benchService(b)
		escalateAll(b, svc)
		start := time.Now()
		b.StartTimer()
		benchAgentsOnline(b, svc, pool)
		lat := waitAssigned(b, pool, start)
		b.StopTimer()
		elapsed += time.Since(start)
		all = append(all, lat...)
		stop()
	}
	reportLatencies(b, all, elapsed)
}

// BenchmarkEscalationUnderBacklog: 1,000 conversations wait in the queue of
// a team with nobody online, 50 agents (capacity 20 each) serve the rest;
// conversations then escalate one at a time. The figure is each one's time
// from its escalation's commit to its assignment's commit: the latency of
// the mechanism itself next to a long queue.
func BenchmarkEscalationUnderBacklog(b *testing.B) {
	const escalations = 200
	var all []time.Duration
	ctx := context.Background()
	b.StopTimer()
	for range b.N {
		svc, pool, stop := benchService(b)
		if _, err := svc.CreateTeam(ctx, handoff.Actor{Role: handoff.RoleSystem}, "Backlog", handoff.TeamSettings{}); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for c := range benchClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < benchConvs; i += benchClients {
					if _, err := tryEscalate(svc, handoff.Customer{}, "Backlog", i%3); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		benchAgentsOnline(b, svc, pool)
		b.StartTimer()
		for range escalations {
			conv, _, err := svc.CreateConversation(ctx, handoff.Customer{}, false)
			if err != nil {
				b.Fatal(err)
			}
			sub := svc.Subscribe(conv.ID, 64)
			if _, err := svc.PostMessage(ctx, conv.ID, handoff.Author{Role: handoff.RoleCustomer}, "escalate", ""); err != nil {
				b.Fatal(err)
			}
			timeout := time.After(time.Minute)
		wait:
			for {
				select {
				case ev := <-sub.C:
					if ev.Type == handoff.EventState && ev.State == handoff.StateAssigned {
						break wait
					}
				case <-timeout:
					b.Fatal("not assigned within a minute")
				}
			}
			sub.Close()
			var d time.Duration
			if err := pool.QueryRow(ctx, `SELECT assigned_at - queued_at FROM conversations WHERE id = $1`, conv.ID).Scan(&d); err != nil {
				b.Fatal(err)
			}
			all = append(all, d)
		}
		b.StopTimer()
		var queued int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE state = 'queued'`).Scan(&queued); err != nil || queued != benchConvs {
			b.Fatalf("%d queued (%v), want the backlog of %d", queued, err, benchConvs)
		}
		stop()
	}
	reportLatencies(b, all, 0)
}
