package site

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

// execute runs one task against local data and returns what it would
// release. Whatever it returns is an aggregate by construction: the result
// message has no field that can hold a row. Before touching data it asks
// the site's admission policy, for every task, so a policy change takes
// effect at the next task.
// dst (nil: none) is memory a train task's architecture may put its
// update in (train).
func (a *Agent) execute(ctx context.Context, t *federav1.Task, w, dst models.Weights) (r *release) {
	// A bug that panics fails its task, not the site: the stack stays in
	// the site's log, and only that an internal error happened leaves (a
	// panic's value may quote the data).
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("task panicked: a bug in federa; the task fails, the site stays up",
				logkeys.Job, t.GetJobId(), logkeys.Task, t.GetTaskId(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r = &release{res: &federav1.TaskResult{TaskId: t.GetTaskId(), JobId: t.GetJobId(), Round: t.GetRound(), Kind: t.GetKind(),
				Error: fmt.Sprintf("site %s: internal error while running this task (a bug; the details are in the site's log)", a.siteName())}}
		}
	}()
	res := &federav1.TaskResult{TaskId: t.GetTaskId(), JobId: t.GetJobId(), Round: t.GetRound(), Kind: t.GetKind()}
	r = &release{res: res}
	if a.opts.beforeTask != nil {
		a.opts.beforeTask(ctx, t)
	}
	start := time.Now()
	defer func() { res.ComputeMs = float64(time.Since(start)) / float64(time.Millisecond) }()
	if why := a.forked(); why != "" {
		res.Error = fmt.Sprintf("site %s refuses all tasks: the coordinator's audit log was forked or rewritten (%s)", a.siteName(), why)
		if t.GetKind() == federav1.TaskKind_TASK_KIND_ADMIT {
			res.Error = ""
			res.Admission = &federav1.Admission{Outcome: federav1.Admission_OUTCOME_DENY, Reasons: []string{
				"this site refuses all tasks: the coordinator's audit log was forked or rewritten (" + why + ")"}}
		}
		return r
	}
	switch t.GetKind() {
	case federav1.TaskKind_TASK_KIND_ADMIT:
		res.Admission = a.admit(ctx, t, t.GetDryRun()).answer
		return r
	case federav1.TaskKind_TASK_KIND_DECIDE:
		res.ApprovalStatus, res.Error = a.decideRemote(t)
		return r
	}
	if isQuery(t) != (t.GetKind() == federav1.TaskKind_TASK_KIND_QUERY) {
		// A query's request rides only on its own tasks: a job's task
		// carrying one would be judged by the query's admission.
		res.Error = fmt.Sprintf("a %s task must carry a query request exactly when it is a query task; refusing", t.GetKind())
		return r
	}
	ad, ok := a.secaggAdmitted(t)
	if !ok {
		ad = a.admit(ctx, t, false)
	}
	switch ad.answer.GetOutcome() {
	case federav1.Admission_OUTCOME_ALLOW:
	case federav1.Admission_OUTCOME_PENDING_APPROVAL:
		res.Error = fmt.Sprintf("waiting for approval at %s", a.siteName())
		return r
	default:
		res.Error = fmt.Sprintf("not admitted at %s: %s", a.siteName(), strings.Join(ad.answer.GetReasons(), "; "))
		return r
	}
	res.ObligationsEnforced = ad.enforced()
	r.admitted = ad
	var err error
	switch t.GetKind() {
	case federav1.TaskKind_TASK_KIND_STATS:
		err = a.stats(t, ad, r)
	case federav1.TaskKind_TASK_KIND_TRAIN:
		err = a.train(ctx, t, w, dst, ad, r)
		if err == nil && t.GetSecagg() != nil {
			err = a.secaggKeys(t, w, r)
		}
	case federav1.TaskKind_TASK_KIND_SECAGG:
		err = a.secaggPhase(t, r)
	case federav1.TaskKind_TASK_KIND_EVAL:
		err = a.eval(t, w, ad, r)
	case federav1.TaskKind_TASK_KIND_QUERY:
		err = a.query(t, ad, r)
	default:
		err = fmt.Errorf("task kind %s is not supported by this agent (version %s)", t.GetKind(), Version)
	}
	if err != nil {
		res.Error = redact(err).Error()
		r.kind, r.weights, r.ring = "", nil, nil
	}
	return r
}

