package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/match"
	"github.com/skype-relay/relay/relay/render"
	"github.com/skype-relay/relay/relay/source"
	"github.com/skype-relay/relay/relay/source/generic"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
	"github.com/skype-relay/relay/relay/store"
)

// Route formats.
const (
	FormatAlertmanager = "alertmanager"
	FormatGitHub       = "github"
	FormatGitLab       = "gitlab"
	FormatGeneric      = "generic"
)

// Prepared is a webhook request turned into what to store, or into an
// answer that stores nothing.
type Prepared struct {
	// Notification is what to store; nil when nothing is (Ping, Ignored).
	Notification *store.NewNotification
	// Ping: the sender checks connectivity; answer 200, store nothing.
	Ping bool
	// Ignored says why a valid request leads to no message (an event type
	// relay does not render, no conversation matched); answer 202 so the
	// sender does not retry.
	Ignored string
	// Kind names the event for metrics and logs.
	Kind string
	// Fingerprints, when set, says that the sender's alert fingerprints
	// disagree with their labels (Alertmanager notifications only).
	Fingerprints *FingerprintMismatch
	// Summarized counts the alerts that the cap on messages per
	// notification put into one summary message instead of their own (the
	// most of any conversation); 0 when nothing was capped.
	Summarized int
}

// Prepare checks, decodes, routes and renders one webhook body for route:
// everything ingest does short of storing. `relay render` uses it too, so
// what it prints is exactly what would be sent. Errors are *apiError with
// the status the sender gets.
func (cfg *Config) Prepare(route *Route, h http.Header, body []byte) (*Prepared, error) {
	if route.Format == FormatAlertmanager || route.Format == "" {
		return cfg.prepareAlertmanager(route, body)
	}
	return cfg.prepareEvent(route, h, body)
}

func (cfg *Config) prepareAlertmanager(route *Route, body []byte) (*Prepared, error) {
	msg, err := alertmanager.Decode(body)
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "%v", err)
	}
	n := &store.NewNotification{Route: route.Name, Format: FormatAlertmanager, DedupKey: msg.DedupKey(route.Name),
		Payload: body, Window: cfg.DedupWindow}
	groups := match.Split(msg, route.Rules, route.Defaults)
	// Rendering once per distinct group of alerts serves every conversation
	// that gets the same alerts, unless the template looks at .Conversation.
	shared := map[string][]string{}
	capped := 0
	groupStatus, receiver := auditValue(msg.Status), auditValue(msg.Receiver)
	for _, conv := range route.conversationOrder(groups) {
		subs, rest := capMessages(groups[conv], splitMessage(groups[conv], route.SplitStatus, route.PerAlert), cfg.maxMessages())
		if rest != nil {
			capped = max(capped, len(rest.Alerts))
		}
		for _, sub := range subs {
			key := alertsKey(sub)
			if sub == rest {
				key = "rest" + key
			}
			texts, ok := shared[key]
			switch {
			case ok && (route.SharedText || sub == rest):
			case sub == rest:
				texts = []string{cfg.Engine.RenderRest(render.NewData(sub, route.Name, conv))}
				shared[key] = texts
			default:
				texts, err = cfg.Engine.RenderParts(route.Template, render.NewData(sub, route.Name, conv))
				if err != nil {
					return nil, renderError(route, err)
				}
				if len(texts) == 0 {
					return nil, newAPIError(http.StatusUnprocessableEntity,
						"template %q rendered no text for conversation %q", route.Template, conv)
				}
				shared[key] = texts
			}
			status := supersessionStatus(msg, sub)
			name := auditValue(alertName(msg, sub))
			for _, target := range route.Conversations[conv] {
				for i, text := range texts {
					n.Messages = append(n.Messages, store.NewMessage{
						Conversation: conv, Target: target, GroupKey: msg.GroupKey, Status: status,
						Part: i + 1, Parts: len(texts), Text: text,
						AlertName: name, GroupStatus: groupStatus, Receiver: receiver,
					})
				}
			}
		}
	}
	fm := fingerprintMismatch(msg)
	if len(n.Messages) == 0 {
		return &Prepared{Ignored: "no rule or default conversation matched any alert", Kind: "alertmanager", Fingerprints: fm}, nil
	}
	return &Prepared{Notification: n, Kind: "alertmanager", Fingerprints: fm, Summarized: capped}, nil
}

