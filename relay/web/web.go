// Package web applies a Prometheus web configuration file (relay serve
// --web.config.file) to relay's HTTP listener: TLS, optionally asking for
// client certificates, and basic authentication with bcrypt-hashed
// passwords. The file's format, its validation and the TLS settings come
// from the Prometheus exporter toolkit, so a file written for Prometheus,
// Alertmanager or an exporter works here unchanged:
// https://prometheus.io/docs/prometheus/latest/configuration/https/
//
// One difference from the toolkit's server is deliberate. The toolkit asks
// every request for basic auth; relay's webhook routes and audit API have
// bearer tokens of their own, and an Alertmanager webhook can send only
// one Authorization header. So basic auth is checked by the ingest
// handlers through Authenticate, only where relay has no credential of its
// own (see package ingest), and the rest of the file is applied here.
package web

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
)

// Config is a loaded web configuration file. Its basic auth users,
// response headers and TLS settings can be reloaded; the certificate and
// key files are read again on every new TLS connection, so a rotated
// certificate is served without a reload.
type Config struct {
	path  string
	tls   bool // fixed at Load: a listener cannot turn TLS on or off
	http2 bool // fixed at Load too
	state atomic.Pointer[state]
	auth  checker
}

// state is what a reload swaps.
type state struct {
	users   map[string]string // user -> bcrypt hash
	headers map[string]string
	tls     *tls.Config // nil without TLS
	summary Summary
}

// Summary describes a loaded file for the startup log; it holds no secret.
type Summary struct {
	TLS            bool     `json:"tls"`
	ClientAuthType string   `json:"client_auth_type,omitempty"`
	BasicAuthUsers []string `json:"basic_auth_users,omitempty"`
	HTTP2          bool     `json:"http2"`
}

// Load reads and validates the web configuration file at path.
func Load(path string) (*Config, error) {
	s, file, err := read(path)
	if err != nil {
		return nil, err
	}
	c := &Config{path: path, tls: s.tls != nil, http2: file.HTTPConfig.HTTP2}
	c.state.Store(s)
	return c, nil
}

// Reload reads the file again and applies it, or returns why not (the
// previous settings stay). Turning TLS on or off, or HTTP/2, takes a
// restart, so a file that does is refused.
func (c *Config) Reload() error {
	s, file, err := read(c.path)
	if err != nil {
		return err
	}
	if (s.tls != nil) != c.tls {
		return fmt.Errorf("web config file %s: turning TLS on or off takes a restart", c.path)
	}
	if file.HTTPConfig.HTTP2 != c.http2 {
		return fmt.Errorf("web config file %s: http_server_config.http2 changes take a restart", c.path)
	}
	c.state.Store(s)
	return nil
}

// Summary describes the settings in force.
func (c *Config) Summary() Summary { return c.state.Load().summary }

// read parses and checks the file as the exporter toolkit does (its
// defaults, strict keys, bcrypt hashes, readable certificates) and builds
// the TLS configuration.
func read(path string) (*state, *web.Config, error) {
	if err := web.Validate(path); err != nil {
		return nil, nil, fmt.Errorf("web config file %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("web config file: %w", err)
	}
	// The toolkit's defaults: TLS 1.2 to 1.3, HTTP/2 on.
	file := &web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(b, file); err != nil {
		return nil, nil, fmt.Errorf("web config file %s: %w", path, err)
	}
	if file.RateLimiterConfig.Interval != 0 || file.RateLimiterConfig.Burst != 0 {
		// A webhook refused for the rate would be an alert delayed or
		// lost; relay bounds its load by other means (ingest limits).
		return nil, nil, fmt.Errorf("web config file %s: rate_limit is not supported by relay: remove it", path)
	}
	file.TLSConfig.SetDirectory(filepath.Dir(path))
	s := &state{users: map[string]string{}, headers: file.HTTPConfig.Header}
	for user, hash := range file.Users {
		s.users[user] = string(hash)
		s.summary.BasicAuthUsers = append(s.summary.BasicAuthUsers, user)
	}
	slices.Sort(s.summary.BasicAuthUsers)
	s.summary.HTTP2 = file.HTTPConfig.HTTP2
	if file.TLSConfig.IsEnabled() {
		cfg, err := web.ConfigToTLSConfig(&file.TLSConfig)
		if err != nil {
			return nil, nil, fmt.Errorf("web config file %s: tls_server_config: %w", path, err)
		}
		cfg.NextProtos = []string{"http/1.1"}
		if file.HTTPConfig.HTTP2 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		s.tls = cfg
		s.summary.TLS = true
		s.summary.ClientAuthType = file.TLSConfig.ClientAuth
	}
	return s, file, nil
}

// Serve serves srv on ln, over TLS when the file configures it, adding
// the file's response headers to every answer.
func (c *Config) Serve(srv *http.Server, ln net.Listener) error {
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range c.state.Load().headers {
			w.Header().Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
	if !c.tls {
		return srv.Serve(ln)
	}
	if !c.http2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	srv.TLSConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Each handshake takes the settings in force, so a reload applies
		// to new connections.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.state.Load().tls, nil
		},
	}
	return srv.ServeTLS(ln, "", "")
}

