// Package ucwa is the relay's client for the Unified Communications Web API
// (UCWA 2.0) of Skype for Business Server: it signs a bot account in, keeps
// one application with its event channel alive, and sends instant messages,
// reporting for each one whether the server confirmed delivery.
//
// UCWA documentation: https://learn.microsoft.com/en-us/skype-sdk/ucwa/
// The facts the client relies on, with their basis, are in the project's
// PROTOCOL.md brief (sections 1-11).
//
// Shape of the client:
//
//   - A supervisor goroutine owns the session: discovery from the configured
//     roots, the MsRtcOAuth password grant, application creation and the event
//     channel (exactly one long poll). It rebuilds the application when the
//     server lost it and runs the failover procedure (PROTOCOL §9.4) when the
//     pool, its links or the sign-in fail, and stops for good when the server
//     refuses this client or its account (see Stopped).
//   - Every request passes one gate per host: no request before the host's
//     Retry-After, and at most a few per second while the host is failing.
//   - Send runs in the caller's goroutine: it finds or starts the
//     conversation for the target, posts the message and waits for the
//     message's completed event, correlated by operationId.
//   - Every URL comes from a link or a Location header. Nothing is built.
package ucwa

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Timers holds every time limit of the client. Zero fields take the
// production default of DefaultTimers.
type Timers struct {
	// Request bounds each ordinary HTTP request (default 30 s).
	Request time.Duration
	// EventTimeout is the event channel's `timeout` parameter: how long the
	// server holds an empty long poll (default 180 s; 180 s to 1800 s).
	EventTimeout time.Duration
	// EventSlack is added to EventTimeout to give the long poll's HTTP
	// timeout (default 60 s).
	EventSlack time.Duration
	// InvitationWait bounds the wait for an invitation's completed event
	// (default 45 s).
	InvitationWait time.Duration
	// MessageWait bounds the wait for a message's completed event (default
	// 60 s); after it the message resource is read once.
	MessageWait time.Duration
	// RetryMin and RetryMax bound the retry backoff and clamp Retry-After
	// (default 1 s and 60 s).
	RetryMin, RetryMax time.Duration
	// FailoverMin and FailoverMax bound the pauses of the failover
	// procedure (PROTOCOL §9.4 step 3; default 1 s and 5 min). The first
	// rediscovery waits FailoverMin ±50% (or the server's Retry-After),
	// then the pause doubles up to 5×FailoverMin for the first 2 minutes of
	// failure, up to 60×FailoverMin until 15 minutes, then up to
	// FailoverMax; none exceeds FailoverMax. See holdDelay.
	FailoverMin, FailoverMax time.Duration
	// StormFailover is how long a run of 503 answers (at least
	// Config.FailoverAfter of them, with no success between) must last
	// before it starts the failover procedure; a shorter storm is only
	// throttling (default 30 s).
	StormFailover time.Duration
	// InvitationRetry is the delay suggested after an invitation that may
	// work later (no answer, busy, ...); default 5 min.
	InvitationRetry time.Duration
	// TokenRenewFraction is the share of expires_in after which the token is
	// renewed (default 0.8).
	TokenRenewFraction float64
}

// DefaultTimers returns the production timers (PROTOCOL §2.3, §5.3, §6.3,
// §7.1, §8.7, §9.4).
func DefaultTimers() Timers {
	return Timers{
		Request:            30 * time.Second,
		EventTimeout:       180 * time.Second,
		EventSlack:         60 * time.Second,
		InvitationWait:     45 * time.Second,
		MessageWait:        60 * time.Second,
		RetryMin:           time.Second,
		RetryMax:           60 * time.Second,
		FailoverMin:        time.Second,
		FailoverMax:        5 * time.Minute,
		StormFailover:      30 * time.Second,
		InvitationRetry:    5 * time.Minute,
		TokenRenewFraction: 0.8,
	}
}

func (t Timers) withDefaults() Timers {
	d := DefaultTimers()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&t.Request, d.Request)
	set(&t.EventTimeout, d.EventTimeout)
	set(&t.EventSlack, d.EventSlack)
	set(&t.InvitationWait, d.InvitationWait)
	set(&t.MessageWait, d.MessageWait)
	set(&t.RetryMin, d.RetryMin)
	set(&t.RetryMax, d.RetryMax)
	set(&t.FailoverMin, d.FailoverMin)
	set(&t.FailoverMax, d.FailoverMax)
	set(&t.StormFailover, d.StormFailover)
	set(&t.InvitationRetry, d.InvitationRetry)
	if t.TokenRenewFraction == 0 {
		t.TokenRenewFraction = d.TokenRenewFraction
	}
	return t
}

