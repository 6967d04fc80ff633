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
	"f": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"seconds": seconds,
	"ms":      func(v float64) string { return seconds(v / 1000) },
	"deref": func(p *int) string {
		if p == nil {
			return ""
		}
		return fmt.Sprint(*p)
	},
	"lower": strings.ToLower,
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
