package ucwasim

import (
	"net"
	"net/http"
	"strings"
)

// SetLinkHost makes pool hand out every link as an absolute URL on host
// (same scheme and port) instead of the listener's address: the discovery
// roots' user link when pool is home, the user resource, the 401
// challenge's token href, the application resource and everything embedded
// in it, event batches and events, Location headers. host names a host
// only ("localhost", "ucwa.example.net"), without a port. Requests that
// arrive with that Host header are served as usual (the listener is the
// same), and are counted in Stats.LinkHostRequests, so a test can check
// that a client which trusts only 127.0.0.1 refused the links. An empty
// host makes new links normal again; links already handed out keep
// working. Unknown pools are ignored.
func (s *Sim) SetLinkHost(pool, host string) {
	p := s.byName[pool]
	if p == nil {
		return
	}
	if host == "" {
		p.linkBase.Store(nil)
		return
	}
	_, port, _ := net.SplitHostPort(p.l.ln.Addr().String())
	base := "http://" + net.JoinHostPort(host, port)
	s.mu.Lock()
	p.linkHosts[strings.ToLower(host)] = true
	s.mu.Unlock()
	p.linked.Store(true)
	p.linkBase.Store(&base)
}

// base is the scheme and authority of the pool's absolute links.
func (p *pool) base() string {
	if b := p.linkBase.Load(); b != nil {
		return *b
	}
	return p.l.base
}

// noteLinkHost counts a request whose Host header names a host ever set
// with SetLinkHost for the pool.
func (p *pool) noteLinkHost(r *http.Request) {
	if !p.linked.Load() {
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p.s.mu.RLock()
	hit := p.linkHosts[strings.ToLower(host)]
	p.s.mu.RUnlock()
	if hit {
		p.s.rec.add(func(rc *recorder) { rc.linkReqs[p.name]++ })
	}
}
