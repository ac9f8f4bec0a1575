package site

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/fsutil"
	"github.com/federa-dev/federa/policy"
	"github.com/federa-dev/federa/privacy"
)

// The privacy ledger is the site's account of every differentially
// private release about each of its datasets, across jobs, queries and
// restarts (state_dir/privacy.json). It keeps each job's plan (sampling
// rate, noise multiplier, steps per release, set once before the job's
// first release) and which of its releases were paid for; a dataset's
// spend is the Rényi-DP composition of all of them (package privacy),
// converted to (ε, δ) at the site's budget δ.
//
// A release is checked and charged in one step (begin … commit, under
// the ledger's lock), so two jobs cannot both pass a check that only one
// of them fits; and a release that was paid for is kept
// (state_dir/privacy/releases) and resent as it was when its round is
// redone, instead of being paid for twice.

// ledgerVersion is the file's format.
const ledgerVersion = 2

// slack absorbs float rounding when a spend is compared with its limit:
// a job calibrated to exactly its ε, or to exactly the budget left, runs to
// its last release.
const slack = 1e-9

// dpPlan is one job's (or query's) DP accounting: each release is
// StepsPerRelease steps of the sampled Gaussian mechanism with rate Q and
// noise multiplier Sigma, and the job may make Releases of them within
// (Epsilon, Delta).
type dpPlan struct {
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	Q               float64 `json:"q"`
	Sigma           float64 `json:"sigma"`
	ClipNorm        float64 `json:"clip_norm"`
	StepsPerRelease int     `json:"steps_per_release"`
	Releases        int     `json:"releases"`
	// Paid are the releases (rounds) already charged, sorted.
	Paid []int32 `json:"paid"`
	// unit is the RDP of one step, computed once: the spend of n steps is
	// n times it (privacy.SampledGaussian is linear in its steps), so a
	// charge does not redo every plan's accounting.
	unit []float64
}

// ledgerOrders are the Rényi orders the ledger accounts on
// (privacy.WideOrders): a coordinator calibrating a job's distributed
// noise uses the same, so both find the same σ.
var ledgerOrders = privacy.WideOrders

// rdp is the plan's spend after n releases: exactly what
// privacy.SampledGaussian gives for its n·StepsPerRelease steps.
func (p *dpPlan) rdp(n int) (privacy.RDP, error) {
	if p.unit == nil {
		one, err := privacy.SampledGaussian(p.Q, p.Sigma, 1, ledgerOrders)
		if err != nil {
			return privacy.RDP{}, err
		}
		p.unit = one.Eps
	}
	steps := float64(n * p.StepsPerRelease)
	eps := make([]float64, len(p.unit))
	for i, e := range p.unit {
		eps[i] = e * steps
	}
	return privacy.RDP{Orders: ledgerOrders, Eps: eps}, nil
}

type ledgerFile struct {
	Version int `json:"version"`
	// Datasets maps a dataset to its jobs' plans, by job ID.
	Datasets map[string]map[string]*dpPlan `json:"datasets"`
	// Legacy is ε spent per dataset under a ledger of version 1 (basic
	// composition of (ε, δ) releases); it is added to the dataset's ε as
	// is, which basic composition allows.
	Legacy map[string]float64 `json:"legacy_epsilon,omitempty"`
}

type ledger struct {
	mu   sync.Mutex
	path string // "" keeps the ledger in memory only
	f    ledgerFile
	// Kept releases when in memory only (memMu, not mu: they are kept
	// while a charge holds mu).
	memMu sync.Mutex
	mem   map[string]paidRelease
}

