package ui

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/store"
)

// listFilter is the deliveries page's filters, as in its URL, so that a
// link shows the same list.
type listFilter struct {
	Route, Conversation, State, Since, Until, Q, Cursor string
}

// timeLayout is how the filters' times read in the URL and the form
// (an <input type="datetime-local">, in UTC).
const timeLayout = "2006-01-02T15:04"

// listData is the deliveries page's data.
type listData struct {
	F             listFilter
	Routes        []string
	Conversations []string
	States        []relay.State
	Rows          []listRow
	// Next is the URL of the next (older) page, "" on the last.
	Next string
	// First: the page continues an earlier one (a cursor was given).
	First string
	// Problem says what is wrong with a filter.
	Problem string
	// Key is the Idempotency-Key the bulk form sends.
	Key string
	// Flash reports a bulk redelivery.
	Flash []string
}

type listRow struct {
	D       store.Delivery
	Summary string
	Latency string
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, id *identity) {
	q := r.URL.Query()
	f := listFilter{Route: q.Get("route"), Conversation: q.Get("conversation"), State: q.Get("state"),
		Since: q.Get("since"), Until: q.Get("until"), Q: strings.TrimSpace(q.Get("q")), Cursor: q.Get("cursor")}
	d := c.listPage(r, f)
	status := http.StatusOK
	if d.Problem != "" {
		status = http.StatusBadRequest
	} else {
		list, next, err := c.db.ListDeliveries(r.Context(), c.storeFilter(f))
		if errors.Is(err, relay.ErrInvalid) {
			d.Problem, status = err.Error(), http.StatusBadRequest
		} else if err != nil {
			c.failErr(w, r, id, err)
			return
		}
		for _, dl := range list {
			d.Rows = append(d.Rows, listRow{D: dl, Summary: summary(dl.Text), Latency: latency(dl)})
		}
		if next != "" {
			nf := f
			nf.Cursor = next
			d.Next = nf.URL()
		}
		if f.Cursor != "" {
			ff := f
			ff.Cursor = ""
			d.First = ff.URL()
		}
	}
	c.render(w, r, status, "deliveries", page{Title: "Deliveries", Nav: "deliveries", User: id.user, CSRF: id.csrf, Bearer: id.bearer, Data: d})
}

// listPage checks f and fills what the page's form offers.
func (c *Console) listPage(r *http.Request, f listFilter) listData {
	cfg := c.ingest()
	d := listData{F: f, States: relay.States, Key: "console-" + rand.Text()}
	for name := range cfg.Routes {
		d.Routes = append(d.Routes, name)
	}
	for name := range cfg.Conversations {
		d.Conversations = append(d.Conversations, name)
	}
	sort.Strings(d.Routes)
	sort.Strings(d.Conversations)
	var problems []string
	if f.State != "" && !slices.Contains(relay.States, relay.State(f.State)) {
		problems = append(problems, fmt.Sprintf("state %q is not one of the states", clean.Line(truncate(f.State, 40))))
	}
	for _, t := range []struct{ name, v string }{{"from", f.Since}, {"until", f.Until}} {
		if _, err := parseTime(t.v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a time like 2026-11-27T13:00", t.name, clean.Line(truncate(t.v, 40))))
		}
	}
	if len(f.Q) > 200 {
		problems = append(problems, "the search is longer than 200 characters")
	}
	d.Flash = r.URL.Query()["done"]
	if len(d.Flash) > 50 {
		d.Flash = d.Flash[:50]
	}
	d.Problem = strings.Join(problems, "; ")
	return d
}

func (c *Console) storeFilter(f listFilter) store.ListFilter {
	sf := store.ListFilter{Route: f.Route, Conversation: f.Conversation, State: relay.State(f.State), Search: f.Q, Cursor: f.Cursor}
	sf.Since, _ = parseTime(f.Since)
	sf.Until, _ = parseTime(f.Until)
	return sf
}

// parseTime reads a filter time (UTC); "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(timeLayout, s)
}

// url is the deliveries page with f.
func (f listFilter) URL() string {
	v := url.Values{}
	for _, p := range []struct{ k, v string }{{"route", f.Route}, {"conversation", f.Conversation}, {"state", f.State},
		{"since", f.Since}, {"until", f.Until}, {"q", f.Q}, {"cursor", f.Cursor}} {
		if p.v != "" {
			v.Set(p.k, p.v)
		}
	}
	if len(v) == 0 {
		return "/ui/deliveries"
	}
	return "/ui/deliveries?" + v.Encode()
}

// summary is a text's first line, where the shipped templates put the
// headline.
func summary(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	return first
}

// latency is how long a delivery took from queued to confirmed, "" when
// it was not confirmed.
func latency(d store.Delivery) string {
	if d.DeliveredAt == nil {
		return ""
	}
	return duration(d.DeliveredAt.Sub(d.CreatedAt))
}

// bulkRedeliver redelivers the dead deliveries ticked on the list, each
// with the form's Idempotency-Key, and goes back to the list saying what
// happened to each.
func (c *Console) bulkRedeliver(w http.ResponseWriter, r *http.Request, id *identity) {
	ids := r.PostForm["id"]
	key := r.PostFormValue("key")
	if len(ids) == 0 || len(ids) > 500 || key == "" {
		c.fail(w, r, id, http.StatusBadRequest, "Tick one or more dead deliveries (at most 500) to redeliver them.")
		return
	}
	back := safeNext(r.PostFormValue("back"))
	if back == "" || !strings.HasPrefix(back, "/ui/deliveries") {
		back = "/ui/deliveries"
	}
	if r.PostFormValue("confirmed") != "yes" {
		c.render(w, r, http.StatusOK, "bulkconfirm", page{Title: "Redeliver deliveries", Nav: "deliveries", User: id.user, CSRF: id.csrf,
			Bearer: id.bearer, Data: bulkData{IDs: ids, Key: key, Back: back}})
		return
	}
	var done []string
	for _, op := range ids {
		res, err := c.redeliverOne(r, id, op, key)
		switch {
		case err == nil && res.Replayed:
			done = append(done, fmt.Sprintf("%s: already %s", op, res))
		case err == nil:
			done = append(done, op+": queued again")
		case errors.Is(err, relay.ErrConflict) || errors.Is(err, relay.ErrNotFound):
			done = append(done, fmt.Sprintf("%s: not redelivered: %v", op, err))
		default:
			c.failErr(w, r, id, err)
			return
		}
	}
	u, _ := url.Parse(back)
	q := u.Query()
	q["done"] = done
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// bulkData is the bulk redelivery's confirmation page.
type bulkData struct {
	IDs       []string
	Key, Back string
}

// redeliverOne redelivers one delivery for id, recording who asked.
func (c *Console) redeliverOne(r *http.Request, id *identity, op, key string) (store.Redelivery, error) {
	if len(op) > 50 {
		return store.Redelivery{}, fmt.Errorf("delivery %q: %w", truncate(op, 50), relay.ErrNotFound)
	}
	res, err := c.db.Redeliver(r.Context(), op, store.RedeliverRequest{By: id.user, Via: store.ViaConsole, Key: key,
		Window: c.ingest().RedeliverWindow, Now: c.now().UTC().Truncate(time.Microsecond)})
	if err == nil && !res.Replayed {
		c.logger.InfoContext(r.Context(), "delivery redelivered", slog.String("operation_id", op),
			slog.String("previous_state", string(res.PreviousState)), slog.String("by", id.user), slog.String("via", store.ViaConsole))
	}
	return res, err
}
