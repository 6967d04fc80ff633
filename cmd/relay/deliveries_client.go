package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/ingest"
)

// clientFlags are the options every deliveries action shares.
type clientFlags struct {
	url, configPath string
	json            bool
	timeout         time.Duration
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.url, "url", "", "the relay's base URL (default: $RELAY_URL, the config's listen_address, or "+defaultRelayURL+")")
	fs.StringVar(&cf.configPath, "config", "", "configuration file to take the URL and API token from (default: $RELAY_CONFIG)")
	fs.BoolVar(&cf.json, "json", false, "print the server's JSON (for scripts)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "time limit of each request")
}

// newClient resolves the relay's URL and the API token, in that order of
// precedence: flag, environment, config file, default.
func (cf *clientFlags) newClient(getenv func(string) string) (*auditClient, error) {
	if cf.timeout <= 0 {
		return nil, usageError{fmt.Errorf("--timeout must be positive, got %s", cf.timeout)}
	}
	var cfg *config.Config
	loadCfg := func() (*config.Config, error) {
		if cfg != nil || (cf.configPath == "" && getenv(config.EnvConfig) == "") {
			return cfg, nil
		}
		// The client needs one secret, the API token; the others (the
		// UCWA password, route tokens) need not exist where it runs.
		c, err := config.LoadWith(cf.configPath, getenv, config.LoadOptions{SkipSecrets: true})
		if err != nil {
			return nil, fmt.Errorf("read the relay's URL and API token from the config: %w", err)
		}
		cfg = c
		return cfg, nil
	}

	raw, from := cf.url, "--url"
	if raw == "" {
		raw, from = getenv(envRelayURL), envRelayURL
	}
	if raw == "" {
		c, err := loadCfg()
		if err != nil {
			return nil, err
		}
		raw, from = defaultRelayURL, "the default"
		if c != nil {
			raw, from = listenURL(c.ListenAddress), "the config's listen_address"
		}
	}
	base, err := parseBaseURL(raw)
	if err != nil {
		return nil, usageError{fmt.Errorf("relay URL from %s: %w", from, err)}
	}

	token, err := envToken(getenv)
	if err != nil {
		return nil, usageError{err}
	}
	if token == "" {
		c, err := loadCfg()
		if err != nil {
			return nil, err
		}
		if c != nil && c.API.BearerTokenFile != "" {
			path := c.API.BearerTokenFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(c.Dir, path)
			}
			if token, err = readTokenFile(path, "api.bearer_token_file"); err != nil {
				return nil, usageError{err}
			}
		}
	}
	if token == "" {
		return nil, usageError{fmt.Errorf("no API token: set %s or %s, or pass --config with api.bearer_token_file",
			config.EnvAPIToken, envAPITokenFile)}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &auditClient{
		base:  base,
		token: token,
		http: &http.Client{
			Transport: tr,
			Timeout:   cf.timeout,
			// A redirect could carry the token elsewhere; the audit API
			// never redirects, so one means --url points at something else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: cf.timeout,
	}, nil
}

// listenURL turns a listen address into the URL a client on the same host
// uses: a wildcard host becomes 127.0.0.1.
func listenURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr // parseBaseURL reports it
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// parseBaseURL checks a relay URL and returns it without a trailing slash.
func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %q", truncateRunes(clean(raw, false), 100))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("want an http:// or https:// URL such as %s, got %q", defaultRelayURL, truncateRunes(clean(raw, false), 100))
	}
	if u.Host == "" {
		return "", fmt.Errorf("no host in %q", truncateRunes(clean(raw, false), 100))
	}
	if u.User != nil {
		return "", errors.New("the URL holds credentials; the API token comes from " + config.EnvAPIToken)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("want a base URL without query or fragment, got %q", truncateRunes(clean(raw, false), 100))
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// envToken reads the API token from RELAY_API_TOKEN or the file named by
// RELAY_API_TOKEN_FILE; "" when neither is set.
func envToken(getenv func(string) string) (string, error) {
	val, file := getenv(config.EnvAPIToken), getenv(envAPITokenFile)
	switch {
	case val != "" && file != "":
		return "", fmt.Errorf("both %s and %s are set; set only one", config.EnvAPIToken, envAPITokenFile)
	case val != "":
		if err := checkToken(val); err != nil {
			return "", fmt.Errorf("%s: %w", config.EnvAPIToken, err)
		}
		return val, nil
	case file != "":
		return readTokenFile(file, envAPITokenFile)
	}
	return "", nil
}

// readTokenFile reads the API token from path, named by from (a variable
// or a config key).
func readTokenFile(path, from string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", from, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, config.MaxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", from, path, err)
	}
	if len(data) > config.MaxSecretFileSize {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", from, path, config.MaxSecretFileSize)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty", from, path)
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("%s: %s %w", from, path, err)
	}
	return tok, nil
}

