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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
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
	if !FreePort(addr) {
		return nil, fmt.Errorf("loadgen: %s is in use", addr)
	}
	if c.PProfDir != "" {
		host, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		extra = append(extra, "TANDEM_PPROF_ADDR="+net.JoinHostPort(host, strconv.Itoa(n+50)))
	}
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
	Counts []int         // connection counts to measure at, ascending
	Peer   string        // a peer server binary to measure the same way ("" for none)
	Settle time.Duration // wait after opening before reading memory
}

// Sockets measures the server's memory per idle customer WebSocket: it
// creates one conversation per socket over the API, reads the server's
// resident memory, opens the sockets (each with its own conversation and
// token, as customers would), waits, and divides the growth by the count.
// With a peer binary it measures that too, under the same client, and
// reports the ratio.
func (c *Config) Sockets(ctx context.Context, o SocketsOptions) ([]Result, error) {
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	maxN := 0
	for _, n := range o.Counts {
		maxN = max(maxN, n)
	}
	dbURL, drop, err := TempDatabase(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer drop()
	p, err := c.startTandem(ctx, "tandem", dbURL, c.addr(0))
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	cl := NewClient(p.URL)
	start := time.Now()
	convs, err := cl.CreateConversations(ctx, maxN, 32)
	if err != nil {
		return nil, err
	}
	logf(c.Log, "sockets: %d conversations created in %.1f s", maxN, time.Since(start).Seconds())
	urls := make([]string, maxN)
	for i, cv := range convs {
		urls[i] = wsURL(p.URL) + "/ws/conversations/" + cv.ID + "?token=" + cv.Token
	}
	tandem, err := c.measureSockets(ctx, p, urls, o, true)
	if err != nil {
		return nil, err
	}
	p.Stop()
	out := tandem
	if o.Peer != "" {
		addr := c.addr(1)
		peer, err := Start(ctx, "peer", []string{o.Peer, "-addr", addr}, nil, addr, "/healthz", 30*time.Second)
		if err != nil {
			return nil, err
		}
		defer peer.Stop()
		purls := make([]string, maxN)
		for i := range purls {
			purls[i] = wsURL(peer.URL) + "/ws"
		}
		peerRes, err := c.measureSockets(ctx, peer, purls, o, false)
		if err != nil {
			return nil, err
		}
		for i := range tandem {
			if i < len(peerRes) && len(peerRes[i].Metrics) > 0 && peerRes[i].Metrics[0].Value > 0 {
				tandem[i].Add(tandem[i].Metrics[0].Value/peerRes[i].Metrics[0].Value, "x-peer")
			}
		}
		out = append(out, peerRes...)
	}
	return out, nil
}

// measureSockets opens urls[:n] for each count in turn against p and
// measures p's memory growth over its baseline.
func (c *Config) measureSockets(ctx context.Context, p *Proc, urls []string, o SocketsOptions, tandem bool) ([]Result, error) {
	time.Sleep(o.Settle)
	base, err := p.RSS()
	if err != nil {
		return nil, err
	}
	baseStats := scrape(p.URL, tandem)
	logf(c.Log, "sockets: %s baseline RSS %.1f MB", p.Name, float64(base)/(1<<20))
	var (
		mu     sync.Mutex
		conns  []*websocket.Conn
		closed atomic.Int64
		d      Dialer
		out    []Result
	)
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
	}()
	for _, n := range o.Counts {
		have := len(conns)
		start := time.Now()
		err := parallel(ctx, n-have, 32, func(i int) error {
			ws, err := d.Dial(ctx, urls[have+i])
			if err != nil {
				return err
			}
			mu.Lock()
			conns = append(conns, ws)
			mu.Unlock()
			go func() {
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						closed.Add(1)
						return
					}
				}
			}()
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("loadgen: opening socket %d of %d to %s: %w", len(conns)+1, n, p.Name, err)
		}
		opened := time.Since(start)
		time.Sleep(o.Settle)
		rss, err := p.RSS()
		if err != nil {
			return out, err
		}
		if k := closed.Load(); k > 0 {
			return out, fmt.Errorf("loadgen: %d of %d sockets to %s closed while idle", k, n, p.Name)
		}
		r := Result{Name: fmt.Sprintf("IdleSockets/%s/conns=%d", p.Name, n), N: n}
		r.Add(float64(rss-base)/float64(n)/1024, "KB/conn")
		r.Add(float64(rss)/(1<<20), "RSS-MB")
		if tandem {
			c.saveProfile(p, fmt.Sprintf("heap-%d", n), "heap?gc=1")
			st := scrape(p.URL, true)
			r.Add((st["go_goroutines"]-baseStats["go_goroutines"])/float64(n), "goroutines/conn")
			r.Add((st["go_memstats_heap_inuse_bytes"]-baseStats["go_memstats_heap_inuse_bytes"])/float64(n)/1024, "heap-KB/conn")
			r.Add((st["go_memstats_stack_inuse_bytes"]-baseStats["go_memstats_stack_inuse_bytes"])/float64(n)/1024, "stack-KB/conn")
		}
		r.Add(float64(n-have)/opened.Seconds(), "opened/s")
		r.Add(LoadAvg(), "load")
		logf(c.Log, "sockets: %s", r)
		out = append(out, r)
	}
	return out, nil
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
func (c *Config) saveProfile(p *Proc, name, query string) {
	if c.PProfDir == "" {
		return
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(p.URL, "http://"))
	n, _ := strconv.Atoi(port)
	resp, err := http.Get("http://" + net.JoinHostPort(host, strconv.Itoa(n+50)) + "/debug/pprof/" + query)
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
