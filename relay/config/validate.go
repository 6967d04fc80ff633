package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/match"
)

// Validation limits.
const (
	maxMaxConns     = 1000
	maxMaxBodyBytes = 64 << 20
	maxDedupWindow  = 24 * time.Hour
	minRetention    = 24 * time.Hour
	maxBatchMax     = 10_000
	// Between a few ordinary notifications and far more than one statement
	// should carry.
	minBatchMaxBytes    = 64 << 10
	maxBatchMaxBytes    = 1 << 30
	maxMaxInflightBytes = 64 << 30
	// maxEventTimeout is the largest P-GET timeout UCWA accepts (1800 s).
	maxEventTimeout = 30 * time.Minute
	maxSIPURI       = 256
	maxRecipients   = 100
	maxRules        = 100
	maxSubject      = 250
)

var (
	// namePattern is what route and conversation names must match.
	namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// shippedTemplate is a template name (no path): anything else is a file.
	shippedTemplate = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// sipURI is sip:user@host with RFC 3261 user characters and a DNS name
	// or IP host, optionally with a port.
	sipURI = regexp.MustCompile(`^sip:[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+@[A-Za-z0-9.\-]+(:[0-9]{1,5})?$`)
)

// validate checks cfg, reporting each problem into c, and fills the derived
// fields (Route.TemplateFile, Rule.Matchers, UCWA.RootCAs).
func (cfg *Config) validate(c *collector) {
	if err := checkHostPort(cfg.ListenAddress, true); err != nil {
		c.addf("listen_address", "%v", err)
	}
	intRange(c, "database.max_conns", int64(cfg.Database.MaxConns), 1, maxMaxConns)
	cfg.validateIngest(c)
	cfg.validateUCWA(c)
	cfg.validateConversations(c)
	cfg.validateRoutes(c)
	cfg.validateDelivery(c)
	cfg.validateConsole(c)
	if w := cfg.API.RedeliverWindow; w < 0 || w > 24*time.Hour {
		c.addf("api.redeliver_window", "must be from 0 (no check) to 24h, got %s", w)
	}
	// History younger than the deduplication window may still be pointed
	// at by a duplicate arriving; an hour more keeps the sweep clear of it.
	if r := cfg.Retention; r != 0 && (r < minRetention || r < cfg.Ingest.DedupWindow+time.Hour) {
		c.addf("retention", "must be 0 (keep for ever) or at least 24h and at least ingest.dedup_window + 1h, got %s", r)
	}
	oneOf(c, "log.level", cfg.Log.Level, LogLevels)
	oneOf(c, "log.format", cfg.Log.Format, LogFormats)
}

func (cfg *Config) validateIngest(c *collector) {
	in := &cfg.Ingest
	intRange(c, "ingest.max_body_bytes", in.MaxBodyBytes, 1, maxMaxBodyBytes)
	intRange(c, "ingest.max_message_bytes", int64(in.MaxMessageBytes), 256, 1<<20)
	intRange(c, "ingest.max_parts", int64(in.MaxParts), 1, 100)
	// 2 at least: one message and the one summarising the rest.
	intRange(c, "ingest.max_messages_per_notification", int64(in.MaxMessagesPerNotification), 2, alertmanager.MaxAlerts)
	if in.DedupWindow <= 0 || in.DedupWindow > maxDedupWindow {
		c.addf("ingest.dedup_window", "must be > 0 and <= 24h, got %s", in.DedupWindow)
	}
	positive(c, "ingest.read_timeout", in.ReadTimeout)
	positive(c, "ingest.write_timeout", in.WriteTimeout)
	positive(c, "ingest.idle_timeout", in.IdleTimeout)
	positive(c, "ingest.request_timeout", in.RequestTimeout)
	// The server stops writing write_timeout after a request's headers
	// came in. An answer comes by request_timeout, or up to a commit later
	// (a group commit under way is waited for, and bounded by 5s), or, for
	// a body that arrives slowly, at read_timeout: each must still be
	// written, or the sender sees the connection close without an answer.
	if in.WriteTimeout > 0 && in.RequestTimeout > 0 && in.WriteTimeout < in.RequestTimeout+CommitAllowance {
		c.addf("ingest.write_timeout", "must be at least ingest.request_timeout (%s) + %s, the longest a commit under way may "+
			"still take, so that a late answer is still written; got %s", in.RequestTimeout, CommitAllowance, in.WriteTimeout)
	}
	if in.WriteTimeout > 0 && in.WriteTimeout <= in.ReadTimeout {
		c.addf("ingest.write_timeout", "must be longer than ingest.read_timeout (%s), so that a request whose body "+
			"arrives slowly is still answered; got %s", in.ReadTimeout, in.WriteTimeout)
	}
	intRange(c, "ingest.batch_max", int64(in.BatchMax), 1, maxBatchMax)
	intRange(c, "ingest.batch_max_bytes", int64(in.BatchMaxBytes), minBatchMaxBytes, maxBatchMaxBytes)
	intRange(c, "ingest.max_inflight_bytes", in.MaxInflightBytes, 1, maxMaxInflightBytes)
	if in.MaxInflightBytes > 0 && in.MaxInflightBytes < in.MaxBodyBytes && in.MaxBodyBytes <= maxMaxBodyBytes {
		c.addf("ingest.max_inflight_bytes", "must be at least ingest.max_body_bytes (%d), or a body of the largest "+
			"size accepted could never be taken; got %d", in.MaxBodyBytes, in.MaxInflightBytes)
	}
}

