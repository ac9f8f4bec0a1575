package coordinator

import "time"

// Clock is the coordinator's time. Every deadline of a fan-out — the
// time it closes (Collect's deadline), the wait for it and the tick that
// closes it — reads this one clock, so a test that moves a fake clock
// past a round's deadline closes the round without sleeping.
type Clock interface {
	Now() time.Time
	// After delivers the clock's time once d has passed on it.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the wall clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// nowClock is a Config.Now without a Clock: timestamps from now, waits on
// the wall clock.
type nowClock struct{ now func() time.Time }

func (c nowClock) Now() time.Time                       { return c.now() }
func (nowClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
