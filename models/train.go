package models

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

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
	// DP, when set, trains with DP-SGD (dpsgd.go): Poisson-sampled
	// batches, per-row clipping and Gaussian noise.
	DP *DPSGD
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
	if c.DP != nil {
		return c.DP.validate()
	}
	return nil
}

// TrainLogReg runs minibatch training (cfg.Optimizer; plain SGD by default)
// on the multinomial logistic regression w and returns the new weights; w
// is not modified. X must already be standardized (n×F) and y holds class
// indices in [0,K).
//
// The objective per batch is mean cross-entropy + (L2/2)·‖linear.weight‖²,
// plus (ProxMu/2)·‖θ − θ₀‖² with θ₀ = w when ProxMu > 0.
// Rows are shuffled every epoch with a generator seeded from cfg.Seed, so a
// fixed seed gives identical results within one build. ctx is checked before
// every batch; on cancellation the context's error is returned (wrapped).
//
// The gradient comes from the gonum kernel that also trains the mlp
// (logreg is its network with no hidden layer), not from the gorgonia
// graph in graph_net.go: that graph is the objective's reference
// definition, and the kernel is tested to match its gradient to 1e-9, but
// running it, even compiled once and reused, costs about 20× the kernel's
// time at demo sizes and 5× at MNIST size (BenchmarkTrainLogRegVsKernel).
func TrainLogReg(ctx context.Context, w Weights, X *mat.Dense, y []int, cfg TrainConfig) (TrainResult, error) {
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

	net := m.net()
	loss, err := trainLoop(ctx, newKernelStepper(net, min(cfg.BatchSize, n), cfg.L2, cfg.ProxMu), X, y, cfg)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: %w", err)
	}
	out := NewLogReg(m.features, m.classes)
	toFloat32(out[WeightName].Data, net.w[0].RawMatrix().Data)
	toFloat32(out[BiasName].Data, net.b[0])
	// Validating against itself checks only that every value is finite
	// (float32 can overflow where float64 did not).
	if err := out.Validate(out); err != nil {
		return TrainResult{}, fmt.Errorf("training logreg: diverged (try a smaller learning rate): %w", err)
	}
	return TrainResult{Weights: out, Loss: loss, Examples: n}, nil
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

// batchStepper is one way of computing and applying a batch's gradient:
// the gonum kernel (kernelStepper) trains, the gorgonia graph (graphNet)
// is the reference it is checked against.
type batchStepper interface {
	// gradient computes the objective's gradient on the given rows of X
	// and keeps it for step; it returns the rows' mean cross-entropy.
	gradient(X *mat.Dense, y []int, rows []int) (float64, error)
	// step applies opt's rule with the kept gradient.
	step(opt *optimizer) error
}

// trainLoop runs cfg's epochs of minibatch training with s and returns
// the last epoch's mean cross-entropy, accumulated batch by batch. Rows are
// shuffled every epoch with a generator seeded from cfg.Seed, and ctx is
// checked before every batch. cfg must be valid, X have n > 0 rows and y
// hold a class in range for each.
func trainLoop(ctx context.Context, s batchStepper, X *mat.Dense, y []int, cfg TrainConfig) (float64, error) {
	if cfg.DP != nil {
		ks, ok := s.(*kernelStepper)
		if !ok {
			return 0, errors.New("dp-sgd runs on the gonum kernel only")
		}
		return dpTrainLoop(ctx, ks, X, y, cfg)
	}
	n, _ := X.Dims()
	batch := min(cfg.BatchSize, n)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x666564657261)) // "federa"
	order := make([]int, n)
	opt := newOptimizer(cfg.Optimizer, cfg.LearningRate)
	var epochLoss float64
	for range cfg.Epochs {
		shuffle(rng, order)
		epochLoss = 0
		for start := 0; start < n; start += batch {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			rows := order[start:min(start+batch, n)]
			ce, err := s.gradient(X, y, rows)
			if err != nil {
				return 0, err
			}
			if math.IsNaN(ce) || math.IsInf(ce, 0) {
				return 0, fmt.Errorf("diverged: loss is %v (try a smaller learning rate)", ce)
			}
			if err := s.step(opt); err != nil {
				return 0, err
			}
			epochLoss += ce * float64(len(rows))
		}
	}
	return epochLoss / float64(n), nil
}

// kernelStepper is the gonum kernel: mlpNet's hand-written forward and
// backward pass, for any number of hidden layers (none is logreg). A
// batch's gradient is computed in one place, mlpNet.gradient, which is
// where per-example gradients (clipping for DP-SGD) belong.
type kernelStepper struct {
	net    *mlpNet
	wk     *mlpWork
	l2, mu float64
	anchor *mlpNet // θ₀ when mu > 0
}

func newKernelStepper(net *mlpNet, batch int, l2, mu float64) *kernelStepper {
	s := &kernelStepper{net: net, wk: newMLPWork(net, batch), l2: l2, mu: mu}
	if mu > 0 {
		s.anchor = net.clone()
	}
	return s
}

func (s *kernelStepper) gradient(X *mat.Dense, y []int, rows []int) (float64, error) {
	return s.net.gradient(s.wk, X, y, rows, s.l2, s.mu, s.anchor), nil
}

func (s *kernelStepper) step(opt *optimizer) error {
	s.net.step(s.wk, opt)
	return nil
}

// net returns m as the kernel's network with no hidden layer: layer 0 is
// linear.weight [K, F] and linear.bias [K], in float64.
func (m logReg) net() *mlpNet {
	return &mlpNet{
		sizes: []int{m.features, m.classes},
		w:     []*mat.Dense{mat.NewDense(m.classes, m.features, mlpWiden(m.w))},
		b:     [][]float64{mlpWiden(m.b)},
	}
}
