package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/config"
)

// env returns a getenv over a map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DatabaseURL", c.DatabaseURL, ""},
		{"LocalDB", c.LocalDB, false},
		{"Addr", c.Addr, "127.0.0.1:8080"},
		{"PublicURL", c.PublicURL, "http://127.0.0.1:8080"},
		{"Secret", c.Secret, ""},
		{"DataDir", c.DataDir, ".data"},
		{"LogFormat", c.LogFormat, "text"},
		{"LogLevel", c.LogLevel, "info"},
		{"DemoPassword", c.DemoPassword, "tandem-demo"},
		{"Origins", len(c.Origins), 0},
		{"MaxTextRunes", c.MaxTextRunes, 4000},
		{"WaitTimeout", c.WaitTimeout, 20 * time.Second},
		{"TurnTimeout", c.TurnTimeout, 60 * time.Second},
		{"DBMaxConns", c.DBMaxConns, 20},
		{"LLMBaseURL", c.LLMBaseURL, ""},
		{"LLMModel", c.LLMModel, "gpt-4o-mini"},
		{"LLMTimeout", c.LLMTimeout, 30 * time.Second},
		{"EmbeddingModel", c.EmbeddingModel, ""},
		{"RateNewConversations", c.RateNewConversations, 60},
		{"RateMessages", c.RateMessages, 60},
		{"TrustedProxies", len(c.TrustedProxies), 0},
		{"LLMEnabled", c.LLMEnabled(), false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadValues(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"DATABASE_URL":             "postgres://db/tandem",
		"TANDEM_ADDR":              "0.0.0.0:9000",
		"TANDEM_PUBLIC_URL":        "https://chat.example.com/",
		"TANDEM_ALLOWED_ORIGINS":   " https://shop.example.com/ ,, https://help.example.com ",
		"TANDEM_MAX_MESSAGE_CHARS": "2000",
		"TANDEM_WAIT_TIMEOUT":      "3s",
		"TANDEM_DB_MAX_CONNS":      "5",
		"LLM_BASE_URL":             "https://llm.example.com/v1",
		"TANDEM_RATE_MESSAGES":     "0",
		"TANDEM_TRUSTED_PROXIES":   "10.0.0.0/8, 192.0.2.7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://chat.example.com" {
		t.Errorf("PublicURL %q: want the trailing slash trimmed", c.PublicURL)
	}
	if strings.Join(c.Origins, "|") != "https://shop.example.com|https://help.example.com" {
		t.Errorf("Origins %q", c.Origins)
	}
	if c.Addr != "0.0.0.0:9000" || c.MaxTextRunes != 2000 || c.WaitTimeout != 3*time.Second || c.DBMaxConns != 5 {
		t.Errorf("values not read: %+v", c)
	}
	if !c.LLMEnabled() {
		t.Error("LLMEnabled false with LLM_BASE_URL set")
	}
	if c.RateMessages != 0 || c.RateNewConversations != 60 || strings.Join(c.TrustedProxies, "|") != "10.0.0.0/8|192.0.2.7" {
		t.Errorf("rate limits %d/%d, proxies %q", c.RateNewConversations, c.RateMessages, c.TrustedProxies)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadBadNumbers(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"TANDEM_MAX_MESSAGE_CHARS": "lots",
		"TANDEM_WAIT_TIMEOUT":      "20",
		"LLM_TIMEOUT":              "-1s",
		"TANDEM_RATE_MESSAGES":     "many",
	}))
	if err == nil {
		t.Fatal("no error for bad numbers")
	}
	// One message names every problem.
	for _, want := range []string{"TANDEM_MAX_MESSAGE_CHARS", "TANDEM_WAIT_TIMEOUT", "LLM_TIMEOUT", "TANDEM_RATE_MESSAGES"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("secret", "  from-a-file-0123456789\n")
	dbURL := write("db", "postgres://file/tandem\n")
	key := write("key", "sk-file\n")

	t.Run("ReadAndTrimmed", func(t *testing.T) {
		c, err := config.Load(env(map[string]string{
			"TANDEM_SECRET_FILE": secret, "DATABASE_URL_FILE": dbURL, "LLM_API_KEY_FILE": key,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Secret != "from-a-file-0123456789" || c.DatabaseURL != "postgres://file/tandem" || c.LLMAPIKey != "sk-file" {
			t.Fatalf("secrets %q %q %q", c.Secret, c.DatabaseURL, c.LLMAPIKey)
		}
	})

	t.Run("VariableWins", func(t *testing.T) {
		c, err := config.Load(env(map[string]string{"TANDEM_SECRET": "from-the-environment", "TANDEM_SECRET_FILE": secret}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Secret != "from-the-environment" {
			t.Fatalf("Secret %q", c.Secret)
		}
	})

	t.Run("MissingFile", func(t *testing.T) {
		_, err := config.Load(env(map[string]string{"TANDEM_SECRET_FILE": filepath.Join(dir, "nope")}))
		if err == nil || !strings.Contains(err.Error(), "TANDEM_SECRET_FILE") {
			t.Fatalf("error %v: want one naming TANDEM_SECRET_FILE", err)
		}
	})
}

func TestValidate(t *testing.T) {
	valid := func() *config.Config {
		c, err := config.Load(env(map[string]string{"DATABASE_URL": "postgres://db/tandem", "TANDEM_SECRET": "0123456789abcdef"}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string
	}{
		{"NoDatabase", func(c *config.Config) { c.DatabaseURL = "" }, "DATABASE_URL is not set"},
		{"DatabaseNotPostgres", func(c *config.Config) { c.DatabaseURL = "mysql://db" }, "DATABASE_URL must be a postgres:// URL"},
		{"AddrWithoutPort", func(c *config.Config) { c.Addr = "localhost" }, `TANDEM_ADDR "localhost" is not host:port`},
		{"LogFormat", func(c *config.Config) { c.LogFormat = "xml" }, "TANDEM_LOG_FORMAT must be text or json"},
		{"LogLevel", func(c *config.Config) { c.LogLevel = "loud" }, "TANDEM_LOG_LEVEL must be"},
		{"MaxTextZero", func(c *config.Config) { c.MaxTextRunes = 0 }, "TANDEM_MAX_MESSAGE_CHARS must be between"},
		{"MaxTextHuge", func(c *config.Config) { c.MaxTextRunes = 100001 }, "TANDEM_MAX_MESSAGE_CHARS must be between"},
		{"ShortSecret", func(c *config.Config) { c.Secret = "short" }, "TANDEM_SECRET must be at least 16 characters"},
		{"NegativeRate", func(c *config.Config) { c.RateMessages = -1 }, "TANDEM_RATE_MESSAGES must be 0"},
		{"BadProxy", func(c *config.Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, `"10.0.0.0/33" is neither an address nor a CIDR`},
		{"LLMURLScheme", func(c *config.Config) { c.LLMBaseURL = "llm.example.com" }, "LLM_BASE_URL must start with http:// or https://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v; want a message containing %q", err, tc.want)
			}
		})
	}
	t.Run("KeyValueDSN", func(t *testing.T) {
		c := valid()
		c.DatabaseURL = "host=db dbname=tandem"
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("EveryProblemAtOnce", func(t *testing.T) {
		c := valid()
		c.DatabaseURL, c.LogFormat, c.Secret = "", "xml", "short"
		err := c.Validate()
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"DATABASE_URL", "TANDEM_LOG_FORMAT", "TANDEM_SECRET"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not mention %s", err, want)
			}
		}
	})
}

func TestResolveLocal(t *testing.T) {
	t.Run("GeneratesThenReusesSecret", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data") // created on demand
		c1, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": dir, "DATABASE_URL": "postgres://db/x"}))
		if err := c1.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if len(c1.Secret) != 64 {
			t.Fatalf("generated secret %q: want 64 hex characters", c1.Secret)
		}
		st, err := os.Stat(filepath.Join(dir, "secret"))
		if err != nil {
			t.Fatalf("secret not kept: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("secret file mode %v, want 0600", st.Mode().Perm())
		}
		c2, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": dir, "DATABASE_URL": "postgres://db/x"}))
		if err := c2.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if c2.Secret != c1.Secret {
			t.Fatalf("second run got secret %q, want the kept %q", c2.Secret, c1.Secret)
		}
		if c1.LocalDB || c2.LocalDB {
			t.Error("LocalDB true although DATABASE_URL is set")
		}
		if err := c2.Validate(); err != nil {
			t.Errorf("Validate after ResolveLocal: %v", err)
		}
	})

	t.Run("ConfiguredSecretNotWritten", func(t *testing.T) {
		dir := t.TempDir()
		c, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": dir, "TANDEM_SECRET": "configured-secret-123"}))
		if err := c.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if c.Secret != "configured-secret-123" {
			t.Fatalf("Secret %q", c.Secret)
		}
		if _, err := os.Stat(filepath.Join(dir, "secret")); !os.IsNotExist(err) {
			t.Fatalf("a secret file was written although TANDEM_SECRET is set (%v)", err)
		}
	})

	t.Run("ShortKeptSecretReplaced", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": dir}))
		if err := c.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if len(c.Secret) != 64 {
			t.Fatalf("Secret %q: want a new generated one", c.Secret)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "secret"))
		if strings.TrimSpace(string(b)) != c.Secret {
			t.Fatal("the new secret was not kept")
		}
	})

	t.Run("LocalDatabaseURL", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "database_url"), []byte("postgres://local@127.0.0.1:5999/tandem\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": dir, "TANDEM_SECRET": "configured-secret-123"}))
		if err := c.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if c.DatabaseURL != "postgres://local@127.0.0.1:5999/tandem" || !c.LocalDB {
			t.Fatalf("DatabaseURL %q, LocalDB %v", c.DatabaseURL, c.LocalDB)
		}
	})

	t.Run("NoLocalDatabase", func(t *testing.T) {
		c, _ := config.Load(env(map[string]string{"TANDEM_DATA_DIR": t.TempDir(), "TANDEM_SECRET": "configured-secret-123"}))
		if err := c.ResolveLocal(); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL is not set") {
			t.Fatalf("Validate: %v; want it to explain that there is no database", err)
		}
	})
}

