package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// chromium finds Debian's chromium. Without it the browser tests skip,
// unless RELAY_REQUIRE_BROWSER=1 (set by deploy/local/test.sh, which
// installs it), which makes a missing browser a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RELAY_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not installed and RELAY_REQUIRE_BROWSER=1: run the tests with deploy/local/test.sh")
	}
	t.Skip("chromium is not installed; deploy/local/test.sh installs it")
	return ""
}

// artifacts is where the browser tests write their screenshots:
// $RELAY_TEST_ARTIFACTS, else a directory of the test's own (logged).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RELAY_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// a11yCheck is evaluated on every page: it lists what a keyboard or a
// screen reader user would miss. Empty when all is well.
const a11yCheck = `(() => {
  const problems = [];
  if (document.querySelectorAll("h1").length !== 1) problems.push("want exactly one h1");
  if (!document.documentElement.lang) problems.push("no lang on html");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (el.labels.length === 0 && !el.getAttribute("aria-label")) problems.push("unlabelled " + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll("a, button, input:not([type=hidden]), select, textarea, summary")) {
    if (el.tabIndex < 0) problems.push("not reachable by Tab: " + el.outerHTML.slice(0, 80));
    if ((el.tagName === "A" || el.tagName === "BUTTON") && !el.textContent.trim() && !el.getAttribute("aria-label")) problems.push("no name: " + el.outerHTML.slice(0, 80));
  }
  for (const t of document.querySelectorAll("table")) if (!t.caption) problems.push("table without caption");
  return problems.join("; ");
})()`

// inertCheck lists anything on the page a sender's value could have made
// active: scripts other than the console's, images, event handlers, links
// leaving the console.
const inertCheck = `(() => {
  const problems = [];
  for (const s of document.scripts) if (s.getAttribute("src") !== "/ui/static/console.js") problems.push("script " + s.outerHTML.slice(0, 80));
  if (document.images.length) problems.push(document.images.length + " images");
  for (const el of document.querySelectorAll("*")) {
    for (const a of el.attributes) if (a.name.startsWith("on")) problems.push("handler " + a.name + " on " + el.tagName);
  }
  for (const a of document.querySelectorAll("[href]")) if (!a.getAttribute("href").startsWith("/ui/") && !a.getAttribute("href").startsWith("#")) problems.push("link " + a.getAttribute("href"));
  return problems.join("; ");
})()`

