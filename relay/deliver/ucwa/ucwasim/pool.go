package ucwasim

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// pool is one front-end pool: discovery user resource, token endpoint and
// UCWA, on its own listener.
type pool struct {
	s         *Sim
	name      string
	l         *listener
	fqdn      string
	appsPath  string
	gone      atomic.Bool
	version   atomic.Int32           // highest resource version served, default 2
	routes    map[string]*route      // guarded by s.mu
	linkBase  atomic.Pointer[string] // "http://host:port" set by SetLinkHost; nil: the listener's base
	linked    atomic.Bool            // SetLinkHost was ever called
	linkHosts map[string]bool        // every host set with SetLinkHost; guarded by s.mu
}

// route is what an issued path points at.
type route struct {
	kind string // resource name, as in Fault.Resource
	app  *application
	conv *conversation
	inv  *invitation
	msg  *message
}

func newPool(s *Sim, name string, l *listener) *pool {
	p := &pool{
		s:         s,
		name:      name,
		l:         l,
		fqdn:      name + "." + s.cfg.Domain,
		appsPath:  "/ucwa/oauth/v1/" + randID(6) + "/applications",
		routes:    map[string]*route{},
		linkHosts: map[string]bool{},
	}
	p.version.Store(2)
	return p
}

// challenge returns the WWW-Authenticate values of the 401 (PROTOCOL §2.1).
func (p *pool) challenge() []string {
	s := p.s
	bearer := `Bearer trusted_issuers="` + bearerIssuer + "@" + s.cfg.Domain + `", client_id="` + bearerClientID + `"`
	oauth := `MsRtcOAuth href="` + p.abs(tokenPath) + `",grant_type="` + grantTypesValue + `"`
	if s.cfg.UnquotedChallengeHref {
		oauth = `MsRtcOAuth href=` + p.abs(tokenPath) + `,grant_type="` + grantTypesValue + `"`
	}
	if s.cfg.CombinedChallenge {
		return []string{bearer + ", " + oauth}
	}
	return []string{bearer, oauth}
}

// href renders a path as a link: sometimes relative, sometimes absolute, so
// clients must resolve links properly. With a link host (SetLinkHost) every
// link is absolute on that host.
func (p *pool) href(path string) string {
	if b := p.linkBase.Load(); b != nil {
		return *b + path
	}
	if len(path) > 0 && path[len(path)-1]&1 == 0 {
		return p.l.base + path
	}
	return path
}

func (p *pool) abs(path string) string { return p.base() + path }

// register makes a path known to the pool.
func (p *pool) register(path string, rt *route) {
	p.s.mu.Lock()
	p.routes[path] = rt
	p.s.mu.Unlock()
}

// resolve names the resource a path addresses.
func (p *pool) resolve(path string) (string, *route) {
	switch path {
	case userPath:
		return "user", nil
	case tokenPath:
		return "token", nil
	case xframePath:
		return "xframe", nil
	case rootPath, "/":
		return "root", nil
	case p.appsPath:
		return "applications", nil
	}
	p.s.mu.RLock()
	rt := p.routes[path]
	p.s.mu.RUnlock()
	if rt == nil {
		return "unknown", nil
	}
	return rt.kind, rt
}

// effects are the sendMessage/events faults a handler applies itself.
type effects struct {
	suppress bool
	fail     bool
	code     string
	subcode  string
}

