package soak

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/internal/db/dbtest"
	"github.com/tandem-chat/tandem/internal/loadgen"
)

// Options shape a soak run.
type Options struct {
	Exe       string        // the tandem binary to run as the gateway
	Database  string        // PostgreSQL server for a throwaway database; "" with PrivateDB
	PrivateDB bool          // run a private PostgreSQL cluster, and restart it as a fault
	Instances int           // gateway instances
	PortBase  int           // instance i listens on PortBase+i
	Customers int           // customers, each with a conversation and a socket
	Agents    int           // agents, each taking over some conversations
	Duration  time.Duration // how long traffic and faults run
	Think     time.Duration // mean pause between one client's messages

	KillEvery      time.Duration // SIGKILL an instance (and restart it) this often; 0: never
	DropEvery      time.Duration // drop a random socket this often; 0: never
	DBRestartEvery time.Duration // restart the private cluster this often; 0: never

	Log io.Writer // progress lines
}

// Report is what a soak run did and found.
type Report struct {
	Started, Finished time.Time
	Duration          time.Duration
	Instances         int
	Customers, Agents int
	Conversations     int
	Sent, Acked       int64
	Found             int // acknowledged messages found in the transcripts
	Lost, Duplicates  int // acknowledged messages missing or stored more than once
	SocketEvents      int64
	SocketMissing     int // events a socket never received
	SocketDuplicates  int // events a socket received more than once
	Unanswered        int // bot conversations whose last customer message has no answer
	Failed            int64
	Kills, Drops      int
	DBRestarts        int
	Reconnects        int64
	Unavailable       int64 // 503s and unavailable error frames seen (and retried)
	Refused           int64 // connections refused or reset (and retried)
	RateLimited       int64
	Problems          []string
}

// OK reports whether nothing acknowledged was lost or duplicated, on the
// server or on a socket, and every customer had an answer.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.SocketMissing == 0 && r.SocketDuplicates == 0 &&
		r.Unanswered == 0 && r.Found == int(r.Acked)
}

// conversation is one customer's conversation under soak, with the agent
// who took it over, if any.
type conversation struct {
	conv   Conversation
	cust   *Stream
	agent  *Stream // nil while the bot holds it
	mu     sync.Mutex
	acked  map[string]int64
	serial atomic.Int64
}

func (c *conversation) ack(id string, seq int64) {
	c.mu.Lock()
	c.acked[id] = seq
	c.mu.Unlock()
}

// instance is one gateway process.
type instance struct {
	exe        string
	name, addr string
	env        []string
	proc       *loadgen.Proc
}

