package ucwa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        apiError
		wantAct    action
		wantReason Reason
	}{
		{"cannot_redirect", apiError{Resource: resSendMessage, Status: 410, Subcode: "CannotRedirect"}, actFailover, ReasonFailover},
		{"gone_unknown", apiError{Resource: resEvents, Status: 410}, actFailover, ReasonFailover},
		{"inactive_expired", apiError{Resource: resEvents, Status: 410, Subcode: "InactiveApplicationExpired"}, actRecreateApp, ReasonApplicationGone},
		{"too_many_apps", apiError{Resource: resEvents, Status: 410, Subcode: "TooManyApplications"}, actRecreateApp, ReasonApplicationGone},
		{"user_agent_not_allowed", apiError{Resource: resApplications, Status: 410, Subcode: "UserAgentNotAllowed"}, actStop, ReasonStopped},
		{"app_not_found", apiError{Resource: resSendMessage, Status: 404, Subcode: "ApplicationNotFound"}, actRecreateApp, ReasonApplicationGone},
		{"conversation_404", apiError{Resource: resSendMessage, Status: 404}, actRebuildConv, ReasonConversationGone},
		{"conversation_409", apiError{Resource: resSendMessage, Status: 409}, actRebuildConv, ReasonConversationGone},
		{"another_operation_pending", apiError{Resource: resSendMessage, Status: 409, Subcode: "AnotherOperationPending"}, actRetry, ReasonServer},
		{"pget_replaced", apiError{Resource: resEvents, Status: 409, Subcode: "PGetReplaced"}, actRetry, ReasonServer},
		{"api_version", apiError{Resource: resApplications, Status: 404, Subcode: "APIVersionNotSupported"}, actFailover, ReasonServer},
		{"forbidden_target", apiError{Resource: resStartMessaging, Status: 403}, actPermanent, ReasonNotAllowed},
		{"forbidden_send", apiError{Resource: resSendMessage, Status: 403}, actPermanent, ReasonNotAllowed},
		{"forbidden_app_creation", apiError{Resource: resApplications, Status: 403}, actFailover, ReasonAuth},
		{"forbidden_discovery", apiError{Resource: resUser, Status: 403}, actFailover, ReasonAuth},
		{"forbidden_token", apiError{Resource: resToken, Status: 403}, actFailover, ReasonAuth},
		{"forbidden_events", apiError{Resource: resEvents, Status: 403}, actFailover, ReasonAuth},
		{"bad_request", apiError{Resource: resStartMessaging, Status: 400, Subcode: "ParameterValidationFailure"}, actPermanent, ReasonRejected},
		{"bad_request_send", apiError{Resource: resSendMessage, Status: 400}, actPermanent, ReasonRejected},
		{"method_not_allowed_send", apiError{Resource: resSendMessage, Status: 405}, actPermanent, ReasonRejected},
		{"precondition_send", apiError{Resource: resSendMessage, Status: 412}, actPermanent, ReasonRejected},
		{"media_type_send", apiError{Resource: resSendMessage, Status: 415}, actPermanent, ReasonRejected},
		{"precondition_required_send", apiError{Resource: resSendMessage, Status: 428}, actPermanent, ReasonRejected},
		{"bad_request_app_creation", apiError{Resource: resApplications, Status: 400}, actRetry, ReasonProtocol},
		{"bad_request_events", apiError{Resource: resEvents, Status: 400}, actRetry, ReasonProtocol},
		{"too_large", apiError{Resource: resSendMessage, Status: 413}, actPermanent, ReasonTooLarge},
		{"too_large_events", apiError{Resource: resEvents, Status: 413}, actRetry, ReasonProtocol},
		{"throttled_429", apiError{Resource: resSendMessage, Status: 429}, actRetry, ReasonThrottled},
		{"unavailable_503", apiError{Resource: resSendMessage, Status: 503}, actRetry, ReasonThrottled},
		{"bad_gateway", apiError{Resource: resSendMessage, Status: 502}, actFailover, ReasonFailover},
		{"server_500", apiError{Resource: resSendMessage, Status: 500, Subcode: "CallbackChannelError"}, actRetry, ReasonServer},
		{"timeout_504", apiError{Resource: resSendMessage, Status: 504}, actRetry, ReasonTimeout},
		{"unauthorized_twice", apiError{Resource: resSendMessage, Status: 401}, actReauth, ReasonAuth},
		{"redirect", apiError{Resource: resSendMessage, Status: 302}, actFailover, ReasonFailover},
		{"fresh_token_refused", apiError{Resource: resSendMessage, Status: 401, TokenRefused: true}, actReauth, ReasonAuth},
		{"fresh_token_refused_online", apiError{Resource: resStartMessaging, Status: 403, TokenRefused: true}, actReauth, ReasonAuth},
		{"host_not_allowed", apiError{Resource: resSendMessage, Err: errHostNotAllowed, NotSent: true}, actFailover, ReasonHostNotAllowed},
		{"plain_http", apiError{Resource: resEvents, Err: fmt.Errorf("x: %w", errInsecureLink), NotSent: true}, actFailover, ReasonHostNotAllowed},
		{"throttled_here", apiError{Resource: resSendMessage, Err: errThrottled, NotSent: true}, actRetry, ReasonThrottled},
		{"credentials_refused", apiError{Resource: resSendMessage, Err: &tokenError{status: 400, code: "invalid_grant"}}, actStop, ReasonStopped},
		{"credentials_401", apiError{Resource: resUser, Err: &tokenError{status: 401}}, actStop, ReasonStopped},
		{"token_endpoint_busy", apiError{Resource: resSendMessage, Err: &tokenError{status: 400, code: "server_error"}}, actRetry, ReasonAuth},
		{"token_endpoint_5xx", apiError{Resource: resSendMessage, Err: &tokenError{status: 503}}, actRetry, ReasonAuth},
		{"token_endpoint_403", apiError{Resource: resSendMessage, Err: &tokenError{status: 403}}, actFailover, ReasonAuth},
		{"token_endpoint_down", apiError{Resource: resSendMessage, NotSent: true,
			Err: fmt.Errorf("request token: %w", &apiError{Resource: resToken, Err: errors.New("connection refused")})}, actRetry, ReasonNetwork},
		{"network", apiError{Resource: resSendMessage, Err: errors.New("connection refused")}, actRetry, ReasonNetwork},
		{"deadline", apiError{Resource: resSendMessage, Err: context.DeadlineExceeded}, actRetry, ReasonTimeout},
		{"timeout", apiError{Resource: resSendMessage, Err: errTimeout}, actRetry, ReasonTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, reason := classify(&tt.err)
			if act != tt.wantAct || reason != tt.wantReason {
				t.Errorf("classify(%+v) = %v, %s; want %v, %s", tt.err, act, reason, tt.wantAct, tt.wantReason)
			}
			// One rule: only a permanent action blames the message.
			if got, want := reason.SessionCaused(), act != actPermanent; got != want {
				t.Errorf("classify(%+v) = %v with %s, whose SessionCaused() = %v", tt.err, act, reason, got)
			}
		})
	}
}

