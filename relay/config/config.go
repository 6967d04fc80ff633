// Package config loads the relay's configuration: structure (routes,
// conversations, timers) from one YAML file, secrets and connection strings
// from the environment or from files named there.
//
// Load (or Parse) returns a fresh *Config that callers treat as read-only;
// nothing in this package is global, so a later hot reload can build a new
// *Config and swap it in. Every problem found is reported at once, each
// naming the key (e.g. routes[0].format) or environment variable to fix.
package config

import (
	"crypto/x509"
	"log/slog"
	"net/netip"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/match"
)

// Defaults and limits.
const (
	// MaxFileSize bounds the config file.
	MaxFileSize = 4 << 20
	// MaxSecretFileSize bounds a secret file (token, password).
	MaxSecretFileSize = 64 << 10

	DefaultListenAddress  = "127.0.0.1:9095"
	DefaultMaxConns       = 16
	DefaultMaxBodyBytes   = 1 << 20
	DefaultDedupWindow    = 15 * time.Minute
	DefaultRetention      = 30 * 24 * time.Hour
	DefaultReadTimeout    = 10 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	// CommitAllowance is the longest a database operation made for a
	// webhook may take (the store's operation timeout, or request_timeout
	// when shorter): the time a group commit under way may still take when
	// a request's own time is up, which write_timeout must leave.
	CommitAllowance = 5 * time.Second
	// DefaultWriteTimeout leaves an answer given at the request timeout,
	// with a commit still under way, ample time to be written.
	DefaultWriteTimeout = 20 * time.Second
	DefaultBatchMax     = 64
	// DefaultBatchMaxBytes lets dozens of ordinary notifications share a
	// commit, and 1 MiB ones go eight at a time.
	DefaultBatchMaxBytes = 8 << 20
	// DefaultMaxInflightBytes holds 64 bodies of the largest default size.
	DefaultMaxInflightBytes = 64 << 20
	DefaultTemplate         = "alertmanager"
	DefaultImportance       = "Normal"
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "json"

	DefaultMaxMessageBytes = 8 << 10
	DefaultMaxParts        = 10
	// DefaultMaxMessagesPerNotification caps what per_alert and
	// split_status make of one notification for one conversation.
	DefaultMaxMessagesPerNotification = 20

	DefaultMaxInFlight  = 128
	DefaultLease        = 5 * time.Minute
	DefaultPollInterval = time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultSessionTTL   = 6 * time.Second
	DefaultRetryBase    = 2 * time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultMaxAttempts  = 10
	DefaultMaxResends   = 2
	// DefaultCoalesceAfter: a send carries the deliveries behind it when
	// more than this many wait for one recipient.
	DefaultCoalesceAfter = 3
	// MaxCoalesceAfter caps coalesce_after (how far relay counts a line).
	MaxCoalesceAfter = 50
	DefaultMaxAge    = 2 * time.Hour

	DefaultRedeliverWindow   = time.Minute
	DefaultConsoleSessionTTL = 12 * time.Hour
)

// Environment variables read by Load and Parse.
const (
	EnvConfig          = "RELAY_CONFIG"
	EnvListenAddress   = "RELAY_LISTEN_ADDRESS"
	EnvDatabaseURL     = "DATABASE_URL"
	EnvDatabaseURLFile = "DATABASE_URL_FILE"
	EnvAPIToken        = "RELAY_API_TOKEN"
	EnvUCWAPassword    = "RELAY_UCWA_PASSWORD"
	// EnvConsoleCookieKey holds the key that signs the console's session
	// cookies (or EnvConsoleCookieKey_FILE a file holding it).
	EnvConsoleCookieKey = "RELAY_CONSOLE_COOKIE_KEY"
	// The *_FILE variant of each secret variable names a file holding it.
	fileSuffix = "_FILE"
)

// FormatAlertmanager is the route format for Prometheus Alertmanager's
// webhook payload (version 4).
const FormatAlertmanager = "alertmanager"

// Values of routes[].delivery.uncertain.
const (
	UncertainResend = "resend"
	UncertainSkip   = "skip"
)

// Formats lists the webhook payload formats a route may accept (github,
// gitlab, generic may follow). Read-only.
var Formats = []string{FormatAlertmanager, FormatGitHub, FormatGitLab, FormatGeneric}

