package chaos

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
)

// A coordinator failpoint scenario: where the kill lands, how the test
// gets the process there, and how many round entries the killed round
// must end with in the audit log (1: nothing of it was recorded; 2: its
// entries were durable, so the redone round says redo_of; 0: either).
type coordPoint struct {
	name    string
	what    string
	reach   func(f *federation)
	entries int
}

var coordPoints = []coordPoint{
	{
		name: "coordAfterAggregate", what: "the round aggregated, nothing of it recorded",
		reach:   func(f *federation) { f.coord.holdAt("coordAfterAggregate", 2*time.Minute) },
		entries: 1,
	},
	{
		name: "auditAfterRecords", what: "mid-audit-append: the round's entries fsynced, their hashes and the tree not written",
		reach: func(f *federation) {
			// Aimed at the round's own append: pause once after its
			// aggregation (2 s), arm the append meanwhile.
			f.coord.arm("coordAfterAggregate", "1*sleep(2000)")
			f.coord.waitFor(2*time.Minute, "the round aggregated", func() bool { return f.coord.fired("coordAfterAggregate") >= 1 })
			f.coord.holdAt("auditAfterRecords", time.Minute)
		},
		entries: 2,
	},
	{
		name: "coordBeforeRoundSave", what: "between the audit append and the checkpoint",
		reach:   func(f *federation) { f.coord.holdAt("coordBeforeRoundSave", 2*time.Minute) },
		entries: 2,
	},
	{
		name: "storeMidSaveRound", what: "mid-checkpoint: inside the bbolt transaction, the job written, the checkpoint not, nothing committed",
		reach:   func(f *federation) { f.coord.holdAt("storeMidSaveRound", 2*time.Minute) },
		entries: 2,
	},
	{
		name: "fsutilBeforeRename", what: "mid-signing: the signed audit checkpoint whole in its temporary file, not renamed into place",
		reach: func(f *federation) {
			f.coord.arm("fsutilBeforeRename", `return("*.txt")`)
			dir := filepath.Join(f.coordDir, "audit", "checkpoints")
			f.coord.waitFor(2*time.Minute, "a checkpoint held before its rename", func() bool {
				return stillThere(func() []string { return tempOf(dir, "*.txt") })
			})
		},
	},
}

// TestCoordinatorKill9AtFailpoints runs a job and SIGKILLs the
// coordinator at each failpoint in turn, in a later round each time,
// restarting it on the same state; FEDERA_CHAOS_TRIALS/5 such jobs (one by
// default, 10 in make chaos). Every job must succeed, every invariant of
// the history checker hold, and each killed round end with the audit
// entries its point allows: a round recorded before the kill is redone
// and says so (redo_of), one that was not is logged once.
func TestCoordinatorKill9AtFailpoints(t *testing.T) {
	t.Parallel()
	passes := (trials(t, 5) + 4) / 5
	f := startFederation(t, options{})
	h := newHistory()
	f.waitSites()
	rounds := 3*len(coordPoints) + 2
	spec := strings.Replace(killJob, "rounds: 8", fmt.Sprintf("rounds: %d", rounds), 1)
	jobs := map[string]int{}
	killed := map[string]map[string]int{} // job -> point -> round in progress at the kill
	for pass := 0; pass < passes; pass++ {
		f.waitSites()
		id := f.submit(spec)
		jobs[id], killed[id] = rounds, map[string]int{}
		next := 1
		for _, pt := range coordPoints {
			// Each kill lands in a later round than the one before, once the
			// resumed job has completed the round it was killed in.
			for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
				j, ok := h.read(f, id)
				if ok && j.RoundsCompleted >= next {
					break
				}
				if ok && j.ended() {
					t.Fatalf("%s: the job ended before the kill: %+v", pt.name, j)
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: the job never completed round %d: %+v", pt.name, next, j)
				}
			}
			pt.reach(f)
			j, _ := h.read(f, id)
			f.coord.kill9()
			r := j.RoundsCompleted + 1
			killed[id][pt.name] = r
			t.Logf("pass %d: killed the coordinator at %s (%s), round %d of %d in progress", pass, pt.name, pt.what, r, rounds)
			f.coord.start()
			next = r
		}
		if j := f.waitEnd(h, id, 3*time.Minute); j.Status != "SUCCEEDED" {
			t.Fatalf("job %s: %s", j.Status, j.Message)
		}
		for !h.snap(f) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	v := h.check(f, jobs, false)
	entries, err := parseExport(h.snapshots[len(h.snapshots)-1].export)
	if err != nil {
		t.Fatal(err)
	}
	for id := range jobs {
		byRound := map[int]int{}
		for _, e := range entries {
			if e.Entry.Type == auditlog.TypeRound && e.Entry.Job == id {
				byRound[int(e.Entry.Data["round"].(float64))]++
			}
		}
		for _, pt := range coordPoints {
			r := killed[id][pt.name]
			t.Logf("job %s: %s: round %d has %d round entries", id, pt.name, r, byRound[r])
			if pt.entries > 0 && byRound[r] != pt.entries {
				v.add("job %s: %s: round %d has %d round entries in the audit log, want %d (%s)", id, pt.name, r, byRound[r], pt.entries, pt.what)
			}
		}
	}
	t.Logf("%d kills at failpoints over %d jobs; %d invariant violations", passes*len(coordPoints), passes, len(v))
	// A write cut short before its rename leaves its temporary file; the
	// restarted coordinator sweeps them (audit log and store, on open).
	var left []string
	_ = filepath.WalkDir(f.coordDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			left = append(left, strings.TrimPrefix(p, f.coordDir+"/"))
		}
		return nil
	})
	if len(left) > 0 {
		v.add("temporary files left in the coordinator's state after its restarts: %v", left)
	}
	for _, x := range v {
		t.Error(x)
	}
}
