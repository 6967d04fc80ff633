package config

import (
	"bytes"
	"net/url"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	examplePath      = "../../deploy/relay.example.yaml"
	alertmanagerPath = "../../deploy/alertmanager.yml"
)

// TestExampleConfigLoads loads deploy/relay.example.yaml as shipped. Its
// secret files do not exist here, so the environment supplies the secrets,
// which also proves env beats the *_file keys.
func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := Load(examplePath, env(
		"RELAY_API_TOKEN", "api",
		"RELAY_UCWA_PASSWORD", "pw",
		"RELAY_ROUTE_PROD_TOKEN", "tok",
	))
	if err != nil {
		t.Fatalf("Load(%s) error:\n%v", examplePath, err)
	}
	r, ok := cfg.Route("prod")
	if !ok || r.Format != "alertmanager" || len(cfg.Targets(r.Conversations[0])) != 1 || !r.BearerToken.IsSet() {
		t.Errorf(`Route("prod") = %+v, %v; want an alertmanager route with one target and a token`, r, ok)
	}
	if !cfg.UCWA.Enabled() || !cfg.API.Enabled() {
		t.Errorf("UCWA.Enabled() = %v, API.Enabled() = %v; want both", cfg.UCWA.Enabled(), cfg.API.Enabled())
	}
	// The example spells out the defaults: it must agree with the code.
	def := mustParse(t, minimal, "", nil)
	if cfg.Ingest != def.Ingest || cfg.UCWA.Timers != def.UCWA.Timers || cfg.Database.MaxConns != def.Database.MaxConns ||
		cfg.ListenAddress != def.ListenAddress || cfg.Log != def.Log {
		t.Errorf("example values differ from the defaults:\nexample %+v %+v\ndefault %+v %+v",
			cfg.Ingest, cfg.UCWA.Timers, def.Ingest, def.UCWA.Timers)
	}

	// Without the environment, the absent secret files are reported, each
	// naming its key and the variables that could replace it.
	_, err = Load(examplePath, nil)
	ps := AsProblems(err)
	if got, want := strings.Join(ps.Keys(), " "), "api.bearer_token_file ucwa.password_file routes[0].bearer_token_file"; got != want {
		t.Errorf("Load without env: problem keys %q, want %q\n%v", got, want, err)
	}
}

// TestExampleConfigDocumentsEveryKey checks each key of the example has a
// comment: on its line, or above it or above the run of sibling keys it
// belongs to.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if keys := undocumentedKeys(string(data)); len(keys) > 0 {
		t.Errorf("%s: keys without a comment: %q", examplePath, keys)
	}
	// The checker itself finds a missing comment.
	if got := undocumentedKeys("a:\n  # doc\n  b: 1\n  c: 2\n\n  d: 3\n  e: 4 # doc\n"); len(got) != 1 || got[0] != "d: 3" {
		t.Errorf("undocumentedKeys found %q, want [\"d: 3\"]", got)
	}
}

func undocumentedKeys(text string) []string {
	lines := strings.Split(text, "\n")
	isComment := func(s string) bool {
		s = strings.TrimSpace(s)
		return strings.HasPrefix(s, "#") || strings.HasPrefix(s, "- #")
	}
	// isLeafKey: "key: value" without its own comment (headers ending in
	// ':' are documented through their children).
	isLeafKey := func(s string) bool {
		s = strings.TrimSpace(s)
		return s != "" && !isComment(s) && strings.Contains(s, ":") && !strings.HasSuffix(s, ":") &&
			!strings.HasPrefix(s, "- \"")
	}
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	var missing []string
	for i, line := range lines {
		if !isLeafKey(line) || strings.Contains(line, "#") {
			continue
		}
		j := i - 1
		for j >= 0 && isLeafKey(lines[j]) && indent(lines[j]) == indent(line) {
			j--
		}
		if j < 0 || !isComment(lines[j]) {
			missing = append(missing, strings.TrimSpace(line))
		}
	}
	return missing
}

// alertmanagerConfig is the part of Alertmanager's configuration that
// deploy/alertmanager.yml uses; decoding with KnownFields catches typos.
type alertmanagerConfig struct {
	Route struct {
		Receiver       string   `yaml:"receiver"`
		GroupBy        []string `yaml:"group_by"`
		GroupWait      string   `yaml:"group_wait"`
		GroupInterval  string   `yaml:"group_interval"`
		RepeatInterval string   `yaml:"repeat_interval"`
	} `yaml:"route"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL          string `yaml:"url"`
			SendResolved *bool  `yaml:"send_resolved"`
			MaxAlerts    *int   `yaml:"max_alerts"`
			HTTPConfig   struct {
				Authorization struct {
					Type            string `yaml:"type"`
					CredentialsFile string `yaml:"credentials_file"`
				} `yaml:"authorization"`
			} `yaml:"http_config"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
}

// TestAlertmanagerExampleMatchesRelay checks deploy/alertmanager.yml is
// well-formed and posts to the route, address and token file of the relay
// example.
func TestAlertmanagerExampleMatchesRelay(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(alertmanagerPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var am alertmanagerConfig
	if err := dec.Decode(&am); err != nil {
		t.Fatalf("decode %s: %v", alertmanagerPath, err)
	}
	if am.Route.Receiver != "relay" || len(am.Receivers) != 1 || am.Receivers[0].Name != "relay" ||
		len(am.Receivers[0].WebhookConfigs) != 1 {
		t.Fatalf("%s: want route -> one receiver relay with one webhook config, got %+v", alertmanagerPath, am)
	}
	wh := am.Receivers[0].WebhookConfigs[0]
	if wh.SendResolved == nil || !*wh.SendResolved || wh.MaxAlerts == nil || *wh.MaxAlerts != 0 {
		t.Errorf("webhook send_resolved/max_alerts = %v/%v, want true/0", wh.SendResolved, wh.MaxAlerts)
	}
	if wh.HTTPConfig.Authorization.Type != "Bearer" {
		t.Errorf("authorization type = %q, want Bearer", wh.HTTPConfig.Authorization.Type)
	}

	cfg, err := Load(examplePath, env("RELAY_API_TOKEN", "a", "RELAY_UCWA_PASSWORD", "p", "RELAY_ROUTE_PROD_TOKEN", "t"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(wh.URL)
	if err != nil {
		t.Fatalf("webhook url %q: %v", wh.URL, err)
	}
	if u.Scheme != "http" || u.Host != cfg.ListenAddress {
		t.Errorf("webhook url %q does not point at listen_address %s", wh.URL, cfg.ListenAddress)
	}
	name, ok := strings.CutPrefix(u.Path, "/v1/webhooks/")
	r, found := cfg.Route(name)
	if !ok || !found {
		t.Fatalf("webhook url path %q is not /v1/webhooks/<a route of the example>", u.Path)
	}
	if wh.HTTPConfig.Authorization.CredentialsFile != r.BearerTokenFile {
		t.Errorf("credentials_file = %q, want the route's bearer_token_file %q",
			wh.HTTPConfig.Authorization.CredentialsFile, r.BearerTokenFile)
	}
}
