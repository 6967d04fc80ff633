package ucwasim

import (
	"net/http"
	"time"
)

func (a *application) meLocked() map[string]any {
	p := a.p
	links := map[string]any{"self": link(p.href(a.mePath))}
	if a.available {
		links["reportMyActivity"] = link(p.href(a.activityPath))
		links["presence"] = link(p.href(a.otherPaths["presence"]))
		links["note"] = link(p.href(a.otherPaths["note"]))
		links["location"] = link(p.href(a.otherPaths["location"]))
	} else {
		links["makeMeAvailable"] = link(p.href(a.mmaPath))
	}
	user := a.s.cfg.Username
	return map[string]any{"rel": "me", "name": "Alert Bot", "uri": "sip:" + user, "_links": links}
}

// makeMeAvailableRequest is the body of POST makeMeAvailable.
type makeMeAvailableRequest struct {
	SignInAs                string   `json:"signInAs"`
	SupportedModalities     []string `json:"supportedModalities"`
	SupportedMessageFormats []string `json:"supportedMessageFormats"`
}

func (p *pool) serveMakeMeAvailable(w http.ResponseWriter, r *http.Request, a *application) {
	var req makeMeAvailableRequest
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if !p.decodeJSON(w, r, &req) {
			return
		}
	}
	for _, m := range req.SupportedModalities {
		if m != "Messaging" && m != "PhoneAudio" {
			p.s.violation(r.Method, r.URL.Path, "bad-body", "unsupported modality "+quoteOrNone(m))
			p.writeError(w, http.StatusForbidden, "Forbidden", "", "Only Messaging and PhoneAudio are allowed.")
			return
		}
	}
	switch req.SignInAs {
	case "", "Online", "Busy", "DoNotDisturb", "BeRightBack", "Away", "Offwork":
	default:
		p.badParam(w, r, "bad-body", "signInAs "+quoteOrNone(req.SignInAs)+" is not a known value")
		return
	}
	a.mu.Lock()
	if a.available {
		a.mu.Unlock()
		p.writeError(w, http.StatusConflict, "Conflict", "AlreadyExists", "")
		return
	}
	a.available = true
	a.lastActivity = time.Now()
	a.armActivityLocked()
	a.enqueueLocked(a.newEvent(prioMedium, "me", a.mePath, "me", a.mePath, "updated", nil, "", a.meLocked()))
	a.enqueueLocked(a.newEvent(prioMedium, "communication", a.commPath, "communication", a.commPath, "updated", nil, "", a.communicationLocked()))
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (p *pool) serveReportMyActivity(w http.ResponseWriter, r *http.Request, a *application) {
	a.mu.Lock()
	if !a.available {
		a.mu.Unlock()
		p.s.violation(r.Method, r.URL.Path, "activity-before-available", "reportMyActivity before makeMeAvailable")
		p.writeError(w, http.StatusConflict, "Conflict", "MakeMeAvailableRequired", "")
		return
	}
	a.armActivityLocked()
	now := time.Now()
	gap := now.Sub(a.lastActivity)
	a.lastActivity = now
	a.mu.Unlock()
	p.s.rec.add(func(rc *recorder) { rc.maxActivity = max(rc.maxActivity, gap) })
	w.WriteHeader(http.StatusNoContent)
}