// Route formats besides Alertmanager.
const (
	FormatGitHub  = "github"
	FormatGitLab  = "gitlab"
	FormatGeneric = "generic"
)

// Importances lists the accepted conversation importance values. Read-only.
var Importances = []string{"Normal", "Urgent", "Emergency"}

// LogLevels and LogFormats list the accepted log settings. Read-only.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"json", "text"}
)

// Config is the whole relay configuration. Treat it as read-only after Load.
type Config struct {
	// ListenAddress is the host:port the HTTP server binds
	// (env RELAY_LISTEN_ADDRESS overrides the file).
	ListenAddress string                  `yaml:"listen_address"`
	Database      Database                `yaml:"database"`
	API           API                     `yaml:"api"`
	Ingest        Ingest                  `yaml:"ingest"`
	Console       Console                 `yaml:"console"`
	UCWA          UCWA                    `yaml:"ucwa"`
	Conversations map[string]Conversation `yaml:"conversations"`
	Routes        []Route                 `yaml:"routes"`
	Delivery      Delivery                `yaml:"delivery"`
	// Retention is how long the history (finished deliveries, their
	// attempts, notifications and duplicates) is kept; 0 keeps it for ever.
	Retention time.Duration `yaml:"retention"`
	Log       Log           `yaml:"log"`
	// Dir is the directory relative paths in the file resolve against
	// (the config file's directory).
	Dir string `yaml:"-"`
	// UnreadSecrets lists the secret files a load with
	// LoadOptions.SkipSecrets left unread, as "key (path)"; such a
	// configuration must not be served.
	UnreadSecrets []string `yaml:"-"`
}

// Database holds the PostgreSQL settings.
type Database struct {
	// MaxConns is the pgx pool size.
	MaxConns int `yaml:"max_conns"`
	// URL comes from env DATABASE_URL (or DATABASE_URL_FILE), never the file.
	// It may hold a password, hence a Secret.
	URL Secret `yaml:"-"`
}

// API configures the audit API.
type API struct {
	// BearerTokenFile names the file holding the audit API token.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BearerToken comes from RELAY_API_TOKEN, RELAY_API_TOKEN_FILE or
	// BearerTokenFile; unset means the audit API is off.
	BearerToken Secret `yaml:"-"`
	// RedeliverWindow: a redelivery asked without an Idempotency-Key less
	// than this long after the delivery's previous one is refused (409), so
	// a double click or a client's retry does not send twice. 0 turns the
	// check off.
	RedeliverWindow time.Duration `yaml:"redeliver_window"`
}

// Console configures the web console served under /ui/. People sign in
// with a password from UsersFile, or through an authenticating reverse
// proxy (Proxy); with neither, the console only says how to enable it.
type Console struct {
	// UsersFile names a YAML file whose basic_auth_users maps user names
	// to bcrypt hashes: the format of a Prometheus web configuration file,
	// so the file given to --web.config.file may serve both.
	UsersFile string `yaml:"users_file"`
	// Proxy trusts a reverse proxy's user header.
	Proxy ConsoleProxy `yaml:"proxy"`
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// CookieKeyFile names a file holding the key that signs session
	// cookies (at least 32 bytes). Unset (and no RELAY_CONSOLE_COOKIE_KEY),
	// each start makes a key of its own: sessions end on restart, and
	// replicas do not accept each other's cookies.
	CookieKeyFile string `yaml:"cookie_key_file"`
	// CookieKey comes from RELAY_CONSOLE_COOKIE_KEY, its _FILE variant or
	// CookieKeyFile.
	CookieKey Secret `yaml:"-"`
}

// ConsoleProxy is an authenticating reverse proxy in front of relay (such
// as oauth2-proxy), trusted to name the signed-in user in a header.
type ConsoleProxy struct {
	// UserHeader is the header holding the user name, e.g.
	// X-Forwarded-User or X-Auth-Request-User.
	UserHeader string `yaml:"user_header"`
	// TrustedAddresses are the proxy's addresses (IPs or CIDR ranges);
	// the header is believed only on connections from them.
	TrustedAddresses []string `yaml:"trusted_addresses"`
	// Trusted is TrustedAddresses, parsed.
	Trusted []netip.Prefix `yaml:"-"`
}

// Enabled reports whether people can sign in to the console.
func (c Console) Enabled() bool { return c.UsersFile != "" || c.Proxy.UserHeader != "" }

