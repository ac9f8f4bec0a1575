package site

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// execute runs one task against local data. Whatever it returns is an
// aggregate by construction: the result message has no field that can hold
// a row.
func (a *Agent) execute(ctx context.Context, t *federav1.Task, w models.Weights) (*federav1.TaskResult, models.Weights) {
	res := &federav1.TaskResult{TaskId: t.GetTaskId(), JobId: t.GetJobId(), Round: t.GetRound(), Kind: t.GetKind()}
	var out models.Weights
	var err error
	if a.cfg.BeforeTask != nil {
		a.cfg.BeforeTask(ctx, t)
	}
	start := time.Now()
	defer func() { res.ComputeMs = float64(time.Since(start)) / float64(time.Millisecond) }()
	switch t.GetKind() {
	case federav1.TaskKind_TASK_KIND_STATS:
		err = a.stats(t, res)
	case federav1.TaskKind_TASK_KIND_TRAIN:
		out, err = a.train(ctx, t, w, res)
	case federav1.TaskKind_TASK_KIND_EVAL:
		err = a.eval(t, w, res)
	default:
		err = fmt.Errorf("task kind %s is not supported by this agent (version %s)", t.GetKind(), Version)
	}
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	return res, out
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
// order (empty in the stats task: the job's own list, or every column).
func (a *Agent) load(t *federav1.Task, features []string) (*prepared, error) {
	sp := t.GetSpec()
	var ds *Dataset
	for i := range a.cfg.Datasets {
		if a.cfg.Datasets[i].Name == sp.GetDataset() {
			ds = &a.cfg.Datasets[i]
		}
	}
	if ds == nil {
		return nil, fmt.Errorf("this site has no dataset %q", sp.GetDataset())
	}
	if ds.Label != "" && ds.Label != sp.GetLabel() {
		return nil, fmt.Errorf("dataset %q: the job asks for label %q but this site declares %q as its label column", ds.Name, sp.GetLabel(), ds.Label)
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%v", t.GetJobId(), ds.Name, sp.GetLabel(), features)
	return a.data.get(key, func() (*prepared, error) {
		tab, err := dataset.LoadCSV(ds.Path, dataset.Options{Label: sp.GetLabel(), Features: features})
		if err != nil {
			a.log.Warn("load dataset", "dataset", ds.Name, "err", err)
			// The coordinator learns what is wrong and where (file, line,
			// column), but neither where the site keeps its files nor the
			// offending cell's value: that could be data.
			var de *dataset.Error
			if errors.As(err, &de) {
				return nil, de.Redacted()
			}
			return nil, err
		}
		train, eval := tab.Split(sp.GetEvalFraction(), SplitSeed(sp.GetSeed()))
		if train.Rows() == 0 {
			return nil, fmt.Errorf("dataset %q: no training rows after holding out eval_fraction %v of %d rows", ds.Name, sp.GetEvalFraction(), tab.Rows())
		}
		return &prepared{train: train, eval: eval}, nil
	})
}

func (a *Agent) stats(t *federav1.Task, res *federav1.TaskResult) error {
	p, err := a.load(t, t.GetSpec().GetFeatures())
	if err != nil {
		return err
	}
	m := models.ComputeMoments(p.train.X)
	res.Features = p.train.Features
	res.Classes = classesOf(p.train, p.eval)
	res.Count, res.Sum, res.SumSq = m.Count, m.Sum, m.SumSq
	res.TrainRows, res.EvalRows = int64(p.train.Rows()), int64(p.eval.Rows())
	res.RawBytes = p.train.Bytes
	return nil
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

// standardized prepares a split for the model: agreed scaler, class indices.
func standardized(tab *dataset.Table, t *federav1.Task) (*mat.Dense, []int, error) {
	y, err := tab.ClassIndex(t.GetClasses())
	if err != nil {
		return nil, nil, err
	}
	s := models.Scaler{Mean: t.GetScalerMean(), Scale: t.GetScalerScale()}
	if len(s.Mean) != len(t.GetFeatures()) || len(s.Scale) != len(t.GetFeatures()) {
		return nil, nil, fmt.Errorf("task has a scaler for %d/%d columns but %d features", len(s.Mean), len(s.Scale), len(t.GetFeatures()))
	}
	return s.Apply(tab.X), y, nil
}

func (a *Agent) train(ctx context.Context, t *federav1.Task, w models.Weights, res *federav1.TaskResult) (models.Weights, error) {
	if w == nil {
		return nil, fmt.Errorf("train task %s came without weights", t.GetTaskId())
	}
	p, err := a.load(t, t.GetFeatures())
	if err != nil {
		return nil, err
	}
	X, y, err := standardized(p.train, t)
	if err != nil {
		return nil, err
	}
	sp := t.GetSpec()
	out, err := models.TrainLogReg(ctx, w, X, y, models.TrainConfig{
		Epochs:       int(sp.GetLocalEpochs()),
		BatchSize:    int(sp.GetBatchSize()),
		LearningRate: sp.GetLearningRate(),
		L2:           sp.GetL2(),
		Seed:         TrainSeed(sp.GetSeed(), a.cfg.Identity.ID().String(), t.GetRound()),
	})
	if err != nil {
		return nil, fmt.Errorf("local training: %w", err)
	}
	res.Examples = int64(out.Examples)
	res.TrainLoss = out.Loss
	return out.Weights, nil
}

func (a *Agent) eval(t *federav1.Task, w models.Weights, res *federav1.TaskResult) error {
	if w == nil {
		return fmt.Errorf("eval task %s came without weights", t.GetTaskId())
	}
	p, err := a.load(t, t.GetFeatures())
	if err != nil {
		return err
	}
	if p.eval.Rows() == 0 {
		return nil // nothing held out: report zero examples
	}
	X, y, err := standardized(p.eval, t)
	if err != nil {
		return err
	}
	correct, loss, err := models.EvaluateLogReg(w, X, y)
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	res.EvalCorrect, res.EvalTotal, res.EvalLoss = int64(correct), int64(p.eval.Rows()), loss
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
