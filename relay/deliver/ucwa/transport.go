package ucwa

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// httpClient is the one HTTP client of a Client: shared connections, no
// automatic redirects, a check of every host a request goes to, and the
// gate that keeps every request polite to its host.
type httpClient struct {
	hc      *http.Client
	tr      *http.Transport
	allowed []string
	gate    *gate
}

func newHTTPClient(cfg Config, allowed []string, conc int) (*httpClient, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // only when the operator sets it
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ucwa config: read CAFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ucwa config: CAFile %q holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          4 * (conc + 2),
		MaxIdleConnsPerHost:   2 * (conc + 2), // command requests plus the long poll
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	norm := make([]string, 0, len(allowed))
	for _, h := range allowed {
		norm = append(norm, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	return &httpClient{
		tr:      tr,
		allowed: norm,
		gate:    newGate(cfg.Timers.withDefaults()),
		hc: &http.Client{
			Transport: tr,
			// Redirects are followed by hand, one checked hop at a time.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (h *httpClient) closeIdle() { h.tr.CloseIdleConnections() }

// defaultAllowedHosts trusts each root's host and, when the root is a
// lyncdiscover-style name, its parent domain (PROTOCOL §1.2, §2.3).
func defaultAllowedHosts(roots []*url.URL) []string {
	var out []string
	for _, r := range roots {
		host := r.Hostname()
		out = append(out, host)
		if net.ParseIP(host) != nil {
			continue
		}
		if labels := strings.Split(host, "."); len(labels) >= 3 {
			out = append(out, strings.Join(labels[1:], "."))
		}
	}
	return out
}

// secureFor reports whether credentials and tokens may travel to u: over
// https, or over plain http only to a loopback host (a local simulator or
// proxy). A link downgrading to http elsewhere could hand them to anyone
// on the network path.
func secureFor(u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isAllowed reports whether u may receive redirects, credentials and tokens.
func (h *httpClient) isAllowed(u *url.URL) bool {
	if u == nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	hostPort := net.JoinHostPort(host, port)
	for _, a := range h.allowed {
		if _, _, err := net.SplitHostPort(a); err == nil { // host:port entry
			if hostPort == a {
				return true
			}
			continue
		}
		if host == a || strings.HasSuffix(host, "."+a) {
			return true
		}
	}
	return false
}

// request is one HTTP exchange to send.
type request struct {
	method   string
	url      *url.URL
	resource string // resource name, for classification and logs
	ctype    string
	body     []byte
	token    string // bearer value ("cwt=..."), "" for none
	timeout  time.Duration
	limit    int64
	// wait: when the host's gate holds the request back, wait for it (up
	// to ctx) instead of failing at once with errThrottled.
	wait bool
	// slots, when set, bounds the requests in flight (the account's
	// request slots): one is held from the gate's admission to the end of
	// the answer, never while the request waits for its URL or its host.
	slots chan struct{}
}

// response is a fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
	url    *url.URL // where it came from
}

// admit waits for the host's gate to let rq through, or, for a request that
// does not wait, fails with errThrottled and the wait as RetryAfter. It
// takes one of rq.slots first, so that the gate's word and the request
// going out are not apart; the slot is given back while the request
// waits for the gate. release gives it back once the answer is read.
func (h *httpClient) admit(ctx context.Context, rq *request) (release func(), err error) {
	host := rq.url.Host
	done := func() {}
	defer func() { done() }()
	for first := true; ; first = false {
		if rq.slots != nil {
			select {
			case rq.slots <- struct{}{}:
			case <-ctx.Done():
				return nil, &apiError{Resource: rq.resource, Host: host, Err: ctx.Err(), NotSent: true}
			}
		}
		wait := h.gate.admit(host, time.Now(), rq.wait)
		if wait <= 0 {
			return func() {
				if rq.slots != nil {
					<-rq.slots
				}
			}, nil
		}
		if rq.slots != nil {
			<-rq.slots
		}
		if !rq.wait {
			return nil, &apiError{Resource: rq.resource, Host: host, Err: errThrottled, NotSent: true, RetryAfter: wait}
		}
		if first {
			done = h.gate.waitTurn(host)
		}
		if !backoff.Sleep(ctx, wait) {
			return nil, &apiError{Resource: rq.resource, Host: host, Err: ctx.Err(), NotSent: true}
		}
	}
}

// roundTrip sends one request and reads the whole answer, bounded in size
// and time. It never follows redirects. Transport errors, answers whose
// body could not be read (errBodyTooLarge) and refusals come back as
// *apiError with Status 0: a host outside AllowedHosts
// (errHostNotAllowed), a token over plain http off loopback
// (errInsecureLink), a host that asked us to wait (errThrottled, unless
// rq.wait). It waits for the answer to an earlier request to the same URL
// before it takes a request slot (rq.slots): requests queued on one URL,
// such as invitations on startMessaging, leave the slots to the others.
// Every answer and transport failure is reported to the gate.
func (h *httpClient) roundTrip(ctx context.Context, rq *request) (*response, error) {
	host := rq.url.Host
	if !h.isAllowed(rq.url) {
		return nil, &apiError{Resource: rq.resource, Host: host, Err: errHostNotAllowed, NotSent: true}
	}
	if rq.token != "" && !secureFor(rq.url) {
		return nil, &apiError{Resource: rq.resource, Host: host, NotSent: true,
			Err: fmt.Errorf("refusing to send the bearer token: %w", errInsecureLink)}
	}
	release, err := h.gate.hold(ctx, rq.method+" "+host+rq.url.Path)
	if err != nil {
		return nil, &apiError{Resource: rq.resource, Host: host, Err: err, NotSent: true}
	}
	defer release() // after the answer is recorded below
	free, err := h.admit(ctx, rq)
	if err != nil {
		return nil, err
	}
	defer free()
	resp, err := h.exchange(ctx, rq)
	now := time.Now()
	switch {
	case resp != nil:
		h.gate.answer(host, resp.status, parseRetryAfter(resp.header.Get("Retry-After"), now), now)
	case ctx.Err() == nil:
		// Not our own cancellation: the host did not answer in time or at all.
		h.gate.transportFailure(host, now)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// exchange does the HTTP part of roundTrip. An answer whose body is over
// rq.limit is returned without its body, for the gate, together with the
// error: like a body that could not be read, it is a lost answer (Status
// 0, not NotSent), whatever its status said. A 2xx that cannot be read
// must not pass for a refusal; the caller treats it as it treats a
// timeout after sending (sendMessage waits for the completed event).
func (h *httpClient) exchange(ctx context.Context, rq *request) (*response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, rq.timeout, errTimeout)
	defer cancel()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url.String(), body)
	if err != nil {
		return nil, &apiError{Resource: rq.resource, Host: rq.url.Host, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if rq.ctype != "" {
		req.Header.Set("Content-Type", rq.ctype)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errTimeout) {
			err = errTimeout
		}
		return nil, &apiError{Resource: rq.resource, Host: rq.url.Host, Err: scrubURLError(err), NotSent: isNotSent(err)}
	}
	defer drainClose(resp.Body)
	limit := rq.limit
	if limit == 0 {
		limit = maxBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errTimeout) {
			err = errTimeout
		}
		return nil, &apiError{Resource: rq.resource, Host: rq.url.Host, Status: 0, Err: fmt.Errorf("read body: %w", scrubURLError(err))}
	}
	if int64(len(b)) > limit {
		return &response{status: resp.StatusCode, header: resp.Header, url: rq.url},
			&apiError{Resource: rq.resource, Host: rq.url.Host, Err: fmt.Errorf("http %d answer: %w (over %d bytes)", resp.StatusCode, errBodyTooLarge, limit)}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b, url: rq.url}, nil
}

// scrubURLError drops the URL from a *url.Error: URLs carry no secret, but
// the host and resource are logged separately and a shorter error reads better.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// drainClose reads what is left of a body (bounded) so the connection can
// be reused, then closes it.
func drainClose(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	_ = b.Close()
}

// httpError turns a non-2xx answer into an *apiError, reading the UCWA JSON
// error body when the Content-Type says it is one (PROTOCOL §8.1).
func httpError(resource string, r *response, now time.Time) *apiError {
	e := &apiError{Resource: resource, Host: r.url.Host, Status: r.status,
		RetryAfter: min(parseRetryAfter(r.header.Get("Retry-After"), now), maxRetryAfter),
		Diag:       printable(truncate(r.header.Get("X-Ms-diagnostics"), 200))}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt == "application/json" {
		var ue ucwaError
		if decodeJSON(r.body, &ue) == nil {
			e.JSON = true
			e.Code, e.Subcode, e.Message = printable(truncate(ue.Code, 60)), printable(truncate(ue.Subcode, 60)), printable(truncate(ue.Message, 200))
		}
	}
	return e
}

// printable drops control characters from text the server sent.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// resolve turns an href from the server into an absolute URL against base.
func resolve(base *url.URL, href string) (*url.URL, error) {
	if href == "" {
		return nil, errors.New("empty href")
	}
	u, err := url.Parse(href)
	if err != nil {
		return nil, fmt.Errorf("parse href: %w", err)
	}
	return base.ResolveReference(u), nil
}

// withQuery returns a copy of u with one query parameter added. Parameters
// the server put in the link are kept byte for byte.
func withQuery(u *url.URL, key, value string) *url.URL {
	v := *u
	add := url.QueryEscape(key) + "=" + url.QueryEscape(value)
	if v.RawQuery == "" {
		v.RawQuery = add
	} else {
		v.RawQuery += "&" + add
	}
	return &v
}

// hasQuery reports whether u already carries the parameter key.
func hasQuery(u *url.URL, key string) bool {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return false
	}
	_, ok := q[key]
	return ok
}

func parseAbs(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if !u.IsAbs() {
		return nil, errors.New("not an absolute URL")
	}
	return u, nil
}
