package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/store"
)

const deliveriesUsage = `Usage:
  relay deliveries list [flags]                 list deliveries, newest first
  relay deliveries show ID [--payload] [flags]  one delivery with its attempts
  relay deliveries redeliver ID [ID...]         put finished deliveries back in the queue

The relay's URL comes from --url, else RELAY_URL, else the listen_address of the
config (--config or RELAY_CONFIG), else http://127.0.0.1:9095. The API token comes
from RELAY_API_TOKEN or RELAY_API_TOKEN_FILE, else the config's api.bearer_token_file;
it is never taken from the command line.
`

// Environment variables only the client reads; RELAY_API_TOKEN and its
// _FILE variant are the server's own (config.EnvAPIToken).
const (
	envRelayURL     = "RELAY_URL"
	envAPITokenFile = config.EnvAPIToken + "_FILE"
	defaultRelayURL = "http://127.0.0.1:9095"
)

// Response size limits: a list page is at most 500 deliveries of at most a
// few KiB each; a detail carries the notification payload.
const (
	maxListBody   = 32 << 20
	maxDetailBody = 32 << 20
	maxSmallBody  = 1 << 20
	// maxAllRows caps list --all.
	maxAllRows = 10_000
	// errorWidth, alertWidth and summaryWidth are how much of a last
	// error, an alert name and a summary the list table shows.
	errorWidth   = 60
	alertWidth   = 30
	summaryWidth = 50
)

// deliveries runs "relay deliveries list|show|redeliver": a client of the
// audit API of a running relay.
func deliveries(args []string, stdout, stderr io.Writer) error {
	return runDeliveries(context.Background(), args, os.Getenv, stdout, stderr)
}

func runDeliveries(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	actions := map[string]*action{
		"list":      deliveriesList(getenv, stdout, stderr),
		"show":      deliveriesShow(getenv, stdout, stderr),
		"redeliver": deliveriesRedeliver(getenv, stdout, stderr),
	}
	lookup := func(name string) *flag.Flag {
		for _, a := range actions {
			if f := a.fs.Lookup(name); f != nil {
				return f
			}
		}
		return nil
	}
	name, args, ok := splitAction(lookup, args)
	if !ok {
		fmt.Fprint(stderr, deliveriesUsage)
		return usageError{errors.New("want one of: list, show, redeliver")}
	}
	a, ok := actions[name]
	switch {
	case name == "help" || name == "-h" || name == "--help":
		fmt.Fprint(stdout, deliveriesUsage)
		return nil
	case !ok:
		fmt.Fprint(stderr, deliveriesUsage)
		return usageError{fmt.Errorf("unknown action %q: want list, show or redeliver", truncateRunes(clean(name, false), 40))}
	}
	pos, err := parseArgs(a.fs, args)
	if err != nil {
		return err
	}
	return a.runFunc(ctx, pos)
}

// action is one action of a command whose actions take different flags:
// its flag set, and what runs it with the positional arguments left once
// the flags are parsed.
type action struct {
	fs      *flag.FlagSet
	runFunc func(ctx context.Context, pos []string) error
}

func deliveriesList(getenv func(string) string, stdout, stderr io.Writer) *action {
	fs := newFlagSet("deliveries list", "relay deliveries list [--route R] [--conversation C] [--alertname A] [--state S] [--since T] [--until T] [--limit N] [--cursor C | --all] [--json]", stderr)
	o := &listOptions{}
	o.cf.register(fs)
	fs.StringVar(&o.route, "route", "", "only this route's deliveries")
	fs.StringVar(&o.conversation, "conversation", "", "only this conversation's deliveries")
	fs.StringVar(&o.alertname, "alertname", "", "only deliveries about this alert (for CI sources: repository or project and pipeline)")
	fs.StringVar(&o.state, "state", "", "only deliveries in this state (pending, sending, delivered, dead, uncertain, superseded)")
	fs.StringVar(&o.since, "since", "", "created at or after: RFC 3339 time, or a duration before now (90m, 1h, 2d)")
	fs.StringVar(&o.until, "until", "", "created before: RFC 3339 time, or a duration before now")
	fs.IntVar(&o.limit, "limit", 0, fmt.Sprintf("page size, 1 to %d (default 50; %d with --all)", store.MaxListLimit, store.MaxListLimit))
	fs.StringVar(&o.cursor, "cursor", "", "continue a listing where the previous page ended")
	fs.BoolVar(&o.all, "all", false, fmt.Sprintf("follow every page (at most %d deliveries)", maxAllRows))
	return &action{fs: fs, runFunc: func(ctx context.Context, pos []string) error {
		return listDeliveries(ctx, pos, o, getenv, stdout, stderr)
	}}
}

