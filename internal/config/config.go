// Package config reads Tandem's settings from the environment once, into a
// typed struct with defaults, and explains what is wrong when they are not
// valid.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is every setting the tandem binary reads from its environment.
type Config struct {
	DatabaseURL  string        // DATABASE_URL; unset: the local cluster's URL from the data folder
	LocalDB      bool          // true when DatabaseURL came from the data folder (make run's own cluster)
	Addr         string        // TANDEM_ADDR
	PublicURL    string        // TANDEM_PUBLIC_URL, how browsers reach this server
	Secret       string        // TANDEM_SECRET; generated and kept in the data folder when unset
	DataDir      string        // TANDEM_DATA_DIR
	LogFormat    string        // TANDEM_LOG_FORMAT: text or json
	LogLevel     string        // TANDEM_LOG_LEVEL: debug, info, warn, error
	DemoPassword string        // TANDEM_DEMO_PASSWORD
	Origins      []string      // TANDEM_ALLOWED_ORIGINS: browser origins allowed for WebSockets and CORS
	MaxTextRunes int           // TANDEM_MAX_MESSAGE_CHARS
	WaitTimeout  time.Duration // TANDEM_WAIT_TIMEOUT: bound for ?wait=true
	TurnTimeout  time.Duration // TANDEM_BOT_TURN_TIMEOUT: bound of one bot turn
	DBMaxConns   int           // TANDEM_DB_MAX_CONNS
	PProfAddr    string        // TANDEM_PPROF_ADDR: where to serve Go's profiler; unset: nowhere

	// RateNewConversations is how many conversations one client address may
	// start per minute (TANDEM_RATE_NEW_CONVERSATIONS); 0 means no limit.
	RateNewConversations int
	// RateMessages is how many messages a customer may send in one
	// conversation per minute, over REST and WebSocket together
	// (TANDEM_RATE_MESSAGES); 0 means no limit.
	RateMessages int
	// TrustedProxies are the addresses or CIDR ranges of reverse proxies
	// whose X-Forwarded-For header names the client (TANDEM_TRUSTED_PROXIES).
	TrustedProxies []string

	LLMBaseURL     string        // LLM_BASE_URL: an OpenAI-compatible endpoint; unset means local mode
	LLMAPIKey      string        // LLM_API_KEY
	LLMModel       string        // LLM_MODEL
	LLMTimeout     time.Duration // LLM_TIMEOUT
	EmbeddingModel string        // EMBEDDING_MODEL: remote embedding model; unset means the local embedder
	LLMVision      bool          // LLM_VISION: the chat model takes images; customers' photos are shown to it

	AttachmentMaxBytes int64    // TANDEM_ATTACHMENT_MAX_BYTES
	AttachmentTypes    []string // TANDEM_ATTACHMENT_TYPES: content types accepted, found by sniffing
	AttachmentStore    string   // TANDEM_ATTACHMENT_STORE: postgres or s3
	S3Endpoint         string   // S3_ENDPOINT: URL of an S3-compatible store, e.g. https://s3.eu-west-1.amazonaws.com
	S3Bucket           string   // S3_BUCKET
	S3Region           string   // S3_REGION
	S3AccessKeyID      string   // S3_ACCESS_KEY_ID
	S3SecretAccessKey  string   // S3_SECRET_ACCESS_KEY (also _FILE)
	S3Prefix           string   // S3_PREFIX: folder for Tandem's objects in the bucket
}

// DefaultAttachmentTypes are the attachment types accepted unless
// TANDEM_ATTACHMENT_TYPES says otherwise.
var DefaultAttachmentTypes = []string{"image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf", "text/plain"}

// SniffableTypes are the types TANDEM_ATTACHMENT_TYPES may name: those that
// content sniffing recognises (the WHATWG algorithm of
// http.DetectContentType). HTML and SVG are left out on purpose: they
// carry scripts.
var SniffableTypes = append(append([]string{}, DefaultAttachmentTypes...),
	"application/zip", "video/mp4", "video/webm", "audio/mpeg", "audio/wave", "application/ogg")

// Var documents one environment variable for --help.
type Var struct {
	Name, Default, Help string
}

