package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

const sendTestSynopsis = "relay send-test --conversation NAME [--text TEXT] [--wait 2m] [--url URL] [--config FILE]"

// pollEvery is how often send-test asks how its deliveries stand.
const pollEvery = 250 * time.Millisecond

// sendTest runs "relay send-test": it asks the running relay to queue a
// message to a configured conversation (POST /v1/test-messages, with the
// API token), follows each delivery until it is delivered or has failed
// for good, and prints the attempts. The message takes the path of an
// alert from the queue on: the database, the worker, the UCWA session, the
// pool, the recipient; only the text is given instead of rendered.
func sendTest(args []string, stdout, stderr io.Writer) error {
	return runSendTest(context.Background(), args, os.Getenv, stdout, stderr)
}

func runSendTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send-test", sendTestSynopsis, stderr)
	var cf clientFlags
	cf.register(fs)
	var conversation, text string
	var wait time.Duration
	fs.StringVar(&conversation, "conversation", "", "the configured conversation to send to (required)")
	fs.StringVar(&text, "text", "", "the message (default: one saying it is a test, and when it was sent)")
	fs.DurationVar(&wait, "wait", 2*time.Minute, "how long to follow the deliveries before giving up (they go on)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError{fmt.Errorf("unexpected argument %q", truncateRunes(clean(pos[0], false), 60))}
	case conversation == "":
		return usageError{errors.New("--conversation is required")}
	case wait <= 0:
		return usageError{fmt.Errorf("--wait must be positive, got %s", wait)}
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	req, err := json.Marshal(map[string]string{"conversation": conversation, "text": text})
	if err != nil {
		return fmt.Errorf("encode the request: %w", err)
	}
	body, err := c.send(ctx, http.MethodPost, "/v1/test-messages", nil, req, maxSmallBody)
	if err != nil {
		return err
	}
	var queued struct {
		OperationIDs []string `json:"operationIds"`
	}
	if err := json.Unmarshal(body, &queued); err != nil || len(queued.OperationIDs) == 0 {
		return fmt.Errorf("the relay at %s queued nothing: %s", c.base, truncateRunes(clean(string(body), false), 200))
	}
	for _, id := range queued.OperationIDs {
		if err := checkID(id); err != nil {
			return fmt.Errorf("the relay at %s answered with a bad operationId: %w", c.base, err)
		}
	}

	// Follow every delivery until it is final or the wait is over; a
	// change of state or attempt count is reported as it happens.
	deadline := time.Now().Add(wait)
	latest := map[string]*store.DeliveryDetail{}
	for {
		done := 0
		for _, id := range queued.OperationIDs {
			if d := latest[id]; d != nil && d.State.Final() {
				done++
				continue
			}
			raw, err := c.do(ctx, http.MethodGet, "/v1/deliveries/"+url.PathEscape(id), nil, maxDetailBody)
			if err != nil {
				return err
			}
			var d store.DeliveryDetail
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("read delivery %s from %s: %w", id, c.base, err)
			}
			if prev := latest[id]; prev == nil || prev.State != d.State || prev.Attempts != d.Attempts {
				fmt.Fprintf(stderr, "%s to %s: %s after %s\n", id, tableCell(d.Recipient), d.State, plural(d.Attempts, "attempt"))
			}
			latest[id] = &d
			if d.State.Final() {
				done++
			}
		}
		if done == len(queued.OperationIDs) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}

	failed := 0
	for _, id := range queued.OperationIDs {
		d := latest[id]
		line := fmt.Sprintf("\n%s to %s (conversation %s): %s", id, tableCell(d.Recipient), tableCell(d.Conversation), d.State)
		switch {
		case !d.State.Final():
			failed++
			line += fmt.Sprintf(" after %s; relay goes on trying, as with any delivery (relay deliveries show %s)",
				humanDuration(wait), id)
		case d.State == relay.StateDelivered && d.DeliveredAt != nil:
			line += fmt.Sprintf(", %s after it was queued", humanDuration(d.DeliveredAt.Sub(d.CreatedAt)))
		case d.State != relay.StateDelivered:
			failed++
			if d.LastError != "" {
				line += ": " + oneLine(d.LastError)
			}
		}
		fmt.Fprintln(stdout, line)
		if err := printAttempts(stdout, d.AttemptLog); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d test deliveries not delivered", failed, len(queued.OperationIDs))
	}
	return nil
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