// listOptions are the flags of deliveries list.
type listOptions struct {
	cf                                                          clientFlags
	route, conversation, alertname, state, since, until, cursor string
	limit                                                       int
	all                                                         bool
}

func listDeliveries(ctx context.Context, pos []string, o *listOptions, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", truncateRunes(clean(pos[0], false), 60))}
	}
	q := url.Values{}
	for _, p := range []struct{ key, val string }{{"route", o.route}, {"conversation", o.conversation}, {"alertname", o.alertname}, {"cursor", o.cursor}} {
		if p.val != "" {
			q.Set(p.key, p.val)
		}
	}
	if o.state != "" {
		if err := knownState(o.state); err != nil {
			return err
		}
		q.Set("state", o.state)
	}
	now := time.Now()
	for _, p := range []struct{ key, val string }{{"since", o.since}, {"until", o.until}} {
		if p.val == "" {
			continue
		}
		t, err := parseWhen(p.val, now)
		if err != nil {
			return usageError{fmt.Errorf("--%s: %w", p.key, err)}
		}
		q.Set(p.key, t.UTC().Format(time.RFC3339Nano))
	}
	switch {
	case o.limit < 0 || o.limit > store.MaxListLimit:
		return usageError{fmt.Errorf("--limit: want 1 to %d, got %d", store.MaxListLimit, o.limit)}
	case o.limit > 0:
		q.Set("limit", strconv.Itoa(o.limit))
	case o.all:
		q.Set("limit", strconv.Itoa(store.MaxListLimit))
	}
	c, err := o.cf.newClient(getenv)
	if err != nil {
		return err
	}

	var rows []json.RawMessage
	next := ""
	for {
		body, err := c.do(ctx, http.MethodGet, "/v1/deliveries", q, maxListBody)
		if err != nil {
			return err
		}
		var page listPage
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("read the list from %s: %w", c.base, err)
		}
		if !o.all {
			if o.cf.json {
				if err := printJSON(stdout, body); err != nil {
					return err
				}
			} else if err := printList(stdout, page.Deliveries); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(stderr, "more deliveries: repeat with --cursor %s (or use --all)\n", clean(page.NextCursor, false))
			}
			return nil
		}
		rows = append(rows, page.Deliveries...)
		next = page.NextCursor
		if next == "" || next == q.Get("cursor") {
			next = "" // a cursor that does not move would loop forever
			break
		}
		if len(rows) >= maxAllRows {
			break
		}
		q.Set("cursor", next)
	}
	if len(rows) > maxAllRows {
		rows = rows[:maxAllRows]
	}
	if o.cf.json {
		out, err := json.Marshal(listPage{Deliveries: rows, NextCursor: next})
		if err != nil {
			return fmt.Errorf("encode the list: %w", err)
		}
		if err := printJSON(stdout, out); err != nil {
			return err
		}
	} else if err := printList(stdout, rows); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stderr, "stopped after %d deliveries (the --all limit); continue with --cursor %s\n",
			len(rows), clean(next, false))
	}
	return nil
}

// printList writes the deliveries as a table for people.
func printList(w io.Writer, rows []json.RawMessage) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no deliveries")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "OPERATION ID\tSTATE\tATTEMPTS\tROUTE\tCONVERSATION\tALERT\tSUMMARY\tCREATED\tLAST ERROR")
	for _, raw := range rows {
		var d store.Delivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("read a delivery of the list: %w", err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", tableCell(d.OperationID), tableCell(string(d.State)), d.Attempts,
			tableCell(d.Route), tableCell(d.Conversation), truncateRunes(tableCell(d.AlertName), alertWidth),
			truncateRunes(tableCell(summary(d.Text)), summaryWidth), localTime(d.CreatedAt),
			truncateRunes(tableCell(d.LastError), errorWidth))
	}
	return tw.Flush()
}