func (cfg *Config) validateUCWA(c *collector) {
	u := &cfg.UCWA
	seen := map[string]int{}
	for i, raw := range u.DiscoveryURLs {
		key := fmt.Sprintf("ucwa.discovery_urls[%d]", i)
		if err := checkDiscoveryURL(raw); err != nil {
			c.addf(key, "%v", err)
			continue
		}
		if j, dup := seen[raw]; dup {
			c.addf(key, "repeats ucwa.discovery_urls[%d]", j)
		}
		seen[raw] = i
	}
	if u.Enabled() {
		if strings.TrimSpace(u.Username) == "" {
			c.addf("ucwa.username", "required when ucwa.discovery_urls is set")
		}
		if !u.Password.IsSet() && u.PasswordFile == "" {
			c.addf("ucwa.password_file", "required when ucwa.discovery_urls is set (or set %s or %s)",
				EnvUCWAPassword, EnvUCWAPassword+fileSuffix)
		}
	} else {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"ucwa.username", u.Username != ""},
			{"ucwa.password_file", u.PasswordFile != ""},
			{"ucwa.allowed_hosts", len(u.AllowedHosts) > 0},
			{"ucwa.ca_file", u.CAFile != ""},
		} {
			if k.set {
				c.addf("ucwa.discovery_urls", "required when %s is set (without it nothing is delivered)", k.key)
				break
			}
		}
	}
	for i, h := range u.AllowedHosts {
		if err := checkHostPort(h, false); err != nil {
			c.addf(fmt.Sprintf("ucwa.allowed_hosts[%d]", i), "%v", err)
		}
	}
	if u.CAFile != "" {
		pool, err := loadCAFile(resolvePath(cfg.Dir, u.CAFile))
		if err != nil {
			c.addf("ucwa.ca_file", "%v", err)
		}
		u.RootCAs = pool
	}
	t := &u.Timers
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"request_timeout", t.RequestTimeout},
		{"event_timeout", t.EventTimeout},
		{"invitation_timeout", t.InvitationTimeout},
		{"message_timeout", t.MessageTimeout},
		{"retry_min", t.RetryMin},
		{"retry_max", t.RetryMax},
		{"failover_min", t.FailoverMin},
		{"failover_max", t.FailoverMax},
	} {
		positive(c, "ucwa.timers."+d.key, d.v)
	}
	if t.EventTimeout > maxEventTimeout {
		c.addf("ucwa.timers.event_timeout", "must be <= 30m (the largest P-GET timeout UCWA accepts), got %s", t.EventTimeout)
	}
	if t.RetryMin > 0 && t.RetryMax > 0 && t.RetryMin > t.RetryMax {
		c.addf("ucwa.timers.retry_max", "must be >= ucwa.timers.retry_min (%s), got %s", t.RetryMin, t.RetryMax)
	}
	if t.FailoverMin > 0 && t.FailoverMax > 0 && t.FailoverMin > t.FailoverMax {
		c.addf("ucwa.timers.failover_max", "must be >= ucwa.timers.failover_min (%s), got %s", t.FailoverMin, t.FailoverMax)
	}
}

