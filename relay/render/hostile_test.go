package render

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source/generic"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
)

// tamer replaces values by harmless stand-ins, "t0", "t1", ..., keeping
// which values are equal, which are empty and which are only spaces after
// cleaning: a template takes the same branches on the tamed data as on the
// hostile data, and the same lines come out blank (and are dropped), so
// the two renderings must have as many lines, unless a hostile value added
// one.
type tamer map[string]string

// line tames a value shown on one line.
func (tm tamer) line(s string) string {
	c := clean.Line(s)
	if c == "" {
		return ""
	}
	if _, ok := tm[c]; !ok {
		if strings.Trim(c, " ") == "" {
			tm[c] = strings.Repeat(" ", len(tm)+1)
		} else {
			tm[c] = fmt.Sprint("t", len(tm))
		}
	}
	return tm[c]
}

// url tames a link: empty stays empty, anything else becomes an http URL
// (a removed link is not empty either).
func (tm tamer) url(s string) string {
	if clean.URL(s) == "" {
		return ""
	}
	return "http://" + tm.line(s)
}

// lines counts the lines of a rendering.
func lines(s string) int { return strings.Count(s, "\n") + 1 }

// FuzzRenderHostile renders an Alertmanager notification, a GitHub run, a
// GitLab pipeline and job and generic payloads whose sender fields are
// the fuzzer's strings, with the shipped templates, and checks what
// cleaning promises: no rendered message holds a forbidden code point (a
// line feed or tab only where a multi-line value may put one), and no
// value shown on one line starts a line of its own. For the second,
// multi-line values are kept harmless and the rendering is compared with
// the same message whose one-line values are tamed: a value that breaks a
// line makes the hostile rendering longer.
func FuzzRenderHostile(f *testing.F) {
	for _, s := range [][3]string{
		{forged, rlo, hostileURL},
		{bel + esc, bareCR, separators},
		{"", " ", "https://ok.example/\n[RESOLVED:1] AllGood"},
		{"a\r\nb", "\u0085\u200f\ufeff", "HTTPS://x"},
		{"alertname", "\n", "\t"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	e := newTestEngine(f, Options{})
	f.Fuzz(func(t *testing.T, a, b, c string) {
		check := func(what, hostile string, tamed string, err1, err2 error) {
			t.Helper()
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: render errors %v, %v", what, err1, err2)
			}
			if r, ok := allowed(hostile); !ok {
				t.Fatalf("%s holds %U:\n%s", what, r, hostile)
			}
			if tamed != "" && lines(hostile) != lines(tamed) {
				t.Fatalf("%s: a one-line value added a line; hostile:\n%s\n\ntamed:\n%s", what, hostile, tamed)
			}
		}

		// Alertmanager: every one-line field hostile, then tamed.
		for _, groupBy := range [][]string{{"alertname"}, nil} {
			build := func(line, url func(string) string) Data {
				x := alert("alertname="+line(a), "instance="+line(b), "job="+line(c))
				x.Labels["x"+line(c)] = line(a) // a hostile label name
				x.GeneratorURL = url(c)
				x = annotate(x, "summary", "s", "runbook_url", url(a))
				y := alert("alertname="+line(a), "instance="+line(c), "job="+line(c))
				y.Fingerprint = line(c) // not statuses: the decoder allows only firing and resolved
				m := message(groupBy, x, resolved(y, 0))
				m.Receiver, m.GroupKey = line(b), line(a)
				return NewData(m, "r", "c")
			}
			tm := tamer{}
			same := func(s string) string { return s }
			hostile, err1 := e.Render("alertmanager", build(same, same))
			tamed, err2 := e.Render("alertmanager", build(tm.line, tm.url))
			check(fmt.Sprintf("alertmanager grouped by %v", groupBy), hostile, tamed, err1, err2)
		}
		// Everything hostile, annotations and external URL included: only
		// the code points are checked.
		x := annotate(alert("alertname="+a, "instance="+b), "summary", a, "description", b, "message", c, "runbook_url", c)
		m := message(nil, x, alert("alertname="+c))
		m.ExternalURL = c
		hostile, err := e.Render("alertmanager", NewData(m, "r", "c"))
		check("alertmanager, annotations hostile", hostile, "", err, nil)

		// GitHub and GitLab: every string field hostile (links too), then
		// tamed.
		for _, d := range []func() any{
			func() any { return &github.Data{RunNumber: 3, RunAttempt: 2} },
			func() any { return &gitlab.Data{PipelineID: 4} },
			func() any { return &gitlab.Data{Job: &gitlab.Job{}} },
		} {
			values := [...]string{a, b, c}
			fill := func(line, url func(string) string) any {
				v, i := d(), 0
				fillStrings(reflect.ValueOf(v).Elem(), func(field string) string {
					i++
					if strings.HasSuffix(field, "URL") {
						return url(values[i%3])
					}
					return line(values[i%3])
				})
				return v
			}
			tm := tamer{}
			same := func(s string) string { return s }
			hostileData := fill(same, same)
			hostile, err1 := e.RenderValue(templateOf(hostileData), hostileData)
			tamed, err2 := e.RenderValue(templateOf(hostileData), fill(tm.line, tm.url))
			check(fmt.Sprintf("%T", hostileData), hostile, tamed, err1, err2)
		}

		// Generic: title, status and link lines, and the field list.
		tm := tamer{}
		for _, p := range []func(line, url func(string) string) map[string]any{
			func(line, url func(string) string) map[string]any {
				return map[string]any{"title": line(a), "status": line(b), "url": url(c), "message": "m"}
			},
			func(line, url func(string) string) map[string]any {
				return map[string]any{"xa" + line(a): line(b), "xb" + line(b): line(c), "xc": []any{line(a)}}
			},
		} {
			same := func(s string) string { return s }
			hostile, err1 := e.RenderValue("generic", &generic.Data{Route: "r", Payload: p(same, same)})
			tamed, err2 := e.RenderValue("generic", &generic.Data{Route: "r", Payload: p(tm.line, tm.url)})
			check("generic", hostile, tamed, err1, err2)
		}
		hostile, err = e.RenderValue("generic", &generic.Data{Route: "r", Payload: map[string]any{"title": a, "message": b, "link": c}})
		check("generic, message hostile", hostile, "", err, nil)
	})
}

// templateOf names the shipped template for a source's data.
func templateOf(d any) string {
	switch d.(type) {
	case *github.Data:
		return "github"
	case *gitlab.Data:
		return "gitlab"
	default:
		return "generic"
	}
}

// TestHostileFuzzCanFail runs the fuzz target's checks on uncleaned data,
// which must fail them: a line feed in a label adds a line.
func TestHostileFuzzCanFail(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	hostile := message([]string{"alertname"}, alert("alertname=X", "instance="+forged))
	tm := tamer{}
	tamed := message([]string{"alertname"}, alert("alertname="+tm.line("X"), "instance="+tm.line(forged)))
	// The raw function prints the template's data as sent: what every
	// template would print without cleaning.
	path := writeFile(t, "raw.tmpl", `{{ with raw . }}{{ template "alertmanager.text" . }}{{ end }}`)
	raw := newTestEngine(t, Options{Files: map[string]string{"raw": path}})
	h, err1 := raw.Render("raw", NewData(hostile, "r", "c"))
	tmd, err2 := e.Render("alertmanager", NewData(tamed, "r", "c"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if lines(h) == lines(tmd) {
		t.Errorf("uncleaned rendering has as many lines as the tamed one:\n%s\n\n%s", h, tmd)
	}
}
