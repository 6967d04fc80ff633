// Package render turns an Alertmanager notification into the plain text of
// one or more chat messages, with Go text/template templates.
//
// An [Engine] parses relay's shipped templates (the templates directory of
// the repository) once at start, plus the template files named in the
// configuration, and renders by name. Rendering happens at ingest, so a
// template that fails on a payload is reported to the sender (HTTP 422)
// instead of failing later in the delivery queue.
//
// # Template names
//
// "alertmanager" is the shipped default. Every other name is one of
// [Options.Files]: a name (often the file's path) mapped to a template
// file. Each file is parsed into its own copy of the shipped templates, so:
//
//   - a file with text of its own renders that text, and may call the
//     shipped blocks ({{ template "alertmanager.title" . }});
//   - a file of only {{ define }} blocks renders the shipped "alertmanager"
//     template with those blocks replaced, for that file alone.
//
// The shipped "alertmanager" template is built from these blocks, each of
// which a file may override:
//
//	alertmanager.text       the whole message: title, summary, alerts, links
//	alertmanager.title      "[FIRING:2, RESOLVED:1] HighCPU prod (severity=critical)"
//	alertmanager.counts     "FIRING:2, RESOLVED:1"
//	alertmanager.group      group label values, then the other common labels
//	alertmanager.summary    annotations common to all alerts, when several
//	alertmanager.alert      one alert; dot is a GroupAlert
//	alertmanager.time       one time; dot is a time.Time (UTC by default)
//	alertmanager.truncated  "+N more alerts not shown"
//	alertmanager.links      links to the group and to a new silence
//
// For example, this file shows times in Berlin and otherwise keeps the
// default layout:
//
//	{{ define "alertmanager.time" }}{{ . | tz "Europe/Berlin" | date "Mon 15:04 MST" }}{{ end }}
//
// After rendering, trailing spaces are removed from every line, runs of
// blank lines become one, and leading and trailing blank lines go, so
// templates need not trim whitespace carefully.
//
// # Data
//
// Dot is a [Data] (a pointer to it, which reads the same), with the fields
// of Alertmanager's notification template data:
//
//	.Receiver           string  the Alertmanager receiver
//	.Status             string  "firing" if any alert fires, else "resolved"
//	.Alerts             Alerts  the alerts of this message; .Alerts.Firing, .Alerts.Resolved
//	.GroupLabels        KV      labels the group is formed by
//	.CommonLabels       KV      labels all alerts share
//	.CommonAnnotations  KV      annotations all alerts share
//	.ExternalURL        string  the Alertmanager's URL
//
// and these additions:
//
//	.GroupKey           string  Alertmanager's key of the group
//	.TruncatedAlerts    int     alerts Alertmanager left out (max_alerts)
//	.AllAlerts          Alerts  every alert; differs from .Alerts only in split messages
//	.Route              string  the relay route the notification came in on
//	.Conversation       string  the conversation the message goes to
//	.GroupAlerts        []GroupAlert  .Alerts, each with its group (for per-alert blocks)
//	.AlertsURL          string  the group in the Alertmanager UI ("" without ExternalURL)
//	.SilenceURL         string  a new silence for the common labels ("" without ExternalURL)
//
// An alert (an element of .Alerts) has .Status, .Labels, .Annotations,
// .StartsAt, .EndsAt (time.Time), .GeneratorURL and .Fingerprint. A
// [GroupAlert] has the same fields plus .Group (the Data), .ExtraLabels
// (the labels not common to the group, without alertname) and
// .Annotation "name" (the annotation unless the group header shows it).
//
// A KV (labels, annotations) is a map: {{ .Labels.severity }} or
// {{ index .Labels "severity" }}, and has the methods .SortedPairs (pairs
// sorted by name, alertname first; a pair has .Name and .Value, and the
// list prints as "a=1, b=2"), .Names, .Values and .Remove (a list of
// names). In user templates a missing key reads as "", as in Alertmanager;
// the shipped templates run with missingkey=error to catch our own typos.
//
// # Cleaning
//
// Templates never see text from a sender as it was sent: [Engine.Render],
// [Engine.RenderParts] and the native rendering work on a copy of the
// Data in which every string from the sender is cleaned by relay/clean,
// and [Engine.RenderValue] renders the copy a source's Data.Clean returns.
// The rules, which apply to the shipped templates and to template files
// alike:
//
//   - C0 and C1 control characters (BEL, ESC, a bare CR, NEL, ...), DEL,
//     the bidi embeddings, overrides, isolates and marks (U+202A–U+202E,
//     U+2066–U+2069, U+200E, U+200F, U+061C), U+2028, U+2029, U+200B,
//     U+2060 and U+FEFF become a visible escape: "<U+202E>".
//   - A value shown on one line keeps no line break or tab either: a line
//     feed becomes "<U+000A>", so "api-1\n[RESOLVED:1] AllGood" in a label
//     cannot forge a line. One-line values are label names and values,
//     the receiver, statuses, the group key, fingerprints, annotation
//     names, and every GitHub and GitLab field.
//   - Annotation values and a generic payload's strings may span lines:
//     line feeds and tabs stay, CR LF becomes LF.
//   - Links (.ExternalURL, .GeneratorURL, annotations and payload fields
//     whose name ends in "url" or "link", the GitHub and GitLab URLs) stay
//     only when they are http or https; anything else, javascript: or a
//     relative path, shows as "<link removed: not http or https>".
//     .AlertsURL and .SilenceURL are empty unless .ExternalURL is http or
//     https.
//
// Route and Conversation come from the configuration and are not touched.
// A generic payload has no schema, so the shipped generic template pipes
// its title, status and link through oneLine.
//
// A template that wants the value as sent, on purpose, calls raw on its
// dot: {{ (raw .).CommonLabels.instance }}, or {{ with raw . }}...{{ end }}.
// In "alertmanager.alert" raw gives the raw alert; raw of anything but a
// template's dot is an error. What raw returns is printed verbatim, line
// breaks, controls and all.
//
// # Other formats
//
// The shipped "github", "gitlab" and "generic" templates render the events
// of relay's other webhook sources (relay/source and its subpackages) with
// [Engine.RenderValue] and [Engine.RenderValueParts], which take the
// source's data as dot: a *github.Data, *gitlab.Data or *generic.Data,
// each documented in its package. Their blocks ("github.title",
// "gitlab.failed", "generic.fields", ...) can be overridden like the
// alertmanager ones: a file of only defines customises the shipped
// template whose blocks it redefines.
//
// The generic blocks run with missingkey=zero, since a sender's payload
// has no schema: {{ .Payload.nope }} prints "<no value>" and {{ with
// .Payload.nope }} skips, instead of failing the request. A lookup below
// a missing key ({{ .Payload.a.b }} without "a") still fails; guard it
// with "with".
//
// # Functions
//
// Besides text/template's built-ins (and, or, not, len, index, printf,
// urlquery, eq, lt, ...), templates may call these, which behave as in
// Alertmanager and Prometheus, except raw and oneLine, which are relay's:
//
//	toUpper, toLower, trimSpace  string → string
//	title               "hIGH cpu" → "High Cpu" (first letter of each word up, the rest down)
//	join sep list       joins a []string; note the order: {{ .Labels.Names | join ", " }}
//	match re s          whether the regular expression re matches in s (unanchored)
//	reReplaceAll re repl s  replaces every match; repl may use $1 or ${name}
//	safeHtml, safeUrl   return their argument: relay sends plain text, nothing is escaped
//	urlUnescape s       undoes URL query escaping, then cleans the result as one line
//	raw dot             the template's dot as the sender sent it, not cleaned (see Cleaning)
//	oneLine v           v printed on one line: line breaks shown as <U+000A> (see Cleaning)
//	stringSlice a b ... makes a []string
//	date layout t       formats a time.Time with a Go layout ("2006-01-02 15:04 MST")
//	tz name t           t in an IANA time zone ("Europe/Berlin", "UTC")
//	since t             time.Duration from t to now
//	humanize n          1234567 → "1.235M", 0.0012 → "1.2m"
//	humanize1024 n      1048576 → "1Mi"
//	humanizeDuration n  seconds or a time.Duration → "1d 2h 3m 4s", "1.5s", "250ms"
//	humanizePercentage n  0.1234 → "12.34%"
//	humanizeTimestamp n Unix seconds or a time.Time → "2026-11-27 13:02:05 +0000 UTC"
//	toJson v            v encoded as JSON
//
// The humanize functions take numbers, numeric strings (label values),
// time.Duration (as seconds) and, for humanizeTimestamp, time.Time.
//
// # Size
//
// [Engine.Render] returns one text. [Engine.RenderParts] keeps each message
// within [Options.MaxBytes] (8 KiB by default): a longer notification is
// split between alerts, each part rendered by the same template on its share
// of .Alerts (so the header, computed from .AllAlerts, repeats on every
// part) and numbered "(1/3) ". A single alert that is too long is split at
// line breaks or spaces, and a word longer than a message at a character
// boundary. At most [Options.MaxParts] messages are sent; the last one then
// says how many alerts were left out.
//
// [Engine.RenderValueParts] has no alerts to split between: it cuts the
// text at line breaks, else spaces, else character boundaries, numbers
// the parts the same way, and when more than MaxParts would be needed the
// last part ends with "[message cut: too long]".
//
// One execution may write at most [MaxOutputBytes]; beyond that it stops
// with an error, so no template or payload can use unbounded memory.
//
// # Speed
//
// The shipped "alertmanager" template, with no block overridden, is not
// interpreted: Go code of the same meaning writes its text several times
// faster. Its tests compare both renderings byte for byte, so
// templates/alertmanager.tmpl remains the definition.
//
// # Errors
//
// A template that fails on a notification (a bad function argument, a
// missing field, too much output) gives an error wrapping [relay.ErrInvalid]
// and naming the template, the file and the line. Syntax errors in template
// files are reported by [New] with file and line. An unknown template name
// gives [ErrUnknownTemplate], a configuration mistake.
package render
