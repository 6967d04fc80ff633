package render

import (
	"slices"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/clean"
)

// Every template, shipped or not, and the native rendering see the data
// of a notification cleaned (relay/clean): cleaned returns that view, and
// Raw on the view returns what the sender sent. Cleaning happens per
// render, on the alerts that render shows, so a split message's parts and
// the raw view agree on which alerts are "this part's". Strings that need
// nothing (nearly all) are shared, not copied.

// cleaned returns d with every string from the sender cleaned: label names
// and values, the receiver, the group key, fingerprints and statuses as
// one line (clean.Line), annotation values as text (clean.Text) unless
// their name says they are links (clean.URLName), and the external and
// generator URLs as links (clean.URL). Route and Conversation come from
// the configuration and are kept.
func (d *Data) cleaned() *Data {
	if d.raw != nil {
		return d // already a view
	}
	v := *d
	v.raw = d
	v.Receiver = clean.Line(d.Receiver)
	v.Status = clean.Line(d.Status)
	v.GroupKey = clean.Line(d.GroupKey)
	v.ExternalURL = clean.URL(d.ExternalURL)
	v.GroupLabels, _ = cleanKV(d.GroupLabels, false)
	v.CommonLabels, _ = cleanKV(d.CommonLabels, false)
	v.CommonAnnotations, _ = cleanKV(d.CommonAnnotations, true)
	v.Alerts = cleanAlerts(d.Alerts)
	if sameAlerts(d.AllAlerts, d.Alerts) {
		v.AllAlerts = v.Alerts
	} else {
		v.AllAlerts = cleanAlerts(d.AllAlerts)
	}
	return &v
}

// part returns d showing only alerts [i, j) and truncated as
// TruncatedAlerts; when d is a cleaned view, its raw Data is cut alike, so
// raw shows a part's own alerts. (cleanAlerts keeps the alerts' order, so
// index i is the same alert in both.)
func (d *Data) part(i, j, truncated int) *Data {
	v := *d
	v.Alerts, v.TruncatedAlerts = d.Alerts[i:j:j], truncated
	if d.raw != nil {
		v.raw = d.raw.part(i, j, truncated)
	}
	return &v
}

// Raw returns the notification as the sender sent it. Templates see a
// cleaned copy of the Data they are given; on that copy Raw returns the
// original, on any other Data the Data itself. The template function raw
// calls it.
func (d *Data) Raw() any {
	if d.raw != nil {
		return d.raw
	}
	return d
}

// Raw returns the alert as the sender sent it, in the raw group (see
// Data.Raw): what {{ raw . }} gives in "alertmanager.alert".
func (a GroupAlert) Raw() any {
	r := a.Group.raw
	if r == nil || a.index >= len(r.Alerts) {
		return a
	}
	_, shared := r.CommonLabels["alertname"]
	return r.groupAlert(a.index, shared)
}

// sameAlerts reports whether a and b are the same slice of alerts, as
// Alerts and AllAlerts are outside split messages.
func sameAlerts(a, b alertmanager.Alerts) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// cleanAlerts returns as with every alert cleaned, as itself when no
// alert needed it.
func cleanAlerts(as alertmanager.Alerts) alertmanager.Alerts {
	var out alertmanager.Alerts
	for i, a := range as {
		c, changed := cleanAlert(a)
		if changed && out == nil {
			out = slices.Clone(as)
		}
		if out != nil {
			out[i] = c
		}
	}
	if out == nil {
		return as
	}
	return out
}

func cleanAlert(a alertmanager.Alert) (alertmanager.Alert, bool) {
	c := a
	c.Status = clean.Line(a.Status)
	c.Fingerprint = clean.Line(a.Fingerprint)
	c.GeneratorURL = clean.URL(a.GeneratorURL)
	var labels, annotations bool
	c.Labels, labels = cleanKV(a.Labels, false)
	c.Annotations, annotations = cleanKV(a.Annotations, true)
	changed := labels || annotations ||
		c.Status != a.Status || c.Fingerprint != a.Fingerprint || c.GeneratorURL != a.GeneratorURL
	return c, changed
}

// cleanKV cleans names as one line and values as one line (labels) or,
// for annotations, as text or links. It returns kv itself and false when
// nothing changes, else a new map and true. Should two names clean to the
// same one, the name the sender wrote that way wins, else the first in
// sorted order, so the result does not depend on map order.
func cleanKV(kv alertmanager.KV, annotations bool) (alertmanager.KV, bool) {
	value := func(k, v string) string {
		switch {
		case !annotations:
			return clean.Line(v)
		case clean.URLName(k):
			return clean.URL(v)
		default:
			return clean.Text(v)
		}
	}
	dirty := false
	for k, v := range kv {
		if clean.Line(k) != k || value(k, v) != v {
			dirty = true
			break
		}
	}
	if !dirty {
		return kv, false
	}
	out := make(alertmanager.KV, len(kv))
	var renamed []string
	for k, v := range kv {
		if clean.Line(k) != k {
			renamed = append(renamed, k)
			continue
		}
		out[k] = value(k, v)
	}
	slices.Sort(renamed)
	for _, k := range renamed {
		if c := clean.Line(k); !hasKey(out, c) {
			out[c] = value(k, kv[k])
		}
	}
	return out, true
}

func hasKey(kv alertmanager.KV, k string) bool {
	_, ok := kv[k]
	return ok
}
