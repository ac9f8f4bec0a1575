package site

import (
	"context"
	"time"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Option adjusts an agent beyond what its Config says: what a simulation
// or a test needs from a site (a site that hangs on cue, noise that
// repeats) and a deployed site never does. Keeping these out of Config
// means no site.yaml, and no Config a program builds, can carry them.
type Option func(*options)

type options struct {
	beforeTask func(ctx context.Context, t *federav1.Task)
	noiseSeed  *uint64
	now        func() time.Time
}

// WithBeforeTask runs f before each task, with the task's context: a
// simulation makes a site slow, hung or observed with it.
func WithBeforeTask(f func(ctx context.Context, t *federav1.Task)) Option {
	return func(o *options) { o.beforeTask = f }
}

// WithNoiseSeed seeds the site's DP noise, so a test's noise repeats.
// Never in production: noise must be unpredictable.
func WithNoiseSeed(seed uint64) Option {
	return func(o *options) { o.noiseSeed = &seed }
}

// WithClock gives the site its own idea of the time, for the checks that
// compare the site's clock with a time another machine wrote: the
// validity of the coordinator's SVID at the TLS handshake and of other
// sites' SVIDs under secure aggregation. A simulation skews one site's
// clock with it; nothing else the site does reads a time from elsewhere
// (round deadlines are the coordinator's, sent as no absolute time).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}
