package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const routeWithTokenFile = convsYAML + `routes:
  - {name: prod-eu, format: alertmanager, conversations: [oncall], bearer_token_file: secrets/route}
api: {bearer_token_file: secrets/api}
ucwa:
  discovery_urls: ["https://lyncdiscover.contoso.com"]
  username: alerts@contoso.com
  password_file: secrets/ucwa
`

// secretsDir writes the three secret files the config above names.
func secretsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := mkdir(dir + "/secrets"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "secrets/route", "route-from-file\n")
	writeFile(t, dir, "secrets/api", "api-from-file\r\n")
	writeFile(t, dir, "secrets/ucwa", "ucwa-from-file")
	return dir
}

func TestSecretPrecedence(t *testing.T) {
	t.Parallel()
	dir := secretsDir(t)
	envDir := t.TempDir()
	routeEnvFile := writeFile(t, envDir, "route", "route-from-env-file\n")
	apiEnvFile := writeFile(t, envDir, "api", "api-from-env-file\n")
	ucwaEnvFile := writeFile(t, envDir, "ucwa", "ucwa-from-env-file\n")

	type want struct{ route, api, ucwa, routeSrc string }
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		want   want
	}{
		{
			name:   "file keys, relative to the config dir, newline trimmed",
			getenv: env(),
			want:   want{"route-from-file", "api-from-file", "ucwa-from-file", "file " + dir + "/secrets/route"},
		},
		{
			name: "_FILE env beats the file key",
			getenv: env("RELAY_ROUTE_PROD_EU_TOKEN_FILE", routeEnvFile, "RELAY_API_TOKEN_FILE", apiEnvFile,
				"RELAY_UCWA_PASSWORD_FILE", ucwaEnvFile),
			want: want{"route-from-env-file", "api-from-env-file", "ucwa-from-env-file",
				"file " + routeEnvFile + " (RELAY_ROUTE_PROD_EU_TOKEN_FILE)"},
		},
		{
			name:   "env beats the file key",
			getenv: env("RELAY_ROUTE_PROD_EU_TOKEN", "route-env", "RELAY_API_TOKEN", "api-env", "RELAY_UCWA_PASSWORD", "ucwa-env"),
			want:   want{"route-env", "api-env", "ucwa-env", "env RELAY_ROUTE_PROD_EU_TOKEN"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, routeWithTokenFile, dir, tc.getenv)
			got := want{
				cfg.Routes[0].BearerToken.Reveal(), cfg.API.BearerToken.Reveal(), cfg.UCWA.Password.Reveal(),
				cfg.Routes[0].BearerToken.Source(),
			}
			if got != tc.want {
				t.Errorf("secrets = %+v, want %+v", got, tc.want)
			}
			if !cfg.API.Enabled() {
				t.Error("API.Enabled() = false with a token set")
			}
		})
	}
}

func TestSecretsFromEnvOnly(t *testing.T) {
	t.Parallel()
	yaml := `ucwa: {discovery_urls: ["https://x.example"], username: u}
` + minimal
	cfg := mustParse(t, yaml, "", env("RELAY_UCWA_PASSWORD", "pw", "RELAY_ROUTE_PROD_TOKEN", "tok", "RELAY_API_TOKEN", "api"))
	if cfg.UCWA.Password.Reveal() != "pw" || cfg.Routes[0].BearerToken.Reveal() != "tok" || cfg.API.BearerToken.Reveal() != "api" {
		t.Errorf("secrets not taken from env: %q %q %q",
			cfg.UCWA.Password.Reveal(), cfg.Routes[0].BearerToken.Reveal(), cfg.API.BearerToken.Reveal())
	}
	// Unset secrets stay unset: no token means the route is open, no API.
	cfg = mustParse(t, minimal, "", nil)
	if cfg.Routes[0].BearerToken.IsSet() || cfg.API.Enabled() {
		t.Error("secrets set without any source")
	}
}

func TestSecretProblems(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-do-not-print"
	dir := t.TempDir()
	writeFile(t, dir, "empty", "")
	writeFile(t, dir, "newline-only", "\n")
	writeFile(t, dir, "two-lines", secret+"\n"+secret+"\n")
	writeFile(t, dir, "huge", strings.Repeat("x", MaxSecretFileSize+1))
	writeFile(t, dir, "max", strings.Repeat("x", MaxSecretFileSize))
	cfgWith := func(file string) string {
		return "api: {bearer_token_file: " + file + "}\n" + minimal
	}

	for _, tc := range []struct {
		name, yaml string
		getenv     func(string) string
		key, msg   string
	}{
		{"missing file", cfgWith("nope"), env(), "api.bearer_token_file", "does not exist (or set RELAY_API_TOKEN or RELAY_API_TOKEN_FILE)"},
		{"empty file", cfgWith("empty"), env(), "api.bearer_token_file", "is empty"},
		{"newline only", cfgWith("newline-only"), env(), "api.bearer_token_file", "is empty"},
		{"two lines", cfgWith("two-lines"), env(), "api.bearer_token_file", "control character"},
		{"too large", cfgWith("huge"), env(), "api.bearer_token_file", "larger than the limit of 65536 bytes"},
		{"directory", cfgWith("."), env(), "api.bearer_token_file", "not a regular file"},
		{"env and env file", minimal, env("RELAY_API_TOKEN", secret, "RELAY_API_TOKEN_FILE", "x"), "RELAY_API_TOKEN", "both RELAY_API_TOKEN and RELAY_API_TOKEN_FILE are set"},
		{"env file missing", minimal, env("RELAY_UCWA_PASSWORD_FILE", dir+"/nope"), "RELAY_UCWA_PASSWORD_FILE", "does not exist"},
		{"env control char", minimal, env("RELAY_ROUTE_PROD_TOKEN", secret+"\n"), "RELAY_ROUTE_PROD_TOKEN", "control character"},
		{"route file", convsYAML + "routes: [{name: prod, format: alertmanager, conversations: [oncall], bearer_token_file: empty}]\n", env(), "routes[0].bearer_token_file", "RELAY_ROUTE_PROD_TOKEN_FILE"},
		{"ucwa file", "ucwa: {discovery_urls: [\"https://x.example\"], username: u, password_file: empty}\n" + minimal, env(), "ucwa.password_file", "is empty"},
		{"database url file", minimal, env("DATABASE_URL_FILE", dir+"/empty"), "DATABASE_URL_FILE", "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), dir, tc.getenv)
			if err == nil {
				t.Fatal("Parse() succeeded, want an error")
			}
			if p := findProblem(AsProblems(err), tc.key, tc.msg); p == nil {
				t.Errorf("Parse() error:\n%v\nwant key %q with %q", err, tc.key, tc.msg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks the secret", err)
			}
		})
	}

	// Exactly the limit is accepted.
	cfg := mustParse(t, cfgWith("max"), dir, nil)
	if n := len(cfg.API.BearerToken.Reveal()); n != MaxSecretFileSize {
		t.Errorf("token length = %d, want %d", n, MaxSecretFileSize)
	}
}

