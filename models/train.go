package models

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"gonum.org/v1/gonum/mat"
)

// TrainConfig controls one call of local training.
type TrainConfig struct {
	Epochs       int     // local epochs
	BatchSize    int     // examples per SGD step; larger than n means full batch
	LearningRate float64 // SGD step size
	L2           float64 // L2 penalty coefficient on linear.weight (not bias)
	Seed         int64   // shuffling seed
	// ProxMu is FedProx's μ: the objective gains (μ/2)·‖θ − θ₀‖² over
	// every parameter, θ₀ being the weights training starts from (the
	// global model). 0 is plain training, bit for bit.
	ProxMu float64
	// Optimizer is the update rule applied to each batch's gradient; the
	// zero value is plain SGD. Its state starts fresh every call.
	Optimizer OptimizerConfig
}

// TrainResult is the outcome of local training.
type TrainResult struct {
	Weights Weights
	// Loss is the mean training cross-entropy (natural log, without the L2
	// term) over the last epoch, accumulated batch by batch as the weights
	// move, the way training loops usually report it.
	Loss     float64
	Examples int
}

func (c TrainConfig) validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be >= 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be >= 1, got %d", c.BatchSize)
	case !(c.LearningRate > 0) || math.IsInf(c.LearningRate, 0):
		return fmt.Errorf("learning rate must be positive and finite, got %v", c.LearningRate)
	case !(c.L2 >= 0) || math.IsInf(c.L2, 0):
		return fmt.Errorf("l2 must be non-negative and finite, got %v", c.L2)
	case !(c.ProxMu >= 0) || math.IsInf(c.ProxMu, 0):
		return fmt.Errorf("proximal mu must be non-negative and finite, got %v", c.ProxMu)
	}
	if err := c.Optimizer.Validate(); err != nil {
		return fmt.Errorf("optimizer: %w", err)
	}
	return nil
}

// TrainLogReg runs minibatch training (cfg.Optimizer; plain SGD by default)
// on the multinomial logistic regression w
// using gorgonia autodiff and returns the new weights; w is not modified.
// X must already be standardized (n×F) and y holds class indices in [0,K).
//
// The objective per batch is mean cross-entropy + (L2/2)·‖linear.weight‖²,
// plus (ProxMu/2)·‖θ − θ₀‖² with θ₀ = w when ProxMu > 0.
// Rows are shuffled every epoch with a generator seeded from cfg.Seed, so a
// fixed seed gives identical results within one build. ctx is checked before
// every batch; on cancellation the context's error is returned (wrapped).
func TrainLogReg(ctx context.Context, w Weights, X *mat.Dense, y []int, cfg TrainConfig) (res TrainResult, err error) {
	m, err := asLogReg(w)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: %w", err)
	}
	n, err := m.checkRows(X)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: %w", err)
	}
	if err := checkLabels(y, n, m.classes); err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: %w", err)
	}
	if n == 0 {
		return TrainResult{}, fmt.Errorf("training logreg: no rows")
	}
	if err := cfg.validate(); err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: %w", err)
	}

	// Gorgonia reports many shape and type problems by panicking; turn
	// those into errors so one bad job cannot take down a site. This covers
	// graph construction, Let and the update, which run on this goroutine.
	// It cannot cover ops executed inside RunAll: the tape machine runs the
	// tape on a goroutine of its own with no recover, so a panic there
	// would crash the process. That is why every shape and label is
	// validated above and the graph's input shapes never change.
	defer func() {
		if r := recover(); r != nil {
			res, err = TrainResult{}, fmt.Errorf("training logreg: gorgonia panicked: %v", r)
		}
	}()

	t, err := newTrainer(m, min(cfg.BatchSize, n), cfg.L2, cfg.ProxMu)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: building graph: %w", err)
	}
	defer t.vm.Close()

	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x666564657261)) // "federa"
	order := make([]int, n)
	opt := newOptimizer(cfg.Optimizer, cfg.LearningRate)
	var epochLoss float64
	for range cfg.Epochs {
		shuffle(rng, order)
		epochLoss = 0
		for start := 0; start < n; start += t.batch {
			if err := ctx.Err(); err != nil {
				return TrainResult{}, fmt.Errorf("training logreg: %w", err)
			}
			rows := order[start:min(start+t.batch, n)]
			ce, err := t.step(X, y, rows, opt)
			if err != nil {
				return TrainResult{}, fmt.Errorf("training logreg: %w", err)
			}
			epochLoss += ce * float64(len(rows))
		}
	}

	out := NewLogReg(m.features, m.classes)
	for name, node := range map[string]*G.Node{WeightName: t.w, BiasName: t.b} {
		data, err := float64Data(node.Value(), len(out[name].Data))
		if err != nil {
			return TrainResult{}, fmt.Errorf("training logreg: reading %s: %w", name, err)
		}
		toFloat32(out[name].Data, data)
	}
	// Validating against itself checks only that every value is finite.
	if err := out.Validate(out); err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: diverged (try a smaller learning rate): %w", err)
	}
	return TrainResult{Weights: out, Loss: epochLoss / float64(n), Examples: n}, nil
}

