package ucwasim

import (
	"sync"
	"sync/atomic"
	"time"
)

// Fault is a scripted misbehaviour. Matching requests get the fault instead
// of (or around) normal handling. Requests answered by a fault are never
// recorded as violations of the protocol, except for their timing: one
// that arrived before an earlier answer's Retry-After is still a
// "retry-before-retry-after" violation.
type Fault struct {
	// Pool is "" for any host, else a pool name, or "root" for both
	// discovery roots ("internal" or "external" for one of them).
	Pool string
	// Resource is "" for any, else one of: "root", "user", "token",
	// "applications", "application", "events", "startMessaging",
	// "invitation", "conversation", "messaging", "sendMessage", "message",
	// "me", "makeMeAvailable", "reportMyActivity" (also "communication",
	// "stopMessaging", "cancel", "participant", "xframe").
	Resource string
	// Status is the HTTP status to answer (0 = none: only Delay, Hold,
	// Reset and the message faults apply).
	Status int
	// Code and Subcode make a UCWA JSON error body {code, subcode, message};
	// an empty Code with Status set gives a proxy-style HTML body.
	Code, Subcode string
	// Location is a Location header value, for 3xx answers (e.g. a
	// discovery root redirecting to another domain).
	Location string
	// RetryAfter is the Retry-After header value (seconds or HTTP-date), ""
	// for none. The client must not send the same method to the same path
	// before it (see the package doc, "Client timing").
	RetryAfter string
	// Delay slows the response down (real time, not scaled).
	Delay time.Duration
	// Hold, when not nil, keeps the request waiting (after Delay) until it
	// is closed, the client gives up or the simulator closes: a test closes
	// it once it has made happen what must happen meanwhile, however slow
	// the machine. Released, the request goes on to the fault's Status or
	// Reset, or to normal handling: a held sendMessage whose client gave
	// up is still accepted (a ghost delivery). Go only; the control API has
	// no counterpart.
	Hold <-chan struct{}
	// Reset drops the TCP connection without an answer. Note that Go's
	// transport silently retries an idempotent request (GET) whose reused
	// keep-alive connection dies before any byte arrives, so give such
	// faults a Count of 2 or more when the client must see the reset.
	Reset bool
	// AfterEffect with Reset on sendMessage: the message IS accepted and
	// delivered, then the connection drops (ghost delivery). On events: the
	// batch counts as sent, then the connection drops.
	AfterEffect bool
	// SuppressCompletion on sendMessage: accept (201) but never emit the
	// message completed event.
	SuppressCompletion bool
	// PadBody appends this many bytes of padding (spaces) to the answer's
	// body, after normal handling: an answer over the client's body limit.
	PadBody int
	// MessageFailure on sendMessage: accept (201) then emit message
	// completed "Failure" with a reason (Code/Subcode when set).
	MessageFailure bool
	// Count is how many matching requests get the fault; 0 means 1, -1
	// means until cleared or Until.
	Count int
	// From and Until bound the active window relative to Inject time (zero
	// Until = no end); real time.
	From, Until time.Duration
}

type activeFault struct {
	id       int
	f        Fault
	left     int // remaining uses, -1 = unlimited
	injected time.Time
}

type faultSet struct {
	n      atomic.Int32 // number of faults, for a lock-free fast path
	mu     sync.Mutex
	nextID int
	list   []*activeFault
}

// Inject adds a fault and returns its id.
func (s *Sim) Inject(f Fault) int {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	left := f.Count
	if left == 0 {
		left = 1
	}
	if left < -1 {
		left = -1
	}
	now := time.Now()
	fs.list = append(fs.list, &activeFault{id: fs.nextID, f: f, left: left, injected: now})
	fs.n.Store(int32(len(fs.list)))
	return fs.nextID
}

// ClearFaults removes every injected fault (presets such as PoolGone are
// state, not faults, and stay).
func (s *Sim) ClearFaults() {
	fs := &s.faults
	fs.mu.Lock()
	fs.list = nil
	fs.n.Store(0)
	fs.mu.Unlock()
}

// RemoveFault removes one injected fault by id.
func (s *Sim) RemoveFault(id int) {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, af := range fs.list {
		if af.id == id {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
			break
		}
	}
	fs.n.Store(int32(len(fs.list)))
}

// take returns the first active fault matching pool and resource and uses
// one of its counts. The bool is false when none matches.
func (fs *faultSet) take(pool, resource string) (Fault, bool) {
	return fs.takeAlias(pool, pool, resource)
}

// takeAlias is take where the fault's Pool may name the host or its alias.
func (fs *faultSet) takeAlias(pool, alias, resource string) (Fault, bool) {
	if fs.n.Load() == 0 {
		return Fault{}, false
	}
	now := time.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i := 0; i < len(fs.list); i++ {
		af := fs.list[i]
		if af.f.Until > 0 && now.Sub(af.injected) >= af.f.Until {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
			i--
			continue
		}
		if now.Sub(af.injected) < af.f.From {
			continue
		}
		if af.f.Pool != "" && af.f.Pool != pool && af.f.Pool != alias {
			continue
		}
		if af.f.Resource != "" && af.f.Resource != resource {
			continue
		}
		if af.left > 0 {
			af.left--
			if af.left == 0 {
				fs.list = append(fs.list[:i], fs.list[i+1:]...)
			}
		}
		fs.n.Store(int32(len(fs.list)))
		return af.f, true
	}
	fs.n.Store(int32(len(fs.list)))
	return Fault{}, false
}