func openLedger(stateDir string) (*ledger, error) {
	l := &ledger{f: ledgerFile{Version: ledgerVersion, Datasets: map[string]map[string]*dpPlan{}}}
	if stateDir == "" {
		return l, nil
	}
	l.path = filepath.Join(stateDir, "privacy.json")
	// A crash between writing the ledger's (or a kept release's) temporary
	// file and renaming it into place leaves that file behind; what it held
	// never counted, and nothing of that release left. The state directory
	// is locked: no other process writes them.
	for _, t := range [][2]string{{stateDir, "privacy.json"}, {filepath.Dir(l.releasePath("")), "*.json"}} {
		if _, err := fsutil.RemoveTemps(t[0], t[1]); err != nil {
			return nil, fmt.Errorf("privacy ledger: %w", err)
		}
	}
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read privacy ledger: %w", err)
	}
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err == nil && probe.Version == ledgerVersion {
		if err := json.Unmarshal(b, &l.f); err != nil {
			return nil, fmt.Errorf("read privacy ledger %s: %w", l.path, err)
		}
		if l.f.Datasets == nil {
			l.f.Datasets = map[string]map[string]*dpPlan{}
		}
		return l, nil
	}
	// Version 1: ε per dataset.
	if err := json.Unmarshal(b, &l.f.Legacy); err != nil {
		return nil, fmt.Errorf("read privacy ledger %s: neither version %d nor a version-1 map of ε per dataset: %w", l.path, ledgerVersion, err)
	}
	return l, nil
}

// spentRDP composes every plan of dataset with paid releases, replacing
// skip's by its spend after skipN releases when skip is not "".
func (l *ledger) spentRDP(dataset, skip string, skipN int) (privacy.RDP, error) {
	total, err := privacy.Zero(ledgerOrders)
	if err != nil {
		return total, err
	}
	for _, job := range slices.Sorted(maps.Keys(l.f.Datasets[dataset])) {
		p := l.f.Datasets[dataset][job]
		n := len(p.Paid)
		if job == skip {
			n = skipN
		}
		if n == 0 {
			continue
		}
		r, err := p.rdp(n)
		if err != nil {
			return total, fmt.Errorf("job %s: %w", job, err)
		}
		if total, err = total.Compose(r); err != nil {
			return total, err
		}
	}
	return total, nil
}

// datasetEpsilon is dataset's lifetime ε at delta, with job's spend taken
// as jobReleases releases (its paid ones when job is "").
func (l *ledger) datasetEpsilon(dataset, job string, jobReleases int, delta float64) (float64, error) {
	r, err := l.spentRDP(dataset, job, jobReleases)
	if err != nil {
		return 0, err
	}
	eps, _, err := r.Epsilon(delta)
	if err != nil {
		return 0, err
	}
	return eps + l.f.Legacy[dataset], nil
}

// budgetDelta is the δ a dataset's lifetime ε is stated at: the budget's,
// else the job's own.
func budgetDelta(b policy.Budget, p *dpPlan) float64 {
	if b.Delta > 0 {
		return b.Delta
	}
	return p.Delta
}

// plan records job's plan for dataset before its first release, after
// checking that the whole plan fits the dataset's lifetime budget beside
// everything already spent. A plan made before (the job resumed after a
// restart) is kept as it was and returned.
func (l *ledger) plan(dataset, job string, p dpPlan, budget policy.Budget) (*dpPlan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.f.Datasets[dataset][job]; old != nil {
		return old, nil
	}
	if err := l.fitsLocked(dataset, job, &p, budget); err != nil {
		return nil, err
	}
	l.addPlan(dataset, job, &p)
	if err := l.save(); err != nil {
		delete(l.f.Datasets[dataset], job)
		return nil, err
	}
	return &p, nil
}

// fits says why the whole plan p would not fit dataset's lifetime budget
// beside everything already spent, or nil; it records nothing (the
// admission asks it before a job is accepted).
func (l *ledger) fits(dataset, job string, p dpPlan, budget policy.Budget) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f.Datasets[dataset][job] != nil {
		return nil // planned already: it fitted then, and its spend is counted
	}
	return l.fitsLocked(dataset, job, &p, budget)
}

