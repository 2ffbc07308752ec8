package dbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem/internal/db"
)

// Cluster is a private, throwaway PostgreSQL server for tests that stop,
// kill or restart the database, which must never happen to the server other
// tests share. It runs the same PostgreSQL (with pgvector) that make test
// installs, on a free loopback port, with its data in a temporary folder,
// and holds one migrated database.
type Cluster struct {
	bindir string
	dir    string // data folder
	port   int
	as     *syscall.Credential // the postgres user, when running as root
	url    string

	mu      sync.Mutex
	running bool
}

// NewCluster initialises and starts a private cluster with a migrated
// database, and removes it when the test ends. It takes about two seconds.
// Without PostgreSQL's server programs the test fails, unless
// TANDEM_SKIP_DB is set.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		if os.Getenv("TANDEM_SKIP_DB") != "" {
			t.Skipf("no private PostgreSQL (TANDEM_SKIP_DB set): %v", err)
		}
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(c.Remove)
	return c
}

// StartCluster is NewCluster outside tests (the soak program); call Remove
// when done.
func StartCluster() (*Cluster, error) {
	bindir, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bindir: bindir}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; scripts/pg.sh does the same.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.as = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are closed to the postgres user.
	if c.dir, err = os.MkdirTemp("", "tandem-pg-"); err != nil {
		return nil, err
	}
	if c.as != nil {
		if err := os.Chown(c.dir, int(c.as.Uid), int(c.as.Gid)); err != nil {
			c.Remove()
			return nil, err
		}
	}
	if err := c.init(); err != nil {
		c.Remove()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) init() error {
	if out, err := c.run("initdb", "-D", c.dir, "-U", "tandem", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	// fsync off: these servers are restarted, never crashed with the
	// machine, so what a commit wrote to the kernel survives; and tests
	// stay fast.
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
shared_buffers = 32MB
fsync = off
full_page_writes = off
`, port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := c.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, c.serverURL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE tandem"); err != nil {
		return err
	}
	c.url = c.serverURL("tandem")
	pool, err := db.Open(ctx, c.url, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := db.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func (c *Cluster) serverURL(database string) string {
	return fmt.Sprintf("postgres://tandem@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// URL is the migrated database's URL.
func (c *Cluster) URL() string { return c.url }

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	if out, err := c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s%s", err, out, c.logTail())
	}
	c.running = true
	return nil
}

// Stop shuts the server down the way an operator's restart does (fast:
// sessions are ended, transactions in flight roll back), or, with
// immediate, the way a crash does (no checkpoint; recovery on start).
func (c *Cluster) Stop(immediate bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	if out, err := c.run("pg_ctl", "-D", c.dir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	c.running = false
	return nil
}

// Restart stops the server (see Stop) and starts it again.
func (c *Cluster) Restart(immediate bool) error {
	if err := c.Stop(immediate); err != nil {
		return err
	}
	return c.Start()
}

// Remove stops the server and deletes its data.
func (c *Cluster) Remove() {
	_ = c.Stop(true)
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\nserver log:\n" + strings.Join(lines, "\n")
}

// run runs one of the server's programs, as the postgres user when we are
// root.
func (c *Cluster) run(program string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bindir, program), args...)
	cmd.Dir = c.dir
	if c.as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.as}
		cmd.Env = append(os.Environ(), "HOME="+c.dir)
	}
	// pg_ctl leaves the server running with our stdout; keep it off the
	// test's pipes so the test binary does not wait for it.
	out, err := os.CreateTemp("", "tandem-pg-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, err
}

// serverBinaries finds initdb, pg_ctl and postgres: the newest
// /usr/lib/postgresql/*/bin (Debian, as scripts/install-deps.sh installs),
// else pg_config --bindir, else PATH.
func serverBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, p)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server programs (initdb, pg_ctl, postgres) found: run scripts/install-deps.sh")
}

func version(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
