package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/relaytest"
)

const reloadBase = `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall]
`

// TestReloadUnderLoad: while webhooks keep arriving, a new route is added
// by POST /-/reload; no request fails, the new route works at once, and a
// broken file is rejected with the old configuration still serving.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadBase)
	env := map[string]string{"DATABASE_URL": relaytest.NewDatabase(t), "RELAY_API_TOKEN": "api-token"}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{
			Listener: ln, Reload: func() (*config.Config, error) { return config.Load(path, getenv) },
			EnableLifecycle: true,
		})
	}()
	defer func() { cancel(); <-done }()
	relaytest.WaitReady(t, base)

	post := func(route string, body []byte) int {
		resp, err := http.Post(base+"/v1/webhooks/"+route, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	reload := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/-/reload", nil)
		req.Header.Set("Authorization", "Bearer api-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if s := post("staging", relaytest.Notification("X", 1, "firing")); s != http.StatusNotFound {
		t.Fatalf("POST to a route not configured yet = %d, want 404", s)
	}

	// Load: webhooks to prod all along.
	var failed, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if s := post("prod", relaytest.Notification("Load"+string(rune('a'+w))+time.Now().String(), 1, "firing")); s != http.StatusAccepted {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	write(reloadBase + `  - name: staging
    format: alertmanager
    conversations: [oncall]
`)
	if s, body := reload(); s != http.StatusOK {
		t.Fatalf("reload = %d %s, want 200", s, body)
	}
	if s := post("staging", relaytest.Notification("Y", 1, "firing")); s != http.StatusAccepted {
		t.Errorf("POST to the new route after reload = %d, want 202", s)
	}
	write(reloadBase + "  - name: broken\n    format: nonsense\n")
	s, body := reload()
	if s != http.StatusBadRequest || !strings.Contains(body, "routes[1].format") {
		t.Errorf("reload of a broken file = %d %s, want 400 naming routes[1].format", s, body)
	}
	// Some webhooks come after the reloads too, however slow the machine.
	deadline := time.Now().Add(30 * time.Second)
	for after := sent.Load() + 4; sent.Load() < max(after, 10); {
		if time.Now().After(deadline) {
			t.Errorf("%d webhooks sent in all, none of the last ones within 30 s of the reloads", sent.Load())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 10 {
		t.Errorf("%d of %d webhooks failed during reloads, want none", failed.Load(), sent.Load())
	}
	if s := post("staging", relaytest.Notification("Z", 1, "firing")); s != http.StatusAccepted {
		t.Errorf("after a rejected reload the previous config must keep serving: POST staging = %d", s)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "relay_config_last_reload_successful 0") {
		t.Error("relay_config_last_reload_successful is not 0 after a rejected reload")
	}
	resp, err = http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reload without the API token = %d, want 401", resp.StatusCode)
	}
}

// TestReloadMaxInflightBytes: the memory limit the relay sets follows
// ingest.max_inflight_bytes, at start and on reload.
func TestReloadMaxInflightBytes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(path, []byte(reloadBase), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": relaytest.NewDatabase(t), "RELAY_API_TOKEN": "api-token"}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var limits []int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{
			Listener: ln, Reload: func() (*config.Config, error) { return config.Load(path, getenv) },
			EnableLifecycle: true,
			SetMemoryLimit: func(n int64) {
				mu.Lock()
				defer mu.Unlock()
				limits = append(limits, n)
			},
		})
	}()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()
	relaytest.WaitReady(t, base)

	if err := os.WriteFile(path, []byte("ingest: {max_inflight_bytes: 16777216}\n"+reloadBase), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/-/reload", nil)
	req.Header.Set("Authorization", "Bearer api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload = %d, want 200", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{2*64<<20 + 64<<20, 2*16<<20 + 64<<20}; !slices.Equal(limits, want) {
		t.Errorf("memory limits set = %v, want %v (start, reload)", limits, want)
	}
}