// ServeHTTP serves one pool request: request log, faults, pool state,
// authentication, then the resource.
func (p *pool) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p.s.noteArrival(p.name)
	p.s.checkRetryAfter(p.name, r, start)
	p.noteLinkHost(r)
	w := &statusWriter{ResponseWriter: rw, retry: &p.s.retry, retryKey: retryKey{p.name, r.Method, r.URL.Path}, ctx: r.Context()}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	resource, rt := p.resolve(r.URL.Path)
	w.count = func(code int) { p.s.countRequest(resource, code) }
	faulted := false
	defer func() {
		w.writePad()
		status := w.status
		if w.reset {
			status = 0
		}
		p.s.finishRequest(w, LogEntry{Time: start, Host: p.name, Method: r.Method, Path: r.URL.Path,
			Resource: resource, Status: status, Latency: time.Since(start), Fault: faulted})
	}()

	if limit := p.s.cfg.MaxOutstanding; limit > 0 && strings.HasPrefix(r.URL.Path, "/ucwa/") && resource != "events" {
		n := p.s.outstanding.Add(1)
		defer p.s.outstanding.Add(-1)
		if int(n) > limit {
			w.Header().Set("X-MS-UcwaVersion", ucwaVersion)
			p.writeError(w, http.StatusTooManyRequests, "TooManyRequests", "", "Too many outstanding requests.")
			return
		}
	}

	var fx effects
	if f, ok := p.s.faults.take(p.name, resource); ok {
		faulted = true
		p.s.countFault()
		if done := p.applyFault(w, r, f, &fx); done {
			return
		}
		if f.Reset && f.AfterEffect {
			// Serve normally into the void, then drop the connection.
			sw := &swallowWriter{h: http.Header{}}
			w.ResponseWriter = sw
			w.swallow = true
			defer w.resetConnWith(rw)
		}
	}
	if strings.HasPrefix(r.URL.Path, "/ucwa/") {
		w.Header().Set("X-MS-UcwaVersion", ucwaVersion)
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("X-Ms-Origin") != "" {
		// A server-side client must not act as a cross-domain browser app;
		// the origin is not on the server's allow list (PROTOCOL §0.2).
		p.s.violation(r.Method, r.URL.Path, "origin-header", "request carries Origin or X-Ms-Origin")
		p.writeError(w, http.StatusForbidden, "Forbidden", "", "Service does not allow a cross domain request from this origin.")
		return
	}
	if p.gone.Load() && resource != "token" && resource != "xframe" {
		p.writeError(w, http.StatusGone, "Gone", "CannotRedirect", "")
		return
	}
	switch resource {
	case "root":
		p.serveRoot(w, r)
	case "user":
		p.serveUser(w, r)
	case "token":
		p.serveToken(w, r)
	case "xframe":
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>xframe</body></html>"))
	default:
		if !p.authenticate(w, r, resource) {
			return
		}
		if v := r.Header.Get("X-MS-RequiresMinResourceVersion"); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n > int(p.version.Load()) {
				p.writeError(w, http.StatusNotFound, "NotFound", "APIVersionNotSupported",
					"The requested resource version is not supported by this server.")
				return
			}
		}
		switch resource {
		case "applications":
			p.serveApplications(w, r)
		case "unknown":
			p.serveUnknown(w, r)
		default:
			p.serveAppResource(w, r, rt, &fx)
		}
	}
}

// swallowWriter discards a response (the connection is reset afterwards).
type swallowWriter struct{ h http.Header }

func (s *swallowWriter) Header() http.Header         { return s.h }
func (s *swallowWriter) Write(b []byte) (int, error) { return len(b), nil }
func (s *swallowWriter) WriteHeader(int)             {}

func (w *statusWriter) resetConnWith(orig http.ResponseWriter) {
	w.ResponseWriter = orig
	w.resetConn()
}

// applyFault applies f. It returns true when the request was answered.
func (p *pool) applyFault(w *statusWriter, r *http.Request, f Fault, fx *effects) bool {
	w.pad = f.PadBody
	if f.Delay > 0 {
		p.s.sleep(r, f.Delay)
	}
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-r.Context().Done():
		case <-p.s.closing:
		}
	}
	if f.Reset && !f.AfterEffect {
		w.resetConn()
		return true
	}
	if f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Location != "" {
			w.Header().Set("Location", f.Location)
		}
		if f.Code == "" {
			p.diagHeaders(w.Header(), f.Status, "")
			writeProxyError(w, f.Status)
		} else {
			if strings.HasPrefix(r.URL.Path, "/ucwa/") {
				w.Header().Set("X-MS-UcwaVersion", ucwaVersion)
			}
			p.writeError(w, f.Status, f.Code, f.Subcode, "")
		}
		return true
	}
	fx.suppress = f.SuppressCompletion
	fx.fail = f.MessageFailure
	fx.code, fx.subcode = f.Code, f.Subcode
	return false
}

// writeChallenge answers the §2.1 401: HTML body, both challenges.
func (p *pool) writeChallenge(w http.ResponseWriter) {
	h := w.Header()
	for _, c := range p.challenge() {
		h.Add("WWW-Authenticate", c)
	}
	h.Set("Content-Type", "text/html")
	p.diagHeaders(h, http.StatusUnauthorized, "")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte("<html><head><title>401 - Unauthorized</title></head><body><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1></body></html>"))
}

// rejectToken answers an invalid or expired token: the 401 challenge, or
// the online 403 InvalidToken when configured.
func (p *pool) rejectToken(w http.ResponseWriter) {
	if !p.s.cfg.ForbidInvalidTokens {
		p.writeChallenge(w)
		return
	}
	h := w.Header()
	h.Set("Warning", `120 `+p.fqdn+` "InvalidToken"`)
	h.Set("X-MS-Server-Fqdn", p.fqdn)
	h.Set("X-Ms-diagnostics", `28055;reason="The OAuth token is invalid.";source="`+p.fqdn+`"`)
	h.Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte("<html><body><h1>403 - Forbidden</h1></body></html>"))
}

