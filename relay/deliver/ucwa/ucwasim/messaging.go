package ucwasim

import (
	"log/slog"
	"net/http"
	"time"
)

// serveConversationResource handles the URLs below a conversation.
func (p *pool) serveConversationResource(w *statusWriter, r *http.Request, rt *route, fx *effects, allow func(...string) bool) {
	c := rt.conv
	a := c.a
	switch rt.kind {
	case "sendMessage":
		if allow(http.MethodPost) {
			p.serveSendMessage(w, r, c, fx)
		}
		return
	case "cancel":
		if !allow(http.MethodPost) {
			return
		}
		a.mu.Lock()
		if c.dead || c.inv.state != "Connecting" {
			a.mu.Unlock()
			p.writeError(w, http.StatusConflict, "Conflict", "", "The invitation is not Connecting.")
			return
		}
		c.inv.state = "Cancelled"
		c.failLocked(&ucwaError{Code: "LocalFailure", Subcode: "Canceled", Message: "The invitation was canceled."})
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case "stopMessaging":
		if !allow(http.MethodPost) {
			return
		}
		a.mu.Lock()
		dead := c.dead
		if !dead {
			if c.inv.state == "Connecting" {
				c.inv.state = "Cancelled"
				c.failLocked(&ucwaError{Code: "LocalFailure", Subcode: "Canceled"})
			} else {
				c.teardownLocked(&ucwaError{Code: "Informational", Subcode: "Ended"}, false)
			}
		}
		a.mu.Unlock()
		if dead {
			p.writeError(w, p.s.cfg.StaleSendStatus, "", "", "The conversation has ended.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}

	var body map[string]any
	a.mu.Lock()
	dead := c.dead
	if rt.kind == "message" {
		body = rt.msg.renderLocked() // messages stay readable after the conversation ends
		dead = false
	} else if rt.kind == "invitation" {
		body = c.invitationLocked() // so is the invitation, with its final state
		dead = false
	}
	if !dead && body == nil {
		switch rt.kind {
		case "conversation":
			if r.Method == http.MethodDelete {
				c.teardownLocked(&ucwaError{Code: "Informational", Subcode: "Ended"}, false)
				a.mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
				return
			}
			body = c.conversationLocked()
		case "messaging":
			body = c.messagingLocked()
		case "participant":
			body = c.participantLocked(r.URL.Path == c.localPath)
		default:
			body = map[string]any{"rel": rt.kind, "_links": map[string]any{"self": link(p.href(r.URL.Path))}}
		}
	}
	a.mu.Unlock()
	methods := []string{http.MethodGet}
	if rt.kind == "conversation" {
		methods = append(methods, http.MethodDelete)
	}
	if !allow(methods...) {
		return
	}
	if dead {
		p.writeError(w, http.StatusNotFound, "NotFound", "", "The conversation has ended.")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (p *pool) serveConversations(w http.ResponseWriter, a *application) {
	a.mu.Lock()
	var items []any
	for _, c := range a.convs {
		items = append(items, link(p.href(c.path)))
	}
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"rel": "conversations",
		"_links": map[string]any{"self": link(p.href(a.convsPath) + "?filter=active"), "conversation": items}})
}

// serveSendMessage is sendMessage (PROTOCOL §6).
func (p *pool) serveSendMessage(w *statusWriter, r *http.Request, c *conversation, fx *effects) {
	s := p.s
	a := c.a
	q := r.URL.Query()
	opID, hasOp := q["operationId"]
	if !hasOp || len(opID) == 0 || opID[0] == "" {
		detail := "operationId query parameter is required"
		for _, alt := range []string{"OperationId", "OperationContext", "operationid"} {
			if q.Has(alt) {
				detail += " (got " + alt + ")"
			}
		}
		p.badParam(w, r, "missing-operationid", detail)
		return
	}
	op := opID[0]
	if len(op) > maxOperationID {
		p.badParam(w, r, "operationid-too-long", "operationId is longer than 50 characters")
		return
	}
	mt := mediaType(r)
	switch {
	case mt == "text/plain":
	case mt == "text/html" && !s.cfg.PlainOnly:
	case mt == "text/html":
		s.violation(r.Method, r.URL.Path, "wrong-content-type", "text/html while only Plain was negotiated")
		p.writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "UnsupportedMediaType", "Html was not negotiated.")
		return
	default:
		s.violation(r.Method, r.URL.Path, "wrong-content-type", "want text/plain or text/html, got "+quoteOrNone(r.Header.Get("Content-Type")))
		p.writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "UnsupportedMediaType", "")
		return
	}
	body, err := readBody(r, maxBodyBytes)
	if err != nil {
		p.writeError(w, http.StatusRequestEntityTooLarge, "EntityTooLarge", "", "")
		return
	}
	if s.cfg.MaxMessageBytes > 0 && len(body) > s.cfg.MaxMessageBytes {
		p.writeError(w, http.StatusRequestEntityTooLarge, "EntityTooLarge", "", "")
		return
	}
	if len(body) == 0 {
		p.badParam(w, r, "bad-body", "message body is empty")
		return
	}

	m := &message{c: c, path: c.msgPath + "/messages/" + randID(10), operationID: op, contentType: mt,
		body: string(body), status: "Pending", at: time.Now()}
	early := s.early()
	unconfirmed := s.isUnconfirmed(c.recipient)

	a.mu.Lock()
	if c.dead || c.msgState != "Connected" {
		issued := c.connected
		a.mu.Unlock()
		if !issued {
			s.violation(r.Method, r.URL.Path, "send-before-connected", "sendMessage before messaging was Connected")
		}
		p.writeError(w, s.cfg.StaleSendStatus, "", "", "Messaging is not connected.")
		return
	}
	p.register(m.path, &route{kind: "message", app: a, conv: c, msg: m})
	rec := Message{Pool: p.name, Application: a.id, Recipient: c.recipient, Conversation: c.id,
		OperationID: op, ContentType: mt, Body: m.body, Time: m.at}
	s.rec.add(func(rc *recorder) { rc.messages = append(rc.messages, rec) })
	if s.cfg.MessageStartedEvents {
		// Pending: rendered before the outcome is decided below.
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "message", m.path, "started", nil, "", m.renderLocked()))
	}
	var completed *event
	switch {
	case unconfirmed:
		// Accepted, never confirmed: Pending forever, no completed event.
	case fx.fail:
		m.status = "Failed"
		code, sub := fx.code, fx.subcode
		if code == "" {
			code, sub = "RemoteFailure", "Unreachable"
		}
		completed = a.newEvent(prioHigh, "conversation", c.path, "message", m.path, "completed",
			map[string]any{"status": "Failure", "reason": ucwaError{Code: code, Subcode: sub, Message: "The message could not be delivered."}},
			"", m.renderLocked())
	default:
		m.status = "Succeeded" // also when the completion is suppressed: it was delivered
		if !fx.suppress {
			completed = a.newEvent(prioHigh, "conversation", c.path, "message", m.path, "completed",
				map[string]any{"status": "Success"}, "", m.renderLocked())
		}
	}
	if early && completed != nil {
		a.enqueueLocked(completed)
		completed = nil
	}
	a.mu.Unlock()
	s.logger.Info("ucwa message accepted", slog.String("pool", p.name), slog.String("application", a.id),
		slog.String("recipient", c.recipient), slog.String("operation_id", op), slog.Int("bytes", len(body)))

	w.Header().Set("Location", p.href(m.path))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	w.Flush()
	if completed != nil {
		a.mu.Lock()
		a.enqueueLocked(completed)
		a.mu.Unlock()
	}
}

// EndConversations makes the server end every live conversation with sip:
// participant deleted, messaging updated (Disconnected) and conversation
// deleted events; the conversation URLs then answer 404.
func (s *Sim) EndConversations(sip string) {
	key := normalizeSIP(sip)
	for _, a := range s.liveApps() {
		a.mu.Lock()
		for _, c := range append([]*conversation(nil), a.convs...) {
			if c.recipient != key || c.dead {
				continue
			}
			if c.inv.state == "Connecting" {
				c.inv.state = "Failed"
				c.failLocked(&ucwaError{Code: "RemoteFailure", Subcode: "CallTerminated"})
				continue
			}
			c.teardownLocked(&ucwaError{Code: "Informational", Subcode: "Ended", Message: "The conversation was ended."}, true)
		}
		a.mu.Unlock()
	}
}
