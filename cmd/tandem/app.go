package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/bot"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/auth"
	"github.com/tandem-chat/tandem/internal/config"
	"github.com/tandem-chat/tandem/internal/db"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/retrieval"
	"github.com/tandem-chat/tandem/web"
)

var errHelp = errors.New("help shown")

// loadConfig reads and validates the environment.
func loadConfig() (*config.Config, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.ResolveLocal(); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Main is the running gateway, shared by the binary and the end-to-end tests.
type Main struct {
	Config    *config.Config
	Logger    *slog.Logger
	Pool      *pgxpool.Pool
	Conv      *handoff.Service
	Auth      *auth.Store
	Index     *retrieval.Index
	Knowledge *knowledge.Service
	Bot       *bot.Bot
	Web       *web.Server

	ln     net.Listener
	bg     context.Context // lives until Close
	cancel context.CancelFunc
	served chan error
}

// NewMain connects to the database, migrates it and wires every package.
func NewMain(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Main, error) {
	pool, err := db.Open(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns))
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if len(applied) > 0 {
		logger.Info("migrated", "versions", strings.Join(applied, ","))
		// Connections opened before the vector extension existed lack its
		// types; start afresh.
		pool.Reset()
	}
	m := &Main{Config: cfg, Logger: logger, Pool: pool}
	m.Index, m.Knowledge, err = newKnowledge(ctx, cfg, pool, logger.Info)
	if err != nil {
		pool.Close()
		return nil, err
	}
	m.Auth = auth.NewStore(pool)
	m.bg, m.cancel = context.WithCancel(context.Background())
	var llm *bot.LLM
	if cfg.LLMEnabled() {
		llm = bot.NewLLM(bot.LLMConfig{BaseURL: cfg.LLMBaseURL, APIKey: cfg.LLMAPIKey, Model: cfg.LLMModel, Timeout: cfg.LLMTimeout})
	}
	m.Bot = bot.New(pool, m.Index, bot.Options{LLM: llm, Vision: cfg.LLMVision, Logger: logger})
	if err := m.Bot.Start(m.bg); err != nil {
		m.cancel()
		pool.Close()
		return nil, err
	}
	blobs, err := newBlobStore(ctx, cfg, pool)
	if err != nil {
		m.cancel()
		pool.Close()
		return nil, err
	}
	m.Conv = handoff.NewService(pool, m.Bot, handoff.Options{
		MaxTextRunes: cfg.MaxTextRunes, Logger: logger, TurnTimeout: cfg.TurnTimeout,
		Attachments: handoff.AttachmentOptions{Store: blobs, MaxBytes: cfg.AttachmentMaxBytes, Types: cfg.AttachmentTypes},
	})
	m.Web = web.New(web.Deps{
		Pool: pool, Conversations: m.Conv, Auth: m.Auth, Logger: logger,
		Knowledge: m.Knowledge, Index: m.Index, Bot: m.Bot,
		Secret: cfg.Secret, PublicURL: cfg.PublicURL, Origins: cfg.Origins,
		WaitTimeout: cfg.WaitTimeout, MaxTextRunes: cfg.MaxTextRunes,
		RateNewConversations: cfg.RateNewConversations, RateMessages: cfg.RateMessages,
		TrustedProxies: cfg.TrustedProxies,
		Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("database unreachable: %w", err)
			}
			pending, err := db.Pending(ctx, pool)
			if err != nil {
				return err
			}
			if len(pending) > 0 {
				return fmt.Errorf("migrations pending: %s", strings.Join(pending, ", "))
			}
			return nil
		},
	})
	return m, nil
}

// Run starts listening on cfg.Addr (":0" picks a port) and serves in the
// background; Addr tells where.
func (m *Main) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.Config.Addr, err)
	}
	m.ln = ln
	go m.Conv.Run(m.bg)
	select {
	case <-m.Conv.Ready():
	case <-time.After(10 * time.Second):
		return errors.New("event listener did not start")
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.Web.App.Listener(ln) }()
	if m.Config.PProfAddr != "" {
		if err := m.servePProf(m.Config.PProfAddr); err != nil {
			return err
		}
	}
	return nil
}

