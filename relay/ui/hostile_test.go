package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestHostileValuesAreInert: an alert whose labels and annotations carry
// markup, a javascript: link and bidi controls shows them as text on
// every page that shows it: no element, attribute or link comes from it,
// and the bidi characters appear as visible escapes.
func TestHostileValuesAreInert(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.webhook(t, relaytest.HostileNotification())
	b.setState(t, ids[0], relay.StateDead)
	br := b.browser(t)
	br.signIn()
	d, err := b.db.GetDelivery(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	preview := br.get("/ui/preview")
	pages := map[string]page{
		"overview":   br.get("/ui/"),
		"list":       br.get("/ui/deliveries"),
		"search":     br.get("/ui/deliveries?q=" + url.QueryEscape("Evil<script>")),
		"detail":     br.get("/ui/deliveries/" + ids[0]),
		"sibling":    br.get("/ui/deliveries/" + ids[1]),
		"confirm":    br.get("/ui/deliveries/" + ids[0] + "/redeliver"),
		"preview":    br.post("/ui/preview", url.Values{"csrf": {csrf(t, preview)}, "route": {"prod"}, "notification": {d.NotificationID}}),
		"pasted":     br.post("/ui/preview", url.Values{"csrf": {csrf(t, preview)}, "route": {"prod"}, "payload": {string(relaytest.HostileNotification())}}),
		"bulk":       br.post("/ui/deliveries/redeliver", url.Values{"csrf": {csrf(t, preview)}, "key": {"k"}, "id": {ids[0], relaytest.HostileScript}}),
		"not found":  br.get("/ui/deliveries/" + url.PathEscape(relaytest.HostileScript)),
		"bad filter": br.get("/ui/deliveries?state=" + url.QueryEscape(relaytest.HostileImg) + "&since=" + url.QueryEscape(relaytest.HostileBidi)),
	}
	shows := map[string]string{ // where the alert itself must appear, as text
		"overview": "Evil<script>", "list": "Evil<script>", "search": "Evil<script>", "detail": `alert("relay")`,
		"sibling": "<img src=x onerror=alert(1)>", "confirm": "Evil<script>", "preview": "<img src=x onerror=alert(1)>",
		"pasted": "<img src=x onerror=alert(1)>", "bulk": `<script>alert("relay")</script>`,
	}
	for name, p := range pages {
		t.Run(name, func(t *testing.T) {
			if p.status >= 500 {
				t.Fatalf("status %d:\n%s", p.status, p.body)
			}
			doc, err := html.Parse(strings.NewReader(p.body))
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			checkInert(t, doc, &text)
			if want := shows[name]; want != "" && !strings.Contains(text.String(), want) {
				t.Errorf("the page's text lacks %q", want)
			}
			for _, r := range []string{"\u202e", "\u2066"} {
				if strings.Contains(p.body, r) {
					t.Errorf("the page holds the bidi control %U itself", []rune(r)[0])
				}
			}
			if name == "detail" && !strings.Contains(text.String(), "gnp.<U+202E>exe<U+2066>.txt") {
				t.Errorf("the detail page does not show the bidi controls as escapes")
			}
		})
	}
}

// checkInert fails on any script but the console's own, any element with
// an event handler attribute, any image, and any link or form leading
// outside the console; it collects the page's text.
func checkInert(t *testing.T, n *html.Node, text *strings.Builder) {
	t.Helper()
	if n.Type == html.TextNode {
		text.WriteString(n.Data)
	}
	if n.Type == html.ElementNode {
		switch n.Data {
		case "script":
			if attr(n, "src") != "/ui/static/console.js" || n.FirstChild != nil {
				t.Errorf("a script element that is not the console's: %v", n.Attr)
			}
		case "img", "iframe", "object", "embed", "base":
			t.Errorf("a %s element: %v", n.Data, n.Attr)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") {
				t.Errorf("an event handler attribute %s=%q on %s", a.Key, a.Val, n.Data)
			}
			switch a.Key {
			case "href", "src", "action", "formaction":
				if !strings.HasPrefix(a.Val, "/ui/") && !strings.HasPrefix(a.Val, "#") {
					t.Errorf("%s=%q on %s leads outside the console", a.Key, a.Val, n.Data)
				}
			case "style":
				t.Errorf("an inline style on %s", n.Data)
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		checkInert(t, c, text)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// TestPages renders each page with data and checks what it says.
func TestPages(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.webhook(t, relaytest.Notification("DiskFull", 1, "firing"))
	other := b.webhook(t, relaytest.Notification("HighLatency", 1, "firing"))
	b.setState(t, ids[0], relay.StateDead)
	br := b.browser(t)
	br.signIn()

	list := br.get("/ui/deliveries?q=diskfull&state=dead")
	if list.status != http.StatusOK || !strings.Contains(list.body, ids[0]) || strings.Contains(list.body, ids[1]) || strings.Contains(list.body, other[0]) {
		t.Errorf("search diskfull, dead: want only %s:\n%s", ids[0], list.body)
	}
	if !strings.Contains(list.body, `<option selected>dead</option>`) || !strings.Contains(list.body, `value="diskfull"`) {
		t.Errorf("the form does not keep the filters of the URL")
	}
	bad := br.get("/ui/deliveries?since=yesterday")
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, "from: &#34;yesterday&#34; is not a time") {
		t.Errorf("a bad time = %d, want 400 naming it", bad.status)
	}
	detail := br.get("/ui/deliveries/" + ids[0])
	for _, want := range []string{"Text as sent", "Timeline", "notification received and queued", "Other deliveries of this notification",
		ids[1], "Notification payload", `href="/ui/deliveries/` + ids[0] + `/redeliver"`} {
		if !strings.Contains(detail.body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	// Redeliver through the confirmation page; a second submission of the
	// same form queues nothing more.
	confirm := br.get("/ui/deliveries/" + ids[0] + "/redeliver")
	key := strings.Split(strings.Split(confirm.body, `name="key" value="`)[1], `"`)[0]
	form := url.Values{"csrf": {csrf(t, confirm)}, "key": {key}}
	p := br.post("/ui/deliveries/"+ids[0]+"/redeliver", form)
	if p.status != http.StatusSeeOther || p.location != "/ui/deliveries/"+ids[0]+"?done=queued" {
		t.Fatalf("redeliver = %d to %q", p.status, p.location)
	}
	b.setState(t, ids[0], relay.StateDead)
	if p := br.post("/ui/deliveries/"+ids[0]+"/redeliver", form); p.location != "/ui/deliveries/"+ids[0]+"?done=replayed" {
		t.Errorf("the same form again = %q, want a replay", p.location)
	}
	detail = br.get("/ui/deliveries/" + ids[0] + "?done=queued")
	if !strings.Contains(detail.body, "redelivered by anna") || !strings.Contains(detail.body, "through the console, was dead") {
		t.Errorf("the timeline does not say who redelivered:\n%s", detail.body)
	}
	// Bulk: a confirmation, then each one.
	b.setState(t, other[0], relay.StateDead)
	list = br.get("/ui/deliveries?state=dead")
	bulkKey := strings.Split(strings.Split(list.body, `name="key" value="`)[1], `"`)[0]
	bulk := url.Values{"csrf": {csrf(t, list)}, "key": {bulkKey}, "id": {other[0]}, "back": {"/ui/deliveries?state=dead"}}
	if p := br.post("/ui/deliveries/redeliver", bulk); p.status != http.StatusOK || !strings.Contains(p.body, "Redeliver them now") {
		t.Fatalf("bulk without confirmation = %d, want the confirmation page", p.status)
	}
	bulk.Set("confirmed", "yes")
	p = br.post("/ui/deliveries/redeliver", bulk)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/ui/deliveries?") || !strings.Contains(p.location, "queued+again") {
		t.Fatalf("bulk = %d to %q", p.status, p.location)
	}
	if d, _ := b.db.GetDelivery(t.Context(), other[0]); d.State != relay.StatePending || d.Redeliveries[0].RequestedBy != "anna" {
		t.Errorf("after bulk: %s by %v, want pending by anna", d.State, d.Redeliveries)
	}
	overview := br.get("/ui/")
	for _, want := range []string{"Deliveries by state", `role="img"`, "UCWA session", "no replica has held it yet", "Dead and uncertain deliveries"} {
		if !strings.Contains(overview.body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
}
