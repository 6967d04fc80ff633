package ucwasim

import (
	"log/slog"
	"time"
)

// Config configures a simulator. Zero values take the defaults shown.
type Config struct {
	// Username is the bot account, default "alertbot@contoso.com". The token
	// endpoint accepts it with or without a "sip:" prefix.
	Username string
	// Password is the bot's password, default "secret".
	Password string
	// Pools names the pools, default {"fe1", "fe2-backup"}. Each pool is its
	// own 127.0.0.1:0 listener. The first pool is the home pool. "root",
	// "internal", "external" and "control" are reserved (they name the other
	// listeners in logs and Stats).
	Pools []string
	// TokenLifetime is the expires_in of issued tokens, default 8h (protocol
	// time, so it is scaled by TimeScale).
	TokenLifetime time.Duration
	// TimeScale multiplies every protocol timer of the server: the P-GET hold
	// given by the client's timeout param, the medium/low hold, the ~30 s
	// invitation no-answer, the 15 min P-GET death, the resume threshold and
	// token expiry. Default 1. Tests use e.g. 0.01.
	TimeScale float64
	// EmbedResources makes events carry embedded resources; when false they
	// carry bare links only. SetEmbedResources changes it at run time.
	EmbedResources bool
	// CombinedChallenge sends both WWW-Authenticate challenges on one header
	// line.
	CombinedChallenge bool
	// SharedTokens makes a token valid on every pool. The default (false)
	// scopes tokens to the pool that issued them: fe1's token gets 401 plus
	// fe2's challenge on fe2.
	SharedTokens bool
	// StaleSendStatus is the status for sendMessage on a stale or
	// disconnected link: 404 (default) or 409.
	StaleSendStatus int
	// Logger receives one line per accepted message and per violation
	// (optional; nothing is logged when nil). Tokens and passwords are never
	// logged.
	Logger *slog.Logger

	// Additions beyond the shared contract.

	// Domain is the SIP domain, default "contoso.com".
	Domain string
	// Early decides whether events an operation emits at once (invitation
	// started, message completed) are queued before the 201 response is
	// written: EarlySometimes (default, about half of the time), EarlyAlways
	// or EarlyNever.
	Early EarlyMode
	// InviteTimeout is how long an unanswered invitation stays Connecting
	// before it completes with Failure/Timeout, default 30s (protocol time).
	InviteTimeout time.Duration
	// PGetDeathTimeout is how long an application lives without a new P-GET
	// after the previous one was released (or after creation), default 15m
	// (protocol time).
	PGetDeathTimeout time.Duration
	// ResumeAfter is the silence between P-GETs after which the server drops
	// every conversation and answers the next P-GET with a resume link,
	// default 10m (protocol time). Negative disables resume.
	ResumeAfter time.Duration
	// ActivityTimeout is how long an application that called makeMeAvailable
	// lives without reportMyActivity before it expires with 410
	// InactiveApplicationExpired, default 10m (protocol time). Negative
	// disables it.
	ActivityTimeout time.Duration
	// MaxApplications is the per-user application cap; creating one more
	// displaces the oldest with 410 TooManyApplications. Default 8.
	MaxApplications int
	// MaxMessageBytes is the sendMessage body size above which the server
	// answers 413 EntityTooLarge, default 0 = no protocol limit (the hard
	// read limit of 1 MiB always applies).
	MaxMessageBytes int
	// PlainOnly negotiates only the Plain message format; text/html bodies
	// then get 415 and a violation. By default Plain and Html are negotiated.
	PlainOnly bool
	// StrictEventParams answers out-of-range P-GET timeout/medium/low values
	// with 400 ParameterValidationFailure instead of clamping them.
	StrictEventParams bool
	// RequireMakeMeAvailable makes startMessaging answer 409
	// MakeMeAvailableRequired until makeMeAvailable was called (a "what if"
	// mode; the documented server does not require it).
	RequireMakeMeAvailable bool
	// RequestLogSize bounds the request log ring buffer, default 1024.
	RequestLogSize int
	// MaxOutstanding caps concurrent in-flight UCWA requests per user
	// (P-GETs excluded); above it the server answers 429 TooManyRequests.
	// 0 (default) means no cap; the documented figure is 100.
	MaxOutstanding int
	// ForbidInvalidTokens answers an unknown or expired token with the
	// online behaviour, 403 plus Warning: 120 "InvalidToken", instead of the
	// 401 challenge.
	ForbidInvalidTokens bool
	// UnquotedChallengeHref leaves the quotes off the MsRtcOAuth href in
	// the 401 challenge (both forms appear in Microsoft samples).
	UnquotedChallengeHref bool
	// ReadTimeout bounds reading one request (headers and body), default
	// 30s, real time. (net/http lifts it once a request was read, so held
	// P-GETs are not affected.)
	ReadTimeout time.Duration
	// InvitationMessageEvents makes a first message carried in the
	// invitation (_links.message) produce its own message completed event
	// when the invitation is accepted. Either way it is recorded in
	// Messages (with the invitation's operationId).
	InvitationMessageEvents bool
	// MessageStartedEvents queues a message "started" event (status
	// Pending) before each message completed event; by default it is
	// aggregated away, which the docs allow.
	MessageStartedEvents bool
	// Collapse drops queued started/updated events of a resource once its
	// completed event is queued (aggregation, PROTOCOL §7.4).
	Collapse bool
}

