package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay"
)

// fuzzSecret is what every secret variable holds while fuzzing.
const fuzzSecret = "fuzz-secret-7Rq2vX"

// fuzzEnv sets every secret relay reads from the environment (route
// tokens and secrets included) to fuzzSecret, the database URL with it as
// password.
func fuzzEnv(name string) string {
	switch {
	case strings.HasSuffix(name, fileSuffix):
		return ""
	case name == EnvDatabaseURL:
		return "postgres://relay:" + fuzzSecret + "@db.example:5432/relay"
	case name == EnvAPIToken, name == EnvUCWAPassword,
		strings.HasPrefix(name, "RELAY_ROUTE_") && (strings.HasSuffix(name, "_TOKEN") || strings.HasSuffix(name, "_SECRET")):
		return fuzzSecret
	}
	return ""
}

// FuzzParse parses any file as a config. It must never panic; an error
// must be a configuration problem (relay.ErrInvalid); and neither the
// error nor, for a file that parses, the configuration as printed or
// logged may show a secret.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("../../deploy/relay.example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", "---\n---\n", "[1, 2]", "routes: {}", "a: &a [*a]", "conversations:\n  x: {to: 1}\n",
		minimal + "ucwa:\n  discovery_urls: [\"https://lyncdiscover.contoso.com\"]\n  username: relay@contoso.com\n",
		minimal + "api: {bearer_token_file: /nonexistent}\n",
		convsYAML + "routes:\n  - {name: \"gh\\n\", format: github, template: \"../../etc/passwd\", conversations: [oncall]}\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, dir, fuzzEnv)
		// A file that itself holds the secret may show it back.
		leakable := !bytes.Contains(data, []byte(fuzzSecret))
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			if !errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("Parse error %v (%T) is not relay.ErrInvalid", err, err)
			}
			if leakable && strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("Parse error shows a secret: %v", err)
			}
			return
		}
		var log bytes.Buffer
		slog.New(slog.NewJSONHandler(&log, nil)).LogAttrs(context.Background(), slog.LevelInfo, "config", slog.Any("config", cfg))
		for what, s := range map[string]string{
			"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "log": log.String(),
		} {
			if leakable && strings.Contains(s, fuzzSecret) {
				t.Fatalf("the config printed with %s shows a secret:\n%s", what, s)
			}
		}
	})
}
