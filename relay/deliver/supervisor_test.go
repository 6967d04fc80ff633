package deliver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/backoff"
	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// oneDelivery opens the database at url with one delivery queued, and
// returns its operationId. Operations may take long on a loaded machine:
// an outage (relaytest.Proxy.Down) fails them at once all the same.
func oneDelivery(t *testing.T, url string) (*store.DB, string) {
	t.Helper()
	db, err := store.Open(context.Background(), url, store.Options{OpTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	res, err := db.Enqueue(context.Background(), &store.NewNotification{Route: "prod", Format: "alertmanager", DedupKey: "k",
		Window: time.Minute, Payload: []byte(`{}`), Messages: []store.NewMessage{
			{Conversation: "c", Target: relay.Target{To: "sip:a@contoso.com"}, Text: "hello"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return db, res.OperationIDs[0]
}

// refusedSession is a session whose server refuses the bot account: it
// stops as soon as it is opened, and every send reports that.
type refusedSession struct {
	stopped chan struct{}
	sends   *atomic.Int32
}

func (s *refusedSession) Send(context.Context, relay.Target, string, string) (relay.Outcome, error) {
	s.sends.Add(1)
	return relay.Outcome{Kind: relay.RetryLater, Session: true, Reason: "stopped", Detail: "410 Gone/UserAgentNotAllowed",
		RetryAfter: time.Minute}, nil
}
func (s *refusedSession) Close(context.Context) error { return nil }
func (s *refusedSession) Stopped() <-chan struct{}    { return s.stopped }
func (s *refusedSession) Err() error {
	return errors.New("applications on fe1: http 410 Gone/UserAgentNotAllowed")
}
func (s *refusedSession) State() string { return "stopped" }

// TestSupervisorReleasesTheLeaseWhenTheSessionStops: a session that gives
// up for good makes the supervisor stop sending, release the session
// lease at once (another replica may try), report "stopped", and try a new
// session only after StoppedRetry. The deliveries stay queued.
func TestSupervisorReleasesTheLeaseWhenTheSessionStops(t *testing.T) {
	t.Parallel()
	db, id := oneDelivery(t, relaytest.NewDatabase(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var opened, sends atomic.Int32
	var (
		mu      sync.Mutex
		openAt  []time.Time
		retryIn = 1500 * time.Millisecond
	)
	worker := deliver.NewWorker(db, deliver.Options{PollInterval: 20 * time.Millisecond})
	sup := deliver.NewSupervisor(db, worker, deliver.SupervisorOptions{
		Account: "bot@contoso.com", TTL: time.Second,
		StoppedRetry: backoff.Policy{Min: retryIn, Max: retryIn},
		States:       []string{"ready", "stopped"},
		Open: func() (deliver.Session, error) {
			mu.Lock()
			openAt = append(openAt, time.Now())
			mu.Unlock()
			opened.Add(1)
			s := &refusedSession{stopped: make(chan struct{}), sends: &sends}
			close(s.stopped)
			return s, nil
		},
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(sup)
	var wg sync.WaitGroup
	wg.Go(func() { sup.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	// The session says stopped at once; the lease goes once the worker has
	// stopped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		holder, _, expires, err := db.LeaseHolder(ctx, "bot@contoso.com")
		if err != nil {
			t.Fatal(err)
		}
		released := holder != sup.Holder() || !expires.After(time.Now())
		if released && sup.State() == deliver.StateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: supervisor state %q, lease released %v; want stopped and released", sup.State(), released)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := `
# HELP relay_ucwa_session_state The UCWA session of the bot account as this replica sees it: 1 for the current state (standby: another replica sends; stopped: the server refuses the account, see the logs).
# TYPE relay_ucwa_session_state gauge
relay_ucwa_session_state{state="ready"} 0
relay_ucwa_session_state{state="standby"} 0
relay_ucwa_session_state{state="stopped"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "relay_ucwa_session_state"); err != nil {
		t.Error(err)
	}
	// Nothing opens a new session before StoppedRetry has passed: the
	// session stopped as it was opened, so the next open comes no sooner
	// than StoppedRetry after the first.
	deadline = time.Now().Add(10 * time.Second)
	for opened.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no new session tried after StoppedRetry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if gap := openAt[1].Sub(openAt[0]); gap < retryIn {
		t.Errorf("a new session was opened %v after the one that stopped, want no sooner than StoppedRetry (%v)", gap, retryIn)
	}
	mu.Unlock()
	d, err := db.GetDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.State.Final() || d.Failures != 0 {
		t.Errorf("delivery %s, %d failures: want still queued, no failure counted (%s)", d.State, d.Failures, d.LastError)
	}
}

// gatedSession delivers every message, but only once the test lets the
// send finish.
type gatedSession struct {
	started chan string   // operationIds as sends begin
	proceed chan struct{} // closed when sends may finish
	sends   atomic.Int32
}

func (s *gatedSession) Send(ctx context.Context, _ relay.Target, opID, _ string) (relay.Outcome, error) {
	s.sends.Add(1)
	s.started <- opID
	<-s.proceed
	return relay.Outcome{Kind: relay.Delivered, Reason: "ok", OperationID: opID}, nil
}
func (s *gatedSession) Close(context.Context) error { return nil }
func (s *gatedSession) Stopped() <-chan struct{}    { return nil }
func (s *gatedSession) Err() error                  { return nil }
func (s *gatedSession) State() string               { return "ready" }

// TestConfirmedSendOutlivesDatabaseOutage: the server confirms a message
// while PostgreSQL is away for longer than the session lease. The outcome
// is kept and recorded when the database is back, before anything is
// claimed again: the message is not sent a second time, and the audit has
// the attempt that delivered it.
func TestConfirmedSendOutlivesDatabaseOutage(t *testing.T) {
	t.Parallel()
	proxy, url := relaytest.NewProxy(t, relaytest.NewDatabase(t))
	db, id := oneDelivery(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := &gatedSession{started: make(chan string, 10), proceed: make(chan struct{})}
	worker := deliver.NewWorker(db, deliver.Options{PollInterval: 20 * time.Millisecond, Lease: 2 * time.Second})
	sup := deliver.NewSupervisor(db, worker, deliver.SupervisorOptions{
		Account: "bot@contoso.com", TTL: time.Second,
		Open: func() (deliver.Session, error) { return sess, nil },
	})
	var wg sync.WaitGroup
	wg.Go(func() { sup.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	var first string
	select {
	case first = <-sess.started:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent")
	}
	proxy.Down()
	close(sess.proceed) // the server confirms while the database is away
	// Longer than the session lease and the delivery's own lease: the claim
	// has lapsed by the time the database is back.
	time.Sleep(3 * time.Second)
	if left := worker.Unrecorded(); len(left) != 1 {
		t.Errorf("outcomes kept while the database is away: %v, want the one confirmed send", left)
	}
	proxy.Up()

	deadline := time.Now().Add(15 * time.Second)
	for {
		d, err := db.GetDelivery(ctx, id)
		if err == nil && d.State == relay.StateDelivered {
			if len(d.AttemptLog) != 1 || d.AttemptLog[0].Outcome != "delivered" || d.AttemptLog[0].UCWAOperationID != first {
				t.Errorf("audit: %+v, want the one delivering attempt %s", d.AttemptLog, first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery not recorded delivered 15s after the database came back: %+v, %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a resend would come now
	if n := sess.sends.Load(); n != 1 {
		t.Errorf("the message was sent %d times, want once", n)
	}
	if left := worker.Unrecorded(); len(left) != 0 {
		t.Errorf("outcomes still kept: %v", left)
	}
}