func (cfg *Config) validateConversations(c *collector) {
	for _, name := range sortedKeys(cfg.Conversations) {
		conv := cfg.Conversations[name]
		key := join("conversations", name)
		if !namePattern.MatchString(name) {
			c.addf(key, "name must match %s", namePattern)
		}
		if len(conv.To) == 0 {
			c.addf(key+".to", "required (a SIP URI such as sip:oncall@contoso.com, or a list of them)")
		}
		if len(conv.To) > maxRecipients {
			c.addf(key+".to", "lists %d recipients, at most %d", len(conv.To), maxRecipients)
		}
		seen := map[string]bool{}
		for i, to := range conv.To {
			tkey := key + ".to"
			if len(conv.To) > 1 {
				tkey = fmt.Sprintf("%s.to[%d]", key, i)
			}
			switch {
			case len(to) > maxSIPURI:
				c.addf(tkey, "longer than %d characters", maxSIPURI)
			case !sipURI.MatchString(to):
				c.addf(tkey, "want a SIP URI such as sip:oncall@contoso.com, got %s", quote(to))
			case seen[strings.ToLower(to)]:
				c.addf(tkey, "%s is listed twice", quote(to))
			}
			seen[strings.ToLower(to)] = true
		}
		if n := utf8.RuneCountInString(conv.Subject); n > maxSubject {
			c.addf(key+".subject", "longer than %d characters (%d)", maxSubject, n)
		} else if !utf8.ValidString(conv.Subject) {
			c.addf(key+".subject", "not valid UTF-8")
		}
		oneOf(c, key+".importance", conv.Importance, Importances)
	}
}

func (cfg *Config) validateRoutes(c *collector) {
	if len(cfg.Routes) == 0 {
		c.addf("routes", "at least one route is required")
		return
	}
	names := map[string]int{}
	envs := map[string]int{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		key := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			c.addf(key+".name", "required")
		case !namePattern.MatchString(r.Name):
			c.addf(key+".name", "%s must match %s", quote(r.Name), namePattern)
		default:
			if j, dup := names[r.Name]; dup {
				c.addf(key+".name", "%s is also the name of routes[%d]", quote(r.Name), j)
			} else if j, dup := envs[RouteTokenEnv(r.Name)]; dup {
				c.addf(key+".name", "%s and routes[%d].name %s share the token variable %s; rename one",
					quote(r.Name), j, quote(cfg.Routes[j].Name), RouteTokenEnv(r.Name))
			}
			names[r.Name] = i
			envs[RouteTokenEnv(r.Name)] = i
		}
		if r.Format == "" {
			c.addf(key+".format", "required (one of %s)", strings.Join(Formats, ", "))
		} else {
			oneOf(c, key+".format", r.Format, Formats)
		}
		if len(r.Conversations) == 0 && len(r.Rules) == 0 {
			c.addf(key+".conversations", "list at least one conversation (or rules that pick them)")
		}
		cfg.checkConversationList(c, key+".conversations", r.Conversations)
		if len(r.Rules) > maxRules {
			c.addf(key+".rules", "%d rules, at most %d", len(r.Rules), maxRules)
		}
		for j := range r.Rules {
			rule := &r.Rules[j]
			rkey := fmt.Sprintf("%s.rules[%d]", key, j)
			m, err := match.ParseStrings(rule.Match)
			if err != nil {
				c.addf(rkey+".match", "%v", err)
			}
			rule.Matchers = m
			cfg.checkConversationList(c, rkey+".conversations", rule.Conversations)
		}
		switch r.Format {
		case FormatGitHub, FormatGitLab:
			if !r.Secret.IsSet() {
				c.addf(key+".secret_file", "required for format %s (or set %s or %s)", r.Format,
					RouteSecretEnv(r.Name), RouteSecretEnv(r.Name)+fileSuffix)
			}
		default:
			if r.Secret.IsSet() {
				c.addf(key+".secret_file", "only github and gitlab routes use a secret; use bearer_token_file for a token")
			}
		}
		if r.Format != FormatAlertmanager && (r.SplitStatus || r.PerAlert) {
			c.addf(key+".split_status", "split_status and per_alert apply to alertmanager routes only")
		}
		if r.Template == "" {
			r.Template = r.Format
			if r.Template == "" {
				r.Template = DefaultTemplate
			}
		}
		cfg.validateTemplate(c, key+".template", r)
		d := &r.Delivery
		intRange(c, key+".delivery.max_attempts", int64(d.MaxAttempts), 1, 1000)
		if d.MaxAge <= 0 || d.MaxAge > 7*24*time.Hour {
			c.addf(key+".delivery.max_age", "must be > 0 and <= 168h, got %s", d.MaxAge)
		}
		oneOf(c, key+".delivery.uncertain", d.Uncertain, []string{UncertainResend, UncertainSkip})
		intRange(c, key+".delivery.max_resends", int64(d.MaxResends), 0, 100)
		intRange(c, key+".delivery.coalesce_after", int64(d.CoalesceAfter), 1, MaxCoalesceAfter)
	}
}

