package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// relayBin is the relay command, built once by TestMain.
var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	relayBin = filepath.Join(dir, "relay")
	args := []string{"build", "-o", relayBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	// The working directory of a test is its package directory.
	if out, err := exec.Command("go", append(args, "../../cmd/relay")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ../../cmd/relay: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	simPassword = "sim-password-e2e-5d2a"
	apiToken    = "api-token-e2e-91b7"
)

// recipients are the ten conversations the routes below fan out to.
const recipients = 10

// routes spread the recipients over three routes; a notification to a
// route makes one delivery per conversation of the route.
var routes = []struct {
	name          string
	conversations []int
}{
	{"prod", []int{0, 1, 2, 3}},
	{"db", []int{4, 5, 6}},
	{"net", []int{7, 8, 9}},
}

// oneByOne is the routeExtra that turns coalescing off on every route.
func oneByOne() map[string]string {
	out := map[string]string{}
	for _, r := range routes {
		out[r.name] = "delivery: { coalesce: false }"
	}
	return out
}

func newSim(t *testing.T) *ucwasim.Sim {
	t.Helper()
	sim, err := ucwasim.New(ucwasim.Config{Password: simPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// relayOpts change the configuration relayYAML writes.
type relayOpts struct {
	// routeExtra, when set, is added to the named routes' flow mappings
	// (e.g. "delivery: { uncertain: skip }").
	routeExtra map[string]string
	// production keeps every UCWA and delivery timer at its default, as a
	// new user's configuration would.
	production bool
	// args are added to the command line after "serve --config FILE".
	args []string
	// env is added to the environment ("KEY=value").
	env []string
	// https: the relay serves TLS (args name a web configuration file).
	https bool
	// extraYAML is added to the configuration's top level.
	extraYAML string
	// ready, when set, asks url (the relay's /-/ready) for readiness
	// instead of a plain GET.
	ready func(url string) (*http.Response, error)
}

// relayYAML is the configuration of a relay listening on addr and sending
// through sim, with the UCWA protocol timers and the delivery timers shrunk
// for tests unless o.production.
func relayYAML(sim *ucwasim.Sim, addr string, o relayOpts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen_address: %q\n", addr)
	b.WriteString(o.extraYAML)
	if o.production {
		fmt.Fprintf(&b, "ucwa:\n  discovery_urls: [\"%s\"]\n  username: alertbot@contoso.com\n", strings.Join(sim.DiscoveryURLs(), `", "`))
		b.WriteString("log:\n  level: debug\nconversations:\n")
	} else {
		b.WriteString(relaytest.UCWAYAML(sim.DiscoveryURLs()))
		b.WriteString(`delivery:
  poll_interval: 50ms
  retry_base: 20ms
  retry_max: 200ms
  session_ttl: 2s
  lease: 30s
log:
  level: debug
conversations:
`)
	}
	for i := range recipients {
		fmt.Fprintf(&b, "  team%d: { to: %q, subject: \"Alerts %d\" }\n", i, recipientSIP(i), i)
	}
	b.WriteString("routes:\n")
	for _, r := range routes {
		var convs []string
		for _, i := range r.conversations {
			convs = append(convs, fmt.Sprintf("team%d", i))
		}
		extra := ""
		if e := o.routeExtra[r.name]; e != "" {
			extra = ", " + e
		}
		fmt.Fprintf(&b, "  - { name: %s, format: alertmanager, conversations: [%s]%s }\n", r.name, strings.Join(convs, ", "), extra)
	}
	return b.String()
}

func recipientSIP(i int) string { return fmt.Sprintf("sip:team%d@contoso.com", i) }

// relayProc is one relay process.
type relayProc struct {
	t    *testing.T
	name string
	base string // http://127.0.0.1:port (https with relayOpts.https)
	cmd  *exec.Cmd
	// ready asks for /-/ready (relayOpts.ready, or a plain GET).
	ready func(url string) (*http.Response, error)
	logs  *relaytest.Buffer
	done  chan struct{} // closed when the process has exited
	err   error         // cmd.Wait's answer, set before done closes
}

// startRelay starts the relay binary with a fresh configuration file and
// waits until it is ready (database reachable, schema current).
func startRelay(t *testing.T, name string, sim *ucwasim.Sim, dbURL string) *relayProc {
	t.Helper()
	return startRelayOpts(t, name, sim, dbURL, relayOpts{})
}

// startRelayWith is startRelay with routeExtra as in relayOpts.
func startRelayWith(t *testing.T, name string, sim *ucwasim.Sim, dbURL string, routeExtra map[string]string) *relayProc {
	t.Helper()
	return startRelayOpts(t, name, sim, dbURL, relayOpts{routeExtra: routeExtra})
}

// startRelayOpts is startRelay with a configuration changed by o.
func startRelayOpts(t *testing.T, name string, sim *ucwasim.Sim, dbURL string, o relayOpts) *relayProc {
	t.Helper()
	addr := relaytest.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(cfgPath, []byte(relayYAML(sim, addr, o)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(relayBin, append([]string{"serve", "--config", cfgPath}, o.args...)...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + dbURL,
		"RELAY_UCWA_PASSWORD=" + simPassword,
		"RELAY_API_TOKEN=" + apiToken,
	}, o.env...)
	scheme := "http://"
	if o.https {
		scheme = "https://"
	}
	p := &relayProc{t: t, name: name, base: scheme + addr, cmd: cmd, ready: o.ready, logs: &relaytest.Buffer{}, done: make(chan struct{})}
	if p.ready == nil {
		p.ready = http.Get
	}
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start relay %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if d := os.Getenv("E2E_LOG_DIR"); d != "" {
			_ = os.WriteFile(filepath.Join(d, t.Name()+"-"+name+".log"), []byte(p.logs.String()), 0o600)
		}
		if t.Failed() {
			t.Logf("relay %s logs (last 40 KiB):\n%s", name, tail(p.logs, 40<<10))
		}
		if s := p.logs.String(); strings.Contains(s, "WARNING: DATA RACE") || strings.Contains(s, "panic:") {
			t.Errorf("relay %s crashed or raced:\n%s", name, tail(p.logs, 20<<10))
		}
	})
	p.waitReady(30 * time.Second)
	return p
}

func (p *relayProc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			p.t.Fatalf("relay %s exited before it was ready (%v)", p.name, p.err)
		default:
		}
		resp, err := p.ready(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("relay %s not ready after %s", p.name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL (no shutdown at all) and waits for it.
func (p *relayProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill relay %s: %v", p.name, err)
	}
	<-p.done
}

// terminate sends SIGTERM and returns the exit code, failing the test when
// the process does not exit within timeout.
func (p *relayProc) terminate(timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM relay %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("relay %s did not exit within %s of SIGTERM", p.name, timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		p.t.Fatalf("relay %s: %v", p.name, p.err)
		return -1
	}
}

func (p *relayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns about the last n bytes of l, starting at a line.
func tail(l *relaytest.Buffer, n int) string {
	s := l.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
