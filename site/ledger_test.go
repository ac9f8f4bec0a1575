package site

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/federa-dev/federa/policy"
	"github.com/federa-dev/federa/privacy"
)

var testBudget = policy.Budget{Epsilon: 8, Delta: 1e-5}

// planFor calibrates a plan the way planDP does: eps over rounds of
// steps DP-SGD steps at rate q.
func planFor(t *testing.T, eps float64, rounds, steps int, q float64) dpPlan {
	t.Helper()
	sigma, err := privacy.CalibrateNoise(eps, 1e-5, q, rounds*steps, ledgerOrders)
	if err != nil {
		t.Fatal(err)
	}
	return dpPlan{Epsilon: eps, Delta: 1e-5, Q: q, Sigma: sigma, ClipNorm: 1, StepsPerRelease: steps, Releases: rounds}
}

func pay(t *testing.T, l *ledger, dataset, job string, round int32) *ledgerTx {
	t.Helper()
	tx, err := l.begin(dataset, job, round, testBudget)
	if err != nil {
		t.Fatalf("round %d of %s: %v", round, job, err)
	}
	if err := tx.commit(); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestLedgerRunsAJobToItsExactBudget: a job calibrated to exactly its ε,
// asking exactly the dataset's budget, makes every release (no float
// accident at the last), and spends its ε.
func TestLedgerRunsAJobToItsExactBudget(t *testing.T) {
	for _, rounds := range []int{9, 20, 1} {
		l, err := openLedger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.plan("wards", "job-1", planFor(t, 8, rounds, 7, 0.05), testBudget); err != nil {
			t.Fatal(err)
		}
		var last *ledgerTx
		for r := 1; r <= rounds; r++ {
			last = pay(t, l, "wards", "job-1", int32(r))
		}
		if last.jobEpsilon > 8 || last.jobEpsilon < 8*(1-1e-4) || last.datasetEpsilon > 8 {
			t.Errorf("%d rounds: job spent %v, dataset %v; want just under 8", rounds, last.jobEpsilon, last.datasetEpsilon)
		}
		if _, err := l.begin("wards", "job-1", int32(rounds+1), testBudget); err == nil || !strings.Contains(err.Error(), "has made them all") {
			t.Errorf("a release beyond the plan: %v", err)
		}
	}
}

// TestLedgerComposesJobsWithinTheDatasetsBudget: jobs on one dataset
// share its lifetime budget; one that would overspend is refused at its
// plan, saying what is spent and what it would take; another dataset is
// not affected.
func TestLedgerComposesJobsWithinTheDatasetsBudget(t *testing.T) {
	dir := t.TempDir()
	l, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"job-a", "job-b"} {
		if _, err := l.plan("wards", job, planFor(t, 3, 5, 10, 0.05), testBudget); err != nil {
			t.Fatal(err)
		}
		for r := int32(1); r <= 5; r++ {
			pay(t, l, "wards", job, r)
		}
	}
	// Two ε = 3 jobs compose to less than 6 under RDP, but a third would
	// pass 8.
	spent := datasetSpent(l, "wards")
	if spent <= 3 || spent >= 6 {
		t.Errorf("two ε=3 jobs: dataset ε %v, want in (3, 6)", spent)
	}
	_, err = l.plan("wards", "job-c", planFor(t, 7.5, 5, 10, 0.05), testBudget)
	if err == nil || !strings.Contains(err.Error(), `dataset "wards" has spent epsilon`) || !strings.Contains(err.Error(), "lifetime 8") {
		t.Fatalf("a job over the lifetime budget: %v", err)
	}
	if _, err := l.plan("labs", "job-c", planFor(t, 6, 5, 10, 0.05), testBudget); err != nil {
		t.Errorf("another dataset's budget is its own: %v", err)
	}
	// The ledger survives a restart, format and all.
	again, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := datasetSpent(again, "wards"); s != spent {
		t.Errorf("after reopening: dataset ε %v, was %v", s, spent)
	}
	if p := again.lookup("wards", "job-a"); p == nil || len(p.Paid) != 5 {
		t.Errorf("job-a's plan after reopening: %+v", p)
	}
}

