package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/privacy"
)

// A site failpoint scenario: where us/boston is killed and how the test
// gets it there.
type sitePoint struct {
	name, what string
	reach      func(f *federation, p *proc, state string)
}

var sitePoints = []sitePoint{
	{
		name: "siteBeforeCharge", what: "mid-ledger-write: the release kept for a redo, not charged",
		reach: func(f *federation, p *proc, _ string) { p.holdAt("siteBeforeCharge", 2*time.Minute) },
	},
	{
		name: "fsutilBeforeRename", what: "mid-ledger-write: the charged ledger whole in its temporary file, privacy.json not yet replaced",
		reach: func(f *federation, p *proc, state string) {
			p.arm("fsutilBeforeRename", `return("privacy.json")`)
			p.waitFor(2*time.Minute, "the ledger held before its rename", func() bool {
				return stillThere(func() []string { return tempOf(state, "privacy.json") })
			})
		},
	},
	{
		name: "siteAfterCharge", what: "between the ledger write and sending: charged, neither journalled nor sent",
		reach: func(f *federation, p *proc, _ string) { p.holdAt("siteAfterCharge", 2*time.Minute) },
	},
	{
		name: "journalTornWrite", what: "mid-egress-journal write: half the release's record written",
		reach: func(f *federation, p *proc, state string) {
			// Aimed at a train release's record: once a release is
			// charged (paused 1 s there), the journal's next record is its.
			p.arm("siteAfterCharge", "1*sleep(1000)")
			p.waitFor(2*time.Minute, "a release charged", func() bool { return p.fired("siteAfterCharge") >= 1 })
			p.arm("journalTornWrite", `return("egress.jsonl")`)
			p.waitFor(time.Minute, "a torn journal record", func() bool { return tornTail(filepath.Join(state, "egress.jsonl")) })
		},
	},
	{
		name: "siteMidRelease", what: "mid-chunked-send: the update's first chunk sent, the second and the result not",
		reach: func(f *federation, p *proc, _ string) { p.holdAt("siteMidRelease", 2*time.Minute) },
	},
}

// TestSiteKill9AtFailpoints runs a DP job whose updates travel in two
// chunks and that needs all three sites, and SIGKILLs us/boston at each
// site failpoint in turn, restarting it on the same state each time (the
// coordinator redoes the round with it); FEDERA_CHAOS_TRIALS/5 such jobs (one by
// default, 10 in make chaos), each in a federation of its own (a DP job
// spends the dataset's whole lifetime budget). Right after each kill its privacy
// ledger and egress journal must parse (a torn last journal line is what
// a kill mid-write leaves) and every release the journal says left must be
// paid for. At the end the job has succeeded, the history
// checker's invariants hold, and each site's ledger accounts for at least
// the ε the coordinator was told and every round the coordinator
// aggregated its update in: the budget is never under-counted.
func TestSiteKill9AtFailpoints(t *testing.T) {
	t.Parallel()
	passes := (trials(t, 5) + 4) / 5
	for pass := 0; pass < passes; pass++ {
		t.Run(fmt.Sprintf("pass%d", pass), siteFailpointPass)
	}
	t.Logf("%d kills at failpoints over %d jobs", passes*len(sitePoints), passes)
}

