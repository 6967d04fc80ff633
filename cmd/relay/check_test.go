package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

const examplePath = "../../deploy/relay.example.yaml"

// clearSecretEnv unsets every variable that would supply the example
// configuration's secrets.
func clearSecretEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"RELAY_CONFIG", "RELAY_API_TOKEN", "RELAY_API_TOKEN_FILE", "RELAY_UCWA_PASSWORD",
		"RELAY_UCWA_PASSWORD_FILE", "RELAY_ROUTE_PROD_TOKEN", "RELAY_ROUTE_PROD_TOKEN_FILE", "RELAY_LISTEN_ADDRESS"} {
		t.Setenv(k, "")
	}
}

// TestExampleWithoutSecrets: check-config and render run on the shipped
// example where its secret files do not exist, and say what they did not
// check; --secrets checks them.
func TestExampleWithoutSecrets(t *testing.T) {
	clearSecretEnv(t)
	unread := []string{"api.bearer_token_file (/run/secrets/api_token)", "ucwa.password_file (/run/secrets/ucwa_password)",
		"routes[0].bearer_token_file (/run/secrets/prod_token)"}

	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", examplePath}, &out, &errOut); code != 0 {
		t.Fatalf("check-config example = exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !strings.HasPrefix(out.String(), "config OK: routes 1, conversations 1\nnot checked") {
		t.Errorf("check-config stdout = %q, want the OK line, then what was not checked", out.String())
	}
	for _, u := range unread {
		if !strings.Contains(out.String(), "\n  "+u+"\n") {
			t.Errorf("check-config stdout lacks %q:\n%s", u, out.String())
		}
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config", "--config", examplePath, "--secrets"}, &out, &errOut); code != 1 {
		t.Fatalf("check-config --secrets example = exit %d, want 1\nstderr:\n%s", code, errOut.String())
	}
	for _, key := range []string{"api.bearer_token_file", "ucwa.password_file", "routes[0].bearer_token_file"} {
		if !strings.Contains(errOut.String(), key) {
			t.Errorf("check-config --secrets stderr lacks %q:\n%s", key, errOut.String())
		}
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"render", "--route", "prod", "--config", examplePath}, &out, &errOut); code != 0 {
		t.Fatalf("render example = exit %d\nstderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "--- to sip:oncall@contoso.com") || !strings.Contains(errOut.String(), unread[0]) {
		t.Errorf("render example: stdout %q, stderr %q; want messages, and the unread secrets on stderr", out.String(), errOut.String())
	}
}

// TestCheckConfigWarnsAboutUnusedBlock: a misspelled block in a template
// file is a warning naming the block and the blocks it could mean.
func TestCheckConfigWarnsAboutUnusedBlock(t *testing.T) {
	clearSecretEnv(t)
	cfg := `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall], template: berlin.tmpl, allow_unauthenticated: true }
`
	path := writeConfig(t, cfg, map[string]string{
		"berlin.tmpl": `{{ define "alertmanager.tme" }}{{ . | tz "Europe/Berlin" | date "15:04" }}{{ end }}`,
	})
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check-config = exit %d, want 0 (a warning is no error)\nstderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{"warning: ", `routes "prod"`, "berlin.tmpl", `"alertmanager.tme"`, "overrides nothing", "alertmanager.time"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check-config stderr lacks %q:\n%s", want, errOut.String())
		}
	}

	// Spelled right, no warning.
	path = writeConfig(t, cfg, map[string]string{
		"berlin.tmpl": `{{ define "alertmanager.time" }}{{ . | tz "Europe/Berlin" | date "15:04" }}{{ end }}`,
	})
	errOut.Reset()
	if code := run([]string{"check-config", "--config", path}, &out, &errOut); code != 0 || errOut.Len() != 0 {
		t.Errorf("check-config with a right override = exit %d, stderr %q; want 0 and nothing", code, errOut.String())
	}
}

