package ucwasim

import (
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
)

// startRequest is the body of POST startMessaging.
type startRequest struct {
	To          string `json:"to"`
	OperationID string `json:"operationId"`
	Subject     string `json:"subject"`
	Importance  string `json:"importance"`
	ThreadID    string `json:"threadId"`
	Links       struct {
		Message *hrefLink `json:"message"`
	} `json:"_links"`
}

func (p *pool) serveStartMessaging(w *statusWriter, r *http.Request, a *application) {
	s := p.s
	var req startRequest
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		req.To = r.URL.Query().Get("to")
	} else if !p.decodeJSON(w, r, &req) {
		return
	}
	switch {
	case !strings.HasPrefix(strings.ToLower(req.To), "sip:") || len(req.To) < 5 || len(req.To) > 256:
		p.badParam(w, r, "bad-body", "to must be a sip: URI")
		return
	case len(req.OperationID) > maxOperationID:
		p.badParam(w, r, "operationid-too-long", "operationId is longer than 50 characters")
		return
	case len(req.Subject) > maxSubjectLen:
		p.badParam(w, r, "bad-body", "subject is longer than 250 characters")
		return
	case len(req.ThreadID) > maxFieldLen:
		p.badParam(w, r, "bad-body", "threadId is longer than 100 characters")
		return
	}
	switch req.Importance {
	case "", "Normal", "Urgent", "Emergency":
	default:
		p.badParam(w, r, "bad-body", "importance must be Normal, Urgent or Emergency")
		return
	}
	var first *message
	if req.Links.Message != nil {
		ct, text, err := parseDataURI(req.Links.Message.Href)
		if err != nil || len(text) > maxBodyBytes {
			p.badParam(w, r, "bad-body", "_links.message must be a text data: URI")
			return
		}
		first = &message{operationID: req.OperationID, contentType: ct, body: text, status: "Succeeded"}
	}
	if s.cfg.RequireMakeMeAvailable {
		a.mu.Lock()
		ok := a.available
		a.mu.Unlock()
		if !ok {
			s.violation(r.Method, r.URL.Path, "activity-before-available", "startMessaging before makeMeAvailable (strict mode)")
			p.writeError(w, http.StatusConflict, "Conflict", "MakeMeAvailableRequired", "")
			return
		}
	}

	if req.ThreadID != "" {
		a.mu.Lock()
		dup := false
		for _, c := range a.convs {
			dup = dup || (c.thread == req.ThreadID && !c.dead)
		}
		a.mu.Unlock()
		if dup {
			p.writeError(w, http.StatusConflict, "Conflict", "ThreadIdAlreadyExists", "")
			return
		}
	}
	c := a.newConversation(req)
	c.first = first
	b := s.nextBehavior(req.To)
	early := s.early()

	a.mu.Lock()
	if a.dead != alive {
		a.mu.Unlock()
		a.writeDead(w, r, true)
		return
	}
	a.convs = append(a.convs, c)
	if early {
		c.queueStartLocked()
	}
	a.mu.Unlock()

	w.Header().Set("Location", p.href(c.inv.path))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	w.Flush()

	a.mu.Lock()
	if !early {
		c.queueStartLocked()
	}
	a.mu.Unlock()

	delay := s.scaled(b.After)
	if b.Kind == Ignore && b.After <= 0 {
		delay = s.scaled(s.cfg.InviteTimeout)
	}
	outcome := func() { c.answer(b) }
	if delay <= 0 {
		outcome()
		return
	}
	t := s.after(delay, outcome)
	a.mu.Lock()
	c.inv.timer = t
	a.mu.Unlock()
}

// parseDataURI decodes "data:text/plain;base64,..." or
// "data:text/plain,<url-encoded>" (a charset parameter is allowed).
func parseDataURI(uri string) (contentType, text string, err error) {
	rest, ok := strings.CutPrefix(uri, "data:")
	if !ok {
		return "", "", errors.New("not a data URI")
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", errors.New("data URI without a comma")
	}
	params := strings.Split(meta, ";")
	contentType = strings.ToLower(strings.TrimSpace(params[0]))
	if contentType == "" {
		contentType = "text/plain"
	}
	if contentType != "text/plain" && contentType != "text/html" {
		return "", "", errors.New("data URI is not text")
	}
	if strings.EqualFold(params[len(params)-1], "base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return "", "", fmt.Errorf("decode base64 data URI: %w", err)
		}
		return contentType, string(b), nil
	}
	text, err = url.PathUnescape(data)
	if err != nil {
		return "", "", fmt.Errorf("unescape data URI: %w", err)
	}
	return contentType, text, nil
}

// early decides whether immediate events go out before the 201.
func (s *Sim) early() bool {
	switch s.cfg.Early {
	case EarlyAlways:
		return true
	case EarlyNever:
		return false
	default:
		return mrand.IntN(2) == 0
	}
}