// checkToken rejects what would corrupt the Authorization header. The
// message never shows the token.
func checkToken(tok string) error {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x20 || c == 0x7f {
			return errors.New("contains a control character (a line break or tab?)")
		}
	}
	return nil
}

// auditClient calls a relay's audit API.
type auditClient struct {
	base    string
	token   string
	http    *http.Client
	timeout time.Duration
}

// statusError is a non-2xx answer of the audit API.
type statusError struct {
	base   string
	status int
	msg    string // the server's message, cleaned
}

func (e *statusError) Error() string {
	detail := fmt.Sprintf("HTTP %d", e.status)
	if e.msg != "" {
		detail += ": " + e.msg
	}
	switch e.status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the relay at %s rejected the API token (%s): check %s, %s or the config's api.bearer_token_file",
			e.base, detail, config.EnvAPIToken, envAPITokenFile)
	case http.StatusForbidden:
		return fmt.Sprintf("the relay at %s refused the audit API (%s)", e.base, detail)
	}
	if e.status >= 300 && e.status < 400 {
		return fmt.Sprintf("the relay at %s answered with a redirect (%s): point --url at the relay itself", e.base, detail)
	}
	if e.perItem() && e.msg != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.msg, e.status)
	}
	return fmt.Sprintf("the relay at %s answered %s", e.base, detail)
}

// perItem reports whether the error concerns the one delivery asked for
// rather than the relay or the credentials.
func (e *statusError) perItem() bool {
	return e.status == http.StatusNotFound || e.status == http.StatusConflict || e.status == http.StatusBadRequest
}

// do sends one request and returns the body of a 2xx answer, read up to
// limit bytes.
func (c *auditClient) do(ctx context.Context, method, path string, query url.Values, limit int64) ([]byte, error) {
	return c.send(ctx, method, path, query, nil, limit)
}

// sendHeader is do without a query, with extra request headers.
func (c *auditClient) sendHeader(ctx context.Context, method, path string, h http.Header, limit int64) ([]byte, error) {
	return c.sendWith(ctx, method, path, nil, nil, h, limit)
}

// send is do with a JSON request body (none when body is nil).
func (c *auditClient) send(ctx context.Context, method, path string, query url.Values, body []byte, limit int64) ([]byte, error) {
	return c.sendWith(ctx, method, path, query, body, nil, limit)
}

func (c *auditClient) sendWith(ctx context.Context, method, path string, query url.Values, body []byte, h http.Header, limit int64) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", ingest.CLIUserAgentPrefix+build.Version)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		errBody, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		// A server that echoes the token must not get it printed.
		msg := strings.ReplaceAll(serverMessage(errBody), c.token, "[REDACTED]")
		return nil, &statusError{base: c.base, status: resp.StatusCode, msg: msg}
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("the relay at %s sent more than %d bytes for %s", c.base, limit, path)
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("the relay at %s answered %s with something other than JSON: is --url a relay?", c.base, path)
	}
	return out, nil
}

func (c *auditClient) transportError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to the relay at %s: connection refused (is it running? pass --url or set %s)",
			c.base, envRelayURL)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer from the relay at %s within %s (raise --timeout)", c.base, c.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the message
	}
	return fmt.Errorf("cannot reach the relay at %s (pass --url or set %s): %w", c.base, envRelayURL, err)
}

// serverMessage extracts the "error" of a JSON error body, or the start of
// any other body (a proxy's page), cleaned for a terminal.
func serverMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	} else {
		msg = strings.TrimSpace(string(body))
	}
	return truncateRunes(clean(msg, false), 300)
}
