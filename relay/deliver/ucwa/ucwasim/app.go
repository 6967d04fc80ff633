package ucwasim

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// deathReason says why an application is gone; it decides the answer its
// URLs get afterwards.
type deathReason int

const (
	alive        deathReason = iota
	diedDeleted              // client DELETE: 404 ApplicationNotFound, later use is a violation
	diedKilled               // KillApplications, P-GET death timer: 404 ApplicationNotFound
	diedPoolGone             // PoolGone: 410 CannotRedirect while gone, then 404
	diedTooMany              // displaced by the cap: 410 TooManyApplications
	diedInactive             // reportMyActivity lapsed: 410 InactiveApplicationExpired
)

// application is one UCWA application with its event channel and
// conversations. a.mu guards everything below it.
type application struct {
	s    *Sim
	p    *pool
	id   string
	base string

	endpointID, userAgent, culture, instanceID string
	created                                    time.Time

	// Paths, fixed at creation.
	selfPath, mePath, mmaPath, activityPath, commPath, startPath, convsPath, eventsPath string
	otherPaths                                                                          map[string]string

	mu           sync.Mutex
	dead         deathReason
	deadCh       chan struct{}
	available    bool
	convs        []*conversation
	ev           eventChannel
	deathT       *simTimer
	activityT    *simTimer
	lastActivity time.Time // makeMeAvailable or the last reportMyActivity
}

// appRequest is the body of POST applications.
type appRequest struct {
	UserAgent  string `json:"userAgent"`
	EndpointID string `json:"endpointId"`
	Culture    string `json:"culture"`
	InstanceID string `json:"instanceId"`
}

func (p *pool) serveApplications(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		p.s.violation(r.Method, r.URL.Path, "method-not-allowed", "applications takes POST only")
		p.writeError(w, http.StatusMethodNotAllowed, "", "", "")
		return
	}
	var req appRequest
	if !p.decodeJSON(w, r, &req) {
		return
	}
	for name, v := range map[string]string{"userAgent": req.UserAgent, "endpointId": req.EndpointID, "culture": req.Culture} {
		if v == "" || len(v) > maxFieldLen {
			p.badParam(w, r, "bad-body", name+" is required and at most 100 characters")
			return
		}
	}
	if len(req.InstanceID) > maxFieldLen {
		p.badParam(w, r, "bad-body", "instanceId is at most 100 characters")
		return
	}

	s := p.s
	// Multi-tab rule: the same culture, endpointId, type and userAgent reuse
	// a live application of this pool.
	s.mu.RLock()
	var live []*application
	for _, a := range s.apps {
		if a.isAlive() {
			live = append(live, a)
		}
	}
	s.mu.RUnlock()
	for _, a := range live {
		if a.p == p && a.culture == req.Culture && a.endpointID == req.EndpointID && a.userAgent == req.UserAgent {
			writeRaw(w, http.StatusOK, a.render())
			return
		}
	}
	// Per-user cap: displace the oldest.
	for len(live) >= s.cfg.MaxApplications {
		live[0].die(diedTooMany)
		live = live[1:]
	}

	a := p.newApplication(req)
	w.Header().Set("Location", p.abs(a.selfPath))
	writeRaw(w, http.StatusCreated, a.render())
}

// decodeJSON reads a JSON request body into v, answering 415/400 itself.
func (p *pool) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt := mediaType(r); mt != "application/json" {
		p.s.violation(r.Method, r.URL.Path, "wrong-content-type", "want application/json, got "+quoteOrNone(r.Header.Get("Content-Type")))
		p.writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "UnsupportedMediaType", "")
		return false
	}
	body, err := readBody(r, 64<<10)
	if err != nil {
		p.writeError(w, http.StatusRequestEntityTooLarge, "EntityTooLarge", "", "")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		p.s.violation(r.Method, r.URL.Path, "bad-body", "body is not valid JSON for this resource")
		p.writeError(w, http.StatusBadRequest, "BadRequest", "DeserializationFailure", "")
		return false
	}
	return true
}

func (p *pool) badParam(w http.ResponseWriter, r *http.Request, rule, detail string) {
	p.s.violation(r.Method, r.URL.Path, rule, detail)
	p.writeError(w, http.StatusBadRequest, "BadRequest", "ParameterValidationFailure", detail)
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return `"` + s + `"`
}

