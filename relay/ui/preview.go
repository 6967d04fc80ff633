package ui

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/store"
)

// maxPreviewBody bounds a pasted payload.
const maxPreviewBody = 1 << 20

// previewData is the template preview's data.
type previewData struct {
	Routes        []string
	Route         string
	Notifications []store.StoredNotification
	Notification  string
	Event         string
	Payload       string
	// Ran: a preview was asked for; then Messages or Error say how it went.
	Ran      bool
	Messages []previewMessage
	Ignored  string
	Error    string
	// Source is the template file around the line an error names.
	Source []sourceLine
	File   string
}

type previewMessage struct {
	Conversation, To string
	Part, Parts      int
	Text             string
}

type sourceLine struct {
	N    int
	Text string
	Bad  bool
}

// preview renders a stored notification, or a pasted payload, with a
// route's configuration exactly as a webhook would be (nothing is stored),
// and shows the messages or the error.
func (c *Console) preview(w http.ResponseWriter, r *http.Request, id *identity) {
	cfg := c.ingest()
	d := previewData{}
	for name := range cfg.Routes {
		d.Routes = append(d.Routes, name)
	}
	sort.Strings(d.Routes)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxPreviewBody+64<<10)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, id, http.StatusRequestEntityTooLarge, "The payload is larger than 1 MiB.")
			return
		}
		d.Route, d.Notification, d.Event, d.Payload = r.PostFormValue("route"), r.PostFormValue("notification"),
			r.PostFormValue("event"), r.PostFormValue("payload")
	} else {
		d.Route, d.Notification = r.URL.Query().Get("route"), r.URL.Query().Get("notification")
	}
	if d.Route == "" && len(d.Routes) > 0 {
		d.Route = d.Routes[0]
	}
	route, ok := cfg.Routes[d.Route]
	if !ok {
		d.Error = fmt.Sprintf("There is no route %q.", clean.Line(truncate(d.Route, 64)))
		c.render(w, r, http.StatusBadRequest, "preview", page{Title: "Template preview", Nav: "preview", User: id.user, CSRF: id.csrf, Bearer: id.bearer, Data: d})
		return
	}
	list, err := c.db.RecentNotifications(r.Context(), d.Route, 20)
	if err != nil {
		c.failErr(w, r, id, err)
		return
	}
	d.Notifications = list
	var body []byte
	header := http.Header{}
	switch {
	case strings.TrimSpace(d.Payload) != "":
		body = []byte(d.Payload)
		if d.Event != "" {
			header.Set("X-GitHub-Event", d.Event)
			header.Set("X-Gitlab-Event", d.Event)
		}
	case d.Notification != "":
		n, err := c.db.Notification(r.Context(), d.Notification)
		if errors.Is(err, relay.ErrNotFound) {
			d.Error = "There is no such stored notification."
			break
		}
		if err != nil {
			c.failErr(w, r, id, err)
			return
		}
		body = n.Body
		if n.Event != "" {
			header.Set("X-GitHub-Event", n.Event)
			header.Set("X-Gitlab-Event", n.Event)
		}
	}
	if body != nil {
		d.Ran = true
		c.runPreview(&d, route.Template, func() (*previewResult, error) {
			p, err := cfg.Prepare(route, header, body)
			if err != nil {
				return nil, err
			}
			res := &previewResult{ignored: p.Ignored}
			if p.Ping {
				res.ignored = "a ping: answered, nothing sent"
			}
			if p.Notification != nil {
				for _, m := range p.Notification.Messages {
					res.messages = append(res.messages, previewMessage{Conversation: m.Conversation, To: m.Target.To,
						Part: m.Part, Parts: m.Parts, Text: m.Text})
				}
			}
			return res, nil
		})
	}
	c.render(w, r, http.StatusOK, "preview", page{Title: "Template preview", Nav: "preview", User: id.user, CSRF: id.csrf, Bearer: id.bearer, Data: d})
}

type previewResult struct {
	messages []previewMessage
	ignored  string
}

// templateLine finds "name:LINE:" in a template error.
var templateLine = regexp.MustCompile(`template: ([^:\s]+):(\d+):`)

func (c *Console) runPreview(d *previewData, template string, run func() (*previewResult, error)) {
	res, err := run()
	if err != nil {
		d.Error = err.Error()
		m := templateLine.FindStringSubmatch(d.Error)
		file := c.settings.Load().TemplateFiles[template]
		if m == nil || file == "" {
			return
		}
		n, _ := strconv.Atoi(m[2])
		src, err := os.ReadFile(file)
		if err != nil {
			return
		}
		lines := strings.Split(string(src), "\n")
		d.File = file
		for i := max(1, n-3); i <= min(len(lines), n+3); i++ {
			d.Source = append(d.Source, sourceLine{N: i, Text: lines[i-1], Bad: i == n})
		}
		return
	}
	d.Messages, d.Ignored = res.messages, res.ignored
}