// TestClassifyBlamesOnlyTheMessageRequest runs every status on every
// resource: a request of the session itself (discovery, token,
// applications, events, ...) never yields a permanent action, and every
// non-permanent action comes with a session-caused reason.
func TestClassifyBlamesOnlyTheMessageRequest(t *testing.T) {
	t.Parallel()
	resources := []string{resRoot, resUser, resToken, resApplications, resApplication, resEvents, resStartMessaging,
		resInvitation, resConversation, resMessaging, resSendMessage, resMessage, resCancel}
	target := map[string]bool{resStartMessaging: true, resSendMessage: true, resInvitation: true,
		resConversation: true, resMessaging: true, resMessage: true}
	subcodes := []string{"", "CannotRedirect", "UserAgentNotAllowed", "ApplicationNotFound", "TooManyApplications", "APIVersionNotSupported"}
	for _, res := range resources {
		for status := 300; status < 600; status++ {
			for _, sub := range subcodes {
				e := apiError{Resource: res, Status: status, Subcode: sub}
				act, reason := classify(&e)
				if act == actPermanent && !target[res] {
					t.Errorf("classify(%s %d %s) = permanent: a session request blames the message", res, status, sub)
				}
				if (act != actPermanent) != reason.SessionCaused() {
					t.Errorf("classify(%s %d %s) = %v, %s: action and reason disagree on who is to blame", res, status, sub, act, reason)
				}
			}
		}
	}
}

func TestReasonsTable(t *testing.T) {
	t.Parallel()
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
	}
	for _, r := range []Reason{ReasonHostNotAllowed, ReasonStopped, ReasonProtocol, ReasonFailover, ReasonAuth, ReasonThrottled} {
		if !r.SessionCaused() {
			t.Errorf("%s.SessionCaused() = false, want true", r)
		}
	}
	for _, r := range []Reason{ReasonDeclined, ReasonNotFound, ReasonNotAllowed, ReasonTooLarge, ReasonRejected, ReasonNoAnswer, ReasonUnavailable} {
		if r.SessionCaused() {
			t.Errorf("%s.SessionCaused() = true, want false (about the message or recipient)", r)
		}
	}
	if Reason("no_such_reason").SessionCaused() {
		t.Errorf("an unknown reason is session-caused")
	}
}