// Enabled reports whether the audit API is served (a token is configured).
func (a API) Enabled() bool { return a.BearerToken.IsSet() }

// Ingest configures the webhook HTTP server and the group commit.
type Ingest struct {
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	DedupWindow    time.Duration `yaml:"dedup_window"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	WriteTimeout   time.Duration `yaml:"write_timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// BatchMax is the most requests committed in one transaction.
	BatchMax int `yaml:"batch_max"`
	// BatchMaxBytes caps the payload and text bytes committed in one
	// transaction; a larger request is committed alone.
	BatchMaxBytes int `yaml:"batch_max_bytes"`
	// MaxInflightBytes caps the request bodies held at once, counted by
	// their declared size before they are read; a request beyond it is
	// answered 503 at once.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// MaxMessageBytes caps one chat message (UTF-8 bytes); longer texts are
	// split into numbered parts.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxParts caps the parts one message is split into; what does not fit
	// is summarised ("+N more"), never dropped silently.
	MaxParts int `yaml:"max_parts"`
	// MaxMessagesPerNotification caps the messages a route's per_alert or
	// split_status makes of one notification for one conversation: beyond
	// it the first N-1 are sent and one more summarises the rest.
	MaxMessagesPerNotification int `yaml:"max_messages_per_notification"`
}

// UCWA configures delivery to Skype for Business. The section is optional:
// without discovery URLs the relay ingests but does not deliver.
type UCWA struct {
	// DiscoveryURLs are autodiscover roots: the first is primary, the rest
	// are backups tried in order.
	DiscoveryURLs []string `yaml:"discovery_urls"`
	Username      string   `yaml:"username"`
	PasswordFile  string   `yaml:"password_file"`
	// AllowedHosts are the hosts (host or host:port) the client may follow
	// links to; empty lets the client derive them.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// CAFile is an optional PEM bundle of extra trusted roots.
	CAFile             string     `yaml:"ca_file"`
	InsecureSkipVerify bool       `yaml:"insecure_skip_verify"`
	Timers             UCWATimers `yaml:"timers"`
	// Password comes from RELAY_UCWA_PASSWORD, RELAY_UCWA_PASSWORD_FILE or
	// PasswordFile.
	Password Secret `yaml:"-"`
	// RootCAs holds the system roots plus CAFile's certificates; nil when
	// CAFile is empty (use the system roots).
	RootCAs *x509.CertPool `yaml:"-" json:"-"`
}

// Enabled reports whether delivery is configured.
func (u UCWA) Enabled() bool { return len(u.DiscoveryURLs) > 0 }

// UCWATimers are the UCWA client's timeouts and backoff bounds. Zero means
// "use the default" only before Load; after Load every field is set.
type UCWATimers struct {
	// RequestTimeout bounds one ordinary UCWA request (default 30s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// EventTimeout is the event channel's long-poll timeout (default 180s;
	// UCWA accepts 180s to 30m).
	EventTimeout time.Duration `yaml:"event_timeout"`
	// InvitationTimeout bounds the wait for a conversation invitation to be
	// answered (default 45s).
	InvitationTimeout time.Duration `yaml:"invitation_timeout"`
	// MessageTimeout bounds the wait for the server to confirm a message
	// (default 60s).
	MessageTimeout time.Duration `yaml:"message_timeout"`
	// RetryMin and RetryMax bound the backoff between retries of a failing
	// request, such as the event channel's (default 1s and 60s).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// FailoverMin and FailoverMax bound the pauses of the failover
	// procedure, when the pool, its links or the sign-in fail (default 1s
	// and 5m). The first rediscovery comes after about FailoverMin (±50%,
	// or the server's Retry-After), so a ready backup pool is used within
	// a second or two; pauses then double up to 4×FailoverMin for the
	// first 2 minutes of failure (a pool that comes back is used within
	// seconds), up to 60×FailoverMin until 15 minutes, and reach
	// FailoverMax only after that.
	FailoverMin time.Duration `yaml:"failover_min"`
	FailoverMax time.Duration `yaml:"failover_max"`
}

// DefaultUCWATimers returns the timer defaults.
func DefaultUCWATimers() UCWATimers {
	return UCWATimers{
		RequestTimeout:    30 * time.Second,
		EventTimeout:      180 * time.Second,
		InvitationTimeout: 45 * time.Second,
		MessageTimeout:    60 * time.Second,
		RetryMin:          time.Second,
		RetryMax:          60 * time.Second,
		FailoverMin:       time.Second,
		FailoverMax:       5 * time.Minute,
	}
}