// Authenticate reports whether r carries the basic auth credentials of one
// of the file's users; true when the file lists none.
func (c *Config) Authenticate(r *http.Request) bool {
	s := c.state.Load()
	if len(s.users) == 0 {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	return c.auth.check(s.users, user, pass)
}

// checker compares passwords with bcrypt hashes. bcrypt is slow on
// purpose (tens of milliseconds), so comparisons run one at a time, which
// bounds the CPU a flood of wrong passwords can take, and each answer is
// remembered under a hash of user, stored hash and password: a scraper or
// sender presenting the same credentials again costs a map lookup.
type checker struct {
	mu      sync.Mutex // serialises bcrypt comparisons
	cacheMu sync.Mutex
	cache   map[[sha256.Size]byte]bool
}

// cacheMax bounds the remembered answers; the cache starts afresh when full.
const cacheMax = 1024

func (k *checker) check(users map[string]string, user, pass string) bool {
	hash, known := users[user]
	if !known {
		// The same work as for a known user, so that the time taken does
		// not tell which user names exist.
		hash = unknownUserHash()
	}
	key := cacheKey(user, hash, pass)
	k.cacheMu.Lock()
	ok, seen := k.cache[key]
	k.cacheMu.Unlock()
	if seen {
		return ok && known
	}
	k.mu.Lock()
	ok = bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil
	k.mu.Unlock()
	k.cacheMu.Lock()
	if k.cache == nil || len(k.cache) >= cacheMax {
		k.cache = map[[sha256.Size]byte]bool{}
	}
	k.cache[key] = ok
	k.cacheMu.Unlock()
	return ok && known
}

func cacheKey(user, hash, pass string) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{user, hash, pass} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// unknownUserHash is a bcrypt hash made once, at bcrypt's default cost, to
// compare with when the user is unknown (the answer is no either way).
var unknownUserHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("relay: no such user"), bcrypt.DefaultCost)
	if err != nil {
		panic(errors.New("web: bcrypt of a fixed password failed: " + err.Error()))
	}
	return string(h)
})

// Users are the basic_auth_users of a YAML file, user name to bcrypt
// hash: a Prometheus web configuration file, or a file with only that key.
// The console's sign-in checks passwords against them.
type Users struct {
	hashes map[string]string
	auth   checker
}

// LoadUsers reads the basic_auth_users of the file at path. Other keys of
// a web configuration file are left to Load; a hash that is not bcrypt is
// an error naming its user.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	var file struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if len(file.Users) == 0 {
		return nil, fmt.Errorf("users file %s: no basic_auth_users", path)
	}
	for user, hash := range file.Users {
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("users file %s: basic_auth_users %q: not a bcrypt hash (make one with htpasswd -nBC 10 \"\")", path, user)
		}
	}
	return &Users{hashes: file.Users}, nil
}

// Names lists the user names, sorted.
func (u *Users) Names() []string {
	names := make([]string, 0, len(u.hashes))
	for n := range u.hashes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Check reports whether pass is user's password. It takes as long for an
// unknown user as for a known one, and compares one password at a time.
func (u *Users) Check(user, pass string) bool { return u.auth.check(u.hashes, user, pass) }
