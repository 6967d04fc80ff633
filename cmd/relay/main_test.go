package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// buildRelay compiles this command once per test binary run.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServeMigratesAndStopsOnSIGTERM runs the real binary: it migrates an
// empty database, answers a webhook, and on SIGTERM finishes and exits 0.
func TestServeMigratesAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := buildRelay(t)
	dbURL := relaytest.NewEmptyDatabase(t)
	addr := relaytest.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "relay.yaml")
	cfg := fmt.Sprintf(`listen_address: %q
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall] }
`, addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--web.enable-lifecycle")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	base := "http://" + addr
	defer func() {
		if t.Failed() {
			t.Logf("relay's logs:\n%s", logs.String())
		}
	}()
	relaytest.WaitReady(t, base)
	if status, raw := relaytest.PostWebhook(t, base+"/v1/webhooks/prod", relaytest.Notification("HighCPU", 1, "firing")); status != http.StatusAccepted {
		t.Errorf("POST = %d %s, want 202", status, raw)
	}
	// --web.enable-lifecycle serves POST /-/reload (here to a loopback
	// client, as no API token is configured).
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /-/reload with --web.enable-lifecycle = %d, want 200", resp.StatusCode)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("relay exited with %v after SIGTERM, want 0; logs:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), "relay stopped") {
		t.Errorf("logs lack the shutdown line:\n%s", logs.String())
	}
	// Every log line is JSON.
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "{") {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	dbURL := relaytest.NewEmptyDatabase(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("RELAY_CONFIG", "")
	latest, err := store.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	current := fmt.Sprintf("version: %d;", latest)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "version"}, "version: none"},
		{[]string{"migrate", "up"}, current},
		{[]string{"migrate", "down"}, "version: none"},
		{[]string{"migrate", "up"}, current},
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

func TestUsageErrors(t *testing.T) {
	t.Setenv("RELAY_CONFIG", "")
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve"}, {"migrate", "sideways"}, {"check-config", "--nope"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("relay %v = exit %d, want 2 (usage); stderr %q", args, code, errOut.String())
		}
	}
}