// EarlyMode says when immediate events are queued relative to the 201.
type EarlyMode int

// Early modes.
const (
	// EarlySometimes queues immediate events before the 201 about half the time.
	EarlySometimes EarlyMode = iota
	// EarlyAlways queues them before the 201 is written.
	EarlyAlways
	// EarlyNever queues them after the 201 was flushed.
	EarlyNever
)

// Hard limits that protect the simulator from hostile clients.
const (
	maxBodyBytes    = 1 << 20
	maxFieldLen     = 100
	maxOperationID  = 50
	maxSubjectLen   = 250
	defaultLogSize  = 1024
	ucwaVersion     = "2"
	tokenPath       = "/WebTicket/oauthtoken"
	userPath        = "/Autodiscover/AutodiscoverService.svc/root/oauth/user"
	rootPath        = "/Autodiscover/AutodiscoverService.svc/root"
	xframePath      = "/Autodiscover/XFrame/XFrame.html"
	bearerIssuer    = "00000002-0000-0ff1-ce00-000000000000"
	bearerClientID  = "00000004-0000-0ff1-ce00-000000000000"
	grantTypesValue = "urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"
)

func (c Config) withDefaults() Config {
	if c.Username == "" {
		c.Username = "alertbot@contoso.com"
	}
	if c.Password == "" {
		c.Password = "secret"
	}
	if len(c.Pools) == 0 {
		c.Pools = []string{"fe1", "fe2-backup"}
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = 8 * time.Hour
	}
	if c.TimeScale <= 0 {
		c.TimeScale = 1
	}
	if c.StaleSendStatus == 0 {
		c.StaleSendStatus = 404
	}
	if c.Domain == "" {
		c.Domain = "contoso.com"
	}
	if c.InviteTimeout <= 0 {
		c.InviteTimeout = 30 * time.Second
	}
	if c.PGetDeathTimeout <= 0 {
		c.PGetDeathTimeout = 15 * time.Minute
	}
	if c.ResumeAfter == 0 {
		c.ResumeAfter = 10 * time.Minute
	}
	if c.ActivityTimeout == 0 {
		c.ActivityTimeout = 10 * time.Minute
	}
	if c.MaxApplications <= 0 {
		c.MaxApplications = 8
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.RequestLogSize <= 0 {
		c.RequestLogSize = defaultLogSize
	}
	return c
}