// summary is what the list shows of a message: its first line that is not
// blank. The shipped templates put the headline there ("[FIRING:2] HighCPU
// prod", "[FAILED] ci.yml on main"), it is what the recipient's chat shows
// first, and it is there for every source and every custom template,
// unlike an annotation such as an alert's summary.
func summary(text string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

func deliveriesShow(getenv func(string) string, stdout, stderr io.Writer) *action {
	fs := newFlagSet("deliveries show", "relay deliveries show ID [--payload] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	payload := fs.Bool("payload", false, "also print the notification's payload")
	return &action{fs: fs, runFunc: func(ctx context.Context, pos []string) error {
		return showDelivery(ctx, pos, &cf, getenv, *payload, stdout)
	}}
}

func showDelivery(ctx context.Context, pos []string, cf *clientFlags, getenv func(string) string, payload bool, stdout io.Writer) error {
	if len(pos) != 1 {
		return usageError{errors.New("want one operationId")}
	}
	if err := checkID(pos[0]); err != nil {
		return err
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	body, err := c.do(ctx, http.MethodGet, "/v1/deliveries/"+url.PathEscape(pos[0]), nil, maxDetailBody)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, body)
	}
	var d store.DeliveryDetail
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("read delivery %s from %s: %w", pos[0], c.base, err)
	}
	return printDetail(stdout, &d, payload)
}

// printDetail writes one delivery as a block for people.
func printDetail(w io.Writer, d *store.DeliveryDetail, withPayload bool) error {
	tw := newTable(w)
	field := func(name, val string) { fmt.Fprintf(tw, "%s:\t%s\n", name, val) }
	field("Operation ID", tableCell(d.OperationID))
	field("Notification ID", tableCell(d.NotificationID))
	field("State", tableCell(string(d.State)))
	field("Route", tableCell(d.Route))
	field("Conversation", tableCell(d.Conversation))
	field("Recipient", tableCell(d.Recipient))
	if d.Subject != "" {
		field("Subject", tableCell(d.Subject))
	}
	if d.Importance != "" {
		field("Importance", tableCell(d.Importance))
	}
	field("Part", fmt.Sprintf("%d of %d", d.Part, d.Parts))
	if d.Event != "" {
		field("Format", tableCell(d.Format)+" (event "+oneLine(d.Event)+")")
	} else {
		field("Format", tableCell(d.Format))
	}
	field("Received", localTimeZone(&d.ReceivedAt))
	field("Created", localTimeZone(&d.CreatedAt))
	field("Updated", localTimeZone(&d.UpdatedAt))
	if d.DeliveredAt != nil && !d.DeliveredAt.IsZero() {
		field("Delivered", localTimeZone(d.DeliveredAt)+" ("+humanDuration(d.DeliveredAt.Sub(d.CreatedAt))+" after it was queued)")
	} else {
		field("Delivered", "-")
	}
	if d.State == relay.StatePending {
		field("Next attempt", localTimeZone(&d.NextAttemptAt))
	}
	if d.LeaseUntil != nil {
		field("Lease until", localTimeZone(d.LeaseUntil))
	}
	field("Attempts", attemptSummary(d))
	field("Last error", tableCell(d.LastError))
	field("Dedup key", tableCell(d.DedupKey))
	dup := strconv.Itoa(d.Duplicates)
	if len(d.DuplicatesAt) > 0 {
		const shown = 5
		var ts []string
		for i, t := range d.DuplicatesAt {
			if i == shown {
				ts = append(ts, "…")
				break
			}
			ts = append(ts, localTimeZone(&t))
		}
		dup += " (latest: " + strings.Join(ts, ", ") + ")"
	}
	field("Duplicates", dup)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nText:")
	for _, line := range strings.Split(strings.TrimRight(clean(d.Text, true), "\n"), "\n") {
		fmt.Fprintln(w, "    "+line)
	}
	if withPayload {
		fmt.Fprintln(w, "\nPayload:")
		var buf bytes.Buffer
		if len(d.Payload) == 0 || json.Indent(&buf, d.Payload, "    ", "  ") != nil {
			fmt.Fprintln(w, "    (none)")
		} else {
			fmt.Fprintln(w, "    "+clean(buf.String(), true))
		}
	}

	fmt.Fprintln(w, "\nAttempt log:")
	return printAttempts(w, d.AttemptLog)
}