// Conversation is one named chat target.
type Conversation struct {
	// Name is the key under conversations.
	Name string `yaml:"-"`
	// To is one SIP URI, or a list of them: one conversation each.
	To         Recipients `yaml:"to"`
	Subject    string     `yaml:"subject"`
	Importance string     `yaml:"importance"`
}

// Recipients is a list of SIP URIs, written in YAML as one string or a list.
type Recipients []string

// Targets returns one relay.Target per recipient.
func (c Conversation) Targets() []relay.Target {
	out := make([]relay.Target, len(c.To))
	for i, to := range c.To {
		out[i] = relay.Target{To: to, Subject: c.Subject, Importance: c.Importance}
	}
	return out
}

// Route maps one webhook endpoint to its payload format, template and
// conversations.
type Route struct {
	Name   string `yaml:"name"`
	Format string `yaml:"format"`
	// BearerTokenFile names a file holding the token POSTs must carry.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Conversations names entries of Config.Conversations.
	Conversations []string `yaml:"conversations"`
	// Template is a shipped template name (letters, digits, '-', '_') or a
	// file path relative to the config file's directory. Default: the
	// format's own template (alertmanager, github, gitlab, generic).
	Template string `yaml:"template"`
	// TemplateFile is the absolute path of Template when it is a file path,
	// "" when it names a shipped template.
	TemplateFile string `yaml:"-"`
	// BearerToken comes from RELAY_ROUTE_<NAME>_TOKEN, its _FILE variant or
	// BearerTokenFile; unset means POSTs need no token.
	BearerToken Secret `yaml:"-"`
	// SecretFile names a file holding the shared secret a github route
	// checks signatures with, or the token a gitlab route compares.
	SecretFile string `yaml:"secret_file"`
	// Secret comes from RELAY_ROUTE_<NAME>_SECRET, its _FILE variant or
	// SecretFile; github and gitlab routes require it.
	Secret Secret `yaml:"-"`
	// AllowUnauthenticated says that a route without a token or secret is
	// meant to be open to whoever reaches the listener: it silences the
	// warning about it, and turns nothing off.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// Rules pick conversations per alert (per event for CI sources); what
	// no rule picks goes to Conversations.
	Rules []Rule `yaml:"rules"`
	// SplitStatus sends firing and resolved alerts of one notification as
	// separate messages (alertmanager routes).
	SplitStatus bool `yaml:"split_status"`
	// PerAlert sends one message per alert instead of one per group
	// (alertmanager routes).
	PerAlert bool `yaml:"per_alert"`
	// Delivery is what the route decides about retries and duplicates.
	Delivery RouteDelivery `yaml:"delivery"`
}

// Rule routes the alerts whose labels match to conversations.
type Rule struct {
	// Match lists Alertmanager matchers, e.g. severity=~"critical|page";
	// all must match.
	Match []string `yaml:"match"`
	// Conversations receive what matches.
	Conversations []string `yaml:"conversations"`
	// Continue goes on to the next rules after a match (first match wins
	// otherwise).
	Continue bool `yaml:"continue"`
	// Matchers is Match, parsed.
	Matchers match.Matchers `yaml:"-"`
}

// RouteDelivery is a route's delivery policy.
type RouteDelivery struct {
	// MaxAttempts caps the tries that fail because of the message or its
	// recipient; then the delivery is dead. Session trouble (pool failover,
	// throttling) does not count.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxAge caps how long a delivery may wait in the queue before it is
	// dead: a firing alert hours late is noise.
	MaxAge time.Duration `yaml:"max_age"`
	// Uncertain says what to do with a message the server accepted but never
	// confirmed: "resend" it marked "(resent)", or "skip" it (a duplicate
	// would be worse than a miss).
	Uncertain string `yaml:"uncertain"`
	// MaxResends caps how often a message whose sending went unconfirmed
	// (or was cut short by a crash) is sent again, marked "(resent)"; then
	// it ends uncertain. It bounds the duplicates a recipient can get to
	// MaxResends, whatever the server does.
	MaxResends int `yaml:"max_resends"`
	// Supersede replaces a queued firing notification by its group's
	// resolved one, sent with a note, instead of sending both.
	Supersede bool `yaml:"supersede"`
	// Coalesce: when more than CoalesceAfter deliveries wait for one
	// recipient (a burst, or a backlog after an outage), the next message
	// carries as many of them as fit in ingest.max_message_bytes, oldest
	// first, under a one-line header. Each keeps its own audit record.
	Coalesce      bool `yaml:"coalesce"`
	CoalesceAfter int  `yaml:"coalesce_after"`
}