func TestAttachmentSettings(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://db/tandem"}
	load := func(extra map[string]string) (*config.Config, error) {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		for k, v := range extra {
			vars[k] = v
		}
		c, err := config.Load(env(vars))
		if err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AttachmentMaxBytes != 10<<20 || c.AttachmentStore != "postgres" || c.LLMVision ||
		strings.Join(c.AttachmentTypes, ",") != "image/jpeg,image/png,image/webp,image/gif,application/pdf,text/plain" {
		t.Errorf("defaults: %d %s %v %v", c.AttachmentMaxBytes, c.AttachmentStore, c.LLMVision, c.AttachmentTypes)
	}
	c, err = load(map[string]string{"TANDEM_ATTACHMENT_MAX_BYTES": "512kb", "TANDEM_ATTACHMENT_TYPES": " image/PNG , application/pdf ",
		"LLM_VISION": "true", "TANDEM_ATTACHMENT_STORE": "s3", "S3_ENDPOINT": "http://127.0.0.1:9000/", "S3_BUCKET": "att",
		"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AttachmentMaxBytes != 512<<10 || strings.Join(c.AttachmentTypes, ",") != "image/png,application/pdf" || !c.LLMVision ||
		c.S3Endpoint != "http://127.0.0.1:9000" || c.S3Prefix != "tandem/" {
		t.Errorf("values: %d %v %v %q %q", c.AttachmentMaxBytes, c.AttachmentTypes, c.LLMVision, c.S3Endpoint, c.S3Prefix)
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"TANDEM_ATTACHMENT_MAX_BYTES": "lots"}, "not a size"},
		{map[string]string{"TANDEM_ATTACHMENT_MAX_BYTES": "200MB"}, "between 1 byte and 100MB"},
		{map[string]string{"TANDEM_ATTACHMENT_TYPES": "image/svg+xml"}, "cannot be recognised from the content"},
		{map[string]string{"LLM_VISION": "maybe"}, "not true or false"},
		{map[string]string{"TANDEM_ATTACHMENT_STORE": "ftp"}, "must be postgres or s3"},
		{map[string]string{"TANDEM_ATTACHMENT_STORE": "s3"}, "needs S3_ENDPOINT and S3_BUCKET"},
		{map[string]string{"TANDEM_ATTACHMENT_STORE": "s3", "S3_ENDPOINT": "s3.example.com", "S3_BUCKET": "b"}, "S3_ENDPOINT must be a URL"},
		{map[string]string{"TANDEM_ATTACHMENT_STORE": "s3", "S3_ENDPOINT": "https://s3.example.com", "S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "k"}, "go together"},
	} {
		if _, err := load(tc.vars); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want %q", tc.vars, err, tc.want)
		}
	}
}
