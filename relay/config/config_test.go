package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/skype-relay/relay/relay"
)

// Sections of a minimal valid config, for tests to combine.
const (
	convsYAML = "conversations:\n  oncall: {to: \"sip:oncall@contoso.com\"}\n"
	routeYAML = "routes:\n  - {name: prod, format: alertmanager, conversations: [oncall]}\n"
	minimal   = convsYAML + routeYAML
)

// env returns a getenv backed by a map.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// mustParse parses yaml with dir as the config directory and fails the test
// on error.
func mustParse(t *testing.T, yaml, dir string, getenv func(string) string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml), dir, getenv)
	if err != nil {
		t.Fatalf("Parse() error:\n%v", err)
	}
	return cfg
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseMinimalDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, minimal, "/etc/relay", nil)

	want := &Config{
		ListenAddress: DefaultListenAddress,
		Database:      Database{MaxConns: 16},
		API:           API{RedeliverWindow: time.Minute},
		Console:       Console{SessionTTL: 12 * time.Hour},
		Ingest: Ingest{
			MaxBodyBytes:   1 << 20,
			DedupWindow:    15 * time.Minute,
			ReadTimeout:    10 * time.Second,
			WriteTimeout:   20 * time.Second,
			IdleTimeout:    120 * time.Second,
			RequestTimeout: 10 * time.Second,
			BatchMax:       64, MaxMessageBytes: 8192, MaxParts: 10,
			BatchMaxBytes: 8 << 20, MaxInflightBytes: 64 << 20, MaxMessagesPerNotification: 20,
		},
		UCWA: UCWA{Timers: UCWATimers{
			RequestTimeout:    30 * time.Second,
			EventTimeout:      180 * time.Second,
			InvitationTimeout: 45 * time.Second,
			MessageTimeout:    60 * time.Second,
			RetryMin:          time.Second,
			RetryMax:          time.Minute,
			FailoverMin:       time.Second,
			FailoverMax:       5 * time.Minute,
		}},
		Conversations: map[string]Conversation{
			"oncall": {Name: "oncall", To: Recipients{"sip:oncall@contoso.com"}, Importance: "Normal"},
		},
		Routes: []Route{{
			Name:          "prod",
			Format:        "alertmanager",
			Conversations: []string{"oncall"},
			Template:      "alertmanager",
			Delivery:      RouteDelivery{MaxAttempts: 10, MaxAge: 2 * time.Hour, Uncertain: "resend", MaxResends: 2, Supersede: true, Coalesce: true, CoalesceAfter: 3},
		}},
		Delivery: Delivery{
			MaxInFlight: 128, Lease: 5 * time.Minute, PollInterval: time.Second, DrainTimeout: 10 * time.Second,
			SessionTTL: 6 * time.Second, RetryBase: 2 * time.Second, RetryMax: 5 * time.Minute,
		},
		Retention: 30 * 24 * time.Hour,
		Log:       Log{Level: "info", Format: "json"},
		Dir:       "/etc/relay",
	}
	opts := cmp.Options{cmp.AllowUnexported(Secret{}), cmpopts.IgnoreFields(UCWA{}, "RootCAs")}
	if diff := cmp.Diff(want, cfg, opts); diff != "" {
		t.Errorf("Parse(minimal) mismatch (-want +got):\n%s", diff)
	}
	if cfg.API.Enabled() || cfg.UCWA.Enabled() {
		t.Errorf("API.Enabled() = %v, UCWA.Enabled() = %v; want both false", cfg.API.Enabled(), cfg.UCWA.Enabled())
	}
	if err := cfg.RequireDatabase(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("RequireDatabase() = %v, want an error naming DATABASE_URL", err)
	}
}

func TestParseFullFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "custom.tmpl", "{{ .Status }}")
	yaml := `
listen_address: "0.0.0.0:8080"
database: {max_conns: 4}
ingest:
  max_body_bytes: 2048
  dedup_window: 1h
  read_timeout: 1s
  write_timeout: 9s
  idle_timeout: 3s
  request_timeout: 4s
  batch_max: 8
  batch_max_bytes: 1048576
  max_inflight_bytes: 4096
  max_messages_per_notification: 5
ucwa:
  discovery_urls: ["https://lyncdiscover.contoso.com/", "https://lyncdiscover.backup.contoso.com"]
  username: alerts@contoso.com
  allowed_hosts: [fe1.contoso.com, "fe2.contoso.com:4443", "10.0.0.1"]
  insecure_skip_verify: true
  timers: {request_timeout: 5s, failover_max: 10m}
conversations:
  oncall: {to: "sip:oncall@contoso.com", subject: "Prod", importance: Urgent}
  dev: {to: "sip:dev@contoso.com"}
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall, dev]
    template: custom.tmpl
  - name: staging_2
    format: alertmanager
    conversations: [dev]
log: {level: debug, format: text}
`
	cfg := mustParse(t, yaml, dir, env(EnvUCWAPassword, "pw", EnvDatabaseURL, "postgres://relay@db/relay"))

	if got, want := cfg.ListenAddress, "0.0.0.0:8080"; got != want {
		t.Errorf("ListenAddress = %q, want %q", got, want)
	}
	wantIngest := Ingest{2048, time.Hour, time.Second, 9 * time.Second, 3 * time.Second, 4 * time.Second, 8, 1 << 20, 4096, 8192, 10, 5}
	if diff := cmp.Diff(wantIngest, cfg.Ingest); diff != "" {
		t.Errorf("Ingest mismatch (-want +got):\n%s", diff)
	}
	wantTimers := DefaultUCWATimers()
	wantTimers.RequestTimeout = 5 * time.Second
	wantTimers.FailoverMax = 10 * time.Minute
	if diff := cmp.Diff(wantTimers, cfg.UCWA.Timers); diff != "" {
		t.Errorf("UCWA.Timers mismatch (-want +got):\n%s", diff)
	}
	if !cfg.UCWA.Enabled() || !cfg.UCWA.InsecureSkipVerify || cfg.UCWA.Password.Reveal() != "pw" {
		t.Errorf("UCWA = %+v, want enabled, insecure, password from env", cfg.UCWA)
	}
	r, ok := cfg.Route("prod")
	if !ok {
		t.Fatal(`Route("prod") not found`)
	}
	if got, want := r.TemplateFile, filepath.Join(dir, "custom.tmpl"); got != want {
		t.Errorf("TemplateFile = %q, want %q", got, want)
	}
	wantTargets := []relay.Target{
		{To: "sip:oncall@contoso.com", Subject: "Prod", Importance: "Urgent"},
		{To: "sip:dev@contoso.com", Importance: "Normal"},
	}
	var gotTargets []relay.Target
	for _, name := range r.Conversations {
		gotTargets = append(gotTargets, cfg.Targets(name)...)
	}
	if diff := cmp.Diff(wantTargets, gotTargets); diff != "" {
		t.Errorf("Targets mismatch (-want +got):\n%s", diff)
	}
	if r2, ok := cfg.Route("staging_2"); !ok || r2.TemplateFile != "" || r2.Template != DefaultTemplate {
		t.Errorf(`Route("staging_2") = %+v, %v; want shipped template %q`, r2, ok, DefaultTemplate)
	}
	if _, ok := cfg.Route("nope"); ok {
		t.Error(`Route("nope") found, want not found`)
	}
	if cfg.Log.SlogLevel().String() != "DEBUG" {
		t.Errorf("SlogLevel() = %v, want DEBUG", cfg.Log.SlogLevel())
	}
	if err := cfg.RequireDatabase(); err != nil {
		t.Errorf("RequireDatabase() = %v, want nil", err)
	}
	if got := cfg.DatabaseURL(); got != "postgres://relay@db/relay" {
		t.Errorf("DatabaseURL() = %q", got)
	}
}