// Delivery tunes the delivery worker.
type Delivery struct {
	// MaxInFlight caps deliveries being sent at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// Lease is how long a claimed delivery stays with the worker that took it.
	Lease time.Duration `yaml:"lease"`
	// PollInterval is how often the queue is checked without a wake-up.
	PollInterval time.Duration `yaml:"poll_interval"`
	// DrainTimeout bounds how long sends in flight may finish on shutdown.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// SessionTTL is the lifetime of the session lease that makes one replica
	// the sender for the bot account.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// RetryBase and RetryMax bound the exponential retry delay.
	RetryBase time.Duration `yaml:"retry_base"`
	RetryMax  time.Duration `yaml:"retry_max"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// SlogLevel returns Level as a slog.Level (info when unknown).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// defaults returns a Config holding every default; decoding the file
// overwrites what it sets.
func defaults() *Config {
	return &Config{
		ListenAddress: DefaultListenAddress,
		Database:      Database{MaxConns: DefaultMaxConns},
		API:           API{RedeliverWindow: DefaultRedeliverWindow},
		Console:       Console{SessionTTL: DefaultConsoleSessionTTL},
		Ingest: Ingest{
			MaxBodyBytes:     DefaultMaxBodyBytes,
			DedupWindow:      DefaultDedupWindow,
			ReadTimeout:      DefaultReadTimeout,
			WriteTimeout:     DefaultWriteTimeout,
			IdleTimeout:      DefaultIdleTimeout,
			RequestTimeout:   DefaultRequestTimeout,
			BatchMax:         DefaultBatchMax,
			BatchMaxBytes:    DefaultBatchMaxBytes,
			MaxInflightBytes: DefaultMaxInflightBytes,
			MaxMessageBytes:  DefaultMaxMessageBytes,
			MaxParts:         DefaultMaxParts,

			MaxMessagesPerNotification: DefaultMaxMessagesPerNotification,
		},
		UCWA: UCWA{Timers: DefaultUCWATimers()},
		Delivery: Delivery{
			MaxInFlight:  DefaultMaxInFlight,
			Lease:        DefaultLease,
			PollInterval: DefaultPollInterval,
			DrainTimeout: DefaultDrainTimeout,
			SessionTTL:   DefaultSessionTTL,
			RetryBase:    DefaultRetryBase,
			RetryMax:     DefaultRetryMax,
		},
		Retention: DefaultRetention,
		Log:       Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
	}
}

// setDefaults is called by the decoder on each new list or map element
// before the element's keys are decoded.
func (r *Route) setDefaults() {
	r.Delivery = RouteDelivery{MaxAttempts: DefaultMaxAttempts, MaxAge: DefaultMaxAge, Uncertain: UncertainResend, MaxResends: DefaultMaxResends, Supersede: true,
		Coalesce: true, CoalesceAfter: DefaultCoalesceAfter}
}
func (c *Conversation) setDefaults() { c.Importance = DefaultImportance }

// Unauthenticated reports whether anyone who reaches the listener may post
// to the route: it has neither a bearer token nor a signing secret.
func (r *Route) Unauthenticated() bool { return !r.BearerToken.IsSet() && !r.Secret.IsSet() }

// Route returns the route called name.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}

// Targets returns the recipients of the conversation called name (none
// for an unknown name).
func (c *Config) Targets(name string) []relay.Target {
	conv, ok := c.Conversations[name]
	if !ok {
		return nil
	}
	return conv.Targets()
}

// DatabaseURL returns the PostgreSQL URL from DATABASE_URL, "" when unset.
func (c *Config) DatabaseURL() string { return c.Database.URL.Reveal() }

// RequireDatabase returns an error when no database URL is configured.
func (c *Config) RequireDatabase() error {
	if !c.Database.URL.IsSet() {
		return &Problem{Key: EnvDatabaseURL, Msg: "not set: give the PostgreSQL connection URL in env " +
			EnvDatabaseURL + " (or a file holding it in " + EnvDatabaseURLFile + ")"}
	}
	return nil
}
