package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestListenerTLSAndBasicAuth runs the relay binary with a web
// configuration file (--web.config.file): TLS with a certificate from a CA
// made here, client certificates required, and a basic auth user. The
// clients are built by the HTTP client code of Alertmanager and Prometheus
// (prometheus/common/config) from the http_config blocks a user would
// write. Routes with a token take the token alone; everything else asks
// for basic auth; what a webhook got accepted is delivered.
func TestListenerTLSAndBasicAuth(t *testing.T) {
	sim := newSim(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	ca.issue(t, "relay", true)
	ca.issue(t, "alertmanager", false)
	other := newTestCA(t, dir, "other-ca")
	other.issue(t, "intruder", false)

	const (
		prodToken = "prod-token-e2e-3f1c"
		scrapePW  = "scrape-password-e2e-77aa"
	)
	webPath := filepath.Join(dir, "web.yml")
	writeWebConfig := func(password string) {
		t.Helper()
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		// Relative paths are relative to the file, as in Prometheus.
		web := fmt.Sprintf(`tls_server_config:
  cert_file: relay.crt
  key_file: relay.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
basic_auth_users:
  prometheus: %q
`, hash)
		if err := os.WriteFile(webPath, []byte(web), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeWebConfig(scrapePW)

	// client builds an HTTP client from an Alertmanager or Prometheus
	// http_config block; tlsCfg is its tls_config.
	client := func(httpConfig string) *http.Client {
		t.Helper()
		var cfg promconfig.HTTPClientConfig
		if err := yaml.UnmarshalStrict([]byte(httpConfig), &cfg); err != nil {
			t.Fatalf("http_config %s: %v", httpConfig, err)
		}
		c, err := promconfig.NewClientFromConfig(cfg, "relay-e2e")
		if err != nil {
			t.Fatalf("NewClientFromConfig(%s): %v", httpConfig, err)
		}
		c.Timeout = 10 * time.Second
		return c
	}
	tlsCfg := func(cert string) string {
		return fmt.Sprintf("tls_config: { ca_file: %q, cert_file: %q, key_file: %q }\n",
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, cert+".crt"), filepath.Join(dir, cert+".key"))
	}
	basicAuth := func(password string) string {
		return fmt.Sprintf("basic_auth: { username: prometheus, password: %q }\n", password)
	}
	bearer := func(token string) string { return fmt.Sprintf("authorization: { credentials: %q }\n", token) }

	var (
		// Alertmanager's webhook_configs http_config, for a route with a
		// token and for one without.
		amToken = client(bearer(prodToken) + tlsCfg("alertmanager"))
		amBasic = client(basicAuth(scrapePW) + tlsCfg("alertmanager"))
		// Prometheus's scrape_config, also used as the probe.
		scraper = client(basicAuth(scrapePW) + tlsCfg("alertmanager"))
		// TLS with a client certificate and nothing else.
		bare = client(tlsCfg("alertmanager"))
	)

	// Alertmanager refuses an http_config with both credentials: a sender
	// cannot show the route's token and basic auth at once, which is why a
	// route's token is enough on its own.
	var both promconfig.HTTPClientConfig
	err := yaml.UnmarshalStrict([]byte(bearer(prodToken)+basicAuth(scrapePW)), &both)
	if err == nil || !strings.Contains(err.Error(), "at most one of") {
		t.Fatalf("an http_config with basic_auth and authorization loaded (err %v); relay's design assumes Alertmanager refuses it", err)
	}

	r := startRelayOpts(t, "relay", sim, relaytest.NewDatabase(t), relayOpts{
		args:  []string{"--web.config.file", webPath},
		env:   []string{"RELAY_ROUTE_PROD_TOKEN=" + prodToken},
		https: true,
		ready: scraper.Get,
	})

	var accepted []string
	type answer struct {
		status int
		header http.Header
		body   string
	}
	do := func(c *http.Client, method, path string, body []byte) answer {
		t.Helper()
		req, err := http.NewRequest(method, r.base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 == 2 && method == http.MethodPost {
			var out struct {
				OperationIDs []string `json:"operationIds"`
			}
			if err := json.Unmarshal(b, &out); err != nil || len(out.OperationIDs) == 0 {
				t.Errorf("%s %s = %d %s: want operationIds", method, path, resp.StatusCode, b)
			}
			accepted = append(accepted, out.OperationIDs...)
		}
		return answer{resp.StatusCode, resp.Header, string(b)}
	}
	n := 0
	alert := func() []byte {
		n++
		return relaytest.Notification(fmt.Sprintf("tls-%02d", n), 1, "firing")
	}

	for _, tc := range []struct {
		name   string
		client *http.Client
		method string
		path   string
		want   int
		basic  bool // a 401 that asks for basic auth
	}{
		{"alertmanager with the route's token", amToken, http.MethodPost, "/v1/webhooks/prod", http.StatusAccepted, false},
		{"alertmanager with basic auth, route without a token", amBasic, http.MethodPost, "/v1/webhooks/db", http.StatusAccepted, false},
		{"no credentials, route without a token", bare, http.MethodPost, "/v1/webhooks/db", http.StatusUnauthorized, true},
		{"basic auth instead of the route's token", amBasic, http.MethodPost, "/v1/webhooks/prod", http.StatusUnauthorized, false},
		{"the route's token on another route", amToken, http.MethodPost, "/v1/webhooks/net", http.StatusUnauthorized, true},
		{"wrong basic auth password", client(basicAuth("wrong") + tlsCfg("alertmanager")), http.MethodPost, "/v1/webhooks/db", http.StatusUnauthorized, true},
		{"unknown route, no credentials: nothing said about it", bare, http.MethodPost, "/v1/webhooks/nope", http.StatusUnauthorized, true},
		{"Prometheus scrape with basic auth", scraper, http.MethodGet, "/metrics", http.StatusOK, false},
		{"scrape without credentials", bare, http.MethodGet, "/metrics", http.StatusUnauthorized, true},
		{"readiness with basic auth", scraper, http.MethodGet, "/-/ready", http.StatusOK, false},
		{"readiness without credentials", bare, http.MethodGet, "/-/ready", http.StatusUnauthorized, true},
		{"health without credentials", bare, http.MethodGet, "/-/healthy", http.StatusUnauthorized, true},
		{"audit API with its token alone", client(bearer(apiToken) + tlsCfg("alertmanager")), http.MethodGet, "/v1/deliveries", http.StatusOK, false},
		{"audit API with basic auth but not its token", scraper, http.MethodGet, "/v1/deliveries", http.StatusUnauthorized, false},
	} {
		var body []byte
		if tc.method == http.MethodPost {
			body = alert()
		}
		got := do(tc.client, tc.method, tc.path, body)
		if got.status != tc.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, got.status, got.body, tc.want)
		}
		if asks := strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Basic "); asks != tc.basic {
			t.Errorf("%s: WWW-Authenticate %q; want a basic auth challenge: %v", tc.name, got.header.Get("WWW-Authenticate"), tc.basic)
		}
	}

	// The TLS handshake itself refuses clients without a certificate of
	// the CA, and clients that do not trust relay's certificate fail.
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"no client certificate", client(fmt.Sprintf("tls_config: { ca_file: %q }\n", filepath.Join(dir, "ca.crt")))},
		{"client certificate of another CA", client(basicAuth(scrapePW) + fmt.Sprintf("tls_config: { ca_file: %q, cert_file: %q, key_file: %q }\n",
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, "intruder.crt"), filepath.Join(dir, "intruder.key")))},
		{"client that does not trust relay's CA", client(basicAuth(scrapePW) + fmt.Sprintf("tls_config: { cert_file: %q, key_file: %q }\n",
			filepath.Join(dir, "alertmanager.crt"), filepath.Join(dir, "alertmanager.key")))},
	} {
		resp, err := tc.client.Get(r.base + "/-/healthy")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: GET /-/healthy = %d, want a TLS failure", tc.name, resp.StatusCode)
		}
	}
	plain := strings.Replace(r.base, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/-/healthy"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
		}
	}

	// A reload (SIGHUP) reads the web configuration file again: the new
	// password works at once, the old one no longer does.
	writeWebConfig(scrapePW + "-rotated")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rotated := client(basicAuth(scrapePW+"-rotated") + tlsCfg("alertmanager"))
	deadline := time.Now().Add(10 * time.Second)
	for do(rotated, http.MethodGet, "/metrics", nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the rotated password is refused 10 s after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := do(scraper, http.MethodGet, "/metrics", nil); got.status != http.StatusUnauthorized {
		t.Errorf("the old password after the reload: GET /metrics = %d, want 401", got.status)
	}

	if len(accepted) != len(routes[0].conversations)+len(routes[1].conversations) {
		t.Fatalf("accepted operationIds %v: want one webhook to prod and one to db", accepted)
	}
	views := waitFinalWith(t, client(tlsCfg("alertmanager")), r.base, accepted, 60*time.Second)
	checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
}

// testCA is a certificate authority made for one test; it writes NAME.crt
// and NAME.key files into dir.
type testCA struct {
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: dir, key: key, cert: cert}
	ca.write(t, name, der, key)
	return ca
}

// issue signs a certificate for name: a server certificate for 127.0.0.1
// and localhost, or a client certificate.
func (ca *testCA) issue(t *testing.T, name string, server bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ca.write(t, name, der, key)
}

func (ca *testCA) write(t *testing.T, name string, der []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{
		name + ".crt": {Type: "CERTIFICATE", Bytes: der},
		name + ".key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(ca.dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