// authenticate checks the bearer token; on failure it answers the 401
// challenge and records a violation when the client broke the protocol.
func (p *pool) authenticate(w http.ResponseWriter, r *http.Request, resource string) bool {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if !(resource == "user" && r.Method == http.MethodGet) {
			p.s.violation(r.Method, r.URL.Path, "no-token", "request to "+resource+" without Authorization")
		}
		p.writeChallenge(w)
		return false
	}
	val, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		p.s.violation(r.Method, r.URL.Path, "unknown-token", "Authorization is not a Bearer token")
		p.writeChallenge(w)
		return false
	}
	p.s.mu.RLock()
	t := p.s.tokens[strings.TrimSpace(val)]
	p.s.mu.RUnlock()
	switch {
	case t == nil:
		p.s.violation(r.Method, r.URL.Path, "unknown-token", "bearer token was never issued")
		p.rejectToken(w)
		return false
	case t.revoked.Load() || time.Now().After(t.expires):
		p.rejectToken(w) // expected: the client renews
		return false
	case t.pool != p && !p.s.cfg.SharedTokens:
		p.writeChallenge(w) // expected after failover: pool-scoped token
		return false
	}
	return true
}

// rootHandler serves a discovery root.
type rootHandler struct {
	s     *Sim
	name  string
	index int
}

// ServeHTTP serves the discovery root document.
func (h *rootHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.s.noteArrival(h.name)
	h.s.checkRetryAfter(h.name, r, start)
	w := &statusWriter{ResponseWriter: rw, count: func(code int) { h.s.countRequest("root", code) },
		retry: &h.s.retry, retryKey: retryKey{h.name, r.Method, r.URL.Path}, ctx: r.Context()}
	faulted := false
	defer func() {
		w.writePad()
		status := w.status
		if w.reset {
			status = 0
		}
		h.s.finishRequest(w, LogEntry{Time: start, Host: h.name, Method: r.Method, Path: r.URL.Path,
			Resource: "root", Status: status, Latency: time.Since(start), Fault: faulted})
	}()
	home := h.s.homePool()
	if f, ok := h.s.faults.takeAlias(h.name, "root", "root"); ok {
		faulted = true
		h.s.countFault()
		var fx effects
		if home.applyFault(w, r, f, &fx) {
			return
		}
	}
	if r.URL.Path != "/" && r.URL.Path != rootPath {
		h.s.violation(r.Method, r.URL.Path, "unissued-url", "discovery root serves only / and "+rootPath)
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		h.s.violation(r.Method, r.URL.Path, "method-not-allowed", "discovery root takes GET only")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.s.rec.add(func(rc *recorder) { rc.discovery[h.name]++ })
	self := h.s.roots[h.index].base + rootPath + "?originalDomain=" + h.s.cfg.Domain
	writeJSON(w, http.StatusOK, map[string]any{"_links": map[string]any{
		"self":   link(self),
		"user":   link(home.abs(userPath) + "?originalDomain=" + h.s.cfg.Domain),
		"xframe": link(home.abs(xframePath)),
	}})
}

// hrefLink is a UCWA link object.
type hrefLink struct {
	Href  string `json:"href"`
	Title string `json:"title,omitempty"`
}

func link(href string) hrefLink { return hrefLink{Href: href} }

// serveRoot answers the pool-local discovery root.
func (p *pool) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		p.s.violation(r.Method, r.URL.Path, "method-not-allowed", "root takes GET only")
		p.writeError(w, http.StatusMethodNotAllowed, "", "", "")
		return
	}
	p.s.rec.add(func(rc *recorder) { rc.discovery[p.name]++ })
	home := p.s.homePool()
	writeJSON(w, http.StatusOK, map[string]any{"_links": map[string]any{
		"self":   link(p.abs(rootPath)),
		"user":   link(home.abs(userPath)),
		"xframe": link(home.abs(xframePath)),
	}})
}

// serveUser answers the user resource: 401 without a token, a redirect
// when the user is homed elsewhere, else the applications link.
func (p *pool) serveUser(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		p.s.violation(r.Method, r.URL.Path, "method-not-allowed", "user takes GET only")
		p.writeError(w, http.StatusMethodNotAllowed, "", "", "")
		return
	}
	p.s.rec.add(func(rc *recorder) { rc.discovery[p.name]++ })
	if !p.authenticate(w, r, "user") {
		return
	}
	home := p.s.homePool()
	if home != p {
		writeJSON(w, http.StatusOK, map[string]any{"_links": map[string]any{
			"self":     link(p.abs(userPath)),
			"redirect": link(home.abs(userPath)),
		}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"_links": map[string]any{
		"self":         link(p.abs(userPath)),
		"applications": link(p.abs(p.appsPath)),
		"xframe":       link(p.abs(xframePath)),
	}})
}

// serveUnknown answers a path the pool never issued.
func (p *pool) serveUnknown(w http.ResponseWriter, r *http.Request) {
	rule, detail := "unissued-url", "path was never issued by pool "+p.name
	p.s.mu.RLock()
	for _, other := range p.s.pools {
		if other != p && other.routes[r.URL.Path] != nil {
			rule, detail = "foreign-url", "path was issued by pool "+other.name+", not "+p.name
			break
		}
	}
	p.s.mu.RUnlock()
	p.s.violation(r.Method, r.URL.Path, rule, detail)
	p.writeError(w, http.StatusNotFound, "NotFound", "", "The resource does not exist.")
}
