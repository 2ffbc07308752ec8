package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BurstOptions shape the burst measurement.
type BurstOptions struct {
	NewPerSecond      float64       // new conversations per second
	MessagesPerSecond float64       // customer messages per second (each conversation sends its share, a second apart)
	Duration          time.Duration // how long new conversations keep coming
	Window            time.Duration // figures per window of this length; default 10 s
	Examples          string        // knowledge to load first (the demo's examples folder)
	// LLM answers with the fake LLM the bot scenario uses (60 ms, then 20
	// tokens 10 ms apart) instead of local mode; figures are named
	// Burst/llm/….
	LLM bool
}

// burstScripts are what new conversations say, a line a second, in
// turn: questions the demo knowledge base answers, small talk, and in one
// conversation of five a request for a person (that conversation then
// waits in the queue, as there are no agents).
var burstScripts = [][]string{
	{"How much does shipping cost?", "Do you ship internationally?", "thanks, that helped", "Can I cancel my order?", "bye"},
	{"What is your return policy?", "How long will delivery take?", "ok", "What payment methods do you accept?", "thank you"},
	{"hello", "Where's my stuff?", "I never got a tracking number. How do I track my order?", "Is there free shipping?", "thanks"},
	{"退货运费谁出？", "多久能到货？", "谢谢", "可以取消订单吗？", "好的"},
	{"Can I cancel my order?", "I want to talk to a person", "ok", "are you still there?", "thanks"},
}