// printAttempts writes an attempt log as a table.
func printAttempts(w io.Writer, log []store.Attempt) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ATTEMPT\tOUTCOME\tREASON\tPOOL\tSTATUS\tUCWA CODE/SUBCODE\tLATENCY\tAT\tCARRIED\tERROR")
	for _, a := range log {
		status := "-"
		if a.HTTPStatus != nil {
			status = strconv.Itoa(*a.HTTPStatus)
		}
		code := "-"
		if a.UCWACode != "" || a.UCWASubcode != "" {
			code = oneLine(a.UCWACode) + "/" + oneLine(a.UCWASubcode)
		}
		latency := humanDuration(time.Duration(a.LatencyMS * float64(time.Millisecond)))
		// A coalesced send: the delivery whose message carried this one,
		// or how many others this one's message carried.
		carried := "-"
		switch {
		case a.CarriedBy != "":
			carried = "by " + tableCell(a.CarriedBy)
		case a.Carried > 0:
			carried = fmt.Sprintf("%d others", a.Carried)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, tableCell(a.Outcome), tableCell(a.Reason),
			tableCell(a.Pool), status, code, latency, localTime(a.StartedAt), carried, truncateRunes(tableCell(a.Error), 2*errorWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(log) == 0 {
		_, err := fmt.Fprintln(w, "(no attempts yet)")
		return err
	}
	return nil
}

// attemptSummary says how many tries there were and how they ended, e.g.
// "3 (retry 2, delivered 1)".
func attemptSummary(d *store.DeliveryDetail) string {
	s := strconv.Itoa(d.Attempts)
	if len(d.AttemptLog) == 0 {
		return s
	}
	var order []string
	count := map[string]int{}
	for _, a := range d.AttemptLog {
		o := dash(oneLine(a.Outcome))
		if count[o] == 0 {
			order = append(order, o)
		}
		count[o]++
	}
	parts := make([]string, len(order))
	for i, o := range order {
		parts[i] = fmt.Sprintf("%s %d", o, count[o])
	}
	return s + " (" + strings.Join(parts, ", ") + ")"
}

func deliveriesRedeliver(getenv func(string) string, stdout, stderr io.Writer) *action {
	fs := newFlagSet("deliveries redeliver", "relay deliveries redeliver ID [ID...] [--idempotency-key KEY] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	key := fs.String("idempotency-key", "", "send this Idempotency-Key, so that running the same command again "+
		"redelivers nothing more (default: a new random key each run)")
	return &action{fs: fs, runFunc: func(ctx context.Context, ids []string) error {
		return redeliver(ctx, ids, *key, &cf, getenv, stdout, stderr)
	}}
}

// redeliver asks the relay to redeliver each of ids. Every request carries
// an Idempotency-Key (key, or a random one for this run), so a request
// repeated after a lost answer does not send the message twice.
func redeliver(ctx context.Context, ids []string, key string, cf *clientFlags, getenv func(string) string, stdout, stderr io.Writer) error {
	if key == "" {
		key = "relay-cli-" + rand.Text()
	}
	if err := ingest.CheckIdempotencyKey(key); err != nil {
		return usageError{fmt.Errorf("--idempotency-key: %w", err)}
	}
	if len(ids) == 0 {
		return usageError{errors.New("want at least one operationId")}
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	failed := 0
	for _, id := range ids {
		body, err := c.sendHeader(ctx, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/redeliver",
			http.Header{"Idempotency-Key": {key}}, maxSmallBody)
		var se *statusError
		switch {
		case errors.As(err, &se) && se.perItem():
			// This delivery's own trouble: report it and go on with the rest.
			fmt.Fprintf(stderr, "%s: not redelivered: %v\n", id, err)
			failed++
			continue
		case err != nil:
			// The relay or the token: every other id would fail the same way.
			return err
		}
		if cf.json {
			if err := printJSON(stdout, body); err != nil {
				return err
			}
			continue
		}
		var r struct {
			PreviousState string `json:"previousState"`
		}
		_ = json.Unmarshal(body, &r)
		fmt.Fprintf(stdout, "%s: redelivered (was %s)\n", id, dash(oneLine(r.PreviousState)))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries not redelivered", failed, len(ids))
	}
	return nil
}
