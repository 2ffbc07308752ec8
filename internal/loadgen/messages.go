package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/auth"
)

// MessagesOptions shape the message-path measurement.
type MessagesOptions struct {
	Rates         []int         // messages per second, one run each
	Conversations int           // conversations, each with a customer socket on instance A
	Agents        int           // agents on instance B sharing the conversations
	Duration      time.Duration // measured time per rate
	Warmup        time.Duration // sent at the rate before measuring; default 3 s
}

// frame is the part of a server frame the load generator reads.
type frame struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	Message     *struct {
		Role        string `json:"role"`
		ClientMsgID string `json:"client_msg_id"`
	} `json:"message"`
}

// slots records, per message, when it was due, acknowledged and delivered
// (Unix nanoseconds; 0 for not yet).
type slots struct {
	due, acked, delivered []atomic.Int64
	errors                atomic.Int64
}

func newSlots(n int) *slots {
	return &slots{due: make([]atomic.Int64, n), acked: make([]atomic.Int64, n), delivered: make([]atomic.Int64, n)}
}

// index parses a client_msg_id "<prefix><i>" back to i.
func (s *slots) index(prefix, id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0 && i < len(s.due)
}

// customer is one customer socket with its writer.
type customer struct {
	conv Conversation
	ws   *websocket.Conn
	send chan []byte
}