func (cfg *Config) validateDelivery(c *collector) {
	d := &cfg.Delivery
	intRange(c, "delivery.max_in_flight", int64(d.MaxInFlight), 1, 10_000)
	// Without UCWA nothing is sent, and only the floor applies.
	switch {
	case cfg.UCWA.Enabled() && d.Lease < MinLease(cfg.UCWA.Timers):
		c.addf("delivery.lease", "must be at least %s: 3/4 of it must cover the slowest send "+
			"(ucwa.timers invitation_timeout + message_timeout + 2 x request_timeout = %s), got %s",
			MinLease(cfg.UCWA.Timers), SlowestSend(cfg.UCWA.Timers), d.Lease)
	case d.Lease < minLeaseFloor:
		c.addf("delivery.lease", "must be at least %s, got %s", minLeaseFloor, d.Lease)
	}
	if d.PollInterval < 10*time.Millisecond || d.PollInterval > time.Minute {
		c.addf("delivery.poll_interval", "must be between 10ms and 1m, got %s", d.PollInterval)
	}
	positive(c, "delivery.drain_timeout", d.DrainTimeout)
	if d.SessionTTL < time.Second || d.SessionTTL > 5*time.Minute {
		c.addf("delivery.session_ttl", "must be between 1s and 5m, got %s", d.SessionTTL)
	}
	positive(c, "delivery.retry_base", d.RetryBase)
	if d.RetryMax < d.RetryBase {
		c.addf("delivery.retry_max", "must be >= delivery.retry_base (%s), got %s", d.RetryBase, d.RetryMax)
	}
}

// checkConversationList checks names refer to conversations, once each.
func (cfg *Config) checkConversationList(c *collector, key string, names []string) {
	listed := map[string]bool{}
	for j, name := range names {
		ckey := fmt.Sprintf("%s[%d]", key, j)
		_, ok := cfg.Conversations[name]
		switch {
		case !ok:
			c.addf(ckey, "unknown conversation %s (define it under conversations)", quote(name))
		case listed[name]:
			c.addf(ckey, "conversation %s listed twice", quote(name))
		}
		listed[name] = true
	}
}

func (cfg *Config) validateTemplate(c *collector, key string, r *Route) {
	switch {
	case strings.TrimSpace(r.Template) == "":
		c.addf(key, "must not be empty (a shipped template name such as %q, or a file path)", DefaultTemplate)
	case shippedTemplate.MatchString(r.Template):
		r.TemplateFile = ""
	default:
		path := resolvePath(cfg.Dir, r.Template)
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			c.addf(key, "template file: %v", err)
		case !fi.Mode().IsRegular():
			c.addf(key, "template file %s is not a regular file", path)
		default:
			r.TemplateFile = path
		}
	}
}

