package ucwasim

// PoolGone makes every UCWA request on pool (the P-GET and sendMessage
// included, and the user resource) get 410 Gone/CannotRedirect, and
// destroys its applications and conversations. Combine it with
// SetHomePool(backup) for failover, or not (F1: no backup). The token
// endpoint keeps answering.
func (s *Sim) PoolGone(pool string) {
	p := s.byName[pool]
	if p == nil {
		return
	}
	p.gone.Store(true)
	for _, a := range s.liveApps() {
		if a.p == p {
			a.die(diedPoolGone)
		}
	}
}

// PoolRecover makes pool serve again. Its old applications stay gone
// (404 ApplicationNotFound); new ones work.
func (s *Sim) PoolRecover(pool string) {
	if p := s.byName[pool]; p != nil {
		p.gone.Store(false)
	}
}

// KillApplications deletes every live application server-side; the next
// request to any of their URLs gets 404 ApplicationNotFound.
func (s *Sim) KillApplications() {
	for _, a := range s.liveApps() {
		a.die(diedKilled)
	}
}

// DisplaceApplications deletes every live application as if a newer
// sign-in exceeded the application cap: their URLs (held P-GETs at once)
// get 410 Gone/TooManyApplications.
func (s *Sim) DisplaceApplications() {
	for _, a := range s.liveApps() {
		a.die(diedTooMany)
	}
}

// ExpireActivity expires every application that called makeMeAvailable as
// if reportMyActivity had lapsed: 410 Gone/InactiveApplicationExpired.
func (s *Sim) ExpireActivity() {
	for _, a := range s.liveApps() {
		a.mu.Lock()
		avail := a.available
		a.mu.Unlock()
		if avail {
			a.die(diedInactive)
		}
	}
}

// LiveApplications returns how many applications are alive now.
func (s *Sim) LiveApplications() int { return len(s.liveApps()) }