// shuffle fills order with a fresh random permutation of 0..n-1. Resetting to
// the identity first makes each epoch's order depend only on the generator
// state, not on the previous epoch's permutation.
func shuffle(rng *rand.Rand, order []int) {
	for i := range order {
		order[i] = i
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
}

func toFloat32(dst []float32, src []float64) {
	for i, v := range src {
		dst[i] = float32(v)
	}
}

// trainer owns one compiled gorgonia graph for a fixed batch size. The graph
// and tape machine are built once per TrainLogReg call and reused for every
// batch because compiling is far more expensive than running a step.
//
// A partial last batch reuses the same graph: unused rows are zero-filled and
// get example weight 0, and real rows get weight 1/m, so the loss and its
// gradient are exactly the mean over the m real rows.
type trainer struct {
	batch, features, classes int

	x, yOneHot, exWeight *G.Node // inputs: [B,F], [B,K], [B]
	w, b                 *G.Node // parameters: [K,F], [K]
	ceVal                G.Value // cross-entropy, read out of the graph
	vm                   G.VM

	xBuf, yBuf, exBuf []float64
	xT, yT, exT       *tensor.Dense

	// The proximal term's gradient μ·(θ − θ₀) is added by hand in step:
	// it is elementwise and needs no graph.
	proxMu       float64
	proxW, proxB []float64 // θ₀ for w and b
}

// graphMu serializes building gorgonia graphs: gorgonia shares constant
// nodes between graphs and caches their hash codes lazily, so two graphs
// built at once race (seen with three in-process sites under -race).
// Running the built machines concurrently is safe; only construction is
// serialized, and it is a small part of a training call.
var graphMu sync.Mutex

func newTrainer(m logReg, batch int, l2, proxMu float64) (*trainer, error) {
	graphMu.Lock()
	defer graphMu.Unlock()
	t := &trainer{batch: batch, features: m.features, classes: m.classes, proxMu: proxMu}
	f, k := m.features, m.classes
	g := G.NewGraph()

	wData := make([]float64, k*f)
	for i, v := range m.w {
		wData[i] = float64(v)
	}
	bData := make([]float64, k)
	for i, v := range m.b {
		bData[i] = float64(v)
	}

	if proxMu > 0 {
		t.proxW, t.proxB = slices.Clone(wData), slices.Clone(bData)
	}

	t.xBuf = make([]float64, batch*f)
	t.yBuf = make([]float64, batch*k)
	t.exBuf = make([]float64, batch)
	t.xT = tensor.New(tensor.WithShape(batch, f), tensor.WithBacking(t.xBuf))
	t.yT = tensor.New(tensor.WithShape(batch, k), tensor.WithBacking(t.yBuf))
	t.exT = tensor.New(tensor.WithShape(batch), tensor.WithBacking(t.exBuf))

	t.x = G.NewMatrix(g, tensor.Float64, G.WithShape(batch, f), G.WithName("x"), G.WithValue(t.xT))
	t.yOneHot = G.NewMatrix(g, tensor.Float64, G.WithShape(batch, k), G.WithName("y"), G.WithValue(t.yT))
	t.exWeight = G.NewVector(g, tensor.Float64, G.WithShape(batch), G.WithName("example_weight"), G.WithValue(t.exT))
	t.w = G.NewMatrix(g, tensor.Float64, G.WithShape(k, f), G.WithName(WeightName),
		G.WithValue(tensor.New(tensor.WithShape(k, f), tensor.WithBacking(wData))))
	t.b = G.NewVector(g, tensor.Float64, G.WithShape(k), G.WithName(BiasName),
		G.WithValue(tensor.New(tensor.WithShape(k), tensor.WithBacking(bData))))

	wT, err := G.Transpose(t.w)
	if err != nil {
		return nil, fmt.Errorf("transposing weight: %w", err)
	}
	xw, err := G.Mul(t.x, wT)
	if err != nil {
		return nil, fmt.Errorf("multiplying inputs by weight: %w", err)
	}
	logits, err := G.BroadcastAdd(xw, t.b, nil, []byte{0})
	if err != nil {
		return nil, fmt.Errorf("adding bias: %w", err)
	}
	// LogSoftMax is gorgonia's numerically stable fused op; the axis is
	// explicit because its backward pass does not resolve a default axis.
	logp, err := G.LogSoftMax(logits, 1)
	if err != nil {
		return nil, fmt.Errorf("log-softmax: %w", err)
	}
	picked, err := G.HadamardProd(t.yOneHot, logp)
	if err != nil {
		return nil, fmt.Errorf("selecting true-class log-probabilities: %w", err)
	}
	rowLogp, err := G.Sum(picked, 1)
	if err != nil {
		return nil, fmt.Errorf("summing rows: %w", err)
	}
	// Vector·vector is an inner product: the example-weighted sum.
	weighted, err := G.Mul(rowLogp, t.exWeight)
	if err != nil {
		return nil, fmt.Errorf("weighting examples: %w", err)
	}
	ce, err := G.Neg(weighted)
	if err != nil {
		return nil, fmt.Errorf("negating: %w", err)
	}
	// Read copies the value out during the run; an intermediate node's own
	// value may live in a register that the tape machine reuses.
	G.Read(ce, &t.ceVal)

	objective := ce
	if l2 > 0 {
		sq, err := G.Square(t.w)
		if err != nil {
			return nil, fmt.Errorf("squaring weight: %w", err)
		}
		ss, err := G.Sum(sq)
		if err != nil {
			return nil, fmt.Errorf("summing squares: %w", err)
		}
		penalty, err := G.Mul(ss, G.NewConstant(0.5*l2))
		if err != nil {
			return nil, fmt.Errorf("scaling penalty: %w", err)
		}
		if objective, err = G.Add(ce, penalty); err != nil {
			return nil, fmt.Errorf("adding penalty: %w", err)
		}
	}
	if _, err := G.Grad(objective, t.w, t.b); err != nil {
		return nil, fmt.Errorf("differentiating: %w", err)
	}
	t.vm = G.NewTapeMachine(g, G.BindDualValues(t.w, t.b))
	return t, nil
}

// step loads the given rows as one batch, runs forward and backward, applies
// opt's update in place and returns the batch's mean cross-entropy.
func (t *trainer) step(X *mat.Dense, y []int, rows []int, opt *optimizer) (float64, error) {
	f, k := t.features, t.classes
	clear(t.yBuf)
	clear(t.exBuf)
	inv := 1 / float64(len(rows))
	for i, r := range rows {
		copy(t.xBuf[i*f:(i+1)*f], X.RawRowView(r))
		t.yBuf[i*k+y[r]] = 1
		t.exBuf[i] = inv
	}
	clear(t.xBuf[len(rows)*f:])

	for _, in := range []struct {
		n *G.Node
		v *tensor.Dense
	}{{t.x, t.xT}, {t.yOneHot, t.yT}, {t.exWeight, t.exT}} {
		if err := G.Let(in.n, in.v); err != nil {
			return 0, fmt.Errorf("binding %s: %w", in.n.Name(), err)
		}
	}
	defer t.vm.Reset()
	if err := t.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("running graph: %w", err)
	}

	ce, ok := t.ceVal.Data().(float64)
	if !ok {
		return 0, fmt.Errorf("loss has type %T, want float64", t.ceVal.Data())
	}
	if math.IsNaN(ce) || math.IsInf(ce, 0) {
		return 0, fmt.Errorf("diverged: loss is %v (try a smaller learning rate)", ce)
	}
	// The update writes into the parameter nodes' own values (as gorgonia's
	// solvers do), so the next run sees it without rebinding.
	lr := opt.lr
	opt.begin()
	for pi, p := range []*G.Node{t.w, t.b} {
		want := p.Shape().TotalSize()
		data, err := float64Data(p.Value(), want)
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", p.Name(), err)
		}
		grad, err := p.Grad()
		if err != nil {
			return 0, fmt.Errorf("reading gradient of %s: %w", p.Name(), err)
		}
		gd, err := float64Data(grad, want)
		if err != nil {
			return 0, fmt.Errorf("reading gradient of %s: %w", p.Name(), err)
		}
		switch {
		case !opt.plain():
			// gd is cleared below, so it can carry the whole gradient.
			if t.proxMu > 0 {
				ref := [][]float64{t.proxW, t.proxB}[pi]
				for i, v := range gd {
					gd[i] = v + t.proxMu*(data[i]-ref[i])
				}
			}
			opt.update(pi, data, gd)
		case t.proxMu > 0:
			ref := [][]float64{t.proxW, t.proxB}[pi]
			for i, v := range gd {
				data[i] -= lr * (v + t.proxMu*(data[i]-ref[i]))
			}
		default:
			for i, v := range gd {
				data[i] -= lr * v
			}
		}
		// The tape machine adds into bound gradients on every run and
		// Reset does not clear them (gorgonia's solvers zero them after
		// each step), so without this each step would also reapply all
		// previous gradients.
		clear(gd)
	}
	return ce, nil
}

// float64Data returns v's backing slice, checking type and length so a
// gorgonia layout surprise becomes an error rather than a wrong model.
func float64Data(v G.Value, want int) ([]float64, error) {
	if v == nil {
		return nil, fmt.Errorf("no value")
	}
	d, ok := v.Data().([]float64)
	if !ok || len(d) != want {
		return nil, fmt.Errorf("value has layout %T with %d elements, want []float64 with %d", v.Data(), v.Shape().TotalSize(), want)
	}
	return d, nil
}
