package web_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/skype-relay/relay/relay/web"
)

func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key", "basic_auth_user: {}\n", "basic_auth_user"},
		{"password not hashed", "basic_auth_users: { alice: secret }\n", "hash"},
		{"rate limit", "rate_limit: { interval: 1s, burst: 10 }\n", "rate_limit is not supported"},
		{"missing certificate", "tls_server_config: { cert_file: nope.crt, key_file: nope.key }\n", "nope.crt"},
		{"key without certificate", "tls_server_config: { key_file: relay.key }\n", "cert"},
		{"header not allowed", "http_server_config: { headers: { X-Relay: yes } }\n", "X-Relay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "web.yml")
			write(t, path, tc.file)
			_, err := web.Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%q) = %v, want an error mentioning %q", tc.file, err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Load error %q does not name the file", err)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "web.yml")
	write(t, path, "basic_auth_users:\n  alice: "+hash(t, "wonderland")+"\n")
	c, err := web.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Summary(); s.TLS || len(s.BasicAuthUsers) != 1 || s.BasicAuthUsers[0] != "alice" {
		t.Errorf("Summary() = %+v, want no TLS and user alice", s)
	}
	for _, tc := range []struct {
		name       string
		user, pass string
		basic      bool
		want       bool
	}{
		{"right", "alice", "wonderland", true, true},
		{"right again (remembered)", "alice", "wonderland", true, true},
		{"wrong password", "alice", "looking-glass", true, false},
		{"unknown user", "bob", "wonderland", true, false},
		{"no credentials", "", "", false, false},
	} {
		r, _ := http.NewRequest(http.MethodGet, "http://relay/metrics", nil)
		if tc.basic {
			r.SetBasicAuth(tc.user, tc.pass)
		}
		if got := c.Authenticate(r); got != tc.want {
			t.Errorf("%s: Authenticate(%s:%s) = %v, want %v", tc.name, tc.user, tc.pass, got, tc.want)
		}
	}

	// The scheme is case-insensitive (RFC 9110 11.1).
	for _, scheme := range []string{"basic", "BASIC", "bAsIc"} {
		r, _ := http.NewRequest(http.MethodGet, "http://relay/metrics", nil)
		r.Header.Set("Authorization", scheme+" "+base64.StdEncoding.EncodeToString([]byte("alice:wonderland")))
		if !c.Authenticate(r) {
			t.Errorf("Authenticate(%s alice:wonderland) = false, want true", scheme)
		}
	}

	// A reload swaps the users; a file that no longer loads keeps them.
	write(t, path, "basic_auth_users:\n  bob: "+hash(t, "builder")+"\n")
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r, _ := http.NewRequest(http.MethodGet, "http://relay/metrics", nil)
	r.SetBasicAuth("bob", "builder")
	if !c.Authenticate(r) {
		t.Errorf("bob refused after the reload that added him")
	}
	write(t, path, "basic_auth_users: [\n")
	if err := c.Reload(); err == nil {
		t.Errorf("Reload of a broken file succeeded")
	}
	if !c.Authenticate(r) {
		t.Errorf("bob refused after a rejected reload; the previous users should stay")
	}
}

func TestNoUsersLetsEveryoneIn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "web.yml")
	write(t, path, "http_server_config: { http2: false }\n")
	c, err := web.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodGet, "http://relay/metrics", nil)
	if !c.Authenticate(r) {
		t.Errorf("a file without basic_auth_users refused a request")
	}
	write(t, path, "http_server_config: { http2: true }\n")
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Reload turning HTTP/2 on = %v, want an error saying it takes a restart", err)
	}
}

func TestLoadUsers(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A whole web configuration file serves as a users file.
	u, err := web.LoadUsers(write("web.yml", "tls_server_config: {}\nbasic_auth_users:\n  anna: "+string(hash)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Check("anna", "s3cret") || u.Check("anna", "wrong") || u.Check("ben", "s3cret") {
		t.Error("Check: want only anna's password accepted")
	}
	if got := u.Names(); len(got) != 1 || got[0] != "anna" {
		t.Errorf("Names = %v", got)
	}
	for name, body := range map[string]string{
		"none.yml":  "basic_auth_users: {}\n",
		"plain.yml": "basic_auth_users:\n  anna: s3cret\n",
	} {
		if _, err := web.LoadUsers(write(name, body)); err == nil {
			t.Errorf("LoadUsers(%s) = nil error", name)
		}
	}
}