// Run soaks a Tandem: it starts the instances, runs the customers and
// agents with the faults for the duration, then checks every conversation.
func Run(ctx context.Context, o Options) (*Report, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "soak: "+format+"\n", args...)
		}
	}
	rep := &Report{Started: time.Now(), Instances: o.Instances, Customers: o.Customers, Agents: o.Agents}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Exe = exe
	}
	if o.Instances < 1 || o.Customers < 1 || o.Duration <= 0 {
		return nil, errors.New("soak: need at least one instance, one customer and a duration")
	}
	if o.Think <= 0 {
		o.Think = time.Second
	}

	// The database.
	var dbURL string
	var cluster *dbtest.Cluster
	if o.PrivateDB {
		var err error
		if cluster, err = dbtest.StartCluster(); err != nil {
			return nil, err
		}
		defer cluster.Remove()
		dbURL = cluster.URL()
		logf("private PostgreSQL cluster at %s", dbURL)
	} else {
		if o.Database == "" {
			return nil, errors.New("soak: no PostgreSQL server (set DATABASE_URL, or run scripts/pg.sh)")
		}
		u, drop, err := loadgen.TempDatabase(ctx, o.Database)
		if err != nil {
			return nil, err
		}
		defer drop()
		dbURL = u
		logf("throwaway database on the local server")
	}

	// The instances.
	dataDir, err := os.MkdirTemp("", "tandem-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	insts := make([]*instance, o.Instances)
	urls := make([]string, o.Instances)
	for i := range insts {
		addr := fmt.Sprintf("127.0.0.1:%d", o.PortBase+i)
		insts[i] = &instance{exe: o.Exe, name: fmt.Sprintf("tandem-%c", 'a'+i), addr: addr, env: []string{
			"DATABASE_URL=" + dbURL, "TANDEM_ADDR=" + addr, "TANDEM_SECRET=soak-secret-0123456789abcdef",
			"TANDEM_DATA_DIR=" + dataDir, "TANDEM_LOG_LEVEL=warn", "LLM_BASE_URL=", "EMBEDDING_MODEL=",
			"TANDEM_DB_MAX_CONNS=20",
			// One address stands for every customer here.
			"TANDEM_RATE_NEW_CONVERSATIONS=0", "TANDEM_RATE_MESSAGES=0",
			// Turns an instance took with it are run again after 15 s.
			"TANDEM_BOT_TURN_TIMEOUT=5s",
		}}
		if err := insts[i].start(ctx); err != nil {
			stopAll(insts)
			return nil, err
		}
		urls[i] = "http://" + addr
	}
	defer stopAll(insts)
	logf("%d instances up: %s", len(insts), strings.Join(urls, " "))

	// Agents: staff users with API sessions.
	pool, err := db.Open(ctx, dbURL, 2)
	if err != nil {
		return nil, err
	}
	store := auth.NewStore(pool)
	var agentTokens []string
	for i := range o.Agents {
		var b [8]byte
		_, _ = crand.Read(b[:])
		u, err := store.CreateUser(ctx, auth.NewUser{Email: fmt.Sprintf("soak-agent-%d@example.com", i),
			Password: hex.EncodeToString(b[:]), DisplayName: fmt.Sprintf("Soak Agent %d", i), Roles: []string{auth.RoleAgent}})
		if err != nil {
			pool.Close()
			return nil, err
		}
		tok, err := store.NewSession(ctx, u.ID, "api")
		if err != nil {
			pool.Close()
			return nil, err
		}
		agentTokens = append(agentTokens, tok)
	}
	pool.Close()

	// Customers: a conversation and a socket each; every fourth is taken
	// over by an agent, who follows it on a socket of their own.
	inst := NewInstances(urls...)
	cli := NewClient(inst)
	cli.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	runCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	var convs []*conversation
	for i := range o.Customers {
		cv, err := cli.NewConversation(ctx)
		if err != nil {
			return nil, fmt.Errorf("soak: new conversation: %w", err)
		}
		c := &conversation{conv: cv, cust: cli.NewStream(cv.ID, cv.Token), acked: map[string]int64{}}
		go c.cust.Run(runCtx)
		if len(agentTokens) > 0 && i%4 == 3 {
			tok := agentTokens[(i/4)%len(agentTokens)]
			id := "agent-hello"
			seq, err := cli.Post(ctx, cv.ID, tok, "Hello, this is a person; I am taking over.", id)
			if err != nil {
				return nil, fmt.Errorf("soak: agent takes over: %w", err)
			}
			c.ack(id, seq)
			c.agent = cli.NewStream(cv.ID, tok)
			go c.agent.Run(runCtx)
		}
		convs = append(convs, c)
	}
	rep.Conversations = len(convs)
	logf("%d conversations, %d taken over by %d agents; running for %s", len(convs), (len(convs)+1)/4, len(agentTokens), o.Duration)

	// Traffic.
	trafficCtx, stopTraffic := context.WithTimeout(ctx, o.Duration)
	defer stopTraffic()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var problemsMu sync.Mutex
	sender := func(c *conversation, who string, send func(ctx context.Context, text, id string) (int64, error)) {
		defer wg.Done()
		for trafficCtx.Err() == nil {
			pause := time.Duration(rand.Int64N(int64(2*o.Think) + 1))
			if !sleep(trafficCtx, pause) {
				return
			}
			id := fmt.Sprintf("%s-%d", who, c.serial.Add(1))
			// The send itself is not cut short when the run ends: a
			// message once sent is followed to its acknowledgement.
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			seq, err := send(sctx, questions[rand.IntN(len(questions))], id)
			cancel()
			if err != nil {
				failed.Add(1)
				problemsMu.Lock()
				if len(rep.Problems) < 10 {
					rep.Problems = append(rep.Problems, fmt.Sprintf("send %s: %v", id, err))
				}
				problemsMu.Unlock()
				continue
			}
			c.ack(id, seq)
		}
	}
	for _, c := range convs {
		wg.Add(2)
		go sender(c, "ws", c.cust.Send)
		cv := c.conv
		go sender(c, "rest", func(ctx context.Context, text, id string) (int64, error) {
			return cli.Post(ctx, cv.ID, cv.Token, text, id)
		})
		if c.agent != nil {
			wg.Add(1)
			go sender(c, "agent", c.agent.Send)
		}
	}

	// Faults.
	var faultsWG sync.WaitGroup
	every := func(d time.Duration, f func(n int)) {
		if d <= 0 {
			return
		}
		faultsWG.Add(1)
		go func() {
			defer faultsWG.Done()
			for n := 0; sleep(trafficCtx, d); n++ {
				f(n)
			}
		}()
	}
	var kills, drops, restarts atomic.Int64
	every(o.KillEvery, func(n int) {
		in := insts[n%len(insts)]
		logf("kill -9 %s", in.name)
		in.kill()
		kills.Add(1)
		sleep(trafficCtx, 2*time.Second)
		if err := in.restart(ctx, logf); err != nil {
			logf("restart %s: %v", in.name, err)
			return
		}
		logf("%s restarted", in.name)
	})
	every(o.DropEvery, func(int) {
		c := convs[rand.IntN(len(convs))]
		s := c.cust
		if c.agent != nil && rand.IntN(2) == 0 {
			s = c.agent
		}
		if s.Drop() {
			drops.Add(1)
		}
	})
	if cluster != nil {
		every(o.DBRestartEvery, func(n int) {
			immediate := n%2 == 1
			logf("PostgreSQL restart (immediate: %v)", immediate)
			if err := cluster.Stop(immediate); err != nil {
				logf("stop PostgreSQL: %v", err)
				return
			}
			time.Sleep(time.Second)
			if err := cluster.Start(); err != nil {
				logf("start PostgreSQL: %v", err)
				return
			}
			restarts.Add(1)
		})
	}
	progress := time.NewTicker(15 * time.Second)
	defer progress.Stop()
	go func() {
		for {
			select {
			case <-trafficCtx.Done():
				return
			case <-progress.C:
				logf("%s: %d sent, %d acknowledged, %d reconnects, %d 503s, %d refused",
					time.Since(rep.Started).Round(time.Second), cli.Stats.Sent.Load(), cli.Stats.Acked.Load(),
					cli.Stats.Reconnects.Load(), cli.Stats.Unavailable.Load(), cli.Stats.Refused.Load())
			}
		}
	}()
	<-trafficCtx.Done()
	faultsWG.Wait()
	logf("traffic stopped; waiting for messages in flight")
	wg.Wait()
	// Every instance up again, for the checks.
	for _, in := range insts {
		if err := in.restart(ctx, logf); err != nil {
			return nil, err
		}
	}

	// Checks.
	logf("checking %d conversations", len(convs))
	checkCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rep.Unanswered = waitAnswered(checkCtx, cli, convs)
	for _, c := range convs {
		msgs, last, err := cli.Transcript(checkCtx, c.conv.ID, c.conv.Token)
		if err != nil {
			return nil, fmt.Errorf("soak: transcript: %w", err)
		}
		c.mu.Lock()
		found, lost, dups, problems := Check(msgs, c.acked)
		c.mu.Unlock()
		rep.Found += found
		rep.Lost += lost
		rep.Duplicates += dups
		rep.Problems = append(rep.Problems, problems...)
		for _, s := range []*Stream{c.cust, c.agent} {
			if s == nil {
				continue
			}
			if err := s.WaitFor(checkCtx, last); err != nil {
				rep.Problems = append(rep.Problems, err.Error())
			}
			missing, dup, problems := s.Received(last)
			rep.SocketMissing += missing
			rep.SocketDuplicates += dup
			rep.Problems = append(rep.Problems, problems...)
		}
	}
	stopStreams()
	rep.Finished = time.Now()
	rep.Duration = o.Duration
	rep.Sent, rep.Acked = cli.Stats.Sent.Load(), cli.Stats.Acked.Load()
	rep.SocketEvents = cli.Stats.SocketEvents.Load()
	rep.Failed = failed.Load()
	rep.Kills, rep.Drops, rep.DBRestarts = int(kills.Load()), int(drops.Load()), int(restarts.Load())
	rep.Reconnects = cli.Stats.Reconnects.Load()
	rep.Unavailable, rep.Refused, rep.RateLimited = cli.Stats.Unavailable.Load(), cli.Stats.Refused.Load(), cli.Stats.RateLimited.Load()
	rep.Problems = append(rep.Problems, cli.Stats.Examples()...)
	return rep, nil
}

