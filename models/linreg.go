package models

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// The linreg architecture: linear regression of a numeric label on the
// standardized features, trained on mean squared error.
//
// Its tensors are a PyTorch nn.Linear(F, 1): linear.weight [1, F] and
// linear.bias [1], so an exported file loads into torch.nn.Linear with
// load_state_dict after stripping the prefix, and numpy reproduces a
// prediction as x_std · weightᵀ + bias. The label is not standardized: the
// bias learns its mean, and for a linear model the convergence of gradient
// descent does not depend on the label's scale.
//
// The objective per batch is ½·mean((ŷ − y)²) + (L2/2)·‖linear.weight‖²,
// plus (ProxMu/2)·‖θ − θ₀‖²; Loss and Score.Loss report the mean squared
// error, so √Loss is the RMSE.

// ArchLinReg names linear regression.
const ArchLinReg = "linreg"

func init() {
	RegisterArch(ArchLinReg, func(p ArchParams) (Arch, error) {
		if !p.empty() {
			return nil, fmt.Errorf("model type linreg takes no hidden layers or activation")
		}
		return linRegArch{}, nil
	})
}

type linRegArch struct{}

func (linRegArch) Name() string       { return ArchLinReg }
func (linRegArch) Kind() Kind         { return Regressor }
func (linRegArch) Params() ArchParams { return ArchParams{} }

func (linRegArch) Init(features, classes int) (Weights, error) {
	if features < 1 || classes != 0 {
		return nil, fmt.Errorf("linreg needs at least 1 feature and no classes, got %d and %d", features, classes)
	}
	return Weights{
		WeightName: {Name: WeightName, Shape: []int{1, features}, Data: MakeValues(features)},
		BiasName:   {Name: BiasName, Shape: []int{1}, Data: make([]float32, 1)},
	}, nil
}

func (linRegArch) NumParams(features, classes int) int64 { return int64(features) + 1 }

func (a linRegArch) Check(w Weights, features, classes int) error {
	if classes != 0 {
		return fmt.Errorf("linreg predicts a number, not %d classes", classes)
	}
	spec, err := a.Init(max(features, 1), 0)
	if err != nil {
		return err
	}
	return w.Validate(spec)
}

// linReg is linear regression weights widened to float64 for training.
type linReg struct {
	w []float64 // [F]
	b float64
}

func asLinReg(w Weights, X *mat.Dense) (linReg, int, error) {
	if X == nil {
		return linReg{}, 0, fmt.Errorf("nil feature matrix")
	}
	n, f := X.Dims()
	if err := (linRegArch{}).Check(w, f, 0); err != nil {
		return linReg{}, 0, err
	}
	m := linReg{w: make([]float64, f), b: float64(w[BiasName].Data[0])}
	for j, v := range w[WeightName].Data {
		m.w[j] = float64(v)
	}
	return m, n, nil
}

func (m linReg) predict(x []float64) float64 {
	s := m.b
	for j, v := range x {
		s += m.w[j] * v
	}
	return s
}

func (m linReg) weights() Weights {
	w := make([]float32, len(m.w))
	for j, v := range m.w {
		w[j] = float32(v)
	}
	return Weights{
		WeightName: {Name: WeightName, Shape: []int{1, len(m.w)}, Data: w},
		BiasName:   {Name: BiasName, Shape: []int{1}, Data: []float32{float32(m.b)}},
	}
}

func checkValues(y []float64, rows int) error {
	if len(y) != rows {
		return fmt.Errorf("have %d target values for %d rows", len(y), rows)
	}
	for i, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("target %v at row %d is not a finite number", v, i)
		}
	}
	return nil
}