// Config configures a Client for one bot account.
type Config struct {
	// Username is the bot account for the password grant, e.g.
	// "alertbot@contoso.com" (required).
	Username string
	// Password is the bot account's password (required). It is sent only to
	// token endpoints on allowed hosts and never logged.
	Password string
	// DiscoveryURLs are the autodiscover roots: the first is the primary,
	// later ones are backups tried in order (required).
	DiscoveryURLs []string
	// AllowedHosts lists the hosts ("host" or "host:port"; a bare host also
	// allows its subdomains) that redirects may lead to and that may receive
	// credentials and tokens. Default: the discovery roots' hosts and, for
	// names like lyncdiscover.contoso.com, their parent domain.
	AllowedHosts []string
	// CAFile is an optional PEM bundle trusted in addition to the system roots.
	CAFile string
	// InsecureSkipVerify turns off TLS certificate checks; only for labs.
	InsecureSkipVerify bool
	// Version goes into the application's userAgent "relay/<Version>"
	// (default "dev").
	Version string
	// EndpointID identifies this bot instance to the server (≤100 chars).
	// Default: derived from the host name and the username, so it is stable
	// across restarts of the same instance.
	EndpointID string
	// Culture of the application (default "en-US").
	Culture string
	// MaxConcurrentRequests bounds requests in flight for the account, the
	// event channel excluded (default 8).
	MaxConcurrentRequests int
	// FailoverAfter is the number of consecutive connection failures that
	// starts the failover procedure, and the least number of consecutive 503
	// answers that does once they lasted Timers.StormFailover (default 5).
	FailoverAfter int
	// Timers holds every time limit; zero fields take defaults.
	Timers Timers
}

const (
	maxRedirects      = 5
	maxBody           = 1 << 20 // ordinary responses
	maxEventBody      = 8 << 20 // one event batch
	maxOperationIDLen = 50
	// maxAuthRefusals fresh tokens refused in a row, with no request
	// accepted between, stop the client (PROTOCOL §2.3, §8.7: the circuit
	// opens).
	maxAuthRefusals = 3
)