// Vars lists every variable Load reads, for `tandem serve --help` and the README.
var Vars = []Var{
	{"DATABASE_URL", "(local cluster in the data folder)", "PostgreSQL with pgvector; also DATABASE_URL_FILE"},
	{"TANDEM_ADDR", "127.0.0.1:8080", "address to listen on"},
	{"TANDEM_PUBLIC_URL", "http://TANDEM_ADDR", "URL browsers use to reach Tandem"},
	{"TANDEM_SECRET", "(generated into the data folder)", "site secret for identity hashes and signing; also TANDEM_SECRET_FILE"},
	{"TANDEM_DATA_DIR", ".data", "folder for local state (local database URL, generated secret)"},
	{"TANDEM_ALLOWED_ORIGINS", "(the public URL)", "comma-separated browser origins allowed for WebSockets and the widget"},
	{"TANDEM_LOG_FORMAT", "text", "text or json"},
	{"TANDEM_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"TANDEM_DEMO_PASSWORD", "tandem-demo", "password of the demo accounts that make run creates locally"},
	{"TANDEM_MAX_MESSAGE_CHARS", "4000", "longest message text accepted"},
	{"TANDEM_WAIT_TIMEOUT", "20s", "how long ?wait=true waits for the bot's turn"},
	{"TANDEM_BOT_TURN_TIMEOUT", "60s", "bound of one bot turn; a turn left unanswered (its instance stopped) runs again on any instance after twice this and 5 s"},
	{"TANDEM_DB_MAX_CONNS", "20", "database connections per instance"},
	{"TANDEM_PPROF_ADDR", "(unset: off)", "address to serve Go's profiler on (/debug/pprof/), e.g. 127.0.0.1:6060; keep it private"},
	{"TANDEM_RATE_NEW_CONVERSATIONS", "60", "conversations one client address may start per minute (0: no limit)"},
	{"TANDEM_RATE_MESSAGES", "60", "messages a customer may send per conversation per minute (0: no limit)"},
	{"TANDEM_TRUSTED_PROXIES", "(none)", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For names the client"},
	{"LLM_BASE_URL", "(unset: local mode)", "OpenAI-compatible endpoint, e.g. https://api.openai.com/v1"},
	{"LLM_API_KEY", "", "API key for the endpoint; also LLM_API_KEY_FILE"},
	{"LLM_MODEL", "gpt-4o-mini", "chat model name"},
	{"LLM_TIMEOUT", "30s", "timeout of one LLM call"},
	{"EMBEDDING_MODEL", "(unset: local embedder)", "embedding model on the endpoint, e.g. text-embedding-3-small"},
	{"LLM_VISION", "false", "true when LLM_MODEL takes images: customers' photos are passed to it"},
	{"TANDEM_ATTACHMENT_MAX_BYTES", "10MB", "largest attachment, in bytes or with KB/MB"},
	{"TANDEM_ATTACHMENT_TYPES", strings.Join(DefaultAttachmentTypes, ","), "content types customers and agents may attach (checked by sniffing the content)"},
	{"TANDEM_ATTACHMENT_STORE", "postgres", "where attachments' bytes live: postgres (the database) or s3"},
	{"S3_ENDPOINT", "", "S3-compatible endpoint URL for TANDEM_ATTACHMENT_STORE=s3, e.g. https://s3.eu-west-1.amazonaws.com"},
	{"S3_BUCKET", "", "bucket for attachments (it must exist)"},
	{"S3_REGION", "(the endpoint's default)", "bucket region"},
	{"S3_ACCESS_KEY_ID", "", "access key; also S3_ACCESS_KEY_ID_FILE"},
	{"S3_SECRET_ACCESS_KEY", "", "secret key; also S3_SECRET_ACCESS_KEY_FILE"},
	{"S3_PREFIX", "tandem/", "key prefix (folder) for Tandem's objects"},
}

// Load reads the environment (through getenv, so tests can supply their own)
// and fills in defaults. It does not validate; call Validate.
func Load(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{
		Addr:           or(getenv("TANDEM_ADDR"), "127.0.0.1:8080"),
		DataDir:        or(getenv("TANDEM_DATA_DIR"), ".data"),
		LogFormat:      or(getenv("TANDEM_LOG_FORMAT"), "text"),
		LogLevel:       or(getenv("TANDEM_LOG_LEVEL"), "info"),
		DemoPassword:   or(getenv("TANDEM_DEMO_PASSWORD"), "tandem-demo"),
		LLMBaseURL:     getenv("LLM_BASE_URL"),
		LLMModel:       or(getenv("LLM_MODEL"), "gpt-4o-mini"),
		EmbeddingModel: getenv("EMBEDDING_MODEL"),
		PProfAddr:      getenv("TANDEM_PPROF_ADDR"),
	}
	c.AttachmentStore = strings.ToLower(or(getenv("TANDEM_ATTACHMENT_STORE"), "postgres"))
	c.S3Endpoint = strings.TrimRight(getenv("S3_ENDPOINT"), "/")
	c.S3Bucket = getenv("S3_BUCKET")
	c.S3Region = getenv("S3_REGION")
	c.S3Prefix = getenv("S3_PREFIX")
	if c.S3Prefix == "" {
		c.S3Prefix = "tandem/"
	}
	c.AttachmentTypes = DefaultAttachmentTypes
	if v := getenv("TANDEM_ATTACHMENT_TYPES"); strings.TrimSpace(v) != "" {
		c.AttachmentTypes = nil
		for _, t := range strings.Split(v, ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
				c.AttachmentTypes = append(c.AttachmentTypes, t)
			}
		}
	}
	var err error
	var problems []string
	if c.DatabaseURL, err = secret(getenv, "DATABASE_URL"); err != nil {
		problems = append(problems, err.Error())
	}
	if c.Secret, err = secret(getenv, "TANDEM_SECRET"); err != nil {
		problems = append(problems, err.Error())
	}
	if c.LLMAPIKey, err = secret(getenv, "LLM_API_KEY"); err != nil {
		problems = append(problems, err.Error())
	}
	if c.MaxTextRunes, err = intVar(getenv, "TANDEM_MAX_MESSAGE_CHARS", 4000); err != nil {
		problems = append(problems, err.Error())
	}
	if c.DBMaxConns, err = intVar(getenv, "TANDEM_DB_MAX_CONNS", 20); err != nil {
		problems = append(problems, err.Error())
	}
	if c.RateNewConversations, err = intVar(getenv, "TANDEM_RATE_NEW_CONVERSATIONS", 60); err != nil {
		problems = append(problems, err.Error())
	}
	if c.RateMessages, err = intVar(getenv, "TANDEM_RATE_MESSAGES", 60); err != nil {
		problems = append(problems, err.Error())
	}
	for _, p := range strings.Split(getenv("TANDEM_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	if c.WaitTimeout, err = durVar(getenv, "TANDEM_WAIT_TIMEOUT", 20*time.Second); err != nil {
		problems = append(problems, err.Error())
	}
	if c.TurnTimeout, err = durVar(getenv, "TANDEM_BOT_TURN_TIMEOUT", 60*time.Second); err != nil {
		problems = append(problems, err.Error())
	}
	if c.LLMTimeout, err = durVar(getenv, "LLM_TIMEOUT", 30*time.Second); err != nil {
		problems = append(problems, err.Error())
	}
	if c.LLMVision, err = boolVar(getenv, "LLM_VISION"); err != nil {
		problems = append(problems, err.Error())
	}
	if c.AttachmentMaxBytes, err = bytesVar(getenv, "TANDEM_ATTACHMENT_MAX_BYTES", 10<<20); err != nil {
		problems = append(problems, err.Error())
	}
	if c.S3AccessKeyID, err = secret(getenv, "S3_ACCESS_KEY_ID"); err != nil {
		problems = append(problems, err.Error())
	}
	if c.S3SecretAccessKey, err = secret(getenv, "S3_SECRET_ACCESS_KEY"); err != nil {
		problems = append(problems, err.Error())
	}
	c.PublicURL = strings.TrimRight(or(getenv("TANDEM_PUBLIC_URL"), "http://"+c.Addr), "/")
	for _, o := range strings.Split(getenv("TANDEM_ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			c.Origins = append(c.Origins, o)
		}
	}
	if len(problems) > 0 {
		return c, errors.New("config: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// Validate explains, in one message, everything that is wrong.
func (c *Config) Validate() error {
	var problems []string
	if c.DatabaseURL == "" {
		problems = append(problems, "DATABASE_URL is not set and there is no local database (run `make run`, or set DATABASE_URL)")
	} else if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.Contains(c.DatabaseURL, "=") {
		problems = append(problems, "DATABASE_URL must be a postgres:// URL or a key=value connection string")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		problems = append(problems, fmt.Sprintf("TANDEM_ADDR %q is not host:port", c.Addr))
	}
	if c.PProfAddr != "" {
		if _, _, err := net.SplitHostPort(c.PProfAddr); err != nil {
			problems = append(problems, fmt.Sprintf("TANDEM_PPROF_ADDR %q is not host:port", c.PProfAddr))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		problems = append(problems, "TANDEM_LOG_FORMAT must be text or json")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, "TANDEM_LOG_LEVEL must be debug, info, warn or error")
	}
	if c.MaxTextRunes < 1 || c.MaxTextRunes > 100000 {
		problems = append(problems, "TANDEM_MAX_MESSAGE_CHARS must be between 1 and 100000")
	}
	if c.RateNewConversations < 0 || c.RateMessages < 0 {
		problems = append(problems, "TANDEM_RATE_NEW_CONVERSATIONS and TANDEM_RATE_MESSAGES must be 0 (no limit) or more")
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			problems = append(problems, fmt.Sprintf("TANDEM_TRUSTED_PROXIES: %q is neither an address nor a CIDR range", p))
		}
	}
	if c.Secret != "" && len(c.Secret) < 16 {
		problems = append(problems, "TANDEM_SECRET must be at least 16 characters")
	}
	if c.LLMBaseURL != "" && !strings.HasPrefix(c.LLMBaseURL, "http://") && !strings.HasPrefix(c.LLMBaseURL, "https://") {
		problems = append(problems, "LLM_BASE_URL must start with http:// or https://")
	}
	if c.AttachmentMaxBytes < 1 || c.AttachmentMaxBytes > 100<<20 {
		problems = append(problems, "TANDEM_ATTACHMENT_MAX_BYTES must be between 1 byte and 100MB")
	}
	if len(c.AttachmentTypes) == 0 {
		problems = append(problems, "TANDEM_ATTACHMENT_TYPES must name at least one type")
	}
	for _, t := range c.AttachmentTypes {
		known := false
		for _, k := range SniffableTypes {
			known = known || k == t
		}
		if !known {
			problems = append(problems, fmt.Sprintf("TANDEM_ATTACHMENT_TYPES: %q cannot be recognised from the content; use some of %s",
				t, strings.Join(SniffableTypes, ", ")))
		}
	}
	switch c.AttachmentStore {
	case "postgres":
	case "s3":
		if c.S3Bucket == "" || c.S3Endpoint == "" {
			problems = append(problems, "TANDEM_ATTACHMENT_STORE=s3 needs S3_ENDPOINT and S3_BUCKET")
		} else if !strings.HasPrefix(c.S3Endpoint, "http://") && !strings.HasPrefix(c.S3Endpoint, "https://") {
			problems = append(problems, "S3_ENDPOINT must be a URL starting with http:// or https://")
		}
		if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
			problems = append(problems, "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together")
		}
	default:
		problems = append(problems, "TANDEM_ATTACHMENT_STORE must be postgres or s3")
	}
	if len(problems) > 0 {
		return errors.New("config: " + strings.Join(problems, "; "))
	}
	return nil
}

// LLMEnabled reports whether an OpenAI-compatible endpoint is configured;
// without one Tandem runs in local mode.
func (c *Config) LLMEnabled() bool { return c.LLMBaseURL != "" }

// ResolveLocal fills what local runs keep in the data folder: the local
// cluster's URL when DATABASE_URL is unset, and a generated secret when
// TANDEM_SECRET is unset.
func (c *Config) ResolveLocal() error {
	if c.DatabaseURL == "" {
		b, err := os.ReadFile(filepath.Join(c.DataDir, "database_url"))
		if err == nil {
			c.DatabaseURL = strings.TrimSpace(string(b))
			c.LocalDB = c.DatabaseURL != ""
		}
	}
	if c.Secret == "" {
		path := filepath.Join(c.DataDir, "secret")
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) >= 16 {
			c.Secret = strings.TrimSpace(string(b))
			return nil
		}
		var r [32]byte
		if _, err := rand.Read(r[:]); err != nil {
			return err
		}
		c.Secret = hex.EncodeToString(r[:])
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("config: data folder: %w", err)
		}
		if err := os.WriteFile(path, []byte(c.Secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("config: keep secret: %w", err)
		}
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// secret reads NAME, or the file named by NAME_FILE.
func secret(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	if f := getenv(name + "_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %v", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s %q is not a whole number", name, v)
	}
	return n, nil
}

func boolVar(getenv func(string) string, name string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(getenv(name))) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("%s %q is not true or false", name, getenv(name))
}

// bytesVar reads a size: a whole number of bytes, or one with KB or MB
// (powers of 1024).
func bytesVar(getenv func(string) string, name string, def int64) (int64, error) {
	v := strings.ToUpper(strings.TrimSpace(getenv(name)))
	if v == "" {
		return def, nil
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "MB"):
		mult, v = 1<<20, strings.TrimSpace(strings.TrimSuffix(v, "MB"))
	case strings.HasSuffix(v, "KB"):
		mult, v = 1<<10, strings.TrimSpace(strings.TrimSuffix(v, "KB"))
	case strings.HasSuffix(v, "B"):
		v = strings.TrimSpace(strings.TrimSuffix(v, "B"))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<40/mult {
		return def, fmt.Errorf("%s %q is not a size like 10MB", name, getenv(name))
	}
	return n * mult, nil
}

func durVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return def, fmt.Errorf("%s %q is not a duration like 20s", name, v)
	}
	return d, nil
}
