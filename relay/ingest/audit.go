package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

type listResponse struct {
	Deliveries []store.Delivery `json:"deliveries"`
	// NextCursor continues the listing (?cursor=...); empty on the last page.
	NextCursor string `json:"nextCursor,omitempty"`
}

// listDeliveries serves GET /v1/deliveries?route=&conversation=&alertname=&state=&since=&until=&limit=&cursor=.
func (h *Handler) listDeliveries(c echo.Context) error {
	q := c.QueryParams()
	for key := range q {
		switch key {
		case "route", "conversation", "alertname", "state", "since", "until", "limit", "cursor":
		default:
			return newAPIError(http.StatusBadRequest, "unknown query parameter %q", truncate(key, 64))
		}
	}
	f := store.ListFilter{Route: q.Get("route"), Conversation: q.Get("conversation"), AlertName: q.Get("alertname"),
		Cursor: q.Get("cursor")}
	if s := q.Get("state"); s != "" {
		st, err := relay.ParseState(s)
		if err != nil {
			return newAPIError(http.StatusBadRequest, "state: %q is not one of %s", truncate(s, 64), stateNames())
		}
		f.State = st
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return newAPIError(http.StatusBadRequest, "%s: want an RFC 3339 time such as 2026-11-27T13:00:00Z, got %q", p.name, truncate(s, 64))
			}
			*p.dst = t
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return newAPIError(http.StatusBadRequest, "limit: want a number from 1 to %d, got %q", store.MaxListLimit, truncate(s, 64))
		}
		f.Limit = n
	}
	list, next, err := h.db.ListDeliveries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.Delivery{}
	}
	return c.JSON(http.StatusOK, listResponse{Deliveries: list, NextCursor: next})
}

// getDelivery serves GET /v1/deliveries/{operationId}.
func (h *Handler) getDelivery(c echo.Context) error {
	id := c.Param("id")
	if len(id) > 50 {
		return newAPIError(http.StatusNotFound, "no delivery with operationId %q", truncate(id, 64))
	}
	d, err := h.db.GetDelivery(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if d.AttemptLog == nil {
		d.AttemptLog = []store.Attempt{}
	}
	if d.DuplicatesAt == nil {
		d.DuplicatesAt = []time.Time{}
	}
	return c.JSON(http.StatusOK, d)
}

// redeliver serves POST /v1/deliveries/{operationId}/redeliver: a finished
// delivery (dead, delivered, uncertain, superseded) goes back in the queue
// as a new attempt; its history stays, with who asked. A request repeating
// an Idempotency-Key gets the first answer again (200) and queues nothing;
// without a key, a redelivery while the previous one is queued or less
// than the redeliver window ago is refused (409, naming it).
func (h *Handler) redeliver(c echo.Context) error {
	id := c.Param("id")
	if len(id) > 50 {
		return newAPIError(http.StatusNotFound, "no delivery with operationId %q", truncate(id, 64))
	}
	key := c.Request().Header.Get("Idempotency-Key")
	if err := CheckIdempotencyKey(key); err != nil {
		return newAPIError(http.StatusBadRequest, "Idempotency-Key: %v", err)
	}
	via := store.ViaAPI
	if strings.HasPrefix(c.Request().UserAgent(), CLIUserAgentPrefix) {
		via = store.ViaCLI
	}
	cfg := h.cfg.Load()
	r, err := h.db.Redeliver(c.Request().Context(), id, store.RedeliverRequest{
		By: RequesterAPIToken, Via: via, Key: key, Window: cfg.RedeliverWindow, Now: time.Now().UTC().Truncate(time.Microsecond),
	})
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if r.Replayed {
		status = http.StatusOK
	} else {
		h.logger.InfoContext(c.Request().Context(), "delivery redelivered", slog.String("operation_id", id),
			slog.String("previous_state", string(r.PreviousState)), slog.String("by", r.RequestedBy), slog.String("via", r.Via))
	}
	return c.JSON(status, map[string]string{
		"operationId": id, "state": string(relay.StatePending), "previousState": string(r.PreviousState),
		"requestedAt": r.RequestedAt.UTC().Format(time.RFC3339Nano), "requestedBy": r.RequestedBy, "via": r.Via,
	})
}

// RequesterAPIToken is who a redelivery asked for with the API token was
// asked by.
const RequesterAPIToken = "api-token"

// CLIUserAgentPrefix starts the User-Agent of relay's command line, which
// the audit records as the way a redelivery was asked for.
const CLIUserAgentPrefix = "relay-cli/"

// MaxIdempotencyKey bounds an Idempotency-Key.
const MaxIdempotencyKey = 255

// CheckIdempotencyKey accepts "" (no key) or 1 to MaxIdempotencyKey
// printable ASCII characters.
func CheckIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return fmt.Errorf("longer than %d characters", MaxIdempotencyKey)
	}
	for i := range len(key) {
		if key[i] < ' ' || key[i] > '~' {
			return errors.New("only printable ASCII characters may be used")
		}
	}
	return nil
}

func stateNames() string {
	names := make([]string, len(relay.States))
	for i, st := range relay.States {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}