func siteFailpointPass(t *testing.T) {
	f := startFederation(t, options{})
	h := newHistory()
	f.waitSites()
	// min_sites is all three: a round us/boston is killed in loses its
	// quorum, and the coordinator redoes it once the site is back — so each
	// kill costs one round, and the restarted site is asked for the very
	// release it was killed making (a paid one is resent as kept, never
	// paid for twice).
	rounds := len(sitePoints) + 1
	spec := strings.Replace(bigDPJob, "rounds: 3", fmt.Sprintf("rounds: %d", rounds), 1)
	id := f.submit(strings.Replace(spec, "min_sites: 2", "min_sites: 3", 1))
	boston := f.sites["us/boston"]
	state := f.siteState["us/boston"]
	journal := filepath.Join(state, "egress.jsonl")
	var v violations
	for i, pt := range sitePoints {
		// us/boston is connected (again) before the failpoint is armed.
		f.coord.waitLog(i+1, 2*time.Minute, `msg="site connected"`, "site=us/boston ")
		if j, ok := h.read(f, id); ok && j.ended() {
			t.Fatalf("%s: the job ended before the kill: %+v", pt.name, j)
		}
		pt.reach(f, boston, state)
		j, _ := h.read(f, id)
		boston.kill9()
		paid := ledgerPaid(t, f, "us/boston", id)
		recs, bad, err := readJournalLines(journal)
		if err != nil || len(bad) > 0 {
			v.add("%s: the egress journal after the kill: %v, lines %v not whole", pt.name, err, bad)
		}
		for _, r := range recs {
			if r.Job == id && r.Kind == "TASK_KIND_TRAIN" && r.Allowed && !slices.Contains(paid, r.Round) {
				v.add("%s: round %d's update left (journal) but the ledger at the kill paid only %v", pt.name, r.Round, paid)
			}
		}
		t.Logf("killed us/boston at %s (%s) in round %d; its ledger had paid %v, torn journal tail %v", pt.name, pt.what, j.RoundsCompleted+1, paid, tornTail(journal))
		// Back only once the coordinator has seen the round lose its
		// quorum, so that it redoes the round with the site.
		f.coord.waitLog(i+1, time.Minute, "round lost its quorum as sites left; redoing it")
		boston.start()
	}
	j := f.waitEnd(h, id, 5*time.Minute)
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job %s: %s", j.Status, j.Message)
	}
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}
	v = append(v, h.check(f, map[string]int{id: rounds}, true)...)
	v = append(v, budgetCovers(t, f, id)...)
	if left := tempOf(state, "privacy.json"); len(left) > 0 {
		v.add("us/boston left the ledger's temporary files of a write cut short: %v", left)
	}
	for _, x := range v {
		t.Error(x)
	}
}

// budgetCovers checks, for every site, that its ledger has paid for each
// round the coordinator aggregated its update in, and that the job's ε
// its ledger accounts for is at least what the coordinator was told.
func budgetCovers(t *testing.T, f *federation, id string) violations {
	t.Helper()
	var v violations
	out, errs, code := f.cli("job", "get", id, "-o", "json")
	if code != 0 {
		t.Fatalf("job get: %s", errs)
	}
	var job struct {
		Rounds []roundJSON `json:"rounds"`
		Sites  []struct {
			Site         string  `json:"site"`
			EpsilonSpent float64 `json:"epsilon_spent"`
		} `json:"sites"`
	}
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatal(err)
	}
	for _, s := range job.Sites {
		b, err := os.ReadFile(filepath.Join(f.siteState[s.Site], "privacy.json"))
		if err != nil {
			v.add("site %s: privacy ledger: %v", s.Site, err)
			continue
		}
		var lf struct {
			Datasets map[string]map[string]struct {
				Delta           float64 `json:"delta"`
				Q               float64 `json:"q"`
				Sigma           float64 `json:"sigma"`
				StepsPerRelease int     `json:"steps_per_release"`
				Paid            []int   `json:"paid"`
			} `json:"datasets"`
		}
		if err := json.Unmarshal(b, &lf); err != nil {
			v.add("site %s: privacy ledger does not parse: %v", s.Site, err)
			continue
		}
		plan := lf.Datasets["breast-cancer"][id]
		for _, r := range job.Rounds {
			if slices.Contains(r.Participants, s.Site) && !slices.Contains(plan.Paid, r.Round) {
				v.add("site %s: the coordinator aggregated its update of round %d, its ledger paid only %v: budget under-counted", s.Site, r.Round, plan.Paid)
			}
		}
		eps := 0.0
		if n := len(plan.Paid); n > 0 {
			one, err := privacy.SampledGaussian(plan.Q, plan.Sigma, 1, privacy.WideOrders)
			if err != nil {
				t.Fatal(err)
			}
			for i := range one.Eps {
				one.Eps[i] *= float64(n * plan.StepsPerRelease)
			}
			if eps, _, err = one.Epsilon(plan.Delta); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("site %s: ledger paid rounds %v (ε %.6g); the coordinator was told ε %.6g", s.Site, plan.Paid, eps, s.EpsilonSpent)
		if eps < s.EpsilonSpent*(1-1e-9) {
			v.add("site %s: its ledger accounts for ε %.6g, the coordinator was told %.6g: budget under-counted", s.Site, eps, s.EpsilonSpent)
		}
	}
	if len(job.Sites) == 0 {
		v.add("job %s lists no sites", id)
	}
	return v
}
