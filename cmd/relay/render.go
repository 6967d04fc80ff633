package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
	"github.com/skype-relay/relay/relay/store"
)

// headerFlags collects repeated --header 'Name: value' flags.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want 'Name: value', got %q", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

// renderCmd prints exactly what a webhook to a route would send: the same
// decode, routing and templates as the server, without storing anything.
func renderCmd(args []string, stdout, stderr io.Writer) error {
	var routeName, payload, deliveryID string
	var secrets bool
	headers := headerFlags{}
	pos, path, err := flags("render", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&routeName, "route", "", "route to render for (default: the stored delivery's route)")
		fs.StringVar(&payload, "payload", "", "webhook body to render, a file or - for stdin (default: built-in samples)")
		fs.StringVar(&deliveryID, "delivery", "", "render a stored delivery's payload again (needs DATABASE_URL)")
		fs.Var(headers, "header", "request header 'Name: value' (repeatable), e.g. 'X-GitHub-Event: workflow_run'")
		fs.BoolVar(&secrets, "secrets", false, "also read the secret files (tokens, password) and check them")
	})
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if payload != "" && deliveryID != "" {
		return usageError{errors.New("give --payload or --delivery, not both")}
	}
	cfg, err := loadConfigWith(path, secrets)
	if err != nil {
		return err
	}
	// The secrets are needed by nothing render does: a route's signing
	// secret, when not read, is a stand-in that signs the samples alike.
	printUnread(stderr, cfg)
	engine, err := app.NewEngine(cfg)
	if err != nil {
		return err
	}
	for _, w := range app.Warnings(cfg, engine) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	icfg := app.IngestConfig(cfg, engine)

	type request struct {
		name   string
		header http.Header
		body   []byte
	}
	var reqs []request
	switch {
	case deliveryID != "":
		d, err := storedDelivery(cfg.DatabaseURL(), deliveryID)
		if err != nil {
			return err
		}
		if routeName == "" {
			routeName = d.Route
		}
		h := http.Header(headers).Clone()
		if d.Event != "" && h.Get(github.HeaderEvent) == "" && h.Get(gitlab.HeaderEvent) == "" {
			h.Set(github.HeaderEvent, d.Event)
			h.Set(gitlab.HeaderEvent, d.Event)
		}
		reqs = append(reqs, request{"delivery " + deliveryID, h, d.Payload})
	case payload != "":
		body, err := readPayload(payload)
		if err != nil {
			return err
		}
		reqs = append(reqs, request{payload, http.Header(headers), body})
	}
	if routeName == "" {
		return usageError{errors.New("--route is required")}
	}
	route, ok := icfg.Routes[routeName]
	if !ok {
		return fmt.Errorf("no route named %q in the configuration", routeName)
	}
	if len(reqs) == 0 {
		for _, s := range app.SampleRequests(route) {
			reqs = append(reqs, request{"sample " + s.Name, s.Header, s.Body})
		}
	}
	var errs []error
	for _, r := range reqs {
		// Sign as the route's sender would, so the route's own check passes.
		h := r.header.Clone()
		if h == nil {
			h = http.Header{}
		}
		app.Sign(route, h, r.body)
		fmt.Fprintf(stdout, "=== %s → route %s (%s)\n", r.name, route.Name, route.Format)
		prep, err := icfg.Prepare(route, h, r.body)
		if err != nil {
			fmt.Fprintf(stdout, "error: %v\n\n", err)
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			continue
		}
		if fm := prep.Fingerprints; fm != nil {
			fmt.Fprintf(stdout, "note: %d alert(s) carry a fingerprint that does not match their labels "+
				"(alerts[%d]: sent %q, computed %s); relay uses the computed one and counts the mismatch\n",
				fm.Alerts, fm.Index, fm.Sent, fm.Computed)
		}
		switch {
		case prep.Ping:
			fmt.Fprintln(stdout, "ping: answered 200, nothing is sent")
		case prep.Notification == nil:
			fmt.Fprintf(stdout, "ignored: %s (answered 202, nothing is sent)\n", prep.Ignored)
		default:
			for _, m := range prep.Notification.Messages {
				fmt.Fprintf(stdout, "--- to %s (conversation %s, part %d/%d, %d bytes)\n%s\n",
					m.Target.To, m.Conversation, m.Part, m.Parts, len(m.Text), m.Text)
			}
		}
		fmt.Fprintln(stdout)
	}
	return errors.Join(errs...)
}

func readPayload(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	return b, nil
}

func storedDelivery(url, id string) (*store.DeliveryDetail, error) {
	if url == "" {
		return nil, usageError{errors.New("--delivery needs the database: set DATABASE_URL")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.GetDelivery(ctx, id)
}
