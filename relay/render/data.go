package render

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/clean"
)

// Data is what a template sees as dot. Its first fields have the names and
// types of Alertmanager's template data, so templates written for
// Alertmanager read the same; the rest are relay's additions.
type Data struct {
	// Receiver is the Alertmanager receiver that sent the notification.
	Receiver string
	// Status is "firing" when at least one alert fires, else "resolved".
	Status string
	// Alerts are the alerts to show in this message. When RenderParts
	// splits a long notification, each part sees only its own alerts here;
	// AllAlerts keeps the whole group.
	Alerts alertmanager.Alerts
	// GroupLabels are the labels the alerts were grouped by.
	GroupLabels alertmanager.KV
	// CommonLabels are the labels every alert of the group carries.
	CommonLabels alertmanager.KV
	// CommonAnnotations are the annotations every alert of the group carries.
	CommonAnnotations alertmanager.KV
	// ExternalURL links back to the Alertmanager that sent the notification.
	ExternalURL string

	// GroupKey identifies the alert group within Alertmanager.
	GroupKey string
	// TruncatedAlerts counts the alerts Alertmanager left out of the
	// notification (its max_alerts setting).
	TruncatedAlerts int

	// AllAlerts are all alerts of the notification, equal to Alerts except
	// in the parts of a split message.
	AllAlerts alertmanager.Alerts
	// Route is the name of the relay route the notification came in on.
	Route string
	// Conversation is the name of the conversation the message goes to.
	Conversation string

	// raw is the Data this one is the cleaned view of (see cleaned), nil
	// for the Data as given.
	raw *Data
}

// NewData builds the template data of an Alertmanager notification received
// on route for conversation.
func NewData(m *alertmanager.Message, route, conversation string) Data {
	return Data{
		Receiver:          m.Receiver,
		Status:            m.Status,
		Alerts:            m.Alerts,
		GroupLabels:       m.GroupLabels,
		CommonLabels:      m.CommonLabels,
		CommonAnnotations: m.CommonAnnotations,
		ExternalURL:       m.ExternalURL,
		GroupKey:          m.GroupKey,
		TruncatedAlerts:   m.TruncatedAlerts,
		AllAlerts:         m.Alerts,
		Route:             route,
		Conversation:      conversation,
	}
}

// GroupAlert is one alert together with the group it belongs to, the dot of
// per-alert blocks such as "alertmanager.alert". Its fields are those of an
// Alertmanager alert, plus Group.
type GroupAlert struct {
	// Status is "firing" or "resolved".
	Status string
	// Labels identify the alert.
	Labels alertmanager.KV
	// Annotations describe it (summary, description, runbook_url, ...).
	Annotations alertmanager.KV
	// StartsAt is when the alert started firing.
	StartsAt time.Time
	// EndsAt is when it was resolved, or for a firing alert when
	// Alertmanager will consider it resolved unless it fires again.
	EndsAt time.Time
	// GeneratorURL links to what raised the alert (a Prometheus graph).
	GeneratorURL string
	// Fingerprint identifies the alert's label set.
	Fingerprint string
	// Group is the notification the alert is part of.
	Group *Data

	// Extra is ExtraLabels as "a=1, b=2", and Summary, Description,
	// Message and Runbook are Annotation of "summary", "description",
	// "message" and "runbook_url": computed once, so templates can read
	// them as fields (text/template's method calls are what rendering
	// spends most on).
	Extra                                  string
	Summary, Description, Message, Runbook string
	// Name is the alert's alertname when the group's alerts do not all
	// share one, else "".
	Name string

	// index is the alert's place in Group.Alerts, for Raw.
	index int
}

// GroupAlerts returns .Alerts, each paired with the group.
func (d *Data) GroupAlerts() []GroupAlert {
	out := make([]GroupAlert, len(d.Alerts))
	_, sharedName := d.CommonLabels["alertname"]
	for i := range d.Alerts {
		out[i] = d.groupAlert(i, sharedName)
	}
	return out
}

// groupAlert pairs alert i of .Alerts with the group; sharedName says
// whether the common labels hold an alertname.
func (d *Data) groupAlert(i int, sharedName bool) GroupAlert {
	a := d.Alerts[i]
	g := GroupAlert{
		Status:       a.Status,
		Labels:       a.Labels,
		Annotations:  a.Annotations,
		StartsAt:     a.StartsAt,
		EndsAt:       a.EndsAt,
		GeneratorURL: a.GeneratorURL,
		Fingerprint:  a.Fingerprint,
		Group:        d,
		index:        i,
	}
	g.Extra = g.ExtraLabels().String()
	g.Summary, g.Description = g.Annotation("summary"), g.Annotation("description")
	g.Message, g.Runbook = g.Annotation("message"), g.Annotation("runbook_url")
	if !sharedName {
		g.Name = a.Labels["alertname"]
	}
	return g
}

// ExtraLabels returns, sorted by name, the labels of the alert that are not
// common to the whole group, without "alertname": what tells this alert
// apart from its siblings.
func (a GroupAlert) ExtraLabels() alertmanager.Pairs {
	pairs := make(alertmanager.Pairs, 0, len(a.Labels))
	for _, p := range a.Labels.SortedPairs() {
		if p.Name == "alertname" {
			continue
		}
		if v, ok := a.Group.CommonLabels[p.Name]; ok && v == p.Value {
			continue
		}
		pairs = append(pairs, p)
	}
	return pairs
}

// Annotation returns the alert's annotation name unless the group shows it
// once for all alerts: when the group has several alerts and they all carry
// the same value, the group header shows it and Annotation returns "".
func (a GroupAlert) Annotation(name string) string {
	v := a.Annotations[name]
	if len(a.Group.AllAlerts) > 1 && a.Group.CommonAnnotations[name] == v {
		return ""
	}
	return v
}

// AlertsURL links to the group's alerts in the Alertmanager UI, or is empty
// when the notification's ExternalURL is not an http or https URL.
func (d *Data) AlertsURL() string {
	base := strings.TrimSuffix(d.ExternalURL, "/")
	if !clean.IsHTTP(base) {
		return ""
	}
	u := base + "/#/alerts?receiver=" + url.QueryEscape(d.Receiver)
	if len(d.GroupLabels) > 0 {
		u += "&filter=" + url.QueryEscape(matchers(d.GroupLabels))
	}
	return u
}

// SilenceURL links to a new silence in the Alertmanager UI, prefilled with
// matchers for the group's common labels, or is empty when the
// notification's ExternalURL is not an http or https URL.
func (d *Data) SilenceURL() string {
	base := strings.TrimSuffix(d.ExternalURL, "/")
	if !clean.IsHTTP(base) {
		return ""
	}
	return base + "/#/silences/new?filter=" + url.QueryEscape(matchers(d.CommonLabels))
}

// matchers writes kv as an Alertmanager matcher list: {a="1", b="2"}.
func matchers(kv alertmanager.KV) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range kv.SortedPairs() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(p.Value))
	}
	b.WriteByte('}')
	return b.String()
}