// servePProf serves Go's profiler on its own listener, away from the
// public one, until Close.
func (m *Main) servePProf(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s (TANDEM_PPROF_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// A collection that also gives freed memory back to the system at
	// once, so that measurements of resident memory start from what is
	// live (tandem loadgen sockets reads its baseline after it).
	mux.HandleFunc("POST /debug/free-os-memory", func(w http.ResponseWriter, _ *http.Request) {
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() { <-m.bg.Done(); srv.Close() }()
	m.Logger.Info("profiler serving", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// URL is the server's base URL.
func (m *Main) URL() string { return "http://" + m.Addr() }

// Close shuts down in order, each step bounded: stop accepting and close
// sockets with a going-away code, finish requests in flight, drain bot
// turns, stop listening for events, close the pool.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var err error
	if m.Web != nil && m.ln != nil {
		err = m.Web.Shutdown(ctx)
	}
	if m.Conv != nil {
		m.Conv.Close(ctx)
	}
	if m.Bot != nil {
		m.Bot.Unanswered().Flush() // the last turns' questions, before the pool closes
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.Pool != nil {
		m.Pool.Close()
	}
	return err
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tandem serve\n\nRuns the gateway. Settings come from the environment:")
		for _, v := range config.Vars {
			fmt.Fprintf(stderr, "  %-26s %s (default: %s)\n", v.Name, v.Help, or(v.Default, "none"))
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	m, err := NewMain(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	mode := "local (no LLM configured)"
	if cfg.LLMEnabled() {
		mode = "LLM at " + cfg.LLMBaseURL
	}
	logger.Info("tandem serving", "url", m.URL(), "mode", mode)
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-m.served:
		if err != nil {
			m.Close()
			return err
		}
	}
	return m.Close()
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := db.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	for _, v := range applied {
		fmt.Fprintln(stdout, "applied", v)
	}
	return nil
}

// openStores connects and migrates, for the CLI subcommands.
func openStores(ctx context.Context) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return nil, nil, err
	}
	if applied, err := db.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	} else if len(applied) > 0 {
		pool.Reset()
	}
	return cfg, pool, nil
}

func cmdUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: tandem user create --email E --password P --role agent[,editor,admin] [--name N] [--team T[,T2]]")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "e-mail address (the sign-in name)")
	password := fs.String("password", "", "password, at least 8 characters (or TANDEM_USER_PASSWORD)")
	roles := fs.String("role", "agent", "roles, comma-separated: agent, editor, admin")
	name := fs.String("name", "", "display name shown to customers")
	teams := fs.String("team", "", "teams to join, comma-separated; a team that does not exist is created")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if *password == "" {
		*password = os.Getenv("TANDEM_USER_PASSWORD")
	}
	_, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	var rs []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, r)
		}
	}
	u, err := auth.NewStore(pool).CreateUser(ctx, auth.NewUser{Email: *email, Password: *password, DisplayName: *name, Roles: rs})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (%s) with roles %s\n", u.Email, u.ID, strings.Join(u.Roles, ","))
	conv := handoff.NewService(pool, nil, handoff.Options{})
	for _, t := range strings.Split(*teams, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		created, err := conv.JoinTeam(ctx, u.ID, t)
		if err != nil {
			return fmt.Errorf("team %s: %w", t, err)
		}
		if created {
			fmt.Fprintf(stdout, "created team %s\n", t)
		}
		fmt.Fprintf(stdout, "%s joined team %s\n", u.Email, t)
	}
	return nil
}

// demoUsers are the accounts `make run` creates on its local database.
var demoUsers = []struct{ email, name, role string }{
	{"admin@example.com", "Ada Admin", auth.RoleAdmin},
	{"agent@example.com", "Alex Agent", auth.RoleAgent},
	{"editor@example.com", "Eddie Editor", auth.RoleEditor},
}

func cmdDemoUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, pool, err := openStores(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if !cfg.LocalDB {
		return errors.New("demo accounts are created only on the local database that make run starts, never when DATABASE_URL is set")
	}
	store := auth.NewStore(pool)
	for _, d := range demoUsers {
		_, created, err := store.EnsureUser(ctx, auth.NewUser{Email: d.email, Password: cfg.DemoPassword, DisplayName: d.name, Roles: []string{d.role}})
		if err != nil {
			return err
		}
		verb := "exists"
		if created {
			verb = "created"
		}
		fmt.Fprintf(stdout, "  %-20s %-8s password %q (%s)\n", d.email, d.role, cfg.DemoPassword, verb)
	}
	return nil
}
