package ucwasim

import (
	"fmt"
	"strings"
)

// ControlCall is one call of the HTTP control API.
type ControlCall struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Query names the query parameters, e.g. "pool=NAME".
	Query string `json:"query,omitempty"`
	Does  string `json:"does"`
	// Body is an example JSON body.
	Body string `json:"body,omitempty"`
}

// ControlAPI lists every call of the control API. It is the one list: the
// control server registers its handlers from it, GET /sim/ serves it, and
// ucwa-sim -h prints it. Durations in bodies are Go strings ("250ms").
var ControlAPI = []ControlCall{
	{Method: "GET", Path: "/sim/messages", Does: "the messages the server accepted, oldest first"},
	{Method: "GET", Path: "/sim/violations", Does: "protocol violations of the client, incl. retry-before-retry-after"},
	{Method: "GET", Path: "/sim/stats", Does: "counters, incl. MaxRequestsPerSecond and LinkHostRequests per host"},
	{Method: "GET", Path: "/sim/requests", Does: "the recent request log"},
	{Method: "GET", Path: "/sim/conversations", Does: "every conversation and its state"},
	{Method: "GET", Path: "/sim/rate", Query: "host=H&from=T&to=T",
		Does: `requests to host H (internal, external or a pool) over [from, to), RFC 3339 times, both optional: {"host","maxPerSecond","total"}`},
	{Method: "POST", Path: "/sim/pools/{pool}/gone",
		Does: "fail the pool: every request to it gets 410 CannotRedirect (the token endpoint excepted); its applications die"},
	{Method: "POST", Path: "/sim/pools/{pool}/recover", Does: "bring a failed pool back: it serves new applications again"},
	{Method: "POST", Path: "/sim/home", Query: "pool=NAME", Does: "discovery sends the bot account to pool NAME from now on (fail over, fail back)"},
	{Method: "PUT", Path: "/sim/pools/{pool}/link-host", Body: `{"host":"localhost"}`,
		Does: `the pool hands out links on that host name (same port); {"host":""} restores`},
	{Method: "PUT", Path: "/sim/recipients/{sip}", Body: `[{"kind":"decline"}]`,
		Does: "script how the recipient answers invitations, one entry per attempt, the last repeating: kind accept, decline, " +
			`ignore, notFound, offline, dnd or forbidden, after a delay ("after":"20s" slows it down); [] restores accept at once`},
	{Method: "PUT", Path: "/sim/recipients/{sip}/unconfirmed", Body: `{"on":true}`,
		Does: `accept the recipient's messages but never confirm them (status Pending); {"on":false} restores`},
	{Method: "POST", Path: "/sim/faults", Body: `{"status":503,"code":"ServiceUnavailable","retryAfter":"1","count":25}`,
		Does: `inject a fault: answer matching requests (any, or "pool", "resource") with a status, a delay ("delay":"5s"), ` +
			"a reset connection or a failed message, count times; answers its id"},
	{Method: "DELETE", Path: "/sim/faults", Does: "clear every injected fault"},
	{Method: "POST", Path: "/sim/applications/kill", Does: "the server deletes every application: 404 ApplicationNotFound from now on"},
	{Method: "POST", Path: "/sim/applications/displace", Does: "every application gets 410 TooManyApplications, as if signed in elsewhere"},
	{Method: "POST", Path: "/sim/applications/expire-activity", Does: "every application gets 410 InactiveApplicationExpired"},
	{Method: "POST", Path: "/sim/tokens/expire", Does: "every token gets the 401 challenge"},
	{Method: "POST", Path: "/sim/events/drop", Does: "reset the held event channel requests (P-GET)"},
	{Method: "POST", Path: "/sim/events/replace", Does: "answer held P-GETs 409 PGetReplaced"},
	{Method: "POST", Path: "/sim/conversations/end", Query: "sip=URI", Does: "the server ends the recipient's conversations"},
	{Method: "POST", Path: "/sim/reply", Body: `{"sip":"sip:oncall@contoso.com","text":"ack"}`, Does: "the recipient answers in its conversations"},
}

// ControlRecipe is a task done with a few control calls, in order.
type ControlRecipe struct {
	Name  string   `json:"name"`
	Calls []string `json:"calls"`
	Note  string   `json:"note,omitempty"`
}

// ControlRecipes are common tasks, with the default pools (fe1, the
// primary, and fe2-backup) and the demo's recipient.
var ControlRecipes = []ControlRecipe{
	{Name: "fail over: the primary pool fails, discovery points at the backup",
		Calls: []string{"POST /sim/pools/fe2-backup/recover", "POST /sim/pools/fe1/gone", "POST /sim/home?pool=fe2-backup"},
		Note:  "the client rediscovers and sends through fe2-backup within a second or two"},
	{Name: "fail back: the primary returns, the backup hands its users back",
		Calls: []string{"POST /sim/pools/fe1/recover", "POST /sim/home?pool=fe1", "POST /sim/pools/fe2-backup/gone"},
		Note:  "a client stays on a pool that works, so fe2-backup fails (until the next fail over recovers it) to send it home to fe1"},
	{Name: "decline a recipient",
		Calls: []string{`PUT /sim/recipients/sip:oncall@contoso.com [{"kind":"decline"}]`, "POST /sim/conversations/end?sip=sip:oncall@contoso.com"},
		Note:  "ending the conversation makes the next message invite again; restore with the body []"},
	{Name: "slow a recipient",
		Calls: []string{`PUT /sim/recipients/sip:oncall@contoso.com [{"kind":"accept","after":"20s"}]`, "POST /sim/conversations/end?sip=sip:oncall@contoso.com"},
		Note:  "the next invitation is answered after 20 s of protocol time, scaled by -time-scale"},
	{Name: "a busy server", Calls: []string{`POST /sim/faults {"status":503,"code":"ServiceUnavailable","retryAfter":"1","count":25}`, "DELETE /sim/faults"}},
	{Name: "messages never confirmed", Calls: []string{`PUT /sim/recipients/sip:oncall@contoso.com/unconfirmed {"on":true}`},
		Note: "a client cannot tell whether they arrived"},
}

// ControlHelp returns ControlAPI and ControlRecipes as text for people,
// with URLs relative to the control URL.
func ControlHelp() string {
	var b strings.Builder
	b.WriteString("Control API (GET /sim/ lists it as JSON):\n")
	for _, c := range ControlAPI {
		path := c.Path
		if c.Query != "" {
			path += "?" + c.Query
		}
		fmt.Fprintf(&b, "  %-6s %-36s %s\n", c.Method, path, c.Does)
		if c.Body != "" {
			fmt.Fprintf(&b, "  %-6s %-36s e.g. %s\n", "", "", c.Body)
		}
	}
	b.WriteString("\nRecipes:\n")
	for _, r := range ControlRecipes {
		fmt.Fprintf(&b, "  %s:\n", r.Name)
		for _, c := range r.Calls {
			fmt.Fprintf(&b, "      %s\n", c)
		}
		if r.Note != "" {
			fmt.Fprintf(&b, "    (%s)\n", r.Note)
		}
	}
	return b.String()
}
