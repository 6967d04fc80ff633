package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// TestRoute is the route test messages are recorded under. No configured
// route can have this name (route names start with a letter or digit), so
// the audit tells them apart: relay deliveries list --route _send-test.
const TestRoute = "_send-test"

// testFormat is the format recorded for a test message's notification.
const testFormat = "test"

// maxTestBody bounds the body of POST /v1/test-messages.
const maxTestBody = 64 << 10

// testMessageRequest is the body of POST /v1/test-messages.
type testMessageRequest struct {
	// Conversation names a configured conversation.
	Conversation string `json:"conversation"`
	// Text is the message; empty sends a default one.
	Text string `json:"text"`
}

// testMessage serves POST /v1/test-messages: it queues one message to every
// recipient of a configured conversation, as a webhook would (same
// transaction, same queue, same worker, same audit), and answers like a
// webhook: 202 with the notification's id and the operationIds, which the
// caller follows with GET /v1/deliveries/{operationId}. It needs the API
// token. Only the rendering differs: the text is given, not a template's.
func (h *Handler) testMessage(c echo.Context) error {
	cfg := h.cfg.Load()
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return newAPIError(http.StatusUnsupportedMediaType,
			"Content-Type must be application/json, got %q", truncate(r.Header.Get("Content-Type"), 64))
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxTestBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(maxTestBody)
	case err != nil:
		return newAPIError(http.StatusBadRequest, "read body: %v", err)
	}
	var req testMessageRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return newAPIError(http.StatusBadRequest, `want {"conversation": NAME, "text": TEXT}: %v`, err)
	}
	if dec.More() {
		return newAPIError(http.StatusBadRequest, `want one JSON object {"conversation": NAME, "text": TEXT}`)
	}
	targets, ok := cfg.Conversations[req.Conversation]
	if !ok || len(targets) == 0 {
		return newAPIError(http.StatusNotFound, "no conversation named %q is configured (configured: %s)",
			truncate(req.Conversation, 64), strings.Join(slices.Sorted(maps.Keys(cfg.Conversations)), ", "))
	}
	now := time.Now().UTC()
	text := req.Text
	if strings.TrimSpace(text) == "" {
		text = "Test message from relay, sent with relay send-test at " + now.Format("2006-01-02 15:04:05 MST") + "."
	}
	if err := checkTestText(text, cfg.Engine.MaxBytes()); err != nil {
		return err
	}
	n := &store.NewNotification{
		Route:  TestRoute,
		Format: testFormat,
		// Every test is a message of its own, never a duplicate.
		DedupKey: "send-test:" + rand.Text(),
		Payload:  body,
		Window:   cfg.DedupWindow,
	}
	for _, t := range targets {
		n.Messages = append(n.Messages, store.NewMessage{Conversation: req.Conversation, Target: t, Part: 1, Parts: 1, Text: text})
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.requestTimeout)
	defer cancel()
	res, err := h.db.Enqueue(ctx, n)
	if errors.Is(err, relay.ErrInvalid) {
		return newAPIError(http.StatusBadRequest, "%v", err)
	}
	if err != nil {
		return err
	}
	h.logger.InfoContext(r.Context(), "test message queued", slog.String("conversation", req.Conversation),
		slog.String("notification_id", res.NotificationID), slog.Int("deliveries", len(res.OperationIDs)))
	return c.JSON(http.StatusAccepted, webhookResponse{
		Status: "accepted", NotificationID: res.NotificationID, OperationIDs: res.OperationIDs,
	})
}

// checkTestText refuses a text that would not go out as it is: longer than
// one message, or holding control characters other than line breaks and
// tabs.
func checkTestText(text string, maxBytes int) error {
	if len(text) > maxBytes {
		return newAPIError(http.StatusBadRequest, "text is %d bytes, more than one message holds (ingest.max_message_bytes, %d)",
			len(text), maxBytes)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return newAPIError(http.StatusBadRequest, "text holds the control character %U", r)
		}
	}
	return nil
}