// DefaultMaxMessages is how many messages per_alert or split_status may
// make of one notification for one conversation when the configuration
// does not say (ingest.max_messages_per_notification).
const DefaultMaxMessages = 20

func (cfg *Config) maxMessages() int {
	if cfg.MaxMessages < 2 {
		return DefaultMaxMessages
	}
	return cfg.MaxMessages
}

// capMessages keeps at most limit of the messages subs that group was
// split into: beyond it, the first limit-1 stay and the last stands for
// all the others, returned as rest too (nil when nothing was cut). One
// notification of a thousand alerts on a per_alert route would otherwise
// be a thousand messages to each recipient. The payload is stored whole
// all the same.
func capMessages(group *alertmanager.Message, subs []*alertmanager.Message, limit int) (kept []*alertmanager.Message, rest *alertmanager.Message) {
	if len(subs) <= limit {
		return subs, nil
	}
	var alerts alertmanager.Alerts
	for _, s := range subs[limit-1:] {
		alerts = append(alerts, s.Alerts...)
	}
	rest = group.Subset(alerts)
	return append(subs[:limit-1:limit-1], rest), rest
}

func (cfg *Config) prepareEvent(route *Route, h http.Header, body []byte) (*Prepared, error) {
	var ev *source.Event
	var err error
	var event string
	switch route.Format {
	case FormatGitHub:
		event = h.Get(github.HeaderEvent)
		ev, err = github.Decode(h, body, route.Secret)
	case FormatGitLab:
		event = h.Get(gitlab.HeaderEvent)
		ev, err = gitlab.Decode(h, body, route.Secret)
	case FormatGeneric:
		ev, err = generic.Decode(h, body)
	default:
		return nil, newAPIError(http.StatusInternalServerError, "route %q has unknown format %q", route.Name, route.Format)
	}
	if err != nil {
		if errors.Is(err, source.ErrUnauthorized) {
			return nil, &apiError{status: http.StatusUnauthorized, msg: err.Error()}
		}
		return nil, newAPIError(source.HTTPStatus(err), "%v", err)
	}
	if ev.Ping {
		return &Prepared{Ping: true, Kind: ev.Kind}, nil
	}
	if ev.Ignored {
		return &Prepared{Ignored: ev.IgnoreReason, Kind: ev.Kind}, nil
	}
	ev.SetRoute(route.Name)
	convs := match.Route(route.Rules, route.Defaults, ev.Labels)
	if len(convs) == 0 {
		return &Prepared{Ignored: "no rule or default conversation matched the event", Kind: ev.Kind}, nil
	}
	texts, err := cfg.Engine.RenderValueParts(route.Template, ev.Data)
	if err != nil {
		return nil, renderError(route, err)
	}
	if len(texts) == 0 {
		return nil, newAPIError(http.StatusUnprocessableEntity, "template %q rendered no text", route.Template)
	}
	keyed := route.Name + "\x00" + route.Format + "\x00" + ev.IdempotencyKey
	if route.Format == FormatGeneric {
		// A sender reusing an Idempotency-Key for other content gets a new
		// delivery, not a silent duplicate of the first.
		body := sha256.Sum256(body)
		keyed += "\x00" + hex.EncodeToString(body[:])
	}
	sum := sha256.Sum256([]byte(keyed))
	n := &store.NewNotification{Route: route.Name, Format: route.Format, Event: event,
		DedupKey: hex.EncodeToString(sum[:]), Payload: body, Window: cfg.DedupWindow}
	name, status, kind := eventAudit(route.Format, ev.Labels)
	for _, conv := range convs {
		for _, target := range route.Conversations[conv] {
			for i, text := range texts {
				n.Messages = append(n.Messages, store.NewMessage{
					Conversation: conv, Target: target, Part: i + 1, Parts: len(texts), Text: text,
					AlertName: name, GroupStatus: status, Receiver: kind,
				})
			}
		}
	}
	return &Prepared{Notification: n, Kind: ev.Kind}, nil
}

