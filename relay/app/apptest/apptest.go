// Package apptest runs relay in-process for the tests of other packages:
// a configuration from YAML and an environment, app.Run on a loopback
// listener until the test ends.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/relaytest"
)

// Start parses yaml with env as the environment, runs relay with it (opts'
// Listener is set here; a nil logger discards the logs) until the test
// ends, and returns its base URL once it is ready. The test fails if relay
// does not stop cleanly.
func Start(t testing.TB, yaml string, env map[string]string, logger *slog.Logger, opts app.Options) string {
	t.Helper()
	base, _ := Run(t, yaml, env, logger, opts)
	return base
}

// Run is Start, and also returns stop, which shuts relay down gracefully
// and waits for it before the test ends (later calls return at once).
func Run(t testing.TB, yaml string, env map[string]string, logger *slog.Logger, opts app.Options) (base string, stop func()) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), t.TempDir(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts.Listener = ln
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, logger, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("app.Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("relay did not stop")
			}
		})
	}
	t.Cleanup(stop)
	base = "http://" + ln.Addr().String()
	relaytest.WaitReady(t, base)
	return base, stop
}
