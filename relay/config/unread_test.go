package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSkipSecrets loads the example configuration, whose secret files do
// not exist here, without reading them: it loads, and says what it left
// unread.
func TestSkipSecrets(t *testing.T) {
	t.Parallel()
	skip := LoadOptions{SkipSecrets: true}
	cfg, err := LoadWith(examplePath, nil, skip)
	if err != nil {
		t.Fatalf("LoadWith(%s, SkipSecrets) error:\n%v", examplePath, err)
	}
	want := []string{
		"api.bearer_token_file (/run/secrets/api_token)",
		"ucwa.password_file (/run/secrets/ucwa_password)",
		"routes[0].bearer_token_file (/run/secrets/prod_token)",
	}
	if diff := cmp.Diff(want, cfg.UnreadSecrets); diff != "" {
		t.Errorf("UnreadSecrets (-want +got):\n%s", diff)
	}
	r, _ := cfg.Route("prod")
	for name, s := range map[string]Secret{"api token": cfg.API.BearerToken, "password": cfg.UCWA.Password, "route token": r.BearerToken} {
		if !s.IsSet() || !strings.HasPrefix(s.Source(), "not read: file /run/secrets/") {
			t.Errorf("%s: IsSet() = %v, Source() = %q; want a stand-in, not read", name, s.IsSet(), s.Source())
		}
	}
	// Two loads get different stand-ins: nobody can know one.
	again, err := LoadWith(examplePath, nil, skip)
	if err != nil {
		t.Fatal(err)
	}
	if again.API.BearerToken.Reveal() == cfg.API.BearerToken.Reveal() {
		t.Errorf("two loads gave the same stand-in API token")
	}

	// A secret in the environment is taken as usual; a file named by a
	// *_FILE variable is not read either; DATABASE_URL_FILE is.
	dir := t.TempDir()
	dbFile := writeFile(t, dir, "db", "postgres://relay@db/relay\n")
	cfg, err = LoadWith(examplePath, env(
		EnvAPIToken, "api",
		EnvUCWAPassword+"_FILE", filepath.Join(dir, "missing"),
		EnvDatabaseURLFile, dbFile,
	), skip)
	if err != nil {
		t.Fatalf("LoadWith(env) error:\n%v", err)
	}
	want = []string{
		"RELAY_UCWA_PASSWORD_FILE (" + filepath.Join(dir, "missing") + ")",
		"routes[0].bearer_token_file (/run/secrets/prod_token)",
	}
	if diff := cmp.Diff(want, cfg.UnreadSecrets); diff != "" {
		t.Errorf("UnreadSecrets with env (-want +got):\n%s", diff)
	}
	if cfg.API.BearerToken.Reveal() != "api" || cfg.DatabaseURL() != "postgres://relay@db/relay" {
		t.Errorf("API token %q, database URL %q; want them from the environment", cfg.API.BearerToken.Source(), RedactDatabaseURL(cfg.DatabaseURL()))
	}

	// A github route without any secret is still a problem.
	_, err = ParseWith([]byte(convsYAML+"routes:\n  - {name: gh, format: github, conversations: [oncall]}\n"), dir, nil, skip)
	if got := strings.Join(AsProblems(err).Keys(), " "); got != "routes[0].secret_file" {
		t.Errorf("github route without a secret: problem keys %q, want routes[0].secret_file", got)
	}
}