// TestCheckConfigWarnsAboutUnauthenticatedRoutes: every route that takes
// posts without a token or secret is a warning, unless it says
// allow_unauthenticated: true.
func TestCheckConfigWarnsAboutUnauthenticatedRoutes(t *testing.T) {
	clearSecretEnv(t)
	cfg := `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: open, format: alertmanager, conversations: [oncall], per_alert: true }
  - { name: open-generic, format: generic, conversations: [oncall] }
  - { name: meant, format: alertmanager, conversations: [oncall], allow_unauthenticated: true }
  - { name: by-file, format: alertmanager, conversations: [oncall], bearer_token_file: by-file.token }
  - { name: by-env, format: alertmanager, conversations: [oncall] }
  - { name: gh, format: github, conversations: [oncall], secret_file: gh.secret }
`
	path := writeConfig(t, cfg, map[string]string{"by-file.token": "t0k3n", "gh.secret": "s3cret"})
	t.Setenv("RELAY_ROUTE_BY_ENV_TOKEN", "t0k3n")
	for _, args := range [][]string{{"check-config", "--config", path}, {"check-config", "--config", path, "--secrets"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Fatalf("relay %v = exit %d, want 0 (a warning is no error)\nstderr:\n%s", args, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], `warning: routes "open" has no bearer token`) ||
			!strings.HasPrefix(lines[1], `warning: routes "open-generic" has no bearer token`) {
			t.Errorf("relay %v stderr:\n%s\nwant one warning each for routes open and open-generic, nothing else", args, errOut.String())
		}
		for _, want := range []string{"RELAY_ROUTE_OPEN_TOKEN", "allow_unauthenticated: true"} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("warning %q does not mention %s", lines[0], want)
			}
		}
	}
}

// TestFlagsAnywhere: flags may come before or after a command's words.
func TestFlagsAnywhere(t *testing.T) {
	clearSecretEnv(t)
	dbURL := relaytest.NewEmptyDatabase(t)
	t.Setenv("DATABASE_URL", dbURL)
	latest, err := store.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	current := fmt.Sprintf("version: %d;", latest)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "version", "--config", examplePath}, "version: none"},
		{[]string{"migrate", "up", "--config", examplePath}, current},
		{[]string{"migrate", "--config", examplePath, "version"}, current},
		{[]string{"migrate", "--config=" + examplePath, "up"}, current},
		{[]string{"check-config", "--config", examplePath}, "config OK"},
		{[]string{"render", "--config", examplePath, "--route", "prod"}, "--- to sip:"},
		{[]string{"render", "--route", "prod", "--config", examplePath}, "--- to sip:"},
	} {
		var out, errOut bytes.Buffer
		if code := run(step.args, &out, &errOut); code != 0 {
			t.Fatalf("relay %v = exit %d: %s", step.args, code, errOut.String())
		}
		if !strings.Contains(out.String(), step.want) {
			t.Errorf("relay %v printed %q, want %q", step.args, out.String(), step.want)
		}
	}
}

// TestMigrateForce: after a failed migration leaves the version dirty,
// up refuses until force records the version the schema is at.
func TestMigrateForce(t *testing.T) {
	clearSecretEnv(t)
	dbURL := relaytest.NewEmptyDatabase(t)
	t.Setenv("DATABASE_URL", dbURL)
	latest, err := store.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	relay := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != want {
			t.Fatalf("relay %v = exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	relay(0, "migrate", "up")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET dirty = true`); err != nil {
		t.Fatal(err)
	}
	if got := relay(0, "migrate", "version"); !strings.Contains(got, "dirty") {
		t.Errorf("migrate version on a dirty schema printed %q, want it to say dirty", got)
	}
	relay(1, "migrate", "up")
	if got := relay(0, "migrate", "force", fmt.Sprint(latest)); !strings.Contains(got, fmt.Sprintf("version: %d;", latest)) {
		t.Errorf("migrate force %d printed %q", latest, got)
	}
	relay(0, "migrate", "up")
	for _, args := range [][]string{{"migrate", "force"}, {"migrate", "force", "x"}, {"migrate", "force", "1", "2"}} {
		relay(2, args...)
	}
	if got := relay(1, "migrate", "force", fmt.Sprint(latest+1)); !strings.Contains(got, fmt.Sprintf("want 0 to %d", latest)) {
		t.Errorf("migrate force beyond the latest printed %q", got)
	}
}
