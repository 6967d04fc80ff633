package ucwasim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// hrefs returns every "href" value in a JSON document, data: and sip:
// URIs left out.
func hrefs(t *testing.T, body []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "href" && !strings.HasPrefix(s, "data:") && !strings.HasPrefix(s, "sip:") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// allOn fails unless every href is absolute on base.
func allOn(t *testing.T, what, base string, hs []string) {
	t.Helper()
	if len(hs) == 0 {
		t.Fatalf("%s: no links", what)
	}
	for _, h := range hs {
		if !strings.HasPrefix(h, base+"/") {
			t.Fatalf("%s: link %q not on %s", what, h, base)
		}
	}
}

func TestLinkHost(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	old := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
	b.l.stop() // its next P-GET would follow a link on the link host
	fe1 := b.s.PoolURL("fe1")
	foreign := strings.Replace(fe1, "127.0.0.1", "localhost", 1)

	b.s.SetLinkHost("fe1", "localhost")
	// Discovery and the user resource, asked at 127.0.0.1.
	r := b.c.do("GET", b.s.DiscoveryURLs()[0], "", "")
	var root struct {
		Links links `json:"_links"`
	}
	r.json(t, &root)
	allOn(t, "root user link", foreign, []string{root.Links["user"].Href, root.Links["xframe"].Href})
	if h := tokenHref(t, b.c.doAnon("GET", fe1+userPath, "", "")); h != foreign+tokenPath {
		t.Errorf("challenge token href %q, want on %s", h, foreign)
	}
	allOn(t, "user resource", foreign, hrefs(t, b.c.do("GET", fe1+userPath, "", "").body))
	// A new application, created at 127.0.0.1: Location and every link.
	r = b.c.do("POST", b.apps, "application/json", `{"userAgent":"relay-test/1.0","endpointId":"worker-b","culture":"en-US"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create application = %d", r.status)
	}
	allOn(t, "application", foreign, append(hrefs(t, r.body), r.header.Get("Location")))
	if n := b.s.Stats().LinkHostRequests["fe1"]; n != 0 {
		t.Fatalf("LinkHostRequests[fe1] = %d before any link was followed", n)
	}
	// Links handed out before still work.
	if r := b.c.send(old, "op-old", "old link"); r.status != http.StatusCreated {
		t.Fatalf("send on an old link = %d", r.status)
	}

	// A client that trusts localhost follows them: served, no violation.
	c2 := newClient(t)
	c2.setTok(b.c.getTok())
	c2.ucwa = foreign + "/"
	a2 := c2.createApp(strings.Replace(b.apps, "127.0.0.1", "localhost", 1), "worker-c")
	if !strings.HasPrefix(a2.events, foreign) || !strings.HasPrefix(a2.startMessaging, foreign) {
		t.Fatalf("application links %+v", a2)
	}
	r = c2.do("POST", a2.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com","operationId":"inv-2"}`)
	allOn(t, "startMessaging Location", foreign, []string{r.header.Get("Location")})
	next, connected, pgets := a2.events, false, 0
	var send string
	for !connected {
		pgets++
		r := c2.do("GET", next+"&timeout=180", "", "")
		if r.status != http.StatusOK {
			t.Fatalf("P-GET = %d %q", r.status, r.body)
		}
		allOn(t, "event batch", foreign, hrefs(t, r.body))
		var eb eventsBody
		r.json(t, &eb)
		for _, s := range eb.Sender {
			for _, e := range s.Events {
				var m struct {
					Links links `json:"_links"`
				}
				if e.Link.Rel == "messaging" && json.Unmarshal(e.Embedded["messaging"], &m) == nil && m.Links["sendMessage"].Href != "" {
					send = m.Links["sendMessage"].Href
				}
				connected = connected || (e.Link.Rel == "messagingInvitation" && e.Type == "completed" && e.Status == "Success")
			}
		}
		next = eb.Links["next"].Href
	}
	r = c2.send(conv{sendMessage: send}, "op-foreign", "via localhost")
	if r.status != http.StatusCreated {
		t.Fatalf("send via localhost = %d", r.status)
	}
	msg := r.header.Get("Location")
	allOn(t, "sendMessage Location", foreign, []string{msg})
	if n, want := b.s.Stats().LinkHostRequests["fe1"], 3+pgets; n != want {
		t.Errorf("LinkHostRequests[fe1] = %d, want %d (every request c2 sent)", n, want)
	}

	// Restored: new links are normal again, old ones keep working.
	b.s.SetLinkHost("fe1", "")
	r = b.c.do("GET", a2.self, "", "")
	if r.status != http.StatusOK || strings.Contains(string(r.body), "localhost") {
		t.Errorf("application after restore: %d %s", r.status, r.body)
	}
	if h := tokenHref(t, b.c.doAnon("GET", fe1+userPath, "", "")); h != fe1+tokenPath {
		t.Errorf("challenge token href %q after restore", h)
	}
	if r := c2.do("GET", msg, "", ""); r.status != http.StatusOK {
		t.Errorf("GET old localhost message link = %d", r.status)
	}
	if ms := b.s.Messages(); len(ms) != 2 {
		t.Errorf("Messages() = %+v, want op-old and op-foreign", ms)
	}
	noViolations(t, b.s)
}

func TestLinkHostControl(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	ctl := newClient(t)
	u := s.ControlURL() + "/sim/pools/fe2-backup/link-host"
	tests := []struct {
		body string
		want int
	}{
		{`{"host":"localhost"}`, http.StatusOK},
		{`{"host":"localhost:80"}`, http.StatusBadRequest},
		{`{"host":"http://localhost"}`, http.StatusBadRequest},
		{`{"host":"a/b"}`, http.StatusBadRequest},
		{`{}`, http.StatusBadRequest},
		{`{"host":""}`, http.StatusOK},
		{`{"host":"ucwa.example.net"}`, http.StatusOK},
	}
	for _, tt := range tests {
		if r := ctl.do("PUT", u, "application/json", tt.body); r.status != tt.want {
			t.Errorf("PUT link-host %s = %d, want %d", tt.body, r.status, tt.want)
		}
	}
	if got := s.byName["fe2-backup"].abs(userPath); !strings.HasPrefix(got, "http://ucwa.example.net:") {
		t.Errorf("user link %q, want on ucwa.example.net", got)
	}
	if r := ctl.do("PUT", s.ControlURL()+"/sim/pools/nope/link-host", "application/json", `{"host":"x"}`); r.status != http.StatusNotFound {
		t.Errorf("unknown pool = %d, want 404", r.status)
	}
}
