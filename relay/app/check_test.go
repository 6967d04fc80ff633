package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
)

// TestRunRefusesUnreadSecrets: a configuration loaded without its secret
// files (for check-config, render) holds stand-ins and is never served.
func TestRunRefusesUnreadSecrets(t *testing.T) {
	t.Parallel()
	yaml := `
api: { bearer_token_file: api_token }
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall] }
`
	env := map[string]string{"DATABASE_URL": "postgres://relay@127.0.0.1:1/relay"}
	cfg, err := config.ParseWith([]byte(yaml), t.TempDir(), func(k string) string { return env[k] },
		config.LoadOptions{SkipSecrets: true})
	if err != nil {
		t.Fatalf("ParseWith: %v", err)
	}
	err = app.Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{})
	if err == nil || !strings.Contains(err.Error(), "without reading its secrets") || !strings.Contains(err.Error(), "api.bearer_token_file") {
		t.Errorf("Run(config without secrets) = %v, want a refusal naming api.bearer_token_file", err)
	}
}
