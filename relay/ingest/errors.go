package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/skype-relay/relay/relay"
)

// apiError is an error with the HTTP status it answers to and a message
// safe to show the client.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func newAPIError(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = newAPIError(http.StatusUnauthorized, "missing or wrong bearer token")
	errListenerAuth = newAPIError(http.StatusUnauthorized,
		"missing or wrong basic auth credentials (basic_auth_users of the web configuration file)")
	errAuditOff = newAPIError(http.StatusForbidden,
		"the audit API is off: set api.bearer_token_file (or RELAY_API_TOKEN) to turn it on")
	// errSlowBody is wrapped when a webhook's body did not arrive within
	// the server's read timeout.
	errSlowBody     = errors.New("the body arrived more slowly than ingest.read_timeout allows")
	errLifecycleOff = newAPIError(http.StatusForbidden,
		"reload over HTTP is off: start relay serve with --web.enable-lifecycle to turn it on (SIGHUP reloads either way)")
)

// statusOf maps an error to its HTTP status: the one place where error
// kinds become status codes. relay.ErrUnavailable is the only 503 (the
// sender retries after Retry-After); relay.ErrInternal, a panic and any
// error of no known kind are 500.
func statusOf(err error) int {
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, relay.ErrInternal):
		return http.StatusInternalServerError
	case errors.Is(err, relay.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, relay.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, relay.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, relay.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// panicError is a panic in a handler, recovered and turned into an
// internal error, with the stack of the goroutine that panicked.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func (e *panicError) Unwrap() error { return relay.ErrInternal }

// recoverPanic turns a panic in a handler or middleware into a panicError
// for handleError, instead of net/http's dropped connection (which a
// sender takes for a network failure). http.ErrAbortHandler, the one
// deliberate panic, goes on up. (echo's own Recover middleware would bring
// in a dependency for nothing more than this.)
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				err = &panicError{value: p, stack: debug.Stack()}
			}
		}()
		return next(c)
	}
}

// withRequestID gives every request an id, answered in X-Request-Id and
// logged with a failed request, so that an operator can find what a client
// reports: the client's own X-Request-Id when it sent a usable one (a proxy
// in front may have), else a new random one.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !usableRequestID(id) {
			id = fmt.Sprintf("%016x", rand.Uint64())
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func usableRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Values of the where label of relay_internal_errors_total.
const (
	whereIngest = "ingest" // the webhook endpoint
	whereAPI    = "api"    // everything else: audit API, reload, health
)

var internalErrorWheres = []string{whereIngest, whereAPI}

// handleError is echo's HTTPErrorHandler: a JSON body {"error": "..."} for
// every failure. Server-side errors are logged here, once, and the client
// gets a generic message without internals: 503 (with Retry-After) when a
// dependency is unavailable, 500 for our own failures, which are also
// counted and logged at error level with the detail and the request id the
// client sees.
func (h *Handler) handleError(err error, c echo.Context) {
	status := statusOf(err)
	ctx := c.Request().Context()
	reqID := requestID(c)
	switch {
	case status == http.StatusServiceUnavailable && !errors.Is(err, errOverloaded) && !errors.Is(err, errSlowBody): // those logged by webhook
		h.logger.WarnContext(ctx, "request failed: dependency unavailable", slog.String("request_id", reqID),
			slog.String("path", c.Path()), slog.Any("err", err))
	case status == http.StatusInternalServerError:
		where := whereAPI
		if strings.HasPrefix(c.Path(), webhookPath) {
			where = whereIngest
		}
		h.metrics.internalErrors.WithLabelValues(where).Inc()
		attrs := []slog.Attr{slog.String("request_id", reqID), slog.String("method", c.Request().Method),
			slog.String("path", c.Path()), slog.Any("err", err)}
		if route := c.Param("route"); route != "" {
			attrs = append(attrs, slog.String("route", truncate(route, 64)))
		}
		var pe *panicError
		if errors.As(err, &pe) {
			attrs = append(attrs, slog.String("stack", string(pe.stack)))
		}
		h.logger.LogAttrs(ctx, slog.LevelError, "request failed: internal error", attrs...)
	}
	if c.Response().Committed {
		return // too late to answer; logged above all the same
	}
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg = fmt.Sprint(he.Message)
	}
	switch status {
	case http.StatusServiceUnavailable:
		msg = "temporarily unavailable, retry later"
		c.Response().Header().Set("Retry-After", "5")
	case http.StatusInternalServerError:
		msg = "internal error: relay failed to handle this request; its log has the details under request id " + reqID
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	// With its length, the answer is complete as soon as it is sent, even
	// while the request's body is still arriving (see answerFirst).
	body, _ := json.Marshal(map[string]string{"error": msg})
	body = append(body, '\n')
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	_ = c.Blob(status, echo.MIMEApplicationJSON, body)
}

// requestID is the request's id, as withRequestID set it on the response.
func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
