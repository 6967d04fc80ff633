// Package alertmanager decodes and checks the JSON that Prometheus
// Alertmanager's webhook receiver posts (payload version "4"), and derives
// the key under which Alertmanager itself would consider two notifications
// the same.
//
// Field names follow Alertmanager's notify/webhook.Message and
// template.Data, so templates written for Alertmanager read the same data.
package alertmanager

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/skype-relay/relay/relay/source"
)

// Version is the only webhook payload version relay accepts.
const Version = "4"

// Status values of a group or an alert.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// KV is a set of labels or annotations.
type KV map[string]string

// Names returns the sorted keys.
func (kv KV) Names() []string {
	names := make([]string, 0, len(kv))
	for k := range kv {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Values returns the values ordered by their sorted keys.
func (kv KV) Values() []string {
	names := kv.Names()
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = kv[n]
	}
	return vals
}

// Pair is one label or annotation.
type Pair struct{ Name, Value string }

// Pairs is a list of label or annotation pairs.
type Pairs []Pair

// Names returns the names in order.
func (ps Pairs) Names() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// Values returns the values in order.
func (ps Pairs) Values() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Value
	}
	return out
}

// String renders the pairs as "a=1, b=2".
func (ps Pairs) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + "=" + p.Value
	}
	return strings.Join(parts, ", ")
}

// SortedPairs returns the pairs sorted by name, with "alertname" first as
// Alertmanager does.
func (kv KV) SortedPairs() Pairs {
	names := kv.Names()
	pairs := make(Pairs, 0, len(names))
	if v, ok := kv["alertname"]; ok {
		pairs = append(pairs, Pair{"alertname", v})
	}
	for _, n := range names {
		if n == "alertname" {
			continue
		}
		pairs = append(pairs, Pair{n, kv[n]})
	}
	return pairs
}

// Fingerprint returns the fingerprint Alertmanager gives an alert with
// these labels, as it writes it in a webhook: 16 lowercase hex digits of
// model.LabelSet.Fingerprint. (model.LabelsToSignature is the same hash
// without copying the map into a LabelSet.)
func (kv KV) Fingerprint() string {
	return model.Fingerprint(model.LabelsToSignature(kv)).String()
}

