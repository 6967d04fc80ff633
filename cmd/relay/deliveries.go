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
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/store"
)

const deliveriesUsage = `Usage:
  relay deliveries list [flags]                 list deliveries, newest first
  relay deliveries show ID [--payload] [flags]  one delivery with its attempts
  relay deliveries redeliver ID [ID...]         put finished deliveries back in the queue

The relay's URL comes from --url, else RELAY_URL, else the listen_address of the
config (--config or RELAY_CONFIG), else http://127.0.0.1:9095. The API token comes
from RELAY_API_TOKEN or RELAY_API_TOKEN_FILE, else the config's api.bearer_token_file;
it is never taken from the command line.
`

// Environment variables only the client reads; RELAY_API_TOKEN and its
// _FILE variant are the server's own (config.EnvAPIToken).
const (
	envRelayURL     = "RELAY_URL"
	envAPITokenFile = config.EnvAPIToken + "_FILE"
	defaultRelayURL = "http://127.0.0.1:9095"
)

// Response size limits: a list page is at most 500 deliveries of at most a
// few KiB each; a detail carries the notification payload.
const (
	maxListBody   = 32 << 20
	maxDetailBody = 32 << 20
	maxSmallBody  = 1 << 20
	// maxAllRows caps list --all.
	maxAllRows = 10_000
	// errorWidth is how much of a last error the list table shows.
	errorWidth = 60
)

// deliveries runs "relay deliveries list|show|redeliver": a client of the
// audit API of a running relay.
func deliveries(args []string, stdout, stderr io.Writer) error {
	return runDeliveries(context.Background(), args, os.Getenv, stdout, stderr)
}

func runDeliveries(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deliveriesUsage)
		return usageError{errors.New("want one of: list, show, redeliver")}
	}
	action, args := args[0], args[1:]
	switch action {
	case "list":
		return deliveriesList(ctx, args, getenv, stdout, stderr)
	case "show":
		return deliveriesShow(ctx, args, getenv, stdout, stderr)
	case "redeliver":
		return deliveriesRedeliver(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, deliveriesUsage)
		return nil
	default:
		fmt.Fprint(stderr, deliveriesUsage)
		return usageError{fmt.Errorf("unknown action %q: want list, show or redeliver", action)}
	}
}

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

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns. "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
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
		c, err := config.Load(cf.configPath, getenv)
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
		if c != nil {
			token = c.API.BearerToken.Reveal()
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
		return readTokenFile(file)
	}
	return "", nil
}

func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", envAPITokenFile, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", envAPITokenFile, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", envAPITokenFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, config.MaxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", envAPITokenFile, path, err)
	}
	if len(data) > config.MaxSecretFileSize {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", envAPITokenFile, path, config.MaxSecretFileSize)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty", envAPITokenFile, path)
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("%s: %s %w", envAPITokenFile, path, err)
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
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "relay-cli/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		// A server that echoes the token must not get it printed.
		msg := strings.ReplaceAll(serverMessage(body), c.token, "[REDACTED]")
		return nil, &statusError{base: c.base, status: resp.StatusCode, msg: msg}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("the relay at %s sent more than %d bytes for %s", c.base, limit, path)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("the relay at %s answered %s with something other than JSON: is --url a relay?", c.base, path)
	}
	return body, nil
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

// delivery and attempt hold the fields of the audit API the tables show.
type delivery struct {
	OperationID    string     `json:"operationId"`
	NotificationID string     `json:"notificationId"`
	Route          string     `json:"route"`
	Conversation   string     `json:"conversation"`
	Recipient      string     `json:"recipient"`
	Subject        string     `json:"subject"`
	Importance     string     `json:"importance"`
	Part           int        `json:"part"`
	Parts          int        `json:"parts"`
	Text           string     `json:"text"`
	State          string     `json:"state"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  time.Time  `json:"nextAttemptAt"`
	LeaseUntil     *time.Time `json:"leaseUntil"`
	LastError      string     `json:"lastError"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	DeliveredAt    *time.Time `json:"deliveredAt"`
}

type attempt struct {
	Attempt     int       `json:"attempt"`
	Outcome     string    `json:"outcome"`
	Pool        string    `json:"pool"`
	HTTPStatus  *int      `json:"httpStatus"`
	UCWACode    string    `json:"ucwaCode"`
	UCWASubcode string    `json:"ucwaSubcode"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error"`
	LatencyMS   float64   `json:"latencyMs"`
	StartedAt   time.Time `json:"startedAt"`
}

