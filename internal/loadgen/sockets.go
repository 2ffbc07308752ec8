package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is what every scenario needs.
type Config struct {
	Exe      string    // the tandem binary to run as the server
	Database string    // URL of the PostgreSQL server; each scenario makes a throwaway database on it
	PortBase int       // first of the ports to listen on (scenarios use PortBase..PortBase+9)
	Log      io.Writer // progress lines
	// PProfDir, when set, gets the servers' profiles: heap after the
	// sockets open, CPU over each measured run.
	PProfDir string
}

func (c *Config) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.PortBase+i) }

// tandemEnv is the environment of an instance under test, in local mode
// unless extra sets an LLM.
func tandemEnv(dbURL, addr, dataDir string, extra ...string) []string {
	return append([]string{"DATABASE_URL=" + dbURL, "TANDEM_ADDR=" + addr,
		"TANDEM_SECRET=loadgen-secret-0123456789abcdef", "TANDEM_DATA_DIR=" + dataDir,
		"TANDEM_LOG_LEVEL=warn", "TANDEM_ALLOWED_ORIGINS=*", "LLM_BASE_URL=", "EMBEDDING_MODEL=",
		// One address stands for many customers here, faster than people.
		"TANDEM_RATE_NEW_CONVERSATIONS=0", "TANDEM_RATE_MESSAGES=0"}, extra...)
}