// Remove returns a copy without the given keys.
func (kv KV) Remove(keys []string) KV {
	out := make(KV, len(kv))
	for k, v := range kv {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	// Fingerprint is computed from Labels by Decode, as Alertmanager
	// computes it; the sender's value is in SentFingerprint and is never
	// used for anything but noticing that it disagrees.
	Fingerprint string `json:"fingerprint"`
	// SentFingerprint is the fingerprint the sender wrote ("" when it
	// wrote none).
	SentFingerprint string `json:"-"`
}

// FingerprintMismatch reports whether the sender wrote a fingerprint that
// is not the one computed from the alert's labels.
func (a Alert) FingerprintMismatch() bool {
	return a.SentFingerprint != "" && a.SentFingerprint != a.Fingerprint
}

// Alerts is a list of alerts.
type Alerts []Alert

// Firing returns the firing alerts.
func (as Alerts) Firing() Alerts { return as.withStatus(StatusFiring) }

// Resolved returns the resolved alerts.
func (as Alerts) Resolved() Alerts { return as.withStatus(StatusResolved) }

func (as Alerts) withStatus(s string) Alerts {
	out := Alerts{}
	for _, a := range as {
		if a.Status == s {
			out = append(out, a)
		}
	}
	return out
}

// Message is a webhook notification: Alertmanager's template data plus the
// webhook envelope.
type Message struct {
	Version           string `json:"version"`
	GroupKey          string `json:"groupKey"`
	TruncatedAlerts   int    `json:"truncatedAlerts"`
	Receiver          string `json:"receiver"`
	Status            string `json:"status"`
	Alerts            Alerts `json:"alerts"`
	GroupLabels       KV     `json:"groupLabels"`
	CommonLabels      KV     `json:"commonLabels"`
	CommonAnnotations KV     `json:"commonAnnotations"`
	ExternalURL       string `json:"externalURL"`
}

// Decode parses one notification from body. It rejects trailing data and
// checks the result with Validate. Every error wraps ErrMalformed. Each
// alert's Fingerprint is computed from its labels; what the sender wrote
// is kept in SentFingerprint.
func Decode(body []byte) (*Message, error) {
	m, err := decode(body)
	if err != nil {
		return nil, err
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		a.SentFingerprint, a.Fingerprint = a.Fingerprint, a.Labels.Fingerprint()
	}
	return m, nil
}

func decode(body []byte) (*Message, error) {
	if m, ok := decodeFast(body); ok {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		return m, nil
	}
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) && strings.Contains(syn.Error(), "after top-level value") {
			return nil, fmt.Errorf("%w: unexpected data after the JSON object", ErrMalformed)
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, fmt.Errorf("%w: empty body", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: %s", ErrMalformed, source.DescribeJSONError(err))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ErrMalformed is wrapped by every decoding and validation error.
var ErrMalformed = errors.New("malformed alertmanager notification")

// Limits on what one notification may hold. They are far above anything
// Alertmanager sends and keep hostile input from costing much.
const (
	MaxAlerts    = 1000
	MaxLabels    = 200
	maxStringLen = 64 << 10
)

// Validate checks the fields relay relies on and names the first one that is
// wrong.
func (m *Message) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if m.Version != Version {
		return bad("version is %q, want %q", m.Version, Version)
	}
	if m.GroupKey == "" {
		return bad("groupKey is empty")
	}
	if m.Status != StatusFiring && m.Status != StatusResolved {
		return bad("status is %q, want %q or %q", m.Status, StatusFiring, StatusResolved)
	}
	if m.TruncatedAlerts < 0 {
		return bad("truncatedAlerts is negative")
	}
	if len(m.Alerts) == 0 {
		return bad("alerts is empty")
	}
	if len(m.Alerts) > MaxAlerts {
		return bad("%d alerts, at most %d accepted", len(m.Alerts), MaxAlerts)
	}
	for name, kv := range map[string]KV{"groupLabels": m.GroupLabels, "commonLabels": m.CommonLabels, "commonAnnotations": m.CommonAnnotations} {
		if err := checkKV(name, kv); err != nil {
			return bad("%v", err)
		}
	}
	for _, s := range []struct{ name, v string }{{"groupKey", m.GroupKey}, {"receiver", m.Receiver}, {"externalURL", m.ExternalURL}} {
		if err := checkString(s.name, s.v); err != nil {
			return bad("%v", err)
		}
	}
	for i, a := range m.Alerts {
		field := "alerts[" + strconv.Itoa(i) + "]"
		if a.Status != StatusFiring && a.Status != StatusResolved {
			return bad("%s.status is %q, want %q or %q", field, a.Status, StatusFiring, StatusResolved)
		}
		if a.StartsAt.IsZero() {
			return bad("%s.startsAt is missing", field)
		}
		if err := checkKV(field+".labels", a.Labels); err != nil {
			return bad("%v", err)
		}
		if err := checkKV(field+".annotations", a.Annotations); err != nil {
			return bad("%v", err)
		}
		for _, s := range []struct{ name, v string }{{".fingerprint", a.Fingerprint}, {".generatorURL", a.GeneratorURL}} {
			if err := checkString(field+s.name, s.v); err != nil {
				return bad("%v", err)
			}
		}
	}
	return nil
}

func checkKV(field string, kv KV) error {
	if len(kv) > MaxLabels {
		return fmt.Errorf("%s has %d entries, at most %d accepted", field, len(kv), MaxLabels)
	}
	for k, v := range kv {
		// Names are built only for an error: this runs for every label of
		// every alert of every webhook.
		if problem(k) != "" {
			return checkString(field+" name", k)
		}
		if problem(v) != "" {
			return checkString(fmt.Sprintf("%s[%q]", field, k), v)
		}
	}
	return nil
}

// checkString rejects what cannot be stored or shown: NUL characters
// (PostgreSQL text cannot hold them), invalid UTF-8 and absurd lengths.
func checkString(field, s string) error {
	if p := problem(s); p != "" {
		return fmt.Errorf("%s %s", field, p)
	}
	return nil
}

// problem says what is wrong with s, "" when nothing is.
func problem(s string) string {
	switch {
	case len(s) > maxStringLen:
		return fmt.Sprintf("is %d bytes long, at most %d accepted", len(s), maxStringLen)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL character"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	return ""
}

// DedupKey returns a hex SHA-256 over what Alertmanager's own notification
// log compares when it decides whether a notification was already sent:
// the route, receiver, group key, group status, each alert's fingerprint,
// status and start time, and the number of truncated alerts. EndsAt is left
// out on purpose: HA peers can disagree on it for the same notification.
//
// The fingerprint is computed from the labels here, whatever the alert's
// Fingerprint field holds: a notification whose alerts have other labels is
// new content even when it repeats another's fingerprints, so it cannot
// pass for a duplicate and suppress the real one.
func (m *Message) DedupKey(route string) string {
	type alertKey struct {
		Fingerprint string `json:"f"`
		Status      string `json:"s"`
		StartsAt    string `json:"t"`
	}
	alerts := make([]alertKey, len(m.Alerts))
	for i, a := range m.Alerts {
		alerts[i] = alertKey{a.Labels.Fingerprint(), a.Status, a.StartsAt.UTC().Format(time.RFC3339Nano)}
	}
	sort.Slice(alerts, func(i, j int) bool {
		if alerts[i].Fingerprint != alerts[j].Fingerprint {
			return alerts[i].Fingerprint < alerts[j].Fingerprint
		}
		return alerts[i].StartsAt < alerts[j].StartsAt
	})
	key := struct {
		Route     string     `json:"route"`
		Receiver  string     `json:"receiver"`
		GroupKey  string     `json:"groupKey"`
		Status    string     `json:"status"`
		Alerts    []alertKey `json:"alerts"`
		Truncated int        `json:"truncated"`
	}{route, m.Receiver, m.GroupKey, m.Status, alerts, m.TruncatedAlerts}
	b, err := json.Marshal(key)
	if err != nil {
		panic(fmt.Sprintf("marshal dedup key: %v", err)) // only strings and ints: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Subset returns a copy of m holding only alerts (a subset of m.Alerts, in
// any order), with what depends on the alerts recomputed as Alertmanager
// computes it for a group: Status is "firing" when any alert fires, else
// "resolved"; CommonLabels and CommonAnnotations are the pairs all the
// alerts share. The envelope (group key, receiver, group labels, external
// URL, truncated count) is kept. The copy shares the alerts' maps with m.
func (m *Message) Subset(alerts Alerts) *Message {
	sub := *m
	sub.Alerts = alerts
	sub.Status = StatusResolved
	if len(alerts.Firing()) > 0 {
		sub.Status = StatusFiring
	}
	sub.CommonLabels = commonPairs(alerts, func(a Alert) KV { return a.Labels })
	sub.CommonAnnotations = commonPairs(alerts, func(a Alert) KV { return a.Annotations })
	return &sub
}

// commonPairs returns the pairs every alert's kv (labels or annotations) holds.
func commonPairs(as Alerts, kv func(Alert) KV) KV {
	out := KV{}
	if len(as) == 0 {
		return out
	}
	for k, v := range kv(as[0]) {
		out[k] = v
	}
	for _, a := range as[1:] {
		m := kv(a)
		for k, v := range out {
			if w, ok := m[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}
