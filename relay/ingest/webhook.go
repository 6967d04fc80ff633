package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// webhookResponse is the body of a successful POST /v1/webhooks/{route}.
type webhookResponse struct {
	Status         string   `json:"status"`
	NotificationID string   `json:"notificationId"`
	OperationIDs   []string `json:"operationIds"`
	Duplicate      bool     `json:"duplicate"`
}

// Webhook results, the values of the result label.
const (
	resultAccepted     = "accepted"
	resultDuplicate    = "duplicate"
	resultBadRequest   = "bad_request"
	resultUnauthorized = "unauthorized"
	resultNotFound     = "not_found"
	resultTooLarge     = "too_large"
	resultMediaType    = "unsupported_media_type"
	resultTemplate     = "template_error"
	resultUnavailable  = "unavailable"
	resultError        = "error"
	resultIgnored      = "ignored"
	resultPing         = "ping"
	// resultOverloaded: refused at once by the in-flight limit, before the
	// body was read (unavailable is the database's trouble).
	resultOverloaded = "overloaded"
	// resultTimeout: the body arrived more slowly than read_timeout allows
	// (answered 503, so that the sender tries again).
	resultTimeout = "timeout"
)

var webhookResults = []string{resultAccepted, resultDuplicate, resultBadRequest, resultUnauthorized,
	resultNotFound, resultTooLarge, resultMediaType, resultTemplate, resultUnavailable, resultError,
	resultIgnored, resultPing, resultOverloaded, resultTimeout}

// webhook takes one notification: check, render, commit, answer. It answers
// 2xx only once the deliveries are committed; bad input gets a final 4xx,
// the database being unavailable a 503 so that the sender retries later,
// and a bug of ours a 500.
func (h *Handler) webhook(c echo.Context) error {
	start := time.Now()
	cfg := h.cfg.Load()
	name := c.Param("route")
	route, ok := cfg.Routes[name]
	metricRoute := name
	if !ok {
		metricRoute = unknownRoute
	}
	// The request's time counts from here: reading the body, preparing
	// and storing it all come out of it.
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.requestTimeout)
	defer cancel()
	res, err := h.takeWebhookRecovered(ctx, c, cfg, route, name)
	var ans *answered
	if errors.As(err, &ans) {
		return h.answer(c, metricRoute, start, ans.prep)
	}
	result := resultOf(res, err)
	h.metrics.received.WithLabelValues(metricRoute, result).Inc()
	h.metrics.latency.WithLabelValues(metricRoute).Observe(time.Since(start).Seconds())
	if err != nil {
		if statusOf(err) < 500 || result == resultOverloaded || result == resultTimeout {
			h.logger.InfoContext(c.Request().Context(), "webhook rejected", slog.String("route", metricRoute),
				slog.String("result", result), slog.String("reason", err.Error()))
		}
		return err
	}
	status := http.StatusAccepted
	if res.Duplicate {
		h.metrics.duplicates.WithLabelValues(metricRoute).Inc()
		status = http.StatusOK
	}
	h.logger.InfoContext(c.Request().Context(), "webhook accepted", slog.String("route", name),
		slog.String("notification_id", res.NotificationID), slog.Int("deliveries", len(res.OperationIDs)),
		slog.Bool("duplicate", res.Duplicate))
	return c.JSON(status, webhookResponse{
		Status: "accepted", NotificationID: res.NotificationID, OperationIDs: res.OperationIDs, Duplicate: res.Duplicate,
	})
}

const unknownRoute = "_unknown"

// answer replies to a request that stores nothing: 200 to a ping, 202
// "ignored" to an event relay does not render, so the sender does not retry.
func (h *Handler) answer(c echo.Context, route string, start time.Time, p *Prepared) error {
	result, status, body := resultIgnored, http.StatusAccepted, map[string]string{"status": "ignored", "reason": p.Ignored}
	if p.Ping {
		result, status, body = resultPing, http.StatusOK, map[string]string{"status": "pong"}
	}
	h.metrics.received.WithLabelValues(route, result).Inc()
	h.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	h.logger.InfoContext(c.Request().Context(), "webhook answered without a delivery", slog.String("route", route),
		slog.String("result", result), slog.String("kind", p.Kind), slog.String("reason", p.Ignored))
	return c.JSON(status, body)
}