// Messages measures a customer's message over WebSocket to instance A,
// stored and acknowledged, and delivered to the assigned agent's WebSocket
// on instance B (through LISTEN/NOTIFY), at fixed rates, open loop: each
// message is due at its time whatever happened to the others, and its
// latency runs from that time, so a stall counts against every message it
// delays.
func (c *Config) Messages(ctx context.Context, o MessagesOptions) ([]Result, error) {
	if o.Warmup <= 0 {
		o.Warmup = 3 * time.Second
	}
	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	a, err := c.startTandem(ctx, "tandem-a", dbURL, c.addr(0), "TANDEM_DB_MAX_CONNS=40")
	if err != nil {
		return nil, err
	}
	defer a.Stop()
	b, err := c.startTandem(ctx, "tandem-b", dbURL, c.addr(1), "TANDEM_DB_MAX_CONNS=40")
	if err != nil {
		return nil, err
	}
	defer b.Stop()
	customers, agentSockets, err := c.setupAssigned(ctx, dbURL, a, b, o.Conversations, o.Agents)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, cu := range customers {
			close(cu.send)
			cu.ws.Close()
		}
		for _, ws := range agentSockets {
			ws.Close()
		}
	}()

	var (
		mu     sync.Mutex
		cur    *slots
		prefix string
	)
	current := func() (*slots, string) {
		mu.Lock()
		defer mu.Unlock()
		return cur, prefix
	}
	for _, ws := range agentSockets {
		go func() {
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) != nil {
					continue
				}
				if f.Type == "error" {
					if s, _ := current(); s != nil {
						s.errors.Add(1)
					}
				}
				if f.Type != "message" || f.Message == nil || f.Message.Role != "customer" {
					continue
				}
				if s, p := current(); s != nil {
					if i, ok := s.index(p, f.Message.ClientMsgID); ok {
						s.delivered[i].CompareAndSwap(0, time.Now().UnixNano())
					}
				}
			}
		}()
	}
	for _, cu := range customers {
		go func() {
			for {
				_, data, err := cu.ws.ReadMessage()
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) != nil {
					continue
				}
				s, p := current()
				if s == nil {
					continue
				}
				switch f.Type {
				case "ack":
					if i, ok := s.index(p, f.ClientMsgID); ok {
						s.acked[i].CompareAndSwap(0, time.Now().UnixNano())
					}
				case "error":
					s.errors.Add(1)
				}
			}
		}()
		go func() {
			for msg := range cu.send {
				_ = cu.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := cu.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					if s, _ := current(); s != nil {
						s.errors.Add(1)
					}
				}
			}
		}()
	}

	var out []Result
	for k, rate := range o.Rates {
		total := int(float64(rate) * (o.Warmup + o.Duration).Seconds())
		s := newSlots(total)
		p := fmt.Sprintf("r%d-", k)
		mu.Lock()
		cur, prefix = s, p
		mu.Unlock()
		cpu0 := cpuOf(a.PID()) + cpuOf(b.PID())
		pg0 := pgCPU(ctx, dbURL)
		upd0, hot0 := hotUpdates(ctx, dbURL)
		logf(c.Log, "messages: %d/s for %s (+%s warm-up)", rate, o.Duration, o.Warmup)
		t0 := time.Now()
		if c.PProfDir != "" {
			for _, p := range []*Proc{a, b} {
				go func() {
					time.Sleep(o.Warmup)
					c.saveProfile(p, fmt.Sprintf("cpu-%d", rate), fmt.Sprintf("profile?seconds=%d", int(o.Duration.Seconds())))
				}()
			}
		}
		schedule(ctx, total, float64(rate), t0, func(i int, due time.Time) {
			s.due[i].Store(due.UnixNano())
			cu := customers[i%len(customers)]
			msg := `{"type":"message","text":"Hello, where is my order number ` + strconv.Itoa(i) + `?","client_msg_id":"` + p + strconv.Itoa(i) + `"}`
			select {
			case cu.send <- []byte(msg):
			default:
				s.errors.Add(1) // the load generator itself cannot keep up
			}
		})
		waitAll(s, 10*time.Second)
		elapsed := time.Since(t0)
		cpu := cpuOf(a.PID()) + cpuOf(b.PID()) - cpu0
		pg := pgCPU(ctx, dbURL)
		upd, hot := hotUpdates(ctx, dbURL)
		from := int(float64(rate) * o.Warmup.Seconds())
		r := Result{Name: fmt.Sprintf("MessagePath/rate=%d", rate), N: total - from}
		lat, lost := latencies(s, s.delivered, from)
		ack, _ := latencies(s, s.acked, from)
		r.Add(lat.P(50), "p50-ms")
		r.Add(lat.P(99), "p99-ms")
		r.Add(lat.P(99.9), "p99.9-ms")
		r.Add(lat.P(100), "max-ms")
		r.Add(ack.P(50), "ack-p50-ms")
		r.Add(ack.P(99), "ack-p99-ms")
		r.Add(float64(lost), "lost")
		r.Add(float64(s.errors.Load()), "errors")
		r.Add(cpu.Seconds()*1000/float64(total), "server-cpu-ms/msg")
		r.Add(pg.since(pg0).Seconds()*1000/float64(total), "pg-cpu-ms/msg")
		if upd > upd0 {
			r.Add(100*float64(hot-hot0)/float64(upd-upd0), "conv-hot-update-%")
		}
		r.Add(LoadAvg(), "load")
		logf(c.Log, "messages: %s (%.1f s)", r, elapsed.Seconds())
		out = append(out, r)
	}
	return out, nil
}