// Train runs minibatch training from w; rows are shuffled every epoch
// with a generator seeded from cfg.Seed as the other architectures do, and
// ctx is checked before every batch.
func (linRegArch) Train(ctx context.Context, w Weights, X *mat.Dense, targets Targets, cfg TrainConfig) (TrainResult, error) {
	m, n, err := asLinReg(w, X)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training linreg: %w", err)
	}
	y := targets.Values
	if err := checkValues(y, n); err != nil {
		return TrainResult{}, fmt.Errorf("training linreg: %w", err)
	}
	if n == 0 {
		return TrainResult{}, fmt.Errorf("training linreg: no rows")
	}
	if err := cfg.validate(); err != nil {
		return TrainResult{}, fmt.Errorf("training linreg: %w", err)
	}
	if cfg.DP != nil {
		return m.trainDP(ctx, X, y, cfg)
	}
	f := len(m.w)
	anchorW, anchorB := append([]float64(nil), m.w...), m.b
	gw, gb := make([]float64, f), make([]float64, 1)
	bias := []float64{m.b}
	batch := min(cfg.BatchSize, n)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x666564657261)) // "federa", as TrainLogReg
	order := make([]int, n)
	opt := newOptimizer(cfg.Optimizer, cfg.LearningRate)
	var epochLoss float64
	for range cfg.Epochs {
		shuffle(rng, order)
		epochLoss = 0
		for start := 0; start < n; start += batch {
			if err := ctx.Err(); err != nil {
				return TrainResult{}, fmt.Errorf("training linreg: %w", err)
			}
			rows := order[start:min(start+batch, n)]
			clear(gw)
			gb[0] = 0
			m.b = bias[0]
			inv := 1 / float64(len(rows))
			for _, i := range rows {
				x := X.RawRowView(i)
				r := m.predict(x) - y[i]
				epochLoss += r * r
				for j, v := range x {
					gw[j] += r * v * inv
				}
				gb[0] += r * inv
			}
			for j := range gw {
				gw[j] += cfg.L2*m.w[j] + cfg.ProxMu*(m.w[j]-anchorW[j])
			}
			gb[0] += cfg.ProxMu * (bias[0] - anchorB)
			if opt.plain() {
				for j, g := range gw {
					m.w[j] -= cfg.LearningRate * g
				}
				bias[0] -= cfg.LearningRate * gb[0]
			} else {
				opt.begin()
				opt.update(0, m.w, gw)
				opt.update(1, bias, gb)
			}
		}
		if math.IsNaN(epochLoss) || math.IsInf(epochLoss, 0) {
			return TrainResult{}, fmt.Errorf("training linreg: diverged: loss is %v (try a smaller learning rate)", epochLoss)
		}
	}
	m.b = bias[0]
	out := m.weights()
	if err := out.Validate(out); err != nil {
		return TrainResult{}, fmt.Errorf("training linreg: diverged (try a smaller learning rate): %w", err)
	}
	return TrainResult{Weights: out, Loss: epochLoss / float64(n), Examples: n}, nil
}