func (p *pool) newApplication(req appRequest) *application {
	s := p.s
	id := randID(12)
	a := &application{
		s: s, p: p, id: id, base: p.appsPath + "/" + id,
		endpointID: req.EndpointID, userAgent: req.UserAgent, culture: req.Culture, instanceID: req.InstanceID,
		created: time.Now(), deadCh: make(chan struct{}),
		otherPaths: map[string]string{},
	}
	a.ev.init()
	seg := func() string { return a.base + "/" + randID(8) }
	a.selfPath = a.base
	a.mePath = seg()
	a.mmaPath = a.mePath + "/makeMeAvailable"
	a.activityPath = seg()
	a.commPath = seg()
	a.startPath = a.commPath + "/" + randID(6)
	a.convsPath = a.commPath + "/" + randID(6)
	a.eventsPath = seg()
	for _, rel := range []string{"policies", "batch", "people", "onlineMeetings", "startOnlineMeeting", "joinOnlineMeeting", "presence", "note", "location"} {
		a.otherPaths[rel] = seg()
	}
	routes := map[string]*route{
		a.selfPath:     {kind: "application", app: a},
		a.mePath:       {kind: "me", app: a},
		a.mmaPath:      {kind: "makeMeAvailable", app: a},
		a.activityPath: {kind: "reportMyActivity", app: a},
		a.commPath:     {kind: "communication", app: a},
		a.startPath:    {kind: "startMessaging", app: a},
		a.convsPath:    {kind: "conversations", app: a},
		a.eventsPath:   {kind: "events", app: a},
	}
	for rel, path := range a.otherPaths {
		routes[path] = &route{kind: rel, app: a}
	}
	s.mu.Lock()
	for path, rt := range routes {
		p.routes[path] = rt
	}
	s.apps = append(s.apps, a)
	s.mu.Unlock()
	s.rec.add(func(rc *recorder) { rc.appsMade++ })

	a.mu.Lock()
	a.armDeathLocked()
	a.mu.Unlock()
	return a
}

func (a *application) isAlive() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dead == alive
}

// armDeathLocked (re)starts the "no P-GET within 15 minutes" timer.
func (a *application) armDeathLocked() {
	a.deathT.stop()
	a.deathT = a.s.after(a.s.scaled(a.s.cfg.PGetDeathTimeout), func() { a.die(diedKilled) })
}

func (a *application) armActivityLocked() {
	a.activityT.stop()
	if a.s.cfg.ActivityTimeout < 0 {
		return
	}
	a.activityT = a.s.after(a.s.scaled(a.s.cfg.ActivityTimeout), func() { a.die(diedInactive) })
}

// die deletes the application server-side. Its held P-GET is released and
// all its URLs answer according to reason from now on.
func (a *application) die(reason deathReason) {
	a.mu.Lock()
	if a.dead != alive {
		a.mu.Unlock()
		return
	}
	a.dead = reason
	close(a.deadCh)
	a.deathT.stop()
	a.activityT.stop()
	for _, c := range a.convs {
		c.endLocked()
	}
	a.convs = nil
	a.ev.pending = nil
	a.ev.batches = nil
	a.mu.Unlock()
	a.s.rec.add(func(rc *recorder) { rc.appsGone++ })
}

// writeDead answers a request to a dead application.
func (a *application) writeDead(w http.ResponseWriter, r *http.Request, inFlight bool) {
	a.mu.Lock()
	reason := a.dead
	a.mu.Unlock()
	p := a.p
	switch reason {
	case diedTooMany:
		p.writeError(w, http.StatusGone, "Gone", "TooManyApplications",
			"You've been disconnected because your most recent sign in exceeded the server limit.")
	case diedInactive:
		p.writeError(w, http.StatusGone, "Gone", "InactiveApplicationExpired", "")
	case diedPoolGone:
		if p.gone.Load() {
			p.writeError(w, http.StatusGone, "Gone", "CannotRedirect", "")
			return
		}
		p.writeError(w, http.StatusNotFound, "NotFound", "ApplicationNotFound", "")
	default:
		if reason == diedDeleted && !inFlight {
			a.s.violation(r.Method, r.URL.Path, "deleted-application", "URL of an application the client deleted")
		}
		p.writeError(w, http.StatusNotFound, "NotFound", "ApplicationNotFound", "")
	}
}