func resultOf(res store.EnqueueResult, err error) string {
	if err == nil {
		if res.Duplicate {
			return resultDuplicate
		}
		return resultAccepted
	}
	if errors.Is(err, errOverloaded) {
		return resultOverloaded
	}
	if errors.Is(err, errSlowBody) {
		return resultTimeout
	}
	switch statusOf(err) {
	case http.StatusBadRequest:
		return resultBadRequest
	case http.StatusUnauthorized:
		return resultUnauthorized
	case http.StatusNotFound:
		return resultNotFound
	case http.StatusRequestEntityTooLarge:
		return resultTooLarge
	case http.StatusUnsupportedMediaType:
		return resultMediaType
	case http.StatusUnprocessableEntity:
		return resultTemplate
	case http.StatusServiceUnavailable:
		return resultUnavailable
	default:
		return resultError
	}
}

// takeWebhookRecovered is takeWebhook with a panic turned into an internal
// error, so that the request is counted and answered 500 like any other
// failure (the Recover middleware catches the rest).
func (h *Handler) takeWebhookRecovered(ctx context.Context, c echo.Context, cfg *Config, route *Route, name string) (res store.EnqueueResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			res, err = store.EnqueueResult{}, &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return h.takeWebhook(ctx, c, cfg, route, name)
}

func (h *Handler) takeWebhook(ctx context.Context, c echo.Context, cfg *Config, route *Route, name string) (store.EnqueueResult, error) {
	var none store.EnqueueResult
	r := c.Request()
	if route == nil || (route.Token == "" && route.Secret == "") {
		// The route has no credential of its own: the listener's apply.
		if err := h.checkListenerAuth(c); err != nil {
			return none, err
		}
	}
	if route == nil {
		return none, newAPIError(http.StatusNotFound, "no route named %q is configured", truncate(name, 64))
	}
	if route.Token != "" && !bearerMatches(r, route.Token) {
		return none, errUnauthorized
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return none, newAPIError(http.StatusUnsupportedMediaType,
			"Content-Type must be application/json, got %q", truncate(r.Header.Get("Content-Type"), 64))
	}
	gz, err := gzipped(r.Header)
	if err != nil {
		return none, err
	}
	if r.ContentLength > cfg.MaxBodyBytes {
		return none, tooLarge(cfg.MaxBodyBytes)
	}
	size := declaredSize(r, cfg.MaxBodyBytes)
	if gz {
		// What the body decompresses to is held, up to the limit, not
		// what comes in.
		size = cfg.MaxBodyBytes
	}
	if !h.inflight.reserve(size, cfg.MaxInflightBytes) {
		return none, errOverloaded
	}
	// Held until the answer: the body is the payload stored.
	defer h.inflight.release(size)
	var body []byte
	if gz {
		body, err = readGzipBody(c.Response(), r, cfg.MaxBodyBytes)
	} else {
		body, err = readBody(c.Response(), r, cfg.MaxBodyBytes)
	}
	var mbe *http.MaxBytesError
	var ae *apiError
	switch {
	case errors.As(err, &mbe):
		return none, tooLarge(cfg.MaxBodyBytes)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The body came too slowly (read_timeout). Not the sender's
		// mistake as such: it may retry.
		return none, fmt.Errorf("read body: %w: %w (%w)", relay.ErrUnavailable, errSlowBody, err)
	case errors.As(err, &ae):
		return none, err
	case err != nil && gz:
		return none, newAPIError(http.StatusBadRequest, "body is not valid gzip data (Content-Encoding: gzip): %v", err)
	case err != nil:
		return none, newAPIError(http.StatusBadRequest, "read body: %v", err)
	}
	prep, err := h.prepare(ctx, cfg, route, r.Header, body)
	if err != nil {
		return none, err
	}
	h.noteFingerprints(r.Context(), route.Name, prep.Fingerprints)
	if prep.Notification == nil {
		return none, &answered{prep}
	}
	res, err := h.db.Enqueue(ctx, prep.Notification)
	if errors.Is(err, relay.ErrInvalid) {
		return none, newAPIError(http.StatusBadRequest, "%v", err)
	}
	if err == nil && !res.Duplicate && prep.Summarized > 0 {
		h.metrics.capped.WithLabelValues(route.Name).Inc()
		h.logger.InfoContext(r.Context(), "webhook: more messages than ingest.max_messages_per_notification, the rest summarised in one",
			slog.String("route", route.Name), slog.String("notification_id", res.NotificationID),
			slog.Int("alerts_summarized", prep.Summarized), slog.Int("max_messages", cfg.maxMessages()))
	}
	return res, err
}

// answered carries a request that was handled without storing anything
// (a ping, an ignored event) out of takeWebhook.
type answered struct{ prep *Prepared }

func (a *answered) Error() string { return "answered without storing" }

func tooLarge(limit int64) error {
	return newAPIError(http.StatusRequestEntityTooLarge, "body is larger than %d bytes", limit)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
