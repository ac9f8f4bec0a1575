package coordinator

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Outcome is where a Collect stands.
type Outcome int

const (
	// Waiting: some sites have not answered and the deadline is ahead.
	Waiting Outcome = iota
	// Done: every site answered or failed, or the deadline passed, and at
	// least the quorum answered.
	Done
	// Failed: the quorum can no longer be met.
	Failed
)

// Collect is the pure state machine of one fan-out: a task sent to a set of
// sites, answered by some, with a quorum and a deadline. It does no I/O and
// reads no clock; the caller feeds it results, losses and ticks. That is
// why every fault — a slow site, a dead one, a late answer — is a unit test.
type Collect[R any] struct {
	minSites int
	deadline time.Time
	expected map[string]bool
	answered map[string]R
	failed   map[string]string
	order    []string
	timedOut bool
	quorum   string // what minSites is called in Reason
}

// NewCollect starts a fan-out to sites that needs minSites answers by
// deadline.
func NewCollect[R any](sites []string, minSites int, deadline time.Time) *Collect[R] {
	c := &Collect[R]{
		minSites: minSites,
		deadline: deadline,
		expected: make(map[string]bool, len(sites)),
		answered: make(map[string]R, len(sites)),
		failed:   map[string]string{},
		quorum:   "min_sites",
	}
	for _, s := range sites {
		if !c.expected[s] {
			c.expected[s] = true
			c.order = append(c.order, s)
		}
	}
	return c
}

// Answer records a site's result. Answers from sites not asked, second
// answers and answers after the fan-out ended are ignored and reported
// false.
func (c *Collect[R]) Answer(site string, r R) bool {
	if !c.open(site) {
		return false
	}
	c.answered[site] = r
	return true
}

// Lose records that a site will not answer (it disconnected or reported an
// error), with the reason.
func (c *Collect[R]) Lose(site, reason string) bool {
	if !c.open(site) {
		return false
	}
	c.failed[site] = reason
	return true
}

func (c *Collect[R]) open(site string) bool {
	if !c.expected[site] || c.Outcome() != Waiting {
		return false
	}
	_, a := c.answered[site]
	_, f := c.failed[site]
	return !a && !f
}

// Tick tells the fan-out the time; at or past the deadline it closes.
func (c *Collect[R]) Tick(now time.Time) {
	if c.Outcome() == Waiting && !now.Before(c.deadline) {
		c.timedOut = true
	}
}

// Deadline is when the fan-out closes.
func (c *Collect[R]) Deadline() time.Time { return c.deadline }

// Outcome reports where the fan-out stands.
func (c *Collect[R]) Outcome() Outcome {
	settled := len(c.answered)+len(c.failed) == len(c.expected)
	if !settled && !c.timedOut {
		// Early failure: even if every outstanding site answered, the
		// quorum is out of reach.
		if len(c.expected)-len(c.failed) < c.minSites {
			return Failed
		}
		return Waiting
	}
	if len(c.answered) >= c.minSites && len(c.answered) > 0 {
		return Done
	}
	return Failed
}

// NameQuorum sets what Reason calls the quorum ("min_sites" by default),
// for a fan-out whose quorum comes from elsewhere.
func (c *Collect[R]) NameQuorum(name string) { c.quorum = name }

// Answers are the results received, by site.
func (c *Collect[R]) Answers() map[string]R { return c.answered }

// Answered lists the sites that answered, sorted.
func (c *Collect[R]) Answered() []string {
	out := make([]string, 0, len(c.answered))
	for s := range c.answered {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Missing lists the sites that were asked and did not answer, sorted.
func (c *Collect[R]) Missing() []string {
	var out []string
	for _, s := range c.order {
		if _, ok := c.answered[s]; !ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Reason explains a Failed outcome: how many answered of how many needed,
// and what happened at each site that did not answer.
func (c *Collect[R]) Reason() string {
	var parts []string
	for _, s := range c.Missing() {
		if r, ok := c.failed[s]; ok {
			parts = append(parts, fmt.Sprintf("%s: %s", s, r))
		} else {
			parts = append(parts, fmt.Sprintf("%s: no answer by the deadline", s))
		}
	}
	msg := fmt.Sprintf("%d of %d sites answered, %s is %d", len(c.answered), len(c.expected), c.quorum, c.minSites)
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return msg
}