func TestClassifyInvitation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code, subcode string
		want          relay.OutcomeKind
	}{
		{"RemoteFailure", "Declined", relay.Permanent},
		{"NotFound", "DestinationNotFound", relay.Permanent},
		{"Forbidden", "NotAllowed", relay.Permanent},
		{"RemoteFailure", "FederationRequired", relay.Permanent},
		{"Timeout", "Timeout", relay.RetryLater},
		{"RemoteFailure", "TemporarilyUnavailable", relay.RetryLater},
		{"RemoteFailure", "Busy", relay.RetryLater},
		{"RemoteFailure", "DoNotDisturb", relay.RetryLater},
		{"RemoteFailure", "Unreachable", relay.RetryLater},
		{"NotFound", "SomethingNew", relay.Permanent},
		{"Whatever", "", relay.RetryLater},
	}
	for _, tt := range tests {
		if got, _ := classifyInvitation(ucwaError{Code: tt.code, Subcode: tt.subcode}); got != tt.want {
			t.Errorf("classifyInvitation(%s/%s) = %v, want %v", tt.code, tt.subcode, got, tt.want)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	const bearer = `Bearer trusted_issuers="00000002-0000-0ff1-ce00-000000000000@contoso.com", client_id="00000004-0000-0ff1-ce00-000000000000"`
	tests := []struct {
		name   string
		lines  []string
		want   *challenge
		wantOK bool
	}{
		{name: "two_lines", lines: []string{bearer,
			`MsRtcOAuth href="https://fe1.contoso.com/WebTicket/oauthtoken",grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"`},
			want: &challenge{href: "https://fe1.contoso.com/WebTicket/oauthtoken",
				grants: []string{"urn:microsoft.rtc:windows", "urn:microsoft.rtc:anonmeeting", "password"}}, wantOK: true},
		{name: "combined_unquoted_href", lines: []string{bearer + `, MsRtcOAuth href=https://fe1.contoso.com/WebTicket/oauthtoken,grant_type="password"`},
			want: &challenge{href: "https://fe1.contoso.com/WebTicket/oauthtoken", grants: []string{"password"}}, wantOK: true},
		{name: "msrtcoauth_first_then_bearer", lines: []string{`MsRtcOAuth href="https://h/t", grant_type="password", Bearer client_id="x"`},
			want: &challenge{href: "https://h/t", grants: []string{"password"}}, wantOK: true},
		{name: "no_msrtcoauth", lines: []string{bearer}, wantOK: false},
		{name: "scheme_inside_value_only", lines: []string{`Bearer realm="msrtcoauth"`}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.lines {
				h.Add("WWW-Authenticate", l)
			}
			got, ok := parseChallenge(h)
			if ok != tt.wantOK {
				t.Fatalf("parseChallenge ok = %v, want %v (%+v)", ok, tt.wantOK, got)
			}
			if ok {
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(challenge{})); diff != "" {
					t.Errorf("parseChallenge mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {" 12 ", 12 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	roots := []*url.URL{{Scheme: "https", Host: "lyncdiscoverinternal.contoso.com"}, {Scheme: "http", Host: "127.0.0.1:4444"}}
	if got, want := defaultAllowedHosts(roots), []string{"lyncdiscoverinternal.contoso.com", "contoso.com", "127.0.0.1"}; !cmp.Equal(got, want) {
		t.Errorf("defaultAllowedHosts = %v, want %v", got, want)
	}
	hc, err := newHTTPClient(Config{}, []string{"contoso.com", "127.0.0.1", "lab.example:8443"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		u    string
		want bool
	}{
		{"https://fe1.contoso.com/ucwa", true},
		{"https://contoso.com/", true},
		{"https://FE2-backup.Contoso.com./x", true},
		{"https://evilcontoso.com/", false},
		{"https://contoso.com.evil.net/", false},
		{"http://127.0.0.1:9999/", true},
		{"https://lab.example:8443/", true},
		{"https://lab.example/", false},
		{"ftp://fe1.contoso.com/", false},
		{"/relative", false},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.u)
		if got := hc.isAllowed(u); got != tt.want {
			t.Errorf("isAllowed(%s) = %v, want %v", tt.u, got, tt.want)
		}
	}
}

func TestWithQueryKeepsServerParams(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://fe1.contoso.com/ucwa/events?ack=7&x=a%2Fb")
	got := withQuery(u, "operationId", "d8f3 c1&a=2").String()
	if want := "https://fe1.contoso.com/ucwa/events?ack=7&x=a%2Fb&operationId=d8f3+c1%26a%3D2"; got != want {
		t.Errorf("withQuery = %s, want %s", got, want)
	}
	if u.RawQuery != "ack=7&x=a%2Fb" {
		t.Errorf("withQuery changed its input: %s", u.RawQuery)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	ok := Config{Username: "u", Password: "p", DiscoveryURLs: []string{"https://lyncdiscover.contoso.com/"}}
	if _, err := New(ok, logger); err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	if _, err := New(ok, nil); err == nil {
		t.Errorf("New without logger succeeded")
	}
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"username", func(c *Config) { c.Username = "" }, "Username"},
		{"password", func(c *Config) { c.Password = "" }, "Password"},
		{"no_roots", func(c *Config) { c.DiscoveryURLs = nil }, "DiscoveryURLs"},
		{"bad_root", func(c *Config) { c.DiscoveryURLs = []string{"lyncdiscover.contoso.com"} }, "DiscoveryURLs[0]"},
		{"bad_allowed", func(c *Config) { c.AllowedHosts = []string{"https://x/"} }, "AllowedHosts[0]"},
		{"event_timeout", func(c *Config) { c.Timers.EventTimeout = time.Minute }, "Timers.EventTimeout"},
		{"negative_timer", func(c *Config) { c.Timers.MessageWait = -1 }, "Timers.MessageWait"},
		{"renew_fraction", func(c *Config) { c.Timers.TokenRenewFraction = 2 }, "Timers.TokenRenewFraction"},
		{"endpoint_id", func(c *Config) { c.EndpointID = strings.Repeat("e", 101) }, "EndpointID"},
		{"ca_file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := New(cfg, logger)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New = %v, want an error naming %s", err, tt.field)
			}
			if err != nil && strings.Contains(err.Error(), "p\"") {
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
	if d := DefaultTimers(); d.EventTimeout != 180*time.Second || d.EventSlack != time.Minute || d.InvitationWait != 45*time.Second ||
		d.MessageWait != time.Minute || d.RetryMin != time.Second || d.RetryMax != time.Minute ||
		d.FailoverMin != time.Second || d.FailoverMax != 5*time.Minute || d.StormFailover != 30*time.Second ||
		d.TokenRenewFraction != 0.8 {
		t.Errorf("DefaultTimers = %+v, want the PROTOCOL values", d)
	}
}

// TestDiscoveryRedirectChecks serves a root whose redirect points outside
// the allowed hosts, then a chain longer than the hop limit: discovery must
// refuse both without contacting the foreign host.
func TestDiscoveryRedirectChecks(t *testing.T) {
	t.Parallel()
	var foreign atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreign.Add(1) }))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/evil-link":
			_, _ = w.Write([]byte(`{"_links":{"redirect":{"href":"` + evil.URL + `/root"}}}`))
		case "/evil-3xx":
			http.Redirect(w, r, evil.URL+"/root", http.StatusFound)
		default: // /loop: a redirect to itself, forever
			_, _ = w.Write([]byte(`{"_links":{"redirect":{"href":"/loop"}}}`))
		}
	}))
	defer srv.Close()
	for _, path := range []string{"/evil-link", "/evil-3xx", "/loop"} {
		host, _ := url.Parse(srv.URL)
		c, err := New(Config{Username: "u", Password: "p", DiscoveryURLs: []string{srv.URL + path},
			AllowedHosts: []string{host.Host}, Timers: testTimers()}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		_, err = c.discover(context.Background())
		if err == nil {
			t.Errorf("discover(%s) succeeded", path)
		} else if path == "/loop" && !strings.Contains(err.Error(), "redirects") {
			t.Errorf("discover(%s) = %v, want the hop limit", path, err)
		}
		_ = c.Close(context.Background())
	}
	if n := foreign.Load(); n != 0 {
		t.Errorf("the foreign host got %d requests", n)
	}
}

func TestSecureFor(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"https://fe1.contoso.com/WebTicket/oauthtoken": true,
		"http://fe1.contoso.com/WebTicket/oauthtoken":  false,
		"http://127.0.0.1:8443/x":                      true,
		"http://[::1]:8443/x":                          true,
		"http://localhost/x":                           true,
		"http://10.0.0.5/x":                            false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := secureFor(u); got != want {
			t.Errorf("secureFor(%s) = %v, want %v", raw, got, want)
		}
	}
}
