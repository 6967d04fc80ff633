package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

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
	errAuditOff     = newAPIError(http.StatusForbidden,
		"the audit API is off: set api.bearer_token_file (or RELAY_API_TOKEN) to turn it on")
)

// statusOf maps an error to its HTTP status: the one place where error
// kinds become status codes.
func statusOf(err error) int {
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.As(err, &he):
		return he.Code
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

// handleError is echo's HTTPErrorHandler: a JSON body {"error": "..."} for
// every failure. Server-side errors are logged here, once, and the client
// gets a generic message without internals.
func (h *Handler) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status := statusOf(err)
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg = fmt.Sprint(he.Message)
	}
	switch {
	case status == http.StatusServiceUnavailable:
		h.logger.WarnContext(c.Request().Context(), "request failed: dependency unavailable",
			slog.String("path", c.Path()), slog.Any("err", err))
		msg = "temporarily unavailable, retry later"
		c.Response().Header().Set("Retry-After", "5")
	case status >= 500:
		h.logger.ErrorContext(c.Request().Context(), "request failed",
			slog.String("path", c.Path()), slog.Any("err", err))
		msg = "internal error"
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, map[string]string{"error": msg})
}