func (cfg *Config) validate() error {
	var errs []error
	if cfg.Username == "" {
		errs = append(errs, errors.New("a Username is required"))
	}
	if cfg.Password == "" {
		errs = append(errs, errors.New("a Password is required"))
	}
	if len(cfg.DiscoveryURLs) == 0 {
		errs = append(errs, errors.New("DiscoveryURLs needs at least one root"))
	}
	for i, r := range cfg.DiscoveryURLs {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("DiscoveryURLs[%d] %q is not an absolute http(s) URL", i, r))
		}
	}
	for i, h := range cfg.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			errs = append(errs, fmt.Errorf("AllowedHosts[%d] %q is not a host or host:port", i, h))
		}
	}
	if len(cfg.EndpointID) > 100 {
		errs = append(errs, errors.New("EndpointID is longer than 100 characters"))
	}
	if len(cfg.Version) > 90 {
		errs = append(errs, errors.New("the Version is longer than 90 characters"))
	}
	if cfg.MaxConcurrentRequests < 0 {
		errs = append(errs, errors.New("MaxConcurrentRequests must not be negative"))
	}
	if cfg.FailoverAfter < 0 {
		errs = append(errs, errors.New("FailoverAfter must not be negative"))
	}
	t := cfg.Timers
	for name, d := range map[string]time.Duration{
		"Timers.Request": t.Request, "Timers.EventSlack": t.EventSlack,
		"Timers.InvitationWait": t.InvitationWait, "Timers.MessageWait": t.MessageWait,
		"Timers.RetryMin": t.RetryMin, "Timers.RetryMax": t.RetryMax,
		"Timers.FailoverMin": t.FailoverMin, "Timers.FailoverMax": t.FailoverMax,
		"Timers.StormFailover": t.StormFailover, "Timers.InvitationRetry": t.InvitationRetry,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	if t.EventTimeout != 0 && (t.EventTimeout < 180*time.Second || t.EventTimeout > 1800*time.Second) {
		errs = append(errs, errors.New("Timers.EventTimeout must be between 180s and 1800s"))
	}
	if t.TokenRenewFraction < 0 || t.TokenRenewFraction > 1 {
		errs = append(errs, errors.New("Timers.TokenRenewFraction must be between 0 and 1"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("ucwa config: %w", errors.Join(errs...))
	}
	return nil
}

// defaultEndpointID derives a stable id from the host name and the user.
func defaultEndpointID(user string) string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte("relay\x00" + host + "\x00" + strings.ToLower(user)))
	b := sum[:16]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Client sends instant messages for one bot account. It is safe for
// concurrent use. Create it with New, release it with Close.
type Client struct {
	cfg    Config
	timers Timers
	log    *slog.Logger
	hc     *httpClient
	roots  []*url.URL

	sem chan struct{} // bounds concurrent command requests for the account

	// base is cancelled by Close; the supervisor and every session derive
	// their contexts from it.
	base     context.Context
	cancel   context.CancelFunc
	closing  chan struct{}
	closeCtx context.Context // set before closing is closed
	wg       sync.WaitGroup  // the supervisor; sessions wait for their own goroutines

	// bg counts the background goroutines (token requests); Close waits for
	// them after the supervisor. None starts once bgClosed is set.
	bgMu     sync.Mutex
	bg       sync.WaitGroup
	bgClosed bool

	startOnce sync.Once
	closeOnce sync.Once

	stateMu sync.Mutex
	state   *sessState // current published state, never nil
	stopped chan struct{}
	stopErr error // set before stopped is closed

	// authRefusals counts fresh tokens refused in a row, across sessions;
	// a request accepted with a token resets it. A token counts once, however
	// many requests it was refused on: refusedMu guards refused, the
	// fingerprints of the last tokens counted.
	authRefusals atomic.Int32
	refusedMu    sync.Mutex
	refused      [][sha256.Size]byte

	lanesMu sync.Mutex
	lanes   map[laneKey]*lane
}

// New checks cfg and returns a Client. Nothing is sent until Start or the
// first Send.
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		return nil, errors.New("ucwa config: logger is required")
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Culture == "" {
		cfg.Culture = "en-US"
	}
	if cfg.EndpointID == "" {
		cfg.EndpointID = defaultEndpointID(cfg.Username)
	}
	if cfg.MaxConcurrentRequests == 0 {
		cfg.MaxConcurrentRequests = 8
	}
	if cfg.FailoverAfter == 0 {
		cfg.FailoverAfter = 5
	}
	c := &Client{
		cfg:     cfg,
		timers:  cfg.Timers.withDefaults(),
		log:     logger,
		sem:     make(chan struct{}, cfg.MaxConcurrentRequests),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		state:   &sessState{phase: phaseIdle, changed: make(chan struct{})},
		lanes:   make(map[laneKey]*lane),
	}
	for _, r := range cfg.DiscoveryURLs {
		u, _ := url.Parse(r) // validated above
		c.roots = append(c.roots, u)
	}
	allowed := cfg.AllowedHosts
	if len(allowed) == 0 {
		allowed = defaultAllowedHosts(c.roots)
	}
	hc, err := newHTTPClient(cfg, allowed, cfg.MaxConcurrentRequests)
	if err != nil {
		return nil, err
	}
	c.hc = hc
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Start begins the session now instead of on the first Send and waits until
// it is ready, held by a failure, or ctx ends.
func (c *Client) Start(ctx context.Context) error {
	st, err := c.waitSession(ctx)
	if err != nil {
		return err
	}
	if st.sess == nil {
		return fmt.Errorf("start ucwa session: %s: %s", st.reason, st.detail)
	}
	return nil
}

// Close stops the event channel, deletes the application on the server
// (bounded by ctx and the request timer) and waits for every goroutine of
// the client. Sends still waiting return ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.closeCtx = ctx
		close(c.closing)
		c.startOnce.Do(func() {}) // never start after Close
		// Abort discovery, polls and sends at once; the application is
		// deleted with closeCtx, which stays alive.
		c.cancel()
	})
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		<-done // the DELETE is bounded by ctx too, so this is short
		err = fmt.Errorf("close ucwa client: %w", ctx.Err())
	}
	// Background work runs under the cancelled base context: it ends now.
	c.bgMu.Lock()
	c.bgClosed = true
	c.bgMu.Unlock()
	c.bg.Wait()
	c.hc.closeIdle()
	return err
}

// maxRefusedKept bounds the fingerprints of refused tokens kept: enough
// to recognise the refusals of the last few tokens still in flight.
const maxRefusedKept = 2 * maxAuthRefusals

// refuseToken counts the refusal of a fresh token in authRefusals, unless
// that token was counted already (several requests in flight with it were
// refused).
func (c *Client) refuseToken(tok string) {
	sum := sha256.Sum256([]byte(tok))
	c.refusedMu.Lock()
	defer c.refusedMu.Unlock()
	if slices.Contains(c.refused, sum) {
		return
	}
	c.refused = append(c.refused, sum)
	if len(c.refused) > maxRefusedKept {
		c.refused = c.refused[1:]
	}
	c.authRefusals.Add(1)
}

// goBackground runs fn with the Client's context in a goroutine that Close
// waits for. It reports false, and runs nothing, once Close has begun.
func (c *Client) goBackground(fn func(ctx context.Context)) bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgClosed || c.base.Err() != nil {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn(c.base)
	}()
	return true
}