// checkHostPort checks a host:port (needPort) or a host with optional port.
func checkHostPort(s string, needPort bool) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if strings.ContainsAny(s, " \t/@?#") || strings.Contains(s, "://") {
		return fmt.Errorf("want host:port without scheme or path, got %s", quote(s))
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if needPort {
			return fmt.Errorf("want host:port, got %s", quote(s))
		}
		host, port = s, ""
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		}
	}
	if port != "" || needPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 || (n == 0 && !needPort) {
			return fmt.Errorf("bad port %s", quote(port))
		}
	}
	if host == "" {
		if needPort {
			return nil // ":9095" listens on every interface
		}
		return fmt.Errorf("want a host name, got %s", quote(s))
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("bad host name %s", quote(host))
		}
	}
	return nil
}

// checkDiscoveryURL checks an autodiscover root: absolute http(s), a host,
// no credentials (they would end up in logs), no fragment.
func checkDiscoveryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("want an absolute http or https URL, got %s", quote(raw))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want an absolute http or https URL, got %s", quote(raw))
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("URL %s has no host", quote(raw))
	case u.User != nil:
		return fmt.Errorf("URL must not hold credentials (use ucwa.username and the password settings)")
	case u.Fragment != "":
		return fmt.Errorf("URL %s must not have a fragment", quote(raw))
	}
	return checkHostPort(u.Host, false)
}

// loadCAFile reads a PEM bundle and returns the system roots plus its
// certificates.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := readLimited(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

func positive(c *collector, key string, d time.Duration) {
	if d <= 0 {
		c.addf(key, "must be a positive duration, got %s", d)
	}
}

func intRange(c *collector, key string, v, lo, hi int64) {
	if v < lo || v > hi {
		c.addf(key, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func oneOf(c *collector, key, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		c.addf(key, "want one of %s, got %s", strings.Join(allowed, ", "), quote(v))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// minCookieKey is the shortest key that may sign console cookies.
const minCookieKey = 32

// headerName is what an HTTP header name may be (RFC 9110 token).
var headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

func (cfg *Config) validateConsole(c *collector) {
	con := &cfg.Console
	if con.SessionTTL < time.Minute || con.SessionTTL > 30*24*time.Hour {
		c.addf("console.session_ttl", "must be from 1m to 720h, got %s", con.SessionTTL)
	}
	if k := con.CookieKey; k.IsSet() && len(k.Reveal()) < minCookieKey {
		c.addf("console.cookie_key_file", "the key (from %s) must be at least %d bytes; make one with: head -c 32 /dev/urandom | base64",
			k.Source(), minCookieKey)
	}
	p := &con.Proxy
	switch {
	case p.UserHeader != "" && !headerName.MatchString(p.UserHeader):
		c.addf("console.proxy.user_header", "%q is not an HTTP header name", p.UserHeader)
	case p.UserHeader != "" && len(p.TrustedAddresses) == 0:
		c.addf("console.proxy.trusted_addresses", "required with console.proxy.user_header: "+
			"the proxy's addresses, so that no one else can name a user in the header")
	case p.UserHeader == "" && len(p.TrustedAddresses) > 0:
		c.addf("console.proxy.user_header", "required with console.proxy.trusted_addresses")
	}
	p.Trusted = nil
	for i, a := range p.TrustedAddresses {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				c.addf(fmt.Sprintf("console.proxy.trusted_addresses[%d]", i), "%q is neither an IP address nor a CIDR range", a)
				continue
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.Trusted = append(p.Trusted, pfx.Masked())
	}
	if con.UsersFile != "" {
		if _, err := os.Stat(resolvePath(cfg.Dir, con.UsersFile)); err != nil {
			c.addf("console.users_file", "%v", err)
		}
	}
}

// UsersFilePath returns console.users_file resolved against the config
// file's directory ("" when unset).
func (c *Config) UsersFilePath() string {
	if c.Console.UsersFile == "" {
		return ""
	}
	return resolvePath(c.Dir, c.Console.UsersFile)
}
