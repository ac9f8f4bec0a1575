package site

import (
	"context"

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
