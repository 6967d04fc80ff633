package ucwasim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestHappyPath walks PROTOCOL §11 by hand.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{EmbedResources: true})
	c := newClient(t)

	// Step 1: discovery.
	roots := s.DiscoveryURLs()
	if len(roots) != 2 || roots[0] == roots[1] {
		t.Fatalf("DiscoveryURLs() = %q, want two distinct roots", roots)
	}
	var root struct {
		Links links `json:"_links"`
	}
	c.do("GET", roots[0], "", "").json(t, &root)
	for _, rel := range []string{"self", "user", "xframe"} {
		if root.Links[rel].Href == "" {
			t.Fatalf("root has no %s link: %+v", rel, root.Links)
		}
	}
	userURL := resolve(t, roots[0], root.Links["user"].Href)

	// Step 2: the challenge.
	r := c.do("GET", userURL, "", "")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("401 Content-Type = %q, want text/html", ct)
	}
	if got := len(r.header.Values("WWW-Authenticate")); got != 2 {
		t.Errorf("WWW-Authenticate lines = %d, want 2", got)
	}
	if !strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), "\n"), "Bearer trusted_issuers=") {
		t.Errorf("no Bearer challenge in %q", r.header.Values("WWW-Authenticate"))
	}
	href := tokenHref(t, r)
	if !strings.HasPrefix(href, s.PoolURL("fe1")) {
		t.Errorf("token href %q not on home pool %q", href, s.PoolURL("fe1"))
	}

	// Step 3-4: token, then the user resource.
	c.getToken(href, "secret")
	var user struct {
		Links links `json:"_links"`
	}
	c.do("GET", userURL, "", "").json(t, &user)
	appsURL := resolve(t, userURL, user.Links["applications"].Href)
	c.ucwa = appsURL

	// Step 5: application.
	a := c.createApp(appsURL, "worker-a")
	if !strings.Contains(a.events, "ack=1") {
		t.Errorf("events link %q has no ack=1", a.events)
	}

	// Step 6: event loop.
	l := c.startLoop(a.events)

	// Step 8-9: conversation.
	cv := c.startConversation(a, l, "sip:oncall@contoso.com")

	// Step 10-11: message and its completion.
	r = c.send(cv, "d8f3c1a2-01", "[FIRING] HighCPU")
	if r.status != http.StatusCreated || r.header.Get("Location") == "" {
		t.Fatalf("sendMessage: status %d location %q", r.status, r.header.Get("Location"))
	}
	if r.header.Get("X-MS-UcwaVersion") == "" {
		t.Error("sendMessage response has no X-MS-UcwaVersion")
	}
	loc := c.abs(r.header.Get("Location"))
	e := l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
	var msg struct {
		OperationID string `json:"operationId"`
		Direction   string `json:"direction"`
		TimeStamp   string `json:"timeStamp"`
	}
	if err := json.Unmarshal(e.Embedded["message"], &msg); err != nil {
		t.Fatalf("message completed has no embedded message: %v", err)
	}
	if e.Status != "Success" || msg.OperationID != "d8f3c1a2-01" || msg.Direction != "Outgoing" || !strings.HasPrefix(msg.TimeStamp, "/Date(") {
		t.Errorf("message completed = %+v %+v", e, msg)
	}
	if got := c.abs(e.Link.Href); got != loc {
		t.Errorf("completed link %q != Location %q", got, loc)
	}

	// The message resource reads Succeeded.
	var m struct {
		Status string `json:"status"`
	}
	c.do("GET", loc, "", "").json(t, &m)
	if m.Status != "Succeeded" {
		t.Errorf("message status = %q, want Succeeded", m.Status)
	}

	// Step 13: delete the application.
	l.stop()
	if r := c.do("DELETE", a.self, "", ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE application = %d, want 204", r.status)
	}

	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].Body != "[FIRING] HighCPU" || msgs[0].OperationID != "d8f3c1a2-01" ||
		msgs[0].Recipient != "sip:oncall@contoso.com" || msgs[0].Pool != "fe1" {
		t.Errorf("Messages() = %+v", msgs)
	}
	noViolations(t, s)
	st := s.Stats()
	if st.ApplicationsCreated != 1 || st.TokensIssued != 1 || st.MaxConcurrentPGets != 1 || st.DiscoveryCalls["internal"] != 1 {
		t.Errorf("Stats() = %+v", st)
	}
}