// Burst starts new conversations at a fixed rate on two instances in turn
// (as a load balancer would), each sending its messages a second apart
// over its WebSocket, and reports, per window of due time: acknowledgement
// (commit) latency, bot reply latency, creation latency and errors. Bot
// turns run in local mode over the demo knowledge base, or with o.LLM
// through the fake LLM.
func (c *Config) Burst(ctx context.Context, o BurstOptions) ([]Result, error) {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	perConv := max(1, int(math.Round(o.MessagesPerSecond/o.NewPerSecond)))
	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	if err := c.ingest(ctx, dbURL, o.Examples); err != nil {
		return nil, err
	}
	env := []string{"TANDEM_DB_MAX_CONNS=40"}
	prefix := "Burst"
	if o.LLM {
		fake := turnFake(60*time.Millisecond, 10*time.Millisecond, 20)
		defer fake.Close()
		env = append(env, fakeEnv(fake)...)
		prefix = "Burst/llm"
	}
	var insts []*Proc
	for i, name := range []string{"tandem-a", "tandem-b"} {
		p, err := c.startTandem(ctx, name, dbURL, c.addr(i), env...)
		if err != nil {
			return nil, err
		}
		defer p.Stop()
		insts = append(insts, p)
	}
	clients := []*Client{NewClient(insts[0].URL), NewClient(insts[1].URL)}
	nConvs := int(o.NewPerSecond * o.Duration.Seconds())
	total := nConvs * perConv
	var (
		due      = make([]atomic.Int64, total)
		acked    = make([]atomic.Int64, total)
		replied  = make([]atomic.Int64, total)
		created  = make([]atomic.Int64, nConvs) // creation latency, ns
		convDue  = make([]int64, nConvs)
		errCount atomic.Int64
		wg       sync.WaitGroup
		d        Dialer
	)
	logf(c.Log, "burst: %.0f new conversations/s, %d messages each a second apart (%.0f msgs/s), for %s",
		o.NewPerSecond, perConv, o.NewPerSecond*float64(perConv), o.Duration)
	cpu0 := cpuOf(insts[0].PID()) + cpuOf(insts[1].PID())
	pg0 := pgCPU(ctx, dbURL)
	if c.PProfDir != "" {
		go c.saveProfile(insts[0], "cpu-burst", fmt.Sprintf("profile?seconds=%d", int(o.Duration.Seconds())))
	}
	t0 := time.Now().Add(500 * time.Millisecond)
	schedule(ctx, nConvs, o.NewPerSecond, t0, func(k int, at time.Time) {
		convDue[k] = at.UnixNano()
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				if errCount.Add(1) <= 5 {
					logf(c.Log, "burst: conversation %d: %v", k, err)
				}
			}
			base := insts[k%2].URL
			conv, err := clients[k%2].CreateConversation(ctx)
			if err != nil {
				fail(err)
				return
			}
			created[k].Store(int64(time.Since(at)))
			// The bot answers a conversation's messages in order, one
			// message each, until it hands the conversation to a person:
			// its n-th message is the reply to the n-th customer message.
			var mu sync.Mutex
			seqs := make([]int64, perConv) // of message j, from its ack or echo
			type reply struct {
				seq, at  int64
				escalate bool
			}
			var replies []reply
			first := k * perConv
			index := func(id string) int {
				var j int
				if _, err := fmt.Sscanf(id, "b%d", &j); err == nil && j >= first && j < first+perConv {
					return j - first
				}
				return -1
			}
			sess, err := openSession(ctx, &d, base, conv, func(f *wsFrame, at time.Time) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case f.Type == "ack":
					if j := index(f.ClientMsgID); j >= 0 {
						acked[first+j].CompareAndSwap(0, at.UnixNano())
						seqs[j] = f.Seq
					}
				case f.Type == "error":
					fail(fmt.Errorf("error frame for %s", f.ClientMsgID))
				case f.Type == "message" && f.Message != nil && f.Message.Role == "customer":
					if j := index(f.Message.ClientMsgID); j >= 0 {
						seqs[j] = f.Message.Seq
					}
				case f.Type == "message" && f.Message != nil && f.Message.Role == "bot":
					replies = append(replies, reply{f.Message.Seq, at.UnixNano(), f.Message.Meta.Decision == "escalate"})
				}
			})
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				slices.SortFunc(replies, func(a, b reply) int { return cmp.Compare(a.seq, b.seq) })
				for j, r := range replies {
					if j >= perConv || seqs[j] == 0 || r.seq < seqs[j] {
						break
					}
					replied[first+j].Store(r.at)
					if r.escalate {
						break
					}
				}
			}()
			if err != nil {
				fail(err)
				return
			}
			defer sess.close()
			for j := range perConv {
				i := first + j
				when := at.Add(time.Duration(j) * time.Second)
				time.Sleep(time.Until(when))
				due[i].Store(when.UnixNano())
				script := burstScripts[k%len(burstScripts)]
				if err := sess.send(script[j%len(script)], fmt.Sprintf("b%d", i)); err != nil {
					fail(err)
					return
				}
			}
			// Wait for the last acknowledgement and a moment for replies.
			deadline := time.Now().Add(10 * time.Second)
			for acked[first+perConv-1].Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
		}()
	})
	wg.Wait()
	cpu := cpuOf(insts[0].PID()) + cpuOf(insts[1].PID()) - cpu0
	pg := pgCPU(ctx, dbURL).since(pg0)

	var out []Result
	windows := int(math.Ceil(o.Duration.Seconds() / o.Window.Seconds()))
	var worst, best float64
	var lostAll int
	for w := range windows {
		from, to := t0.Add(time.Duration(w)*o.Window).UnixNano(), t0.Add(time.Duration(w+1)*o.Window).UnixNano()
		var ack, reply, create Latencies
		sent, lost := 0, 0
		for i := range due {
			dt := due[i].Load()
			if dt < from || dt >= to || dt == 0 {
				continue
			}
			sent++
			if a := acked[i].Load(); a != 0 {
				ack = append(ack, time.Duration(a-dt))
			} else {
				lost++
			}
			if r := replied[i].Load(); r != 0 {
				reply = append(reply, time.Duration(r-dt))
			}
		}
		for k := range convDue {
			if convDue[k] >= from && convDue[k] < to {
				if d := created[k].Load(); d != 0 {
					create = append(create, time.Duration(d))
				}
			}
		}
		ack, reply, create = ack.Sorted(), reply.Sorted(), create.Sorted()
		r := Result{Name: fmt.Sprintf("%s/window=%03d-%03ds", prefix, int((time.Duration(w) * o.Window).Seconds()), int((time.Duration(w+1) * o.Window).Seconds())), N: sent}
		r.Add(ack.P(50), "ack-p50-ms")
		r.Add(ack.P(99), "ack-p99-ms")
		r.Add(reply.P(50), "reply-p50-ms")
		r.Add(reply.P(99), "reply-p99-ms")
		r.Add(float64(len(reply)), "replies")
		r.Add(create.P(50), "create-p50-ms")
		r.Add(create.P(99), "create-p99-ms")
		r.Add(float64(lost), "unacked")
		out = append(out, r)
		lostAll += lost
		p99 := ack.P(99)
		if w == 0 || p99 > worst {
			worst = p99
		}
		if w == 0 || p99 < best {
			best = p99
		}
	}
	sum := Result{Name: prefix + "/total", N: total}
	sum.Add(float64(errCount.Load()), "errors")
	sum.Add(float64(lostAll), "unacked")
	if best > 0 {
		sum.Add(worst/best, "worst/best-window-ack-p99")
	}
	sum.Add(cpu.Seconds()*1000/float64(total), "server-cpu-ms/msg")
	sum.Add(pg.Seconds()*1000/float64(total), "pg-cpu-ms/msg")
	sum.Add(LoadAvg(), "load")
	out = append(out, sum)
	for _, r := range out {
		logf(c.Log, "burst: %s", r)
	}
	return out, nil
}

// ingest loads the documents under dir into the database with
// `tandem ingest`, in local mode.
func (c *Config) ingest(ctx context.Context, dbURL, dir string) error {
	if dir == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, c.Exe, "ingest", dir)
	cmd.Env = append(cmd.Environ(), tandemEnv(dbURL, "127.0.0.1:0", os.TempDir())...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("loadgen: tandem ingest %s: %v: %s", dir, err, out)
	}
	return nil
}