// startTandem runs one instance on a database.
func (c *Config) startTandem(ctx context.Context, name, dbURL, addr string, extra ...string) (*Proc, error) {
	dir, err := os.MkdirTemp("", "tandem-loadgen-")
	if err != nil {
		return nil, err
	}
	// The profiler also lets the sockets scenario collect the garbage of
	// start-up before it reads a baseline.
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	extra = append(extra, "TANDEM_PPROF_ADDR="+net.JoinHostPort(host, strconv.Itoa(n+50)))
	p, err := Start(ctx, name, []string{c.Exe, "serve"}, tandemEnv(dbURL, addr, dir, extra...), addr, "/readyz", 60*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { <-p.done; os.RemoveAll(dir) }()
	return p, nil
}

// SocketsOptions shape the idle-connection measurement.
type SocketsOptions struct {
	Counts []int  // connection counts to measure at, ascending
	Peer   string // a peer server binary to measure the same way ("" for none)
	// Centrifugo is a Centrifugo server binary (v5) to measure the same
	// way, each socket a client subscribed to a channel of its own ("" for
	// none).
	Centrifugo string
	Settle     time.Duration // wait after opening before reading memory
	// Instances spreads the sockets evenly over this many server processes
	// (Tandem instances on one database; as many peer processes), for
	// counts beyond what one process may hold here. Default 1.
	Instances int
}

// Sockets measures the server's memory per idle customer WebSocket: it
// creates one conversation per socket over the API (through an instance
// of its own), starts the measured server, reads its resident memory,
// opens the sockets (each with its own conversation and token, as
// customers would), waits, and divides the growth by the count. With
// several instances, each gets an equal share of the sockets, and the
// figure is the sum of each instance's growth over its own baseline
// divided by the total. The client ends are held by child processes
// (HoldSockets), at most perHolder sockets each. With a peer binary it
// measures that too, under the same client, with as many processes, and
// reports the ratio.
func (c *Config) Sockets(ctx context.Context, o SocketsOptions) ([]Result, error) {
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	o.Instances = max(o.Instances, 1)
	maxN := 0
	for _, n := range o.Counts {
		maxN = max(maxN, n)
	}
	if err := socketBudget(maxN, o.Instances, o.Peer != ""); err != nil {
		return nil, err
	}
	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	// The conversations are created through an instance of their own, so
	// that each measured instance starts fresh: the garbage of creating
	// them, which the Go runtime keeps for reuse, would otherwise take in
	// part of the sockets' growth (even all of it, now that a socket is
	// small).
	setup, err := c.startTandem(ctx, "tandem-setup", dbURL, c.addr(0))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	convs, err := NewClient(setup.URL).CreateConversations(ctx, maxN, 32)
	setup.Stop()
	if err != nil {
		return nil, err
	}
	logf(c.Log, "sockets: %d conversations created in %.1f s", maxN, time.Since(start).Seconds())
	var procs []*Proc
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	for j := range o.Instances {
		p, err := c.startTandem(ctx, procName("tandem", j, o.Instances), dbURL, c.addr(j))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	urls := make([]string, maxN)
	for i, cv := range convs {
		urls[i] = wsURL(procs[i%o.Instances].URL) + "/ws/conversations/" + cv.ID + "?token=" + cv.Token
	}
	tandem, err := c.measureSockets(ctx, "tandem", procs, urls, o, true)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		p.Stop()
	}
	out := tandem
	for slot, peer := range []struct {
		name, exe string
		start     func(j int, addr string) (*Proc, error)
		url       func(base string, i int) string
	}{
		{"peer", o.Peer, func(j int, addr string) (*Proc, error) {
			return Start(ctx, procName("peer", j, o.Instances), []string{o.Peer, "-addr", addr}, nil, addr, "/healthz", 30*time.Second)
		}, func(base string, i int) string { return base + "/ws" }},
		{"centrifugo", o.Centrifugo, func(j int, addr string) (*Proc, error) {
			return startCentrifugo(ctx, procName("centrifugo", j, o.Instances), o.Centrifugo, addr)
		}, func(base string, i int) string {
			return fmt.Sprintf("%s/connection/websocket#centrifugo:conv-%d", base, i)
		}},
	} {
		if peer.exe == "" {
			continue
		}
		res, err := c.measurePeer(ctx, peer.name, 1+slot, o, maxN, peer.start, peer.url)
		if err != nil {
			return nil, err
		}
		// out begins with Tandem's rows (append may have moved them).
		for i := range tandem {
			if i < len(res) && len(res[i].Metrics) > 0 && res[i].Metrics[0].Value > 0 {
				out[i].Add(out[i].Metrics[0].Value/res[i].Metrics[0].Value, "x-"+peer.name)
			}
		}
		out = append(out, res...)
	}
	return out, nil
}

// measurePeer starts o.Instances processes of a peer server, instance j
// on port slot×o.Instances+j from the base (Tandem's instances are slot
// 0), and measures it as Tandem was measured; url gives socket i's URL on
// a process.
func (c *Config) measurePeer(ctx context.Context, name string, slot int, o SocketsOptions, maxN int,
	start func(j int, addr string) (*Proc, error), url func(base string, i int) string) ([]Result, error) {
	var procs []*Proc
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	for j := range o.Instances {
		p, err := start(j, c.addr(slot*o.Instances+j))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	urls := make([]string, maxN)
	for i := range urls {
		urls[i] = url(wsURL(procs[i%o.Instances].URL), i)
	}
	return c.measureSockets(ctx, name, procs, urls, o, false)
}

// startCentrifugo runs a Centrifugo (v5) server on addr with a
// configuration of its own: clients connect without a token and may
// subscribe to any channel (client_insecure), the health check on, logs
// at error level only.
func startCentrifugo(ctx context.Context, name, exe, addr string) (*Proc, error) {
	dir, err := os.MkdirTemp("", "loadgen-centrifugo-")
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"client_insecure": true, "health": true, "log_level": "error", "allowed_origins": ["*"]}`), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := Start(ctx, name, []string{exe, "--config", cfg, "--address", host, "--port", port}, nil, addr, "/health", 30*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { <-p.done; os.RemoveAll(dir) }()
	return p, nil
}

// procName names instance j of n ("tandem", or "tandem-2" of several).
func procName(name string, j, n int) string {
	if n == 1 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, j+1)
}

// socketBudget checks, before anything starts, that maxN sockets spread
// over instances server processes fit what this machine allows: the open
// files of one process (each server process holds its share, plus its
// database connections), the open files of the whole system (each socket
// is a file at both ends), and the ephemeral ports of the eight source
// addresses the clients dial from.
func socketBudget(maxN, instances int, peer bool) error {
	if 3*instances > 10 {
		return fmt.Errorf("loadgen: --instances %d: the servers and their peers use 3 × instances of the ten ports from --port-base; at most 3", instances)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < 1<<40 {
		share := (maxN + instances - 1) / instances
		if room := int(lim.Max) - 500; share > room {
			return fmt.Errorf("loadgen: %d sockets over %d server process(es) is %d each, more than the %d open files a process may have here (hard RLIMIT_NOFILE, less 500 for the rest); use --instances %d",
				maxN, instances, share, lim.Max, (maxN+room-1)/max(room, 1))
		}
	}
	if b, err := os.ReadFile("/proc/sys/fs/file-nr"); err == nil {
		var used, free, most int64
		if _, err := fmt.Sscan(string(b), &used, &free, &most); err == nil && used+2*int64(maxN)+10000 > most {
			return fmt.Errorf("loadgen: %d sockets need %d open files on this machine; %d of fs.file-max %d are in use", maxN, 2*maxN, used, most)
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		// Each socket binds a source address (127.0.0.2-9) and an
		// ephemeral port of that address.
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && maxN > 8*(hi-lo+1)*9/10 {
			return fmt.Errorf("loadgen: %d sockets from 8 source addresses need more than the %d ephemeral ports each (net.ipv4.ip_local_port_range %d-%d) has", maxN, hi-lo+1, lo, hi)
		}
	}
	return nil
}

// measureSockets opens urls[:n] for each count in turn against procs (the
// URLs name which) and measures the growth of their memory over their
// baselines, summed.
func (c *Config) measureSockets(ctx context.Context, name string, procs []*Proc, urls []string, o SocketsOptions, tandem bool) ([]Result, error) {
	time.Sleep(o.Settle)
	base := make([]int64, len(procs))
	baseStats := make([]map[string]float64, len(procs))
	for j, p := range procs {
		if tandem {
			// Start-up leaves garbage (64 MB of it is the argon2 hash
			// that failed sign-ins are checked against), which the
			// sockets would fill instead of growing the process.
			if err := c.collect(p); err != nil {
				return nil, err
			}
		}
		var err error
		if base[j], err = steadyRSS(p); err != nil {
			return nil, err
		}
		baseStats[j] = scrape(p.URL, tandem)
		logf(c.Log, "sockets: %s baseline RSS %.1f MB", p.Name, float64(base[j])/(1<<20))
	}
	hs, err := startHolders(ctx, (len(urls)+perHolder-1)/perHolder)
	if err != nil {
		return nil, err
	}
	defer hs.stop()
	var out []Result
	have := 0
	for _, n := range o.Counts {
		start := time.Now()
		if err := hs.open(urls[have:n], 32); err != nil {
			return out, fmt.Errorf("loadgen: opening sockets %d to %d to %s: %w", have+1, n, name, err)
		}
		opened := time.Since(start)
		time.Sleep(o.Settle)
		var rss, growth int64
		for j, p := range procs {
			r, err := p.RSS()
			if err != nil {
				return out, err
			}
			rss += r
			growth += r - base[j]
		}
		if k, err := hs.closedCount(); err != nil {
			return out, err
		} else if k > 0 {
			return out, fmt.Errorf("loadgen: %d of %d sockets to %s closed while idle", k, n, name)
		}
		r := Result{Name: fmt.Sprintf("IdleSockets/%s/conns=%d", name, n), N: n}
		if len(procs) > 1 {
			r.Name += fmt.Sprintf("/procs=%d", len(procs))
		}
		r.Add(float64(growth)/float64(n)/1024, "KB/conn")
		r.Add(float64(rss)/(1<<20), "RSS-MB")
		if tandem {
			var goroutines, heap, stack float64
			for j, p := range procs {
				c.saveProfile(p, fmt.Sprintf("heap-%d", n), "heap?gc=1")
				st := scrape(p.URL, true)
				goroutines += st["go_goroutines"] - baseStats[j]["go_goroutines"]
				heap += st["go_memstats_heap_inuse_bytes"] - baseStats[j]["go_memstats_heap_inuse_bytes"]
				stack += st["go_memstats_stack_inuse_bytes"] - baseStats[j]["go_memstats_stack_inuse_bytes"]
			}
			r.Add(goroutines/float64(n), "goroutines/conn")
			r.Add(heap/float64(n)/1024, "heap-KB/conn")
			r.Add(stack/float64(n)/1024, "stack-KB/conn")
		}
		r.Add(float64(n-have)/opened.Seconds(), "opened/s")
		r.Add(LoadAvg(), "load")
		logf(c.Log, "sockets: %s", r)
		out = append(out, r)
		have = n
	}
	return out, nil
}

// collect has a Tandem instance collect its garbage and give the memory
// back to the system now (through its profiler's listener).
func (c *Config) collect(p *Proc) error {
	resp, err := http.Post(profilerURL(p)+"/debug/free-os-memory", "", nil)
	if err != nil {
		return fmt.Errorf("loadgen: collect %s: %w", p.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("loadgen: collect %s: %s", p.Name, resp.Status)
	}
	return nil
}

// steadyRSS waits (up to 30 s) until p's resident memory stops moving, as
// the runtime returns freed memory to the system, and returns it.
func steadyRSS(p *Proc) (int64, error) {
	prev, err := p.RSS()
	for deadline := time.Now().Add(30 * time.Second); err == nil && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		var r int64
		if r, err = p.RSS(); err == nil && max(r-prev, prev-r) < 256<<10 {
			return r, nil
		}
		prev = r
	}
	return prev, err
}

func profilerURL(p *Proc) string {
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(p.URL, "http://"))
	n, _ := strconv.Atoi(port)
	return "http://" + net.JoinHostPort(host, strconv.Itoa(n+50))
}

// scrape reads the Go runtime figures from Tandem's /metrics.
func scrape(base string, tandem bool) map[string]float64 {
	out := map[string]float64{}
	if !tandem {
		return out
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.HasPrefix(f[0], "go_") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// saveProfile fetches /debug/pprof/<query> from p's profiler into
// PProfDir/<p.Name>-<name>.pprof, when profiles are wanted.
// selfProfile writes this process's CPU profile for d into PProfDir.
func (c *Config) selfProfile(name string, d time.Duration) {
	path := filepath.Join(c.PProfDir, name+".pprof")
	_ = os.MkdirAll(c.PProfDir, 0o755)
	f, err := os.Create(path)
	if err != nil {
		logf(c.Log, "profile %s: %v", name, err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		logf(c.Log, "profile %s: %v", name, err)
		return
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
	logf(c.Log, "profile written: %s", path)
}

func (c *Config) saveProfile(p *Proc, name, query string) {
	if c.PProfDir == "" {
		return
	}
	resp, err := http.Get(profilerURL(p) + "/debug/pprof/" + query)
	if err != nil {
		logf(c.Log, "profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	_ = os.MkdirAll(c.PProfDir, 0o755)
	path := filepath.Join(c.PProfDir, p.Name+"-"+name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		logf(c.Log, "profile %s: %v", name, err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
	logf(c.Log, "profile written: %s", path)
}