// TestLedgerChargesOnceUnderConcurrency: two jobs each planned within
// the budget alone but not together cannot both release: check and
// charge are one step.
func TestLedgerChargesOnceUnderConcurrency(t *testing.T) {
	l, err := openLedger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Planned with no budget (as a policy without privacy_budget would),
	// then charged under one: only the charges can stop them.
	for _, job := range []string{"job-a", "job-b"} {
		if _, err := l.plan("wards", job, planFor(t, 7, 1, 10, 0.05), policy.Budget{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, refused int
	for _, job := range []string{"job-a", "job-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := l.begin("wards", job, 1, testBudget)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !strings.Contains(err.Error(), "left of its lifetime 8") {
					t.Errorf("refusal: %v", err)
				}
				refused++
				return
			}
			ok++
			if err := tx.commit(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != 1 {
		t.Errorf("%d releases paid, %d refused; want 1 and 1", ok, refused)
	}
}

// TestLedgerRedoneRoundIsNotPaidTwice: a round paid for comes back (a
// coordinator restarted mid-round): it is marked paid, costs nothing, and
// its kept release is the one to resend.
func TestLedgerRedoneRoundIsNotPaidTwice(t *testing.T) {
	dir := t.TempDir()
	l, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.plan("wards", "job-1", planFor(t, 2, 3, 10, 0.1), testBudget); err != nil {
		t.Fatal(err)
	}
	tx, err := l.begin("wards", "job-1", 1, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.keepRelease("job-1", paidRelease{Round: 1, Examples: 40, Weights: []byte("w1")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.commit(); err != nil {
		t.Fatal(err)
	}
	first := jobSpent(l, "wards", "job-1")
	l, err = openLedger(dir) // the site restarts too
	if err != nil {
		t.Fatal(err)
	}
	redo := pay(t, l, "wards", "job-1", 1)
	if !redo.paid || redo.jobEpsilon != first {
		t.Errorf("redone round: paid %v, job ε %v; want paid, %v", redo.paid, redo.jobEpsilon, first)
	}
	if now := jobSpent(l, "wards", "job-1"); now != first {
		t.Errorf("the redone round cost %v more", now-first)
	}
	kept, err := l.paidReleaseOf("job-1", 1)
	if err != nil || string(kept.Weights) != "w1" || kept.Examples != 40 {
		t.Fatalf("kept release: %+v, %v", kept, err)
	}
	if _, err := l.paidReleaseOf("job-1", 2); err == nil {
		t.Error("round 2 was never paid for, yet a release was found")
	}
	// A job ID is never a path.
	if err := l.keepRelease("../../escape", paidRelease{Round: 1, Weights: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "escape")); err == nil {
		t.Error("a job ID escaped the state directory")
	}
}

// TestLedgerReadsVersion1: a ledger written before RDP accounting (ε per
// dataset) keeps counting: its ε is added to the dataset's.
func TestLedgerReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "privacy.json"), []byte(`{"wards": 2.5}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := datasetSpent(l, "wards"); s != 2.5 {
		t.Errorf("legacy spend %v, want 2.5", s)
	}
	if _, err := l.plan("wards", "job-1", planFor(t, 6, 2, 10, 0.05), testBudget); err == nil {
		t.Error("a job of ε 6 fit beside a legacy 2.5 under a budget of 8")
	}
	if err := os.WriteFile(filepath.Join(dir, "privacy.json"), []byte(`{"wards": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openLedger(dir); err == nil || !strings.Contains(err.Error(), "privacy.json") {
		t.Errorf("an unreadable ledger: %v", err)
	}
}

// datasetSpent is dataset's lifetime ε at the test budget's δ.
func datasetSpent(l *ledger, dataset string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.datasetEpsilon(dataset, "", 0, testBudget.Delta)
	if err != nil {
		panic(err)
	}
	return round12(e)
}

// jobSpent is what job's paid releases spent, at its δ.
func jobSpent(l *ledger, dataset, job string) float64 {
	p := l.lookup(dataset, job)
	r, err := p.rdp(len(p.Paid))
	if err != nil {
		panic(err)
	}
	e, _, err := r.Epsilon(p.Delta)
	if err != nil {
		panic(err)
	}
	return round12(e)
}

// TestPlanSpendIsTheAccountantsExactly: the ledger's spend of n releases,
// computed from one step's RDP, is bit for bit what the accountant gives
// for the same steps (the calibration's figure), so the exact-budget
// guarantee carries over.
func TestPlanSpendIsTheAccountantsExactly(t *testing.T) {
	p := planFor(t, 3, 7, 13, 0.07)
	for _, n := range []int{0, 1, 4, 7} {
		got, err := p.rdp(n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := privacy.SampledGaussian(p.Q, p.Sigma, n*p.StepsPerRelease, ledgerOrders)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Eps, want.Eps) || !slices.Equal(got.Orders, want.Orders) {
			t.Fatalf("%d releases: ledger %v, accountant %v", n, got.Eps[:3], want.Eps[:3])
		}
	}
}

// TestOpenLedgerSweepsTemporaryFiles: a ledger (or kept release) write cut
// short by a crash before its rename leaves a temporary file; opening the
// ledger removes those and nothing else. chaos TestSiteKill9AtFailpoints
// kills a site at that point.
func TestOpenLedgerSweepsTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	l, err := openLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	releases := filepath.Dir(l.releasePath("job"))
	if err := os.MkdirAll(releases, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(dir, ".privacy.json.tmp-123"), filepath.Join(releases, ".abc.json.tmp-456")}
	keep := []string{filepath.Join(dir, "egress.jsonl"), filepath.Join(releases, "abc.json"), filepath.Join(dir, ".other.json.tmp-1")}
	for _, p := range append(slices.Clone(stale), keep...) {
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := openLedger(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there after the ledger opened (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v; only the ledger's temporary files may go", p, err)
		}
	}
}
