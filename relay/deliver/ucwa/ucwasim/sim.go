package ucwasim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sim is a running UCWA server simulator: two discovery roots, one listener
// per pool and a control API, all on 127.0.0.1. All methods are safe for
// concurrent use.
//
// Locking: s.mu guards the registries (tokens, routes, applications, home
// pool, recipients); each application has its own mutex for its event
// channel and conversations. No lock is held while a response is written.
type Sim struct {
	cfg    Config
	logger *slog.Logger

	roots   [2]*listener // internal, external
	pools   []*pool
	byName  map[string]*pool
	control *listener

	mu          sync.RWMutex
	home        *pool
	tokens      map[string]*token
	apps        []*application  // live and dead, creation order
	allConvs    []*conversation // every conversation ever started, for Conversations
	recipients  map[string]*recipientScript
	unconfirmed map[string]bool // recipients whose messages are never confirmed

	embed       atomic.Bool
	outstanding atomic.Int32 // in-flight UCWA requests, for Config.MaxOutstanding

	faults  faultSet
	rec     recorder
	retry   retryAfters
	started time.Time            // for request rates
	rates   map[string]*hostRate // per root and pool name; fixed after New

	// Timers: every protocol timer runs through s.after so Close can stop
	// them and wait for running callbacks.
	timerMu sync.Mutex
	timers  map[*simTimer]struct{}
	timerWG sync.WaitGroup

	closing   chan struct{}
	closeOnce sync.Once
	serveWG   sync.WaitGroup
}

// listener is one HTTP server on its own loopback port.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	base string // "http://127.0.0.1:port"
}

// New starts a simulator: all listeners (two discovery roots, one per pool
// and the control API) on 127.0.0.1:0.
func New(cfg Config) (*Sim, error) {
	return newSim(cfg, "127.0.0.1", 0, 0)
}

// NewOn is New with a chosen listen host and optional fixed ports for the
// primary discovery root and the control API (0 = random). The secondary
// root and the pools always get random ports. cmd/ucwa-sim uses it.
func NewOn(cfg Config, host string, rootPort, controlPort int) (*Sim, error) {
	return newSim(cfg, host, rootPort, controlPort)
}

func newSim(cfg Config, host string, rootPort, controlPort int) (*Sim, error) {
	cfg = cfg.withDefaults()
	seen := map[string]bool{}
	for _, p := range cfg.Pools {
		if p == "" || p == "root" || p == "internal" || p == "external" || p == "control" || seen[p] {
			return nil, fmt.Errorf("new simulator: pool name %q is empty, reserved or repeated", p)
		}
		seen[p] = true
	}
	s := &Sim{
		cfg:         cfg,
		logger:      cfg.Logger,
		byName:      map[string]*pool{},
		tokens:      map[string]*token{},
		recipients:  map[string]*recipientScript{},
		unconfirmed: map[string]bool{},
		started:     time.Now(),
		rates:       map[string]*hostRate{"internal": {}, "external": {}},
		timers:      map[*simTimer]struct{}{},
		closing:     make(chan struct{}),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.embed.Store(cfg.EmbedResources)
	s.rec.init(cfg.RequestLogSize)

	var started []*listener
	fail := func(err error) (*Sim, error) {
		for _, l := range started {
			_ = l.ln.Close()
		}
		return nil, fmt.Errorf("new simulator: %w", err)
	}
	listen := func(name string, port int) (*listener, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil {
			return nil, fmt.Errorf("listen for %s: %w", name, err)
		}
		l := &listener{name: name, ln: ln, base: "http://" + ln.Addr().String()}
		started = append(started, l)
		return l, nil
	}
	var err error
	if s.roots[0], err = listen("internal", rootPort); err != nil {
		return fail(err)
	}
	if s.roots[1], err = listen("external", 0); err != nil {
		return fail(err)
	}
	for _, name := range cfg.Pools {
		l, err := listen(name, 0)
		if err != nil {
			return fail(err)
		}
		p := newPool(s, name, l)
		s.rates[name] = &hostRate{}
		s.pools = append(s.pools, p)
		s.byName[name] = p
	}
	s.home = s.pools[0]
	if s.control, err = listen("control", controlPort); err != nil {
		return fail(err)
	}

	for i, r := range s.roots {
		s.serve(r, &rootHandler{s: s, name: r.name, index: i})
	}
	for _, p := range s.pools {
		s.serve(p.l, p)
	}
	s.serve(s.control, s.controlHandler())
	return s, nil
}

func (s *Sim) serve(l *listener, h http.Handler) {
	l.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		err := l.srv.Serve(l.ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("simulator listener stopped", slog.String("listener", l.name), slog.Any("err", err))
		}
	}()
}