func (l *ledger) fitsLocked(dataset, job string, p *dpPlan, budget policy.Budget) error {
	if budget.Epsilon <= 0 {
		return nil
	}
	l.addPlan(dataset, job, p)
	after, err := l.datasetEpsilon(dataset, job, p.Releases, budget.Delta)
	before, err2 := l.datasetEpsilon(dataset, job, 0, budget.Delta)
	delete(l.f.Datasets[dataset], job)
	if err = errors.Join(err, err2); err != nil {
		return fmt.Errorf("privacy ledger: %w", err)
	}
	if after > budget.Epsilon*(1+slack) {
		what := fmt.Sprintf("this job's epsilon %g over %d rounds", p.Epsilon, p.Releases)
		if p.Q == 1 && p.StepsPerRelease == 1 && p.Releases == 1 {
			what = fmt.Sprintf("this query's epsilon %g", p.Epsilon)
		}
		return fmt.Errorf("privacy budget: dataset %q has spent epsilon %.4g (at delta %g), %.4g left of its lifetime %g; %s would bring it to %.4g. Ask for less epsilon or fewer rounds, or ask the site to raise limits.max_epsilon",
			dataset, before, budget.Delta, math.Max(0, budget.Epsilon-before), budget.Epsilon, what, after)
	}
	return nil
}

func (l *ledger) addPlan(dataset, job string, p *dpPlan) {
	if l.f.Datasets[dataset] == nil {
		l.f.Datasets[dataset] = map[string]*dpPlan{}
	}
	l.f.Datasets[dataset][job] = p
}

// lookup returns job's plan for dataset, or nil.
func (l *ledger) lookup(dataset, job string) *dpPlan {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.f.Datasets[dataset][job]; p != nil {
		c := *p
		c.Paid = slices.Clone(p.Paid)
		return &c
	}
	return nil
}

// ledgerTx is one release being checked and charged; it holds the ledger
// until commit or abort.
type ledgerTx struct {
	l                *ledger
	dataset, job     string
	round            int32
	plan             *dpPlan
	paid             bool    // this release was paid for before: resend it
	jobEpsilon       float64 // the job's ε with this release
	datasetEpsilon   float64 // the dataset's lifetime ε with this release
	budget           policy.Budget
	datasetDelta     float64
	releaseNumber    int
	releasesAfterPay int
}