// TestRedaction proves that no usual way of printing a Config (or a secret)
// shows a secret value.
func TestRedaction(t *testing.T) {
	t.Parallel()
	secrets := []string{"api-SECRET-1", "ucwa-SECRET-2", "route-SECRET-3", "db-SECRET-4", "query-SECRET-5"}
	dir := t.TempDir()
	writeFile(t, dir, "api", secrets[0]+"\n")
	doc := `api: {bearer_token_file: api}
ucwa: {discovery_urls: ["https://x.example"], username: u}
` + minimal
	cfg := mustParse(t, doc, dir, env(
		"RELAY_UCWA_PASSWORD", secrets[1],
		"RELAY_ROUTE_PROD_TOKEN", secrets[2],
		"DATABASE_URL", "postgres://relay:"+secrets[3]+"@db:5432/relay?sslmode=disable&password="+secrets[4],
	))

	var outputs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs,
			fmt.Sprintf(format, cfg), fmt.Sprintf(format, *cfg),
			fmt.Sprintf(format, cfg.UCWA), fmt.Sprintf(format, cfg.Routes),
			fmt.Sprintf(format, cfg.UCWA.Password))
	}
	outputs = append(outputs, cfg.UCWA.Password.String(), cfg.UCWA.Password.GoString())

	var logs bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&logs, nil))
	jsonLog.Info("config loaded", slog.Any("config", cfg), slog.Any("value", *cfg),
		slog.Any("password", cfg.UCWA.Password), slog.Any("route", cfg.Routes[0]))
	textLog := slog.New(slog.NewTextHandler(&logs, nil))
	textLog.Info("config loaded", slog.Any("config", cfg), slog.Any("value", *cfg), slog.Any("route", cfg.Routes[0]))
	outputs = append(outputs, logs.String())

	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("json.Marshal(cfg) error: %v", err)
	}
	outputs = append(outputs, string(j))
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("yaml.Marshal(cfg) error: %v", err)
	}
	outputs = append(outputs, string(y))

	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output leaks secret %q:\n%s", s, out)
			}
		}
	}

	// The redaction must not hide everything: the outputs still say which
	// secrets are set, and the log says where they came from.
	if !strings.Contains(fmt.Sprintf("%+v", cfg), "Password:[REDACTED]") {
		t.Errorf("%%+v = %+v, want Password:[REDACTED]", cfg)
	}
	if !strings.Contains(string(j), `"BearerToken":"[REDACTED]"`) {
		t.Errorf("json = %s, want BearerToken [REDACTED]", j)
	}
	for _, want := range []string{
		`"password":"env RELAY_UCWA_PASSWORD"`,
		`"token":"file ` + dir + `/api"`,
		`"url":"postgres://relay@db:5432/relay"`,
		`"listen_address":"127.0.0.1:9095"`,
		`"routes":{"prod":{"format":"alertmanager"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log = %s\nwant it to contain %s", logs.String(), want)
		}
	}
}

func TestUnsetSecretPrintsEmpty(t *testing.T) {
	t.Parallel()
	var s Secret
	if got := fmt.Sprintf("%v|%s|%q", s, s, s); got != `||""` {
		t.Errorf("unset secret prints %q, want empty", got)
	}
	if j, _ := json.Marshal(s); string(j) != `""` {
		t.Errorf("json.Marshal(unset) = %s", j)
	}
	if NewSecret("").IsSet() || !NewSecret("x").IsSet() || NewSecret("x").Reveal() != "x" {
		t.Error("NewSecret: IsSet/Reveal wrong")
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", "unset"},
		{"postgres://u:pw@h:5432/db?password=pw2", "postgres://u@h:5432/db"},
		{"postgres:///db?host=/run/pg&password=pw", "postgres:///db"},
		{"host=h user=u password=pw dbname=db", "[REDACTED]"},
		{"::not a url", "[REDACTED]"},
	} {
		if got := RedactDatabaseURL(tc.in); got != tc.want {
			t.Errorf("RedactDatabaseURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