// setupAssigned creates agents (on B) and conversations (on A), assigns the
// conversations to the agents round robin (claims on B), and opens every
// customer socket on A and every agent socket on B.
func (c *Config) setupAssigned(ctx context.Context, dbURL string, a, b *Proc, nConvs, nAgents int) ([]*customer, []*websocket.Conn, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	defer pool.Close()
	store := auth.NewStore(pool)
	tokens := make([]string, nAgents)
	clA, clB := NewClient(a.URL), NewClient(b.URL)
	for i := range tokens {
		var id string
		if err := pool.QueryRow(ctx, `INSERT INTO users (email, display_name, password_hash, roles)
			VALUES ($1, $2, 'x', '{agent}') RETURNING id`, fmt.Sprintf("agent%d@loadgen.test", i), fmt.Sprintf("Agent %d", i)).Scan(&id); err != nil {
			return nil, nil, err
		}
		if tokens[i], err = store.NewSession(ctx, id, "api"); err != nil {
			return nil, nil, err
		}
		capacity := nConvs/nAgents + 1
		if err := clB.Do(ctx, "PUT", "/api/v1/agents/me/status", tokens[i], map[string]any{"status": "online", "capacity": capacity}, nil); err != nil {
			return nil, nil, err
		}
	}
	start := time.Now()
	convs, err := clA.CreateConversations(ctx, nConvs, 32)
	if err != nil {
		return nil, nil, err
	}
	if err := parallel(ctx, nConvs, 16, func(i int) error {
		return clB.Do(ctx, "POST", "/api/v1/conversations/"+convs[i].ID+"/claim", tokens[i%nAgents], nil, nil)
	}); err != nil {
		return nil, nil, err
	}
	logf(c.Log, "setup: %d conversations created on A and claimed by %d agents on B in %.1f s", nConvs, nAgents, time.Since(start).Seconds())
	var d Dialer
	agentSockets := make([]*websocket.Conn, nAgents)
	for i, tok := range tokens {
		if agentSockets[i], err = d.Dial(ctx, wsURL(b.URL)+"/ws/agent?token="+tok); err != nil {
			return nil, nil, err
		}
	}
	customers := make([]*customer, nConvs)
	if err := parallel(ctx, nConvs, 32, func(i int) error {
		ws, err := d.Dial(ctx, wsURL(a.URL)+"/ws/conversations/"+convs[i].ID+"?token="+convs[i].Token)
		if err != nil {
			return err
		}
		customers[i] = &customer{conv: convs[i], ws: ws, send: make(chan []byte, 256)}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	// Let the agents' hello frames and the claims' notices pass.
	time.Sleep(time.Second)
	return customers, agentSockets, nil
}

// schedule calls fire(i, due) for i in 0..total-1, message i being due at
// t0 + i/rate, catching up at once when behind (open loop).
func schedule(ctx context.Context, total int, rate float64, t0 time.Time, fire func(i int, due time.Time)) {
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Now()
		for i < total {
			due := t0.Add(time.Duration(i) * interval)
			if due.After(now) {
				break
			}
			fire(i, due)
			i++
		}
		if i < total {
			next := t0.Add(time.Duration(i) * interval)
			time.Sleep(max(time.Until(next), 200*time.Microsecond))
		}
	}
}

// waitAll waits until every message is delivered or the grace runs out.
func waitAll(s *slots, grace time.Duration) {
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		done := true
		for i := range s.delivered {
			if s.delivered[i].Load() == 0 {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// latencies returns, for messages from..end, the time from due to the
// recorded event, sorted, and how many have none.
func latencies(s *slots, at []atomic.Int64, from int) (Latencies, int) {
	var l Latencies
	missing := 0
	for i := from; i < len(at); i++ {
		t := at[i].Load()
		if t == 0 {
			missing++
			continue
		}
		l = append(l, time.Duration(t-s.due[i].Load()))
	}
	return l.Sorted(), missing
}

// pgBackends is the CPU time each PostgreSQL backend serving a database
// has used, by process id (the server runs on this machine).
type pgBackends map[int]time.Duration

func pgCPU(ctx context.Context, dbURL string) pgBackends {
	out := pgBackends{}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return out
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return out
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, pid := range pids {
		out[int(pid)] = cpuOf(int(pid))
	}
	return out
}

// since sums the CPU time used after before, counting backends that
// started meanwhile from zero.
func (p pgBackends) since(before pgBackends) time.Duration {
	var d time.Duration
	for pid, t := range p {
		d += t - before[pid]
	}
	return d
}

// hotUpdates returns how many row updates of conversations there have been,
// and how many of them were HOT (in place, no index touched). The
// statistics reach the view within a second or so.
func hotUpdates(ctx context.Context, dbURL string) (upd, hot int64) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0
	}
	defer conn.Close(ctx)
	time.Sleep(time.Second)
	_ = conn.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'conversations'`).Scan(&upd, &hot)
	return upd, hot
}
