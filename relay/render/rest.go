package render

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay/alertmanager"
)

// Limits of the text RenderRest writes, so that one long label value
// cannot crowd out every other alert.
const (
	restNameBytes  = 100 // the alert name shared by all alerts, in the header
	restEntryBytes = 160 // one alert's entry
)

// RenderRest returns the one message that stands for the alerts of d when
// a route's per_alert or split_status would send more messages for a
// notification than its cap allows (ingest.max_messages_per_notification):
// the messages before it are sent as usual, and this one says how many
// alerts are left and names as many as fit in MaxBytes, each by its
// alertname and the labels that tell it apart from the others:
//
//	and 980 more HighCPU alerts (900 firing, 80 resolved), not sent one by one:
//	instance=db-21:9100; instance=db-22:9100; ...; and 700 more
//	http://alertmanager:9093/#/alerts?receiver=relay&filter=...
//
// It is plain text built here, not a template, so that a template cannot
// turn it back into a thousand lines; what the sender wrote is cleaned as
// for every template.
func (e *Engine) RenderRest(d Data) string {
	v := d.cleaned()
	firing := len(v.Alerts.Firing())
	resolved := len(v.Alerts) - firing
	var counts []string
	if firing > 0 {
		counts = append(counts, fmt.Sprintf("%d firing", firing))
	}
	if resolved > 0 {
		counts = append(counts, fmt.Sprintf("%d resolved", resolved))
	}
	name := ""
	if n := v.CommonLabels["alertname"]; n != "" {
		name = cutBytes(n, restNameBytes) + " "
	}
	noun := "alerts"
	if len(v.Alerts) == 1 {
		noun = "alert"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "and %d more %s%s (%s), not sent one by one:", len(v.Alerts), name, noun, strings.Join(counts, ", "))
	link := v.AlertsURL()
	if link != "" {
		link = "\n" + link
	}
	if b.Len()+len(link) > e.maxBytes {
		link = ""
	}
	// Room for "; and NNNN more" at the end.
	budget := e.maxBytes - len(link) - len("; and 1000 more")
	listed := 0
	for i, a := range v.GroupAlerts() {
		entry := strings.TrimSpace(a.Name + " " + a.Extra)
		if entry == "" { // labels all common: alerts alike but for their start
			entry = a.Labels.Remove([]string{"alertname"}).SortedPairs().String()
		}
		if firing > 0 && resolved > 0 && a.Status == alertmanager.StatusResolved {
			entry += " (resolved)"
		}
		entry = cutBytes(entry, restEntryBytes)
		sep := "; "
		if i == 0 {
			sep = " "
		}
		if room := budget - b.Len() - len(sep); len(entry) > room {
			if listed > 0 || room < 16 {
				break
			}
			entry = cutBytes(entry, room) // the first at least, if only in part
		}
		b.WriteString(sep)
		b.WriteString(entry)
		listed++
	}
	if more := len(v.Alerts) - listed; more > 0 {
		if listed > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " and %d more", more)
	}
	b.WriteString(link)
	return cutBytes(b.String(), e.maxBytes)
}

// cutBytes returns s cut to at most n bytes on a character boundary, with
// "…" in place of what was cut.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