// supersessionStatus is the status a message is queued with for
// supersession: "firing" for firing alerts, "resolved" only when the whole
// group resolved (Alertmanager's group status), and "" for resolved alerts
// of a group that still fires (split_status, per_alert): those must not
// replace the group's queued firing messages, whose other alerts still fire.
func supersessionStatus(group, sub *alertmanager.Message) string {
	switch {
	case sub.Status == alertmanager.StatusFiring:
		return alertmanager.StatusFiring
	case group.Status == alertmanager.StatusResolved:
		return alertmanager.StatusResolved
	default:
		return ""
	}
}

func renderError(route *Route, err error) error {
	if errors.Is(err, relay.ErrInvalid) {
		return newAPIError(http.StatusUnprocessableEntity, "render template %q: %v", route.Template, err)
	}
	return err // a configuration mistake (unknown template): ours, 500
}

// conversationOrder lists the conversations that got alerts: the defaults
// first, then the rules' in the order they are configured.
func (r *Route) conversationOrder(groups map[string]*alertmanager.Message) []string {
	var order []string
	add := func(names []string) {
		for _, n := range names {
			if _, ok := groups[n]; ok && !slices.Contains(order, n) {
				order = append(order, n)
			}
		}
	}
	add(r.Defaults)
	for _, rule := range r.Rules {
		add(rule.Conversations)
	}
	return order
}

// splitMessage applies the route's split_status and per_alert settings.
// Firing alerts come before resolved ones.
func splitMessage(m *alertmanager.Message, byStatus, perAlert bool) []*alertmanager.Message {
	var out []*alertmanager.Message
	sub := m.Subset
	switch {
	case perAlert:
		for _, a := range m.Alerts.Firing() {
			out = append(out, sub(alertmanager.Alerts{a}))
		}
		for _, a := range m.Alerts.Resolved() {
			out = append(out, sub(alertmanager.Alerts{a}))
		}
	case byStatus:
		for _, as := range []alertmanager.Alerts{m.Alerts.Firing(), m.Alerts.Resolved()} {
			if len(as) > 0 {
				out = append(out, sub(as))
			}
		}
	default:
		out = append(out, m)
	}
	return out
}

// alertsKey identifies a set of alerts, to render each set once.
func alertsKey(m *alertmanager.Message) string {
	var b strings.Builder
	b.WriteString(m.Status)
	for _, a := range m.Alerts {
		b.WriteString("|")
		b.WriteString(a.Fingerprint) // computed from the labels by Decode
		b.WriteString(a.Status)
		b.WriteString(a.StartsAt.Format(time.RFC3339Nano))
	}
	return b.String()
}

// maxAuditValue caps what the audit columns keep of a sender's value: they
// are indexed, and an index entry has a size limit.
const maxAuditValue = 200

// auditValue is v cleaned as a one-line value (it is shown in tables and
// terminals) and cut to maxAuditValue bytes, on a character boundary.
func auditValue(v string) string {
	v = clean.Line(v)
	if len(v) <= maxAuditValue {
		return v
	}
	cut := maxAuditValue
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut]
}

// alertName is the alert name the audit shows for sub, a message of group
// msg: the name its alerts share, else the group's, else its first alert's.
func alertName(msg, sub *alertmanager.Message) string {
	if v := sub.CommonLabels["alertname"]; v != "" {
		return v
	}
	if v := msg.GroupLabels["alertname"]; v != "" {
		return v
	}
	if len(sub.Alerts) > 0 {
		return sub.Alerts[0].Labels["alertname"]
	}
	return ""
}

// eventAudit is what the audit shows of a CI or generic event in place of
// an alert's name, group status and receiver: the pipeline (repository and
// workflow, project and job), its outcome, and the event kind. A generic
// payload's top-level alertname (or title, or name), status and receiver
// are taken when it has them.
func eventAudit(format string, l map[string]string) (name, status, kind string) {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := l[k]; v != "" {
				return v
			}
		}
		return ""
	}
	switch format {
	case FormatGitHub:
		name = strings.TrimSpace(l["repository"] + " " + l["name"])
		status, kind = first("conclusion", "status"), l["event"]
	case FormatGitLab:
		name = strings.TrimSpace(l["project"] + " " + first("job", "event"))
		status, kind = l["status"], l["event"]
	default:
		name, status, kind = first("alertname", "title", "name"), l["status"], l["receiver"]
	}
	return auditValue(name), auditValue(status), auditValue(kind)
}