func TestListenAddressEnvOverride(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "listen_address: 127.0.0.1:1\n"+minimal, "", env(EnvListenAddress, "127.0.0.1:0"))
	if cfg.ListenAddress != "127.0.0.1:0" {
		t.Errorf("ListenAddress = %q, want the env value 127.0.0.1:0", cfg.ListenAddress)
	}
	// A bad value names the variable, not the key.
	_, err := Parse([]byte(minimal), "", env(EnvListenAddress, "nope"))
	if ps := AsProblems(err); len(ps) != 1 || ps[0].Key != EnvListenAddress {
		t.Errorf("Parse with bad %s = %v, want one problem keyed %s", EnvListenAddress, err, EnvListenAddress)
	}
}

func TestDatabaseURLFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "db", "postgres://u:pw@db:5432/relay\n")
	cfg := mustParse(t, minimal, "", env(EnvDatabaseURLFile, p))
	if got := cfg.DatabaseURL(); got != "postgres://u:pw@db:5432/relay" {
		t.Errorf("DatabaseURL() = %q", got)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "token", "route-secret\n")
	path := writeFile(t, dir, "relay.yaml", convsYAML+`routes:
  - {name: prod, format: alertmanager, conversations: [oncall], bearer_token_file: token}
`)

	t.Run("path argument, relative secret file", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(path, nil)
		if err != nil {
			t.Fatalf("Load(%q) error: %v", path, err)
		}
		if cfg.Dir != dir {
			t.Errorf("Dir = %q, want %q", cfg.Dir, dir)
		}
		if got := cfg.Routes[0].BearerToken.Reveal(); got != "route-secret" {
			t.Errorf("route token = %q, want the file's content", got)
		}
	})
	t.Run("RELAY_CONFIG", func(t *testing.T) {
		t.Parallel()
		if _, err := Load("", env(EnvConfig, path)); err != nil {
			t.Errorf("Load with %s error: %v", EnvConfig, err)
		}
	})
	t.Run("no path", func(t *testing.T) {
		t.Parallel()
		_, err := Load("", nil)
		if err == nil || !strings.Contains(err.Error(), EnvConfig) {
			t.Errorf("Load(\"\") = %v, want an error mentioning %s", err, EnvConfig)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(dir, "missing.yaml")
		_, err := Load(missing, nil)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("Load(missing) = %v, want ErrNotExist naming the path", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		_, err := Load(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(dir) = %v, want not a regular file", err)
		}
	})
	t.Run("invalid names the file", func(t *testing.T) {
		t.Parallel()
		bad := writeFile(t, t.TempDir(), "bad.yaml", "routes: []\n")
		_, err := Load(bad, nil)
		if err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, relay.ErrInvalid) {
			t.Errorf("Load(bad) = %v, want an ErrInvalid naming %s", err, bad)
		}
	})
}

func TestRouteTokenEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, want string }{
		{"prod", "RELAY_ROUTE_PROD_TOKEN"},
		{"prod-eu", "RELAY_ROUTE_PROD_EU_TOKEN"},
		{"ci_2", "RELAY_ROUTE_CI_2_TOKEN"},
	} {
		if got := RouteTokenEnv(tc.name); got != tc.want {
			t.Errorf("RouteTokenEnv(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestConfigsAreIndependent guards hot reload: two loads share nothing.
func TestConfigsAreIndependent(t *testing.T) {
	t.Parallel()
	a := mustParse(t, minimal, "", nil)
	b := mustParse(t, minimal, "", nil)
	a.Routes[0].Conversations[0] = "changed"
	a.Conversations["oncall"] = Conversation{To: Recipients{"sip:x@y"}}
	a.Ingest.BatchMax = 1
	if b.Routes[0].Conversations[0] != "oncall" || b.Conversations["oncall"].To[0] != "sip:oncall@contoso.com" || b.Ingest.BatchMax != 64 {
		t.Error("changing one Config changed another")
	}
}

func mkdir(p string) error { return os.MkdirAll(p, 0o700) }