// begin starts checking release round of job: it locks the ledger and
// computes the spend with this release, or says it was paid for already.
// The error says why the release cannot be paid for (no plan, more
// releases than planned, the job's ε or the dataset's budget exceeded);
// the ledger is then unlocked.
func (l *ledger) begin(dataset, job string, round int32, budget policy.Budget) (*ledgerTx, error) {
	l.mu.Lock()
	tx := &ledgerTx{l: l, dataset: dataset, job: job, round: round, budget: budget}
	if err := tx.compute(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return tx, nil
}

func (tx *ledgerTx) compute() error {
	l := tx.l
	p := l.f.Datasets[tx.dataset][tx.job]
	if p == nil {
		return fmt.Errorf("privacy ledger: job %s has no privacy plan for dataset %q (the plan is made when the job starts; was the ledger removed?)", tx.job, tx.dataset)
	}
	tx.plan = p
	tx.datasetDelta = budgetDelta(tx.budget, p)
	n := len(p.Paid)
	if _, found := slices.BinarySearch(p.Paid, tx.round); found {
		tx.paid = true
	} else {
		n++
		if n > p.Releases {
			return fmt.Errorf("privacy ledger: job %s planned %d DP releases and has made them all", tx.job, p.Releases)
		}
	}
	tx.releasesAfterPay = n
	r, err := p.rdp(n)
	if err != nil {
		return fmt.Errorf("privacy ledger: %w", err)
	}
	eps, _, err := r.Epsilon(p.Delta)
	if err != nil {
		return fmt.Errorf("privacy ledger: %w", err)
	}
	tx.jobEpsilon = round12(eps)
	if tx.datasetEpsilon, err = l.datasetEpsilon(tx.dataset, tx.job, n, tx.datasetDelta); err != nil {
		return fmt.Errorf("privacy ledger: %w", err)
	}
	tx.datasetEpsilon = round12(tx.datasetEpsilon)
	if tx.paid {
		return nil
	}
	if tx.jobEpsilon > p.Epsilon*(1+slack) {
		return fmt.Errorf("privacy budget: job %s would spend epsilon %.6g of the %g it declared", tx.job, tx.jobEpsilon, p.Epsilon)
	}
	if b := tx.budget.Epsilon; b > 0 && tx.datasetEpsilon > b*(1+slack) {
		left, _ := l.datasetEpsilon(tx.dataset, "", 0, tx.datasetDelta)
		return fmt.Errorf("privacy budget: dataset %q has epsilon %.4g left of its lifetime %g (at delta %g); this release would bring it to %.4g",
			tx.dataset, math.Max(0, b-left), b, tx.datasetDelta, tx.datasetEpsilon)
	}
	return nil
}

// commit charges the release durably (a no-op for one paid before) and
// unlocks the ledger.
func (tx *ledgerTx) commit() error {
	defer tx.l.mu.Unlock()
	if tx.paid {
		return nil
	}
	p := tx.plan
	i, _ := slices.BinarySearch(p.Paid, tx.round)
	p.Paid = slices.Insert(p.Paid, i, tx.round)
	if err := tx.l.save(); err != nil {
		p.Paid = slices.Delete(p.Paid, i, i+1)
		return err
	}
	return nil
}

// abort releases the ledger without charging.
func (tx *ledgerTx) abort() { tx.l.mu.Unlock() }

func (l *ledger) save() error {
	if l.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(l.f, "", "  ")
	if err != nil {
		return fmt.Errorf("record privacy spend: %w", err)
	}
	if err := attest.WriteFileAtomic(l.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record privacy spend: %w", err)
	}
	return nil
}

// round12 keeps 12 significant digits: the figures the policy compares
// with its limits, so that a spend equal to a limit up to float rounding
// reads as equal.
func round12(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, 11-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// paidRelease is a DP release as it was paid for: resent as is when its
// round is redone.
type paidRelease struct {
	Round     int32   `json:"round"`
	Examples  int64   `json:"examples"`
	TrainLoss float64 `json:"train_loss"`
	Weights   []byte  `json:"weights"` // models.EncodeWeights
	// Share is a distributed-DP round's noisy share, packed
	// (secagg.Pack), kept instead of weights.
	Share []byte `json:"share,omitempty"`
}

// releasePath is where job's last paid release is kept; the job ID (a
// coordinator's string) is hashed, never used as a path.
func (l *ledger) releasePath(job string) string {
	sum := sha256.Sum256([]byte(job))
	return filepath.Join(filepath.Dir(l.path), "privacy", "releases", hex.EncodeToString(sum[:16])+".json")
}

// keepRelease stores job's release before it is charged, replacing the
// job's previous one (only the round being redone can come again).
func (l *ledger) keepRelease(job string, r paidRelease) error {
	if l.path == "" {
		l.memMu.Lock()
		defer l.memMu.Unlock()
		if l.mem == nil {
			l.mem = map[string]paidRelease{}
		}
		l.mem[job] = r
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("keep the paid release: %w", err)
	}
	p := l.releasePath(job)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("keep the paid release: %w", err)
	}
	if err := attest.WriteFileAtomic(p, b, 0o600); err != nil {
		return fmt.Errorf("keep the paid release: %w", err)
	}
	return nil
}

// paidReleaseOf returns job's kept release for round, or an error saying
// it is missing.
func (l *ledger) paidReleaseOf(job string, round int32) (*paidRelease, error) {
	var r paidRelease
	if l.path == "" {
		l.memMu.Lock()
		r = l.mem[job]
		l.memMu.Unlock()
	} else {
		b, err := os.ReadFile(l.releasePath(job))
		if err != nil {
			return nil, fmt.Errorf("round %d of job %s was paid for but its release is not kept: %w", round, job, err)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("round %d of job %s: the kept release is unreadable: %w", round, job, err)
		}
	}
	if r.Round != round || (r.Weights == nil && r.Share == nil) {
		return nil, fmt.Errorf("round %d of job %s was paid for but the kept release is of round %d; refusing to pay twice", round, job, r.Round)
	}
	return &r, nil
}
