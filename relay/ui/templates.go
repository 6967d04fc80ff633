package ui

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/clean"
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"signin", "signedout", "error", "overview", "deliveries", "delivery", "confirm", "bulkconfirm", "preview"}

// funcs are the page templates' functions. Sender values go through
// inert or inline before html/template escapes them, so that control,
// bidi and invisible characters show as <U+XXXX> instead of acting.
var funcs = template.FuncMap{
	"inert":  clean.Text,
	"inline": clean.Line,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"timeISO": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"path":    url.PathEscape,
	"add":     func(a, b int) int { return a + b },
	"since": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return duration(now.Sub(t).Truncate(time.Second)) + " ago"
	},
	"f":       func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"seconds": seconds,
	"ms":      func(v float64) string { return seconds(v / 1000) },
	"deref": func(p *int) string {
		if p == nil {
			return ""
		}
		return fmt.Sprint(*p)
	},
	"lower":     strings.ToLower,
	"jsonInert": jsonInert,
}

// jsonInert writes every character clean would escape as a JSON \u
// escape: in JSON such characters can only stand inside strings, where
// the escape means the same, so the payload stays what it was while the
// page shows nothing that hides or reorders text.
func jsonInert(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r != '\n' && r != '\t' && r != '\r' && clean.Forbidden(r) {
			if r > 0xFFFF {
				fmt.Fprintf(&b, "\\u%04x\\u%04x", 0xD800+((r-0x10000)>>10), 0xDC00+((r-0x10000)&0x3FF))
				continue
			}
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse console page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