// SplitSeed is the seed a site uses to split a dataset into train and eval
// rows for a job. Exported so a centralized baseline can reproduce exactly
// the rows the sites trained on.
func SplitSeed(specSeed int64) int64 { return specSeed }

// TrainSeed is the shuffling seed for a site's local training in a round:
// distinct per site and round, reproducible for a job.
func TrainSeed(specSeed int64, site string, round int32) int64 {
	h := fnv.New64a()
	h.Write([]byte(site))
	return specSeed ^ int64(h.Sum64()>>1) ^ int64(round)*1_000_003
}

type prepared struct {
	train, eval *dataset.Table
}

// load reads and splits the job's dataset. features is the agreed column
// order (empty in the stats task: the job's own list, or every column the
// obligations allow).
func (a *Agent) load(t *federav1.Task, ds *Dataset, features []string, ad admitted) (*prepared, error) {
	sp := t.GetSpec()
	if ds.Label != "" && ds.Label != sp.GetLabel() {
		return nil, fmt.Errorf("dataset %q: the job asks for label %q but this site declares %q as its label column", ds.Name, sp.GetLabel(), ds.Label)
	}
	if len(features) == 0 {
		var err error
		if features, err = touched(ds, sp, ad.obligations.DropColumns); err != nil {
			return nil, err
		}
	}
	for _, c := range ad.obligations.DropColumns {
		if slices.Contains(features, c) {
			return nil, fmt.Errorf("obligation drop_columns: column %q may not be used at this site", c)
		}
	}
	// The task's columns (the coordinator's agreed list) must be ones the
	// admission judged: a coordinator cannot widen what a job reads.
	judged := make(map[string]bool, len(ad.features))
	for _, c := range ad.features {
		judged[c] = true
	}
	for _, c := range features {
		if !judged[c] {
			return nil, fmt.Errorf("the task reads column %q, which the admission of job %s did not judge; refusing", c, t.GetJobId())
		}
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%v", t.GetJobId(), ds.Name, sp.GetLabel(), features)
	p, err := a.data.get(key, func() (*prepared, error) {
		tab, err := ds.source().Load(dataset.Options{Label: sp.GetLabel(), Features: features})
		if err != nil {
			a.log.Warn("load dataset", "dataset", ds.Name, "err", err)
			return nil, err
		}
		train, eval := tab.Split(sp.GetEvalFraction(), SplitSeed(sp.GetSeed()))
		if train.Rows() == 0 {
			return nil, fmt.Errorf("dataset %q: no training rows after holding out eval_fraction %v", ds.Name, sp.GetEvalFraction())
		}
		return &prepared{train: train, eval: eval}, nil
	})
	if err != nil {
		return nil, err
	}
	if ad.minRecords > 0 && p.train.Rows() < ad.minRecords {
		// The count below the minimum is itself a small count: not said.
		return nil, fmt.Errorf("obligation min_records=%d: fewer training rows than that here", ad.minRecords)
	}
	return p, nil
}

func (a *Agent) stats(t *federav1.Task, ad admitted, r *release) error {
	p, err := a.load(t, ad.dataset, t.GetSpec().GetFeatures(), ad)
	if err != nil {
		return err
	}
	arch, err := spec.ArchOf(t.GetSpec())
	if err != nil {
		return err
	}
	res := r.res
	m := models.ComputeMoments(p.train.X)
	res.Features = p.train.Features
	if arch.Kind() == models.Regressor {
		// A regressor's label is a number that never leaves as a value:
		// check here that it is one, so a bad cell fails the stats phase
		// rather than the first round.
		for _, tab := range []*dataset.Table{p.train, p.eval} {
			if _, err := tab.LabelValues(); err != nil {
				return err
			}
		}
	} else {
		res.Classes = classesOf(p.train, p.eval)
		if err := checkClassSizes(t.GetSpec().GetLabel(), ad.minRecords, p.train, p.eval); err != nil {
			return err
		}
	}
	if err := a.planDP(t, ad, p.train.Rows()); err != nil {
		return err
	}
	res.Count, res.Sum, res.SumSq = m.Count, m.Sum, m.SumSq
	res.TrainRows, res.EvalRows = int64(p.train.Rows()), int64(p.eval.Rows())
	res.RawBytes = p.train.Bytes
	r.kind, r.records, r.dataset = egressStatistics, int64(p.train.Rows()), ad.dataset.Name
	r.maxBytes = boundFor(egressStatistics, len(res.Features), len(res.Classes), 0)
	// boundFor allows 64 bytes a column for its name; a longer name (the
	// site's own header, sent as it is) widens the bound by the rest.
	for _, f := range res.Features {
		r.maxBytes += int64(max(0, len(f)+3-64))
	}
	r.input = a.taskInput(t, ad, res.Features)
	return nil
}

// checkClassSizes refuses to release class names when any of them is held
// by fewer than minRecords rows here: a class name is a value of the label
// column, and a rare one singles out the few rows that hold it. The policy
// judged the file's label profile at admission; this checks the rows the
// task actually loaded, whatever the policy said.
func checkClassSizes(label string, minRecords int, tabs ...*dataset.Table) error {
	if minRecords <= 0 {
		return nil
	}
	counts := map[string]int{}
	for _, t := range tabs {
		for _, v := range t.Labels {
			counts[v]++
		}
	}
	for _, n := range counts {
		if n < minRecords {
			return fmt.Errorf("obligation min_records=%d: label %q has a value held by fewer rows than that here; its values may not leave as class names", minRecords, label)
		}
	}
	return nil
}

// taskInput is the policy input for a task's release: the admission's
// input with the columns the task actually read.
func (a *Agent) taskInput(t *federav1.Task, ad admitted, features []string) policy.Input {
	in := a.policyInput(t, ad.dataset, features)
	in.Site.Dataset.Label = ad.label
	return in
}

func classesOf(tabs ...*dataset.Table) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tabs {
		for _, c := range t.Classes() {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// standardized prepares a split for the model: the agreed scaler, and the
// targets its kind takes (class indices, or the label's values).
func standardized(tab *dataset.Table, t *federav1.Task, kind models.Kind) (*mat.Dense, models.Targets, error) {
	var y models.Targets
	var err error
	if kind == models.Regressor {
		y.Values, err = tab.LabelValues()
	} else {
		y.Classes, err = tab.ClassIndex(t.GetClasses())
	}
	if err != nil {
		return nil, y, err
	}
	s := models.Scaler{Mean: t.GetScalerMean(), Scale: t.GetScalerScale()}
	if len(s.Mean) != len(t.GetFeatures()) || len(s.Scale) != len(t.GetFeatures()) {
		return nil, y, fmt.Errorf("task has a scaler for %d/%d columns but %d features", len(s.Mean), len(s.Scale), len(t.GetFeatures()))
	}
	return s.Apply(tab.X), y, nil
}

// train runs a train task from w. dst (nil: none) is memory the
// architecture may put its new weights in (models.IntoTrainer): a past
// update of this site's that has left, sharing no memory with w.
func (a *Agent) train(ctx context.Context, t *federav1.Task, w, dst models.Weights, ad admitted, r *release) error {
	if w == nil {
		return fmt.Errorf("train task %s came without weights", t.GetTaskId())
	}
	p, err := a.load(t, ad.dataset, t.GetFeatures(), ad)
	if err != nil {
		return err
	}
	sp := t.GetSpec()
	arch, err := spec.ArchOf(sp)
	if err != nil {
		return err
	}
	X, y, err := standardized(p.train, t, arch.Kind())
	if err != nil {
		return err
	}
	mu, err := proxMu(sp)
	if err != nil {
		return err
	}
	if err := arch.Check(w, len(t.GetFeatures()), len(t.GetClasses())); err != nil {
		return fmt.Errorf("the task's %s weights: %w", arch.Name(), err)
	}
	if on, _, _, _ := spec.SecAggOf(sp, 1); on && t.GetSecagg() == nil {
		// The job promises that no site's own update is seen: it leaves
		// only masked, in a secure round.
		return errors.New("the job asks for secure aggregation, but this training task is not part of a secure round; refusing to send this site's update in the clear")
	}
	cfg := models.TrainConfig{
		Epochs:       int(sp.GetLocalEpochs()),
		BatchSize:    int(sp.GetBatchSize()),
		LearningRate: sp.GetLearningRate(),
		L2:           sp.GetL2(),
		Seed:         TrainSeed(sp.GetSeed(), a.cfg.Identity.ID().String(), t.GetRound()),
		ProxMu:       mu,
		Optimizer:    spec.OptimizerOf(sp),
	}
	r.dataset = ad.dataset.Name
	if dp := sp.GetPrivacy().GetDp(); dp != nil {
		plan := a.ledger.lookup(ad.dataset.Name, t.GetJobId())
		if plan == nil {
			// The plan is made in the stats phase; a job resumed from a
			// checkpoint after this site lost it plans again here.
			if err := a.planDP(t, ad, p.train.Rows()); err != nil {
				return err
			}
			plan = a.ledger.lookup(ad.dataset.Name, t.GetJobId())
		}
		r.dp = &dpRelease{budget: ad.obligations.PrivacyBudget, plan: plan}
		if spec.DistributedDP(sp) {
			if err := a.trainShare(t, w, arch, X, y, plan, r); err != nil {
				return err
			}
			r.maxBytes = boundFor(egressModelUpdate, 0, 0, arch.NumParams(len(t.GetFeatures()), len(t.GetClasses())))
			r.input = a.taskInput(t, ad, t.GetFeatures())
			return nil
		}
		if _, paid := slices.BinarySearch(plan.Paid, t.GetRound()); paid {
			// This round was released and paid for before a restart:
			// the same release goes again, at no new cost.
			kept, err := a.ledger.paidReleaseOf(t.GetJobId(), t.GetRound())
			if err != nil {
				return err
			}
			update, err := models.DecodeWeights(kept.Weights)
			if err != nil {
				return fmt.Errorf("the kept release of round %d: %w", t.GetRound(), err)
			}
			r.res.Examples, r.res.TrainLoss = kept.Examples, kept.TrainLoss
			r.weights, r.kind, r.records = update, egressModelUpdate, kept.Examples
			r.res.ObligationsEnforced = append(r.res.ObligationsEnforced, fmt.Sprintf("dp: round %d resent as paid for (no new spend)", t.GetRound()))
			r.dpNoise(plan)
			r.maxBytes = boundFor(egressModelUpdate, 0, 0, arch.NumParams(len(t.GetFeatures()), len(t.GetClasses())))
			r.input = a.taskInput(t, ad, t.GetFeatures())
			return nil
		}
		cfg.DP = &models.DPSGD{ClipNorm: plan.ClipNorm, NoiseMultiplier: plan.Sigma, Noise: a.noise()}
	}
	var out models.TrainResult
	if into, ok := arch.(models.IntoTrainer); ok {
		out, err = into.TrainInto(ctx, dst, w, X, y, cfg)
	} else {
		out, err = arch.Train(ctx, w, X, y, cfg)
	}
	if err != nil {
		return fmt.Errorf("local training: %w", err)
	}
	if r.dp != nil {
		enc, err := models.EncodeWeights(out.Weights)
		if err != nil {
			return err
		}
		r.dp.keep = &paidRelease{Round: t.GetRound(), Examples: int64(out.Examples), TrainLoss: out.Loss, Weights: enc}
		r.dpNoise(r.dp.plan)
		r.res.ObligationsEnforced = append(r.res.ObligationsEnforced, fmt.Sprintf("dp-sgd: clip %g, noise multiplier %.4g, sampling rate %.4g, %d steps", r.dp.plan.ClipNorm, r.dp.plan.Sigma, r.dp.plan.Q, r.dp.plan.StepsPerRelease))
	}
	r.res.Examples = int64(out.Examples)
	r.res.TrainLoss = out.Loss
	r.weights, r.kind, r.records = out.Weights, egressModelUpdate, int64(out.Examples)
	r.maxBytes = boundFor(egressModelUpdate, 0, 0, arch.NumParams(len(t.GetFeatures()), len(t.GetClasses())))
	r.input = a.taskInput(t, ad, t.GetFeatures())
	return nil
}

// proxMu is the proximal coefficient the job's strategy asks local
// training for (models.Proximal, e.g. fedprox), or 0. A strategy this
// site does not know is one the coordinator alone runs, unless the job
// sets mu: then the site cannot train as asked and says so.
func proxMu(sp *federav1.JobSpec) (float64, error) {
	agg, err := models.NewAggregator(sp.GetAggregator(), spec.FromProto(sp).Aggregator.Params())
	if err != nil {
		if sp.AggregatorMu == nil && !slices.Contains(models.AggregatorNames(), sp.GetAggregator()) {
			return 0, nil
		}
		return 0, fmt.Errorf("job aggregator: %w", err)
	}
	if p, ok := agg.(models.Proximal); ok {
		return p.ProxMu(), nil
	}
	return 0, nil
}

func (a *Agent) eval(t *federav1.Task, w models.Weights, ad admitted, r *release) error {
	if w == nil {
		return fmt.Errorf("eval task %s came without weights", t.GetTaskId())
	}
	p, err := a.load(t, ad.dataset, t.GetFeatures(), ad)
	if err != nil {
		return err
	}
	r.kind, r.dataset = egressMetrics, ad.dataset.Name
	r.maxBytes = boundFor(egressMetrics, 0, 0, 0)
	r.input = a.taskInput(t, ad, t.GetFeatures())
	if p.eval.Rows() == 0 || (ad.minRecords > 0 && p.eval.Rows() < ad.minRecords) || t.GetSpec().GetPrivacy().GetDp() != nil {
		// Nothing held out, too few rows to report on, or a DP job (its
		// figures would be about held-out rows, without noise): send no
		// figure.
		r.kind = ""
		return nil
	}
	arch, err := spec.ArchOf(t.GetSpec())
	if err != nil {
		return err
	}
	X, y, err := standardized(p.eval, t, arch.Kind())
	if err != nil {
		return err
	}
	if err := arch.Check(w, len(t.GetFeatures()), len(t.GetClasses())); err != nil {
		return fmt.Errorf("the task's %s weights: %w", arch.Name(), err)
	}
	sc, err := arch.Evaluate(w, X, y)
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	r.res.EvalCorrect, r.res.EvalTotal, r.res.EvalLoss = int64(sc.Correct), int64(p.eval.Rows()), sc.Loss
	if y.Values != nil {
		sp := models.SpreadOf(y.Values)
		r.res.EvalLabelMean, r.res.EvalLabelM2 = sp.Mean, sp.M2
	}
	r.records = int64(p.eval.Rows())
	return nil
}

// dataCache keeps a few prepared datasets so a job does not re-read its
// file every round. Entries are keyed by job, so a changed file is re-read
// by the next job.
type dataCache struct {
	mu    sync.Mutex
	max   int
	order []string
	m     map[string]*prepared
}

func newDataCache(max int) *dataCache { return &dataCache{max: max, m: map[string]*prepared{}} }

func (d *dataCache) get(key string, load func() (*prepared, error)) (*prepared, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.m[key]; ok {
		return p, nil
	}
	p, err := load()
	if err != nil {
		return nil, err
	}
	if len(d.order) >= d.max {
		delete(d.m, d.order[0])
		d.order = d.order[1:]
	}
	d.m[key] = p
	d.order = append(d.order, key)
	return p, nil
}

func (d *dataCache) clear() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m, d.order = map[string]*prepared{}, nil
}
