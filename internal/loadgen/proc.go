// Package loadgen measures a running Tandem from outside, as its users
// would: idle WebSockets and the server's memory per connection, customer
// messages delivered to agents on another instance at a fixed rate, bursts
// of new conversations, bot turns against a fake LLM, and start-up time.
// Servers under test run as child processes, so that their memory is their
// own; everything is on loopback. `tandem loadgen` is its command line, and
// `make bench` runs it.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Proc is a server under test, running as a child process.
type Proc struct {
	Name string
	URL  string // http://host:port
	// Ready is the time from starting the process to the first 200 of its
	// ready path.
	Ready time.Duration

	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{}
}

// Start runs argv with env added to this process's environment, and waits
// (bounded by timeout) until GET addr+readyPath answers 200. addr must be
// free beforehand.
func Start(ctx context.Context, name string, argv, env []string, addr, readyPath string, timeout time.Duration) (*Proc, error) {
	// Otherwise whatever holds the port would answer for the process.
	if !FreePort(addr) {
		return nil, fmt.Errorf("loadgen: %s: %s is in use", name, addr)
	}
	p := &Proc{Name: name, URL: "http://" + addr, logs: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := start.Add(timeout)
	for {
		resp, err := client.Get(p.URL + readyPath)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.Ready = time.Since(start)
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("loadgen: %s exited before it was ready: %s", name, p.logs.String())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("loadgen: %s not ready after %s: %s", name, timeout, p.logs.String())
		}
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Logs returns the tail of what the process wrote.
func (p *Proc) Logs() string { return p.logs.String() }

// RSS returns the process's resident set size in bytes.
func (p *Proc) RSS() (int64, error) { return rssOf(p.PID()) }

// Stop asks the process to shut down (SIGTERM) and kills it after 20 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("loadgen: no VmRSS in /proc status")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// TempDatabase creates an empty database on the server that adminURL
// names and returns its URL, with a function that drops it.
func TempDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("loadgen: connect to %s: %w", redact(adminURL), err)
	}
	defer conn.Close(ctx)
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := "tandem_loadgen_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("loadgen: create database: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return adminURL + " dbname=" + name, drop, nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(database URL)"
	}
	return u.Redacted()
}

// FreePort reports whether addr can be listened on now.
func FreePort(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// cpuOf returns the CPU time (user and system) a process has used so far.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// DefaultDatabase is the PostgreSQL server the tests use:
// TANDEM_TEST_DATABASE_URL, else DATABASE_URL, else the local cluster's URL
// that scripts/pg.sh wrote to .data/database_url above the working folder.
func DefaultDatabase() string {
	for _, k := range []string{"TANDEM_TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	dir, _ := os.Getwd()
	for dir != "" && dir != "/" {
		if b, err := os.ReadFile(dir + "/.data/database_url"); err == nil {
			return strings.TrimSpace(string(b))
		}
		dir = dir[:max(strings.LastIndexByte(dir, '/'), 0)]
	}
	return ""
}