// trainDP is Train under DP-SGD (dpsgd.go): a row's gradient of
// ½(ŷ − y)² is r·[x, 1] with r the residual, of norm |r|·√(‖x‖² + 1), so
// clipping scales r. The label is not standardized: choose clip_norm for
// the label's units (residuals beyond clip_norm/√(‖x‖²+1) are clipped).
func (m linReg) trainDP(ctx context.Context, X *mat.Dense, y []float64, cfg TrainConfig) (TrainResult, error) {
	dp := cfg.DP
	n, f := X.Dims()
	q, steps := DPSteps(n, cfg.BatchSize, cfg.Epochs)
	perEpoch := steps / cfg.Epochs
	expected := q * float64(n)
	anchorW, anchorB := append([]float64(nil), m.w...), m.b
	gw, gb := make([]float64, f), make([]float64, 1)
	bias := []float64{m.b}
	opt := newOptimizer(cfg.Optimizer, cfg.LearningRate)
	sd := dp.NoiseMultiplier * dp.ClipNorm
	var epochLoss float64
	var epochRows int
	var rows []int
	for step := range steps {
		if step%perEpoch == 0 {
			epochLoss, epochRows = 0, 0
		}
		if err := ctx.Err(); err != nil {
			return TrainResult{}, fmt.Errorf("training linreg: %w", err)
		}
		clear(gw)
		gb[0] = 0
		m.b = bias[0]
		rows = poissonSample(dp.Noise, n, q, rows[:0])
		for _, i := range rows {
			x := X.RawRowView(i)
			r := m.predict(x) - y[i]
			epochLoss += r * r
			epochRows++
			var xx float64
			for _, v := range x {
				xx += v * v
			}
			if norm := math.Abs(r) * math.Sqrt(xx+1); norm > dp.ClipNorm {
				r *= dp.ClipNorm / norm
			}
			for j, v := range x {
				gw[j] += r * v
			}
			gb[0] += r
		}
		for j := range gw {
			gw[j] = (gw[j]+sd*dp.Noise.NormFloat64())/expected + cfg.L2*m.w[j] + cfg.ProxMu*(m.w[j]-anchorW[j])
		}
		gb[0] = (gb[0]+sd*dp.Noise.NormFloat64())/expected + cfg.ProxMu*(bias[0]-anchorB)
		opt.begin()
		opt.update(0, m.w, gw)
		opt.update(1, bias, gb)
	}
	m.b = bias[0]
	out := m.weights()
	if err := out.Validate(out); err != nil {
		return TrainResult{}, fmt.Errorf("training linreg: diverged (try a smaller learning rate): %w", err)
	}
	var loss float64
	if epochRows > 0 {
		loss = epochLoss / float64(epochRows)
	}
	return TrainResult{Weights: out, Loss: loss, Examples: n}, nil
}

// Evaluate reports the mean squared error over (X, y); Correct stays 0.
func (linRegArch) Evaluate(w Weights, X *mat.Dense, targets Targets) (Score, error) {
	m, n, err := asLinReg(w, X)
	if err != nil {
		return Score{}, fmt.Errorf("evaluating linreg: %w", err)
	}
	if err := checkValues(targets.Values, n); err != nil {
		return Score{}, fmt.Errorf("evaluating linreg: %w", err)
	}
	if n == 0 {
		return Score{}, fmt.Errorf("evaluating linreg: no rows")
	}
	var sse float64
	for i := range n {
		r := m.predict(X.RawRowView(i)) - targets.Values[i]
		sse += r * r
	}
	return Score{Rows: n, Loss: sse / float64(n)}, nil
}

func (linRegArch) Predict(w Weights, X *mat.Dense) (Predictions, error) {
	m, n, err := asLinReg(w, X)
	if err != nil {
		return Predictions{}, fmt.Errorf("predicting with linreg: %w", err)
	}
	out := make([]float64, n)
	for i := range n {
		out[i] = m.predict(X.RawRowView(i))
	}
	return Predictions{Values: out}, nil
}

// Spread is a numeric label's count, mean and sum of squared deviations
// from that mean: what R² needs beside the model's squared errors. Sites
// send their own and the coordinator merges them exactly (Chan et al.'s
// parallel update), with no cancellation however large the label's mean.
type Spread struct {
	N, Mean, M2 float64
}

// SpreadOf computes the spread of y (Welford's update).
func SpreadOf(y []float64) Spread {
	var s Spread
	for _, v := range y {
		s.N++
		d := v - s.Mean
		s.Mean += d / s.N
		s.M2 += d * (v - s.Mean)
	}
	return s
}

// Merge folds o into s.
func (s *Spread) Merge(o Spread) {
	if o.N <= 0 {
		return
	}
	n := s.N + o.N
	d := o.Mean - s.Mean
	s.M2 += o.M2 + d*d*s.N*o.N/n
	s.Mean += d * o.N / n
	s.N = n
}

// R2 is the coefficient of determination 1 − SSE/SST of a model whose sum
// of squared errors over the same rows is sse: 1 predicts perfectly, 0 is
// no better than the mean, negative is worse. It is NaN when the targets
// do not vary.
func (s Spread) R2(sse float64) float64 {
	if !(s.M2 > 0) || s.N < 2 {
		return math.NaN()
	}
	return 1 - sse/s.M2
}