// render returns the application resource (PROTOCOL §3.2).
func (a *application) render() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.p
	links := map[string]any{
		"self":     link(p.href(a.selfPath)),
		"policies": link(p.href(a.otherPaths["policies"])),
		"batch":    link(p.href(a.otherPaths["batch"])),
		"events":   link(p.href(a.ev.eventsHref(a.eventsPath, a.ev.nextAck()))),
	}
	if a.available {
		links["reportMyActivity"] = link(p.href(a.activityPath))
	}
	body := map[string]any{
		"rel": "application", "culture": a.culture, "userAgent": a.userAgent, "type": "Browser",
		"endpointId": a.endpointID, "_links": links,
		"_embedded": map[string]any{
			"me":             a.meLocked(),
			"people":         map[string]any{"rel": "people", "_links": map[string]any{"self": link(p.href(a.otherPaths["people"]))}},
			"onlineMeetings": map[string]any{"rel": "onlineMeetings", "_links": map[string]any{"self": link(p.href(a.otherPaths["onlineMeetings"]))}},
			"communication":  a.communicationLocked(),
		},
	}
	if a.instanceID != "" {
		body["instanceId"] = a.instanceID
	}
	b, _ := json.Marshal(body)
	return b
}

func (a *application) communicationLocked() map[string]any {
	p := a.p
	formats := []string{"Plain", "Html"}
	if a.s.cfg.PlainOnly {
		formats = []string{"Plain"}
	}
	mods := []string{}
	if a.available {
		mods = []string{"Messaging"}
	}
	return map[string]any{
		"rel": "communication", "supportedModalities": mods, "supportedMessageFormats": formats,
		a.id + "-etag-playback": "please pass this in a PUT request",
		"etag":                  "3140562359",
		"_links": map[string]any{
			"self":               link(p.href(a.commPath)),
			"conversations":      link(p.href(a.convsPath) + "?filter=active"),
			"startMessaging":     link(p.href(a.startPath)),
			"startOnlineMeeting": link(p.href(a.otherPaths["startOnlineMeeting"]) + "?onlineMeetingUri=adhoc"),
			"joinOnlineMeeting":  link(p.href(a.otherPaths["joinOnlineMeeting"])),
		},
	}
}

// serveAppResource dispatches a request to an application-owned resource.
func (p *pool) serveAppResource(w *statusWriter, r *http.Request, rt *route, fx *effects) {
	a := rt.app
	if !a.isAlive() {
		a.writeDead(w, r, false)
		return
	}
	allow := func(methods ...string) bool {
		if slices.Contains(methods, r.Method) {
			return true
		}
		p.s.violation(r.Method, r.URL.Path, "method-not-allowed", rt.kind+" does not take "+r.Method)
		p.writeError(w, http.StatusMethodNotAllowed, "", "", "")
		return false
	}
	switch rt.kind {
	case "application":
		if !allow(http.MethodGet, http.MethodDelete) {
			return
		}
		if r.Method == http.MethodDelete {
			a.die(diedDeleted)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeRaw(w, http.StatusOK, a.render())
	case "me":
		if allow(http.MethodGet) {
			a.mu.Lock()
			me := a.meLocked()
			a.mu.Unlock()
			writeJSON(w, http.StatusOK, me)
		}
	case "communication":
		if allow(http.MethodGet) {
			a.mu.Lock()
			c := a.communicationLocked()
			a.mu.Unlock()
			writeJSON(w, http.StatusOK, c)
		}
	case "makeMeAvailable":
		if allow(http.MethodPost) {
			p.serveMakeMeAvailable(w, r, a)
		}
	case "reportMyActivity":
		if allow(http.MethodPost) {
			p.serveReportMyActivity(w, r, a)
		}
	case "events":
		if allow(http.MethodGet) {
			p.serveEvents(w, r, a)
		}
	case "startMessaging":
		if allow(http.MethodPost) {
			p.serveStartMessaging(w, r, a)
		}
	case "conversations":
		if allow(http.MethodGet) {
			p.serveConversations(w, a)
		}
	case "invitation", "cancel", "conversation", "messaging", "sendMessage", "stopMessaging", "message", "participant":
		p.serveConversationResource(w, r, rt, fx, allow)
	default:
		// Resources the relay never uses: readable, not actionable.
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, map[string]any{"rel": rt.kind, "_links": map[string]any{"self": link(p.href(r.URL.Path))}})
			return
		}
		p.writeError(w, http.StatusConflict, "Conflict", "", "This service or resource is not supported.")
	}
}

// liveApps returns the applications that are alive now.
func (s *Sim) liveApps() []*application {
	s.mu.RLock()
	all := slices.Clone(s.apps)
	s.mu.RUnlock()
	out := all[:0]
	for _, a := range all {
		if a.isAlive() {
			out = append(out, a)
		}
	}
	return out
}