type deliveryDetail struct {
	delivery
	Format       string          `json:"format"`
	Event        string          `json:"event"`
	DedupKey     string          `json:"dedupKey"`
	Payload      json.RawMessage `json:"payload"`
	ReceivedAt   time.Time       `json:"receivedAt"`
	AttemptLog   []attempt       `json:"attemptLog"`
	Duplicates   int             `json:"duplicates"`
	DuplicatesAt []time.Time     `json:"duplicatesAt"`
}

type listPage struct {
	Deliveries []json.RawMessage `json:"deliveries"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// checkID rejects what cannot be an operationId (ASCII, at most 50
// characters) before it goes into a URL path.
func checkID(id string) error {
	if id == "" || len(id) > 50 || id == "." || id == ".." {
		return usageError{fmt.Errorf("%q is not an operationId", truncateRunes(clean(id, false), 60))}
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return usageError{fmt.Errorf("%q is not an operationId", truncateRunes(clean(id, false), 60))}
		}
	}
	return nil
}

// printJSON writes body indented, keeping the server's field order.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// clean makes text from the server safe for a terminal: control characters
// (escape sequences included) become spaces; with multiline, line breaks
// and tabs stay.
func clean(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			return r
		case r == '\r' && multiline:
			return -1
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return ' '
		}
		return r
	}, s)
}

// oneLine cleans s and collapses its whitespace to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(clean(s, false)), " ")
}

// truncateRunes cuts s to at most n runes, marking the cut with "…".
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// parseWhen reads a --since or --until value: an RFC 3339 time, or a
// duration (90m, 1h, 2d) meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100_000 {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-27T13:00:00Z) or a duration before now (90m, 1h, 2d), got %q", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-27T13:00:00Z) or a duration before now (90m, 1h, 2d), got %q", s)
		}
	}
	return now.Add(-d), nil
}

func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func localTimeZone(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tableCell makes a server string fit one tabwriter cell.
func tableCell(s string) string { return dash(oneLine(s)) }

// knownState checks a --state value against relay's states.
func knownState(s string) error {
	if _, err := relay.ParseState(s); err != nil {
		names := make([]string, len(relay.States))
		for i, st := range relay.States {
			names[i] = string(st)
		}
		return usageError{fmt.Errorf("--state: %q is not one of %s", truncateRunes(clean(s, false), 40), strings.Join(names, ", "))}
	}
	return nil
}

// newTable returns a tabwriter for the CLI's tables.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func deliveriesList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliveries list", "relay deliveries list [--route R] [--conversation C] [--state S] [--since T] [--until T] [--limit N] [--cursor C | --all] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	var route, conversation, state, since, until, cursor string
	var limit int
	var all bool
	fs.StringVar(&route, "route", "", "only this route's deliveries")
	fs.StringVar(&conversation, "conversation", "", "only this conversation's deliveries")
	fs.StringVar(&state, "state", "", "only deliveries in this state (pending, sending, delivered, dead, uncertain, superseded)")
	fs.StringVar(&since, "since", "", "created at or after: RFC 3339 time, or a duration before now (90m, 1h, 2d)")
	fs.StringVar(&until, "until", "", "created before: RFC 3339 time, or a duration before now")
	fs.IntVar(&limit, "limit", 0, fmt.Sprintf("page size, 1 to %d (default 50; %d with --all)", store.MaxListLimit, store.MaxListLimit))
	fs.StringVar(&cursor, "cursor", "", "continue a listing where the previous page ended")
	fs.BoolVar(&all, "all", false, fmt.Sprintf("follow every page (at most %d deliveries)", maxAllRows))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", truncateRunes(clean(pos[0], false), 60))}
	}
	q := url.Values{}
	for _, p := range []struct{ key, val string }{{"route", route}, {"conversation", conversation}, {"cursor", cursor}} {
		if p.val != "" {
			q.Set(p.key, p.val)
		}
	}
	if state != "" {
		if err := knownState(state); err != nil {
			return err
		}
		q.Set("state", state)
	}
	now := time.Now()
	for _, p := range []struct{ key, val string }{{"since", since}, {"until", until}} {
		if p.val == "" {
			continue
		}
		t, err := parseWhen(p.val, now)
		if err != nil {
			return usageError{fmt.Errorf("--%s: %w", p.key, err)}
		}
		q.Set(p.key, t.UTC().Format(time.RFC3339Nano))
	}
	switch {
	case limit < 0 || limit > store.MaxListLimit:
		return usageError{fmt.Errorf("--limit: want 1 to %d, got %d", store.MaxListLimit, limit)}
	case limit > 0:
		q.Set("limit", strconv.Itoa(limit))
	case all:
		q.Set("limit", strconv.Itoa(store.MaxListLimit))
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}

	var rows []json.RawMessage
	next := ""
	for {
		body, err := c.do(ctx, http.MethodGet, "/v1/deliveries", q, maxListBody)
		if err != nil {
			return err
		}
		var page listPage
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("read the list from %s: %w", c.base, err)
		}
		if !all {
			if cf.json {
				if err := printJSON(stdout, body); err != nil {
					return err
				}
			} else if err := printList(stdout, page.Deliveries); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(stderr, "more deliveries: repeat with --cursor %s (or use --all)\n", clean(page.NextCursor, false))
			}
			return nil
		}
		rows = append(rows, page.Deliveries...)
		next = page.NextCursor
		if next == "" || next == q.Get("cursor") {
			next = "" // a cursor that does not move would loop forever
			break
		}
		if len(rows) >= maxAllRows {
			break
		}
		q.Set("cursor", next)
	}
	if len(rows) > maxAllRows {
		rows = rows[:maxAllRows]
	}
	if cf.json {
		out, err := json.Marshal(listPage{Deliveries: rows, NextCursor: next})
		if err != nil {
			return fmt.Errorf("encode the list: %w", err)
		}
		if err := printJSON(stdout, out); err != nil {
			return err
		}
	} else if err := printList(stdout, rows); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stderr, "stopped after %d deliveries (the --all limit); continue with --cursor %s\n",
			len(rows), clean(next, false))
	}
	return nil
}

// printList writes the deliveries as a table for people.
func printList(w io.Writer, rows []json.RawMessage) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no deliveries")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "OPERATION ID\tSTATE\tATTEMPTS\tROUTE\tCONVERSATION\tCREATED\tLAST ERROR")
	for _, raw := range rows {
		var d delivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("read a delivery of the list: %w", err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", tableCell(d.OperationID), tableCell(d.State), d.Attempts,
			tableCell(d.Route), tableCell(d.Conversation), localTime(d.CreatedAt),
			truncateRunes(tableCell(d.LastError), errorWidth))
	}
	return tw.Flush()
}

func deliveriesShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliveries show", "relay deliveries show ID [--payload] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	payload := fs.Bool("payload", false, "also print the notification's payload")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want one operationId")}
	}
	if err := checkID(pos[0]); err != nil {
		return err
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	body, err := c.do(ctx, http.MethodGet, "/v1/deliveries/"+url.PathEscape(pos[0]), nil, maxDetailBody)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, body)
	}
	var d deliveryDetail
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("read delivery %s from %s: %w", pos[0], c.base, err)
	}
	return printDetail(stdout, &d, *payload)
}

// printDetail writes one delivery as a block for people.
func printDetail(w io.Writer, d *deliveryDetail, withPayload bool) error {
	tw := newTable(w)
	field := func(name, val string) { fmt.Fprintf(tw, "%s:\t%s\n", name, val) }
	field("Operation ID", tableCell(d.OperationID))
	field("Notification ID", tableCell(d.NotificationID))
	field("State", tableCell(d.State))
	field("Route", tableCell(d.Route))
	field("Conversation", tableCell(d.Conversation))
	field("Recipient", tableCell(d.Recipient))
	if d.Subject != "" {
		field("Subject", tableCell(d.Subject))
	}
	if d.Importance != "" {
		field("Importance", tableCell(d.Importance))
	}
	field("Part", fmt.Sprintf("%d of %d", d.Part, d.Parts))
	if d.Event != "" {
		field("Format", tableCell(d.Format)+" (event "+oneLine(d.Event)+")")
	} else {
		field("Format", tableCell(d.Format))
	}
	field("Received", localTimeZone(&d.ReceivedAt))
	field("Created", localTimeZone(&d.CreatedAt))
	field("Updated", localTimeZone(&d.UpdatedAt))
	field("Delivered", localTimeZone(d.DeliveredAt))
	if d.State == string(relay.StatePending) {
		field("Next attempt", localTimeZone(&d.NextAttemptAt))
	}
	if d.LeaseUntil != nil {
		field("Lease until", localTimeZone(d.LeaseUntil))
	}
	field("Attempts", attemptSummary(d))
	field("Last error", tableCell(d.LastError))
	field("Dedup key", tableCell(d.DedupKey))
	dup := strconv.Itoa(d.Duplicates)
	if len(d.DuplicatesAt) > 0 {
		const shown = 5
		var ts []string
		for i, t := range d.DuplicatesAt {
			if i == shown {
				ts = append(ts, "…")
				break
			}
			ts = append(ts, localTimeZone(&t))
		}
		dup += " (latest: " + strings.Join(ts, ", ") + ")"
	}
	field("Duplicates", dup)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nText:")
	for _, line := range strings.Split(strings.TrimRight(clean(d.Text, true), "\n"), "\n") {
		fmt.Fprintln(w, "    "+line)
	}
	if withPayload {
		fmt.Fprintln(w, "\nPayload:")
		var buf bytes.Buffer
		if len(d.Payload) == 0 || json.Indent(&buf, d.Payload, "    ", "  ") != nil {
			fmt.Fprintln(w, "    (none)")
		} else {
			fmt.Fprintln(w, "    "+clean(buf.String(), true))
		}
	}

	fmt.Fprintln(w, "\nAttempt log:")
	tw = newTable(w)
	fmt.Fprintln(tw, "ATTEMPT\tOUTCOME\tREASON\tPOOL\tSTATUS\tUCWA CODE/SUBCODE\tLATENCY\tAT\tERROR")
	for _, a := range d.AttemptLog {
		status := "-"
		if a.HTTPStatus != nil {
			status = strconv.Itoa(*a.HTTPStatus)
		}
		code := "-"
		if a.UCWACode != "" || a.UCWASubcode != "" {
			code = oneLine(a.UCWACode) + "/" + oneLine(a.UCWASubcode)
		}
		latency := time.Duration(a.LatencyMS * float64(time.Millisecond)).Round(time.Millisecond)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, tableCell(a.Outcome), tableCell(a.Reason),
			tableCell(a.Pool), status, code, latency, localTime(a.StartedAt), truncateRunes(tableCell(a.Error), 2*errorWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.AttemptLog) == 0 {
		_, err := fmt.Fprintln(w, "(no attempts yet)")
		return err
	}
	return nil
}

// attemptSummary says how many tries there were and how they ended, e.g.
// "3 (retry 2, delivered 1)".
func attemptSummary(d *deliveryDetail) string {
	s := strconv.Itoa(d.Attempts)
	if len(d.AttemptLog) == 0 {
		return s
	}
	var order []string
	count := map[string]int{}
	for _, a := range d.AttemptLog {
		o := dash(oneLine(a.Outcome))
		if count[o] == 0 {
			order = append(order, o)
		}
		count[o]++
	}
	parts := make([]string, len(order))
	for i, o := range order {
		parts[i] = fmt.Sprintf("%s %d", o, count[o])
	}
	return s + " (" + strings.Join(parts, ", ") + ")"
}

func deliveriesRedeliver(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliveries redeliver", "relay deliveries redeliver ID [ID...] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usageError{errors.New("want at least one operationId")}
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	failed := 0
	for _, id := range ids {
		body, err := c.do(ctx, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/redeliver", nil, maxSmallBody)
		var se *statusError
		switch {
		case errors.As(err, &se) && se.perItem():
			// This delivery's own trouble: report it and go on with the rest.
			fmt.Fprintf(stderr, "%s: not redelivered: %v\n", id, err)
			failed++
			continue
		case err != nil:
			// The relay or the token: every other id would fail the same way.
			return err
		}
		if cf.json {
			if err := printJSON(stdout, body); err != nil {
				return err
			}
			continue
		}
		var r struct {
			PreviousState string `json:"previousState"`
		}
		_ = json.Unmarshal(body, &r)
		fmt.Fprintf(stdout, "%s: redelivered (was %s)\n", id, dash(oneLine(r.PreviousState)))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries not redelivered", failed, len(ids))
	}
	return nil
}