// Close stops everything: it ends all held P-GETs, stops all timers, closes
// every listener and waits for its goroutines.
func (s *Sim) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.timerMu.Lock()
		for t := range s.timers {
			// A timer whose Stop fails has fired: its callback is waiting
			// for timerMu, finds itself still registered and calls Done.
			if t.t.Stop() {
				delete(s.timers, t)
				s.timerWG.Done()
			}
		}
		s.timerMu.Unlock()
		s.timerWG.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		all := append([]*listener{s.roots[0], s.roots[1], s.control}, poolListeners(s.pools)...)
		var wg sync.WaitGroup
		for _, l := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.srv.Shutdown(ctx); err != nil {
					_ = l.srv.Close()
				}
			}()
		}
		wg.Wait()
		s.serveWG.Wait()
	})
}

func poolListeners(ps []*pool) []*listener {
	out := make([]*listener, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.l)
	}
	return out
}

// DiscoveryURLs returns the two discovery roots: [primary ("internal"),
// secondary ("external")], e.g. "http://127.0.0.1:41234/".
func (s *Sim) DiscoveryURLs() []string {
	return []string{s.roots[0].base + "/", s.roots[1].base + "/"}
}

// PoolURL returns the base URL of a pool listener, e.g.
// "http://127.0.0.1:41236", or "" for an unknown pool.
func (s *Sim) PoolURL(pool string) string {
	p := s.byName[pool]
	if p == nil {
		return ""
	}
	return p.l.base
}

// PoolNames returns the configured pool names, home pool first.
func (s *Sim) PoolNames() []string { return slices.Clone(s.cfg.Pools) }

// ControlURL returns the base URL of the HTTP control API.
func (s *Sim) ControlURL() string { return s.control.base }

// SetHomePool makes discovery and the user resource send the bot to pool
// from now on (failover, failback). Unknown names are ignored.
func (s *Sim) SetHomePool(pool string) {
	p := s.byName[pool]
	if p == nil {
		return
	}
	s.mu.Lock()
	s.home = p
	s.mu.Unlock()
}

func (s *Sim) homePool() *pool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.home
}

// SetPoolVersion sets the highest UCWA resource version pool serves
// (default 2). Requests with a higher X-MS-RequiresMinResourceVersion get
// 404 NotFound/APIVersionNotSupported (preset F5: older server after
// failover).
func (s *Sim) SetPoolVersion(pool string, version int) {
	if p := s.byName[pool]; p != nil {
		p.version.Store(int32(version))
	}
}

// SetEmbedResources switches embedded resources in events on or off.
func (s *Sim) SetEmbedResources(on bool) { s.embed.Store(on) }

// scaled converts a protocol duration to real time.
func (s *Sim) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.cfg.TimeScale)
}

// simTimer is a protocol timer owned by the simulator.
type simTimer struct {
	s *Sim
	t *time.Timer
}

// after runs fn after real duration d on a timer that Close stops. It
// returns nil when the simulator is closing.
func (s *Sim) after(d time.Duration, fn func()) *simTimer {
	st := &simTimer{s: s}
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	select {
	case <-s.closing:
		return nil
	default:
	}
	s.timerWG.Add(1)
	st.t = time.AfterFunc(d, func() {
		s.timerMu.Lock()
		_, live := s.timers[st]
		delete(s.timers, st)
		s.timerMu.Unlock()
		if !live {
			return // Close or stop already accounted for it
		}
		defer s.timerWG.Done()
		fn()
	})
	s.timers[st] = struct{}{}
	return st
}

// stop cancels the timer if it has not fired yet. Safe on nil.
func (st *simTimer) stop() {
	if st == nil {
		return
	}
	s := st.s
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if _, live := s.timers[st]; !live {
		return
	}
	if st.t.Stop() {
		delete(s.timers, st)
		s.timerWG.Done()
	}
}
