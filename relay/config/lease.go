package config

import "time"

// minLeaseFloor is the shortest delivery.lease accepted whatever the timers.
const minLeaseFloor = 30 * time.Second

// SlowestSend is the longest one send may take with timers t: an
// invitation wait, a confirmation wait and two ordinary requests.
func SlowestSend(t UCWATimers) time.Duration {
	return t.InvitationTimeout + t.MessageTimeout + 2*t.RequestTimeout
}

// MinLease returns the shortest delivery.lease the configuration accepts
// with UCWA timers t: a send is cut off at 3/4 of the lease, so that its
// outcome is recorded before anyone else may claim the delivery, and that
// 3/4 must cover the slowest send. Whole seconds, rounded up, and never
// under 30s. With the default timers it is 3m40s. The check of
// delivery.lease and the example configuration's comment both use it.
func MinLease(t UCWATimers) time.Duration {
	need := (SlowestSend(t)*4 + 2) / 3 // 4/3 of the slowest send, rounded up
	if r := need % time.Second; r != 0 {
		need += time.Second - r
	}
	return max(need, minLeaseFloor)
}