// questions are what the customers ask.
var questions = []string{
	"How much does shipping cost?", "Where is my parcel?", "Can I return an item I bought last week?",
	"Do you ship to Canada?", "How do I reset my password?", "What are your opening hours?",
	"我的订单什么时候到？", "Can I change my delivery address?", "Is there a discount for students?",
}

// waitAnswered waits until no conversation the bot holds has a customer's
// message as its last, and returns how many still do when ctx ends.
func waitAnswered(ctx context.Context, cli *Client, convs []*conversation) int {
	for {
		waiting := 0
		for _, c := range convs {
			if c.agent != nil {
				continue
			}
			var conv struct {
				State string `json:"state"`
			}
			if _, err := cli.Call(ctx, "GET", "/api/v1/conversations/"+c.conv.ID, c.conv.Token, nil, &conv); err != nil {
				return len(convs)
			}
			if conv.State != "bot" {
				continue // handed to a person: their answer comes from a person
			}
			msgs, _, err := cli.Transcript(ctx, c.conv.ID, c.conv.Token)
			if err != nil {
				return len(convs)
			}
			if len(msgs) > 0 && msgs[len(msgs)-1].Role == "customer" {
				waiting++
			}
		}
		if waiting == 0 || !sleep(ctx, time.Second) {
			return waiting
		}
	}
}

func (in *instance) start(ctx context.Context) error {
	if in.proc != nil && !in.proc.Exited() {
		return nil
	}
	p, err := loadgen.Start(ctx, in.name, []string{in.exe, "serve"}, in.env, in.addr, "/readyz", 60*time.Second)
	if err != nil {
		return err
	}
	in.proc = p
	return nil
}

// restart starts the instance again, as a supervisor would: an instance
// that cannot start (the database is restarting too) is tried again each
// second, for up to a minute.
func (in *instance) restart(ctx context.Context, logf func(string, ...any)) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := in.start(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		logf("%s did not start (%v); again in a second", in.name, firstLine(err))
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// kill ends the instance with SIGKILL: no shutdown, no close frames.
func (in *instance) kill() {
	if in.proc == nil || in.proc.Exited() {
		return
	}
	_ = syscall.Kill(in.proc.PID(), syscall.SIGKILL)
	for !in.proc.Exited() {
		time.Sleep(10 * time.Millisecond)
	}
}

func stopAll(insts []*instance) {
	for _, in := range insts {
		if in != nil && in.proc != nil {
			in.proc.Stop()
		}
	}
}
