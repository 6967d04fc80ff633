package config

import (
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestUCWAFailoverTimers: the failover pauses start short by default, and
// the tiny bounds the end-to-end tests use (relaytest.UCWAYAML) are valid.
func TestUCWAFailoverTimers(t *testing.T) {
	t.Parallel()
	d := DefaultUCWATimers()
	if d.FailoverMin != time.Second || d.FailoverMax != 5*time.Minute {
		t.Errorf("failover defaults = %s/%s, want 1s/5m (PROTOCOL §9.4 step 3)", d.FailoverMin, d.FailoverMax)
	}
	ucwa := relaytest.UCWAYAML([]string{"http://127.0.0.1:8443/"})
	cfg := mustParse(t, ucwa+minimal, t.TempDir(), env(EnvUCWAPassword, "pw"))
	if got := cfg.UCWA.Timers; got.FailoverMin != 20*time.Millisecond || got.FailoverMax != 200*time.Millisecond {
		t.Errorf("failover timers = %s/%s, want 20ms/200ms", got.FailoverMin, got.FailoverMax)
	}
}