// TestConsoleInBrowser drives the console in headless Chromium against a
// relay, PostgreSQL and the UCWA simulator: sign in with the keyboard,
// filter the list, open a dead delivery, redeliver it, see the new
// attempt delivered, sign out. Every page is checked for hostile content
// that came alive and for what keyboard and screen reader users need, and
// a screenshot of each is written.
func TestConsoleInBrowser(t *testing.T) {
	chrome := chromium(t)
	dir := artifacts(t)
	sim := newSim(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("console-pass-e2e"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users.yml")
	if err := os.WriteFile(users, []byte("basic_auth_users:\n  anna: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startRelayOpts(t, "console", sim, relaytest.NewDatabase(t), relayOpts{extraYAML: "console:\n  users_file: " + users + "\n"})
	send := newSender(t, p.base)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// History to look at: team4 declines, so its delivery of a db
	// notification ends dead; a hostile alert goes to prod.
	sim.SetRecipient(recipientSIP(4), ucwasim.Behavior{Kind: ucwasim.Decline})
	dbIDs := send.post(ctx, "db", relaytest.Notification("DiskFull", 1, "firing"))
	hostile := send.post(ctx, "prod", relaytest.HostileNotification())
	for i := range 6 {
		send.post(ctx, "net", relaytest.Notification(fmt.Sprintf("HighLatency%d", i), 1, "firing"))
	}
	views := waitFinal(t, p.base, append(dbIDs, hostile...), time.Minute)
	dead := dbIDs[0]
	if views[dead].State != "dead" {
		t.Fatalf("team4's delivery %s is %s, want dead", dead, views[dead].State)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "en-US"))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Any dialog is a hostile alert() that ran; any console message about
	// the Content-Security-Policy is something inline that was blocked.
	var mu sync.Mutex
	var alive []string
	go func() {
		for ev, err := range chromedp.Events(bctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			mu.Lock()
			alive = append(alive, "dialog: "+ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	go func() {
		for msg, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			if s := fmt.Sprint(msg); strings.Contains(s, "Content Security Policy") || strings.Contains(s, "Refused") {
				mu.Lock()
				alive = append(alive, "console: "+s)
				mu.Unlock()
			}
		}
	}()

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		return s
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// check inspects the page shown and writes its screenshot.
	check := func(name string) {
		t.Helper()
		if problems := eval(a11yCheck); problems != "" {
			t.Errorf("%s: accessibility: %s", name, problems)
		}
		if problems := eval(inertCheck); problems != "" {
			t.Errorf("%s: a sender's value came alive: %s", name, problems)
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in, with the keyboard only: type, Tab, type, Enter.
	do("open the console", chromedp.Navigate(p.base+"/ui/deliveries"), chromedp.WaitVisible(chromedp.ID("username")))
	check("signin")
	do("sign in",
		chromedp.Focus(chromedp.ID("username")), chromedp.KeyEvent("anna"), chromedp.KeyEvent("\t"),
		chromedp.KeyEvent("console-pass-e2e"), chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.ID("f-route")))
	if got := text("h1"); got != "Deliveries" {
		t.Fatalf("after sign-in: h1 %q, want the page asked for first", got)
	}
	check("deliveries")

	do("overview", chromedp.Navigate(p.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("figure.chart")))
	if s := text("main"); !strings.Contains(s, "Held by") || !strings.Contains(s, "lease generation 1") || !strings.Contains(s, "last attempt") || !strings.Contains(s, "Dead and uncertain deliveries") {
		t.Errorf("overview does not show the session, its pool and the dead delivery:\n%s", s)
	}
	check("overview")

	// Filter: route db, state dead, through the form; the filters land in
	// the URL.
	do("filter",
		chromedp.Navigate(p.base+"/ui/deliveries"), chromedp.WaitVisible(chromedp.ID("f-route")),
		chromedp.SetValue(chromedp.ID("f-route"), "db"), chromedp.SetValue(chromedp.ID("f-state"), "dead"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	// The link is on the unfiltered page too: wait for the new page first.
	for i := 0; !strings.Contains(location(), "state=dead"); i++ {
		if i == 200 {
			t.Fatalf("filtered list at %s, want the filters in the URL", location())
		}
		time.Sleep(50 * time.Millisecond)
	}
	do("filtered", chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/deliveries/`+dead+`"]`)))
	if loc := location(); !strings.Contains(loc, "route=db") {
		t.Errorf("filtered list at %s, want the route in the URL too", loc)
	}
	if rows := eval(`String(document.querySelectorAll("table.list tbody tr").length)`); rows != "1" {
		t.Errorf("filtered list has %s rows, want the one dead delivery", rows)
	}
	check("deliveries-filtered")

	// The hostile alert, in the list and on its own page.
	do("search", chromedp.Navigate(p.base+"/ui/deliveries?q=evil"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	if s := text("table.list"); !strings.Contains(s, `Evil<script>alert("relay")</script>`) {
		t.Errorf("the hostile alert name is not shown as text:\n%s", s)
	}
	check("deliveries-hostile")
	do("hostile detail", chromedp.Navigate(p.base+"/ui/deliveries/"+hostile[0]), chromedp.WaitVisible(chromedp.CSS("pre.text")),
		chromedp.Click(chromedp.CSS("details summary")))
	if s := text("pre.payload"); !strings.Contains(s, relaytest.HostileImg) || !strings.Contains(s, "<U+202E>") {
		t.Errorf("the payload does not show the hostile values as text:\n%s", s)
	}
	check("delivery-hostile")

	// Open the dead delivery from the list, redeliver it (team4 accepts
	// now) with the keyboard, and wait for the new attempt.
	sim.SetRecipient(recipientSIP(4))
	do("open the dead delivery",
		chromedp.Navigate(p.base+"/ui/deliveries?route=db&state=dead"),
		chromedp.Click(chromedp.CSS(`a[href="/ui/deliveries/`+dead+`"]`)),
		chromedp.WaitVisible(chromedp.ID("attempts")))
	check("delivery")
	do("ask to redeliver", chromedp.Click(chromedp.CSS(`a.button[href$="/redeliver"]`)), chromedp.WaitVisible(chromedp.ID("confirm-redeliver")))
	check("confirm")
	focused := ""
	for range 40 { // Tab until the confirm button has the focus
		do("tab", chromedp.KeyEvent("\t"))
		if focused = eval(`document.activeElement.id`); focused == "confirm-redeliver" {
			break
		}
	}
	if focused != "confirm-redeliver" {
		t.Fatal("Tab never reached the Redeliver button")
	}
	do("redeliver", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("p.flash")))
	deadline := time.Now().Add(time.Minute)
	for {
		rows := eval(`String(document.querySelectorAll("#attempts tbody tr").length)`)
		state := text("dd .state")
		if rows == "2" && state == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after redelivering: %s attempts, state %s; want the second one delivered", rows, state)
		}
		time.Sleep(200 * time.Millisecond)
		do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("attempts")))
	}
	if s := text("ol.timeline"); !strings.Contains(s, "redelivered by anna: through the console, was dead") {
		t.Errorf("the timeline does not say who redelivered:\n%s", s)
	}
	check("delivery-redelivered")

	do("preview", chromedp.Navigate(p.base+"/ui/preview?route=prod"), chromedp.WaitVisible(chromedp.ID("p-notification")))
	check("preview")

	// Sign out; the console is closed again.
	do("sign out", chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)))
	// The page changes under the poll: a failed read is tried again.
	for i := 0; ; i++ {
		h1, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("h1") ? document.querySelector("h1").textContent : ""`))
		if err == nil && h1 == "Signed out" {
			break
		}
		if i == 200 {
			t.Fatalf("after sign-out: h1 %q (%v)", h1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("signedout")
	do("after sign-out", chromedp.Navigate(p.base+"/ui/deliveries"), chromedp.WaitVisible(chromedp.ID("username")))

	mu.Lock()
	defer mu.Unlock()
	if len(alive) > 0 {
		t.Errorf("the browser ran or refused something: %v", alive)
	}
}
