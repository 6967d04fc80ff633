package ucwasim

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Message is one message the simulator accepted (201) on sendMessage.
type Message struct {
	Pool, Application, Recipient, Conversation, OperationID, ContentType, Body string
	Time                                                                       time.Time
}

// Violation is one request the simulator rejected because the client broke
// the protocol, or (rule "retry-before-retry-after") one it served but that
// came too early. Injected faults are never violations, nor are 401s for
// tokens that expired or belong to another pool; a request answered by a
// fault can still be too early.
type Violation struct {
	Time         time.Time
	Method, Path string // path without query; never the token
	// Rule is a short id: "unissued-url", "foreign-url",
	// "deleted-application", "no-token", "unknown-token",
	// "send-before-connected", "concurrent-pget", "bad-ack",
	// "operationid-too-long", "missing-operationid", "wrong-content-type",
	// "bad-body", "bad-params", "method-not-allowed", "invalid-grant",
	// "unsupported-grant-type", "activity-before-available",
	// "origin-header", "retry-before-retry-after" (a request to the same
	// host, method and path without query as an answer carrying
	// Retry-After, arriving more than RetryAfterTolerance before the time
	// it named; the request is still served, faults included).
	Rule   string
	Detail string
}

// Stats are counters for assertions.
type Stats struct {
	ApplicationsCreated, ApplicationsDeleted, TokensIssued int
	// DiscoveryCalls counts root GETs per root ("internal", "external") and
	// user resource GETs per pool name.
	DiscoveryCalls map[string]int
	// MaxConcurrentPGets is the maximum of P-GETs held at once for any
	// single application.
	MaxConcurrentPGets int
	// Requests counts answers per "resource status", e.g. "sendMessage 201".
	Requests map[string]int

	// Additions beyond the shared contract.

	// MessagesAccepted is len(Messages()).
	MessagesAccepted int
	// FaultsApplied counts requests that got an injected fault.
	FaultsApplied int
	// MaxPGetGap is the longest real time between the release of a P-GET
	// and the arrival of the next one on the same application.
	MaxPGetGap time.Duration
	// MaxHighEventWait is the longest real time a High priority event
	// waited between being queued and its batch being formed while a P-GET
	// was held (a server-side delivery delay; should stay near zero).
	MaxHighEventWait time.Duration
	// MaxActivityGap is the longest real time between makeMeAvailable or a
	// reportMyActivity and the next reportMyActivity of one application.
	MaxActivityGap time.Duration
	// MaxRequestsPerSecond is, per host ("internal", "external", pool name,
	// as LogEntry.Host), the largest number of requests that arrived within
	// any one second (a sliding window; faulted, reset and token requests
	// included, the control API not). RequestRate answers the same for a
	// time range.
	MaxRequestsPerSecond map[string]int
	// LinkHostRequests counts, per pool, requests whose Host header named a
	// host set with SetLinkHost for that pool (a client that followed such
	// a link).
	LinkHostRequests map[string]int
}

// LogEntry is one request in the bounded request log.
type LogEntry struct {
	Time     time.Time
	Host     string // "internal", "external", pool name or "control"
	Method   string
	Path     string // without query, never a token
	Resource string
	Status   int // 0 when the connection was reset
	Latency  time.Duration
	Fault    bool
}

type recorder struct {
	mu          sync.Mutex
	messages    []Message
	violations  []Violation
	appsMade    int
	appsGone    int
	tokens      int
	discovery   map[string]int
	requests    map[string]int
	linkReqs    map[string]int
	faults      int
	maxPGets    int
	maxGap      time.Duration
	maxWait     time.Duration
	maxActivity time.Duration
	log         []LogEntry
	logNext     int
	logFull     bool
}

func (r *recorder) init(size int) {
	r.discovery = map[string]int{}
	r.requests = map[string]int{}
	r.linkReqs = map[string]int{}
	r.log = make([]LogEntry, size)
}

func (r *recorder) add(fn func(r *recorder)) {
	r.mu.Lock()
	fn(r)
	r.mu.Unlock()
}

func (s *Sim) violation(method, path, rule, detail string) {
	v := Violation{Time: time.Now(), Method: method, Path: path, Rule: rule, Detail: detail}
	s.rec.add(func(r *recorder) { r.violations = append(r.violations, v) })
	s.logger.Warn("ucwa protocol violation", slog.String("rule", rule), slog.String("method", method),
		slog.String("path", path), slog.String("detail", detail))
}

// countRequest counts one answer per "resource status".
func (s *Sim) countRequest(resource string, code int) {
	key := resource + " " + statusText(code)
	s.rec.add(func(r *recorder) { r.requests[key]++ })
}

// countFault counts one request that got an injected fault.
func (s *Sim) countFault() { s.rec.add(func(r *recorder) { r.faults++ }) }

// finishRequest counts an answer not counted yet and logs the request.
func (s *Sim) finishRequest(w *statusWriter, e LogEntry) {
	if !w.counted {
		code := w.status
		if code == 0 && !w.reset {
			code = -1
		}
		w.countOnce(code)
	}
	s.logRequest(e)
}

func (s *Sim) logRequest(e LogEntry) {
	s.rec.add(func(r *recorder) {
		r.log[r.logNext] = e
		r.logNext++
		if r.logNext == len(r.log) {
			r.logNext = 0
			r.logFull = true
		}
	})
}

func statusText(code int) string {
	switch code {
	case 0:
		return "reset"
	case -1:
		return "none"
	}
	return itoa(code)
}

// Messages returns every accepted message in acceptance order (never
// deduplicated).
func (s *Sim) Messages() []Message {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return slices.Clone(s.rec.messages)
}

// Violations returns every request rejected for breaking the protocol.
func (s *Sim) Violations() []Violation {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return slices.Clone(s.rec.violations)
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return Stats{
		ApplicationsCreated:  s.rec.appsMade,
		ApplicationsDeleted:  s.rec.appsGone,
		TokensIssued:         s.rec.tokens,
		DiscoveryCalls:       maps.Clone(s.rec.discovery),
		MaxConcurrentPGets:   s.rec.maxPGets,
		Requests:             maps.Clone(s.rec.requests),
		MessagesAccepted:     len(s.rec.messages),
		FaultsApplied:        s.rec.faults,
		MaxPGetGap:           s.rec.maxGap,
		MaxHighEventWait:     s.rec.maxWait,
		MaxActivityGap:       s.rec.maxActivity,
		MaxRequestsPerSecond: s.maxRates(),
		LinkHostRequests:     maps.Clone(s.rec.linkReqs),
	}
}

// RequestLog returns the most recent requests, oldest first (bounded by
// Config.RequestLogSize).
func (s *Sim) RequestLog() []LogEntry {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if !s.rec.logFull {
		return slices.Clone(s.rec.log[:s.rec.logNext])
	}
	out := make([]LogEntry, 0, len(s.rec.log))
	out = append(out, s.rec.log[s.rec.logNext:]...)
	return append(out, s.rec.log[:s.rec.logNext]...)
}

// DuplicateCounts returns, per recipient, how many accepted messages
// repeated a body already accepted for that recipient.
func (s *Sim) DuplicateCounts() map[string]int {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	seen := map[[2]string]bool{}
	out := map[string]int{}
	for _, m := range s.rec.messages {
		k := [2]string{m.Recipient, m.Body}
		if seen[k] {
			out[m.Recipient]++
		}
		seen[k] = true
	}
	return out
}
