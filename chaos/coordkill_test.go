package chaos

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trials is FEDERA_CHAOS_TRIALS (make chaos sets 50), or def.
func trials(t *testing.T, def int) int {
	t.Helper()
	s := os.Getenv("FEDERA_CHAOS_TRIALS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("FEDERA_CHAOS_TRIALS=%q: want a positive whole number", s)
	}
	return n
}

// seed is FEDERA_CHAOS_SEED, or a fresh one; logged so a failing trial
// can be rerun.
func seed(t *testing.T) *rand.Rand {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("FEDERA_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FEDERA_CHAOS_SEED=%q: want a whole number", v)
		}
		s = n
	}
	t.Logf("FEDERA_CHAOS_SEED=%d", s)
	return rand.New(rand.NewPCG(s, s))
}

const killRounds = 8

const killJob = `name: kill-me
dataset: breast-cancer
label: label
model: {type: logreg}
rounds: 8
local_epochs: 500
batch_size: 16
learning_rate: 0.05
l2: 0.0001
min_sites: 3
round_timeout: 1m
seed: 7
`

// TestCoordinatorKill9 SIGKILLs the coordinator process at a random moment
// of a running job, trial after trial (FEDERA_CHAOS_TRIALS, 5 by default),
// restarts it on the same state directory, and checks that every job
// completes and the history holds every invariant: rounds never lost,
// changed or logged twice as new, the audit log verifying and only
// growing, every release allowed.
func TestCoordinatorKill9(t *testing.T) {
	t.Parallel()
	n := trials(t, 5)
	rng := seed(t)
	f := startFederation(t, options{})
	h := newHistory()
	jobs := map[string]int{}
	// A first job of 3 rounds, untouched, measures how long a round takes
	// here: the kill lands after a random number of completed rounds, at a
	// random moment of the next one.
	f.waitSites()
	first := f.submit(strings.Replace(killJob, "rounds: 8", "rounds: 3", 1))
	j0 := f.waitEnd(h, first, 3*time.Minute)
	jobs[first] = 3
	var roundMs int64
	for _, r := range j0.Rounds {
		d, _ := strconv.ParseInt(r.DurationMs.String(), 10, 64)
		roundMs += d
	}
	roundMs = max(roundMs/int64(len(j0.Rounds)), 1)
	t.Logf("an undisturbed round takes %d ms", roundMs)
	killedAt := map[int]int{}
	for i := 0; i < n; i++ {
		f.waitSites()
		h.snap(f)
		id := f.submit(killJob)
		jobs[id] = killRounds
		after := rng.IntN(killRounds - 1)
		delay := time.Duration(rng.Int64N(roundMs)) * time.Millisecond
		seen := -1
		for deadline := time.Now().Add(2 * time.Minute); ; {
			j, ok := h.read(f, id)
			if ok && j.RoundsCompleted >= after {
				seen = j.RoundsCompleted
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: job never reached round %d: %+v", i, after, j)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(delay)
		f.coord.kill9()
		killedAt[seen]++
		f.coord.start()
		j := f.waitEnd(h, id, 3*time.Minute)
		if j.Status != "SUCCEEDED" {
			t.Errorf("trial %d (kill after %s, %d rounds seen): job %s: %s", i, delay, seen, j.Status, j.Message)
		}
		for !h.snap(f) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("%d trials; kills by rounds completed at the last read before them: %v", n, killedAt)
	if v := h.check(f, jobs, false); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
		t.Fatalf("%d invariant violations over %d trials", len(v), n)
	}
	redos := 0
	entries, _ := parseExport(h.snapshots[len(h.snapshots)-1].export)
	for _, e := range entries {
		if _, ok := e.Entry.Data["redo_of"]; ok && e.Entry.Type == "round" {
			redos++
		}
	}
	t.Logf("invariants hold over %d trials; %d rounds were redone (logged, not checkpointed, at the kill)", n, redos)
}
