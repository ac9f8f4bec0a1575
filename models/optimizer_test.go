package models

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// The tiny problem: one row x = [1] with label 0, trained for 2 epochs of
// one full batch (2 steps) at lr 0.1, so every step's gradient and update
// can be followed by hand. d = softmax(z) − onehot(0) is ∂ce/∂z.
//
// logreg from zero weights W = [[0],[0]], b = [0, 0]:
//
//	step 1: z = [0, 0], p = [.5, .5], g_W = g_b = [−.5, .5]
//	step 2: z = [2w, −2w] for the weight w after step 1, p₀ = σ(4w),
//	        g = [p₀−1, 1−p₀]
//
//	momentum μ=0.9 (b ← μ·b + g, θ ← θ − lr·b):
//	  step 1: b = g = [−.5, .5]; w = 0 + .1·.5 = .05
//	  step 2: p₀ = σ(.2) = .549834, g₀ = −.450166;
//	          b₀ = .9·(−.5) − .450166 = −.900166; w = .05 + .1·.900166 = .1400166
//	adam β=(.9, .999), ε=1e-8:
//	  step 1: m̂ = g, v̂ = g², w = 0 + .1·.5/(.5+1e-8) = .099999998
//	  step 2: p₀ = σ(.4) = .598688, g₀ = −.401312;
//	          m = .9·(−.05) + .1·(−.401312) = −.0851312, m̂ = m/(1−.9²) = −.448059
//	          v = .999·(.001·.25) + .001·.161051 = .000410801, v̂ = v/(1−.999²) = .205503
//	          w = .099999998 + .1·.448059/(√.205503 + 1e-8) = .1988384
//
// Bias and weight see the same gradient (x = 1), and class 1 is class 0's
// mirror, so every logreg value is ±w.
//
// mlp 1→1→2, ReLU, from W0 = [[1]], b0 = [0], W1 = [[1],[−1]], b1 = [0, 0]:
//
//	step 1: h = 1, z = [1, −1], p₀ = σ(2) = .880797, d = [−.119203, .119203]
//	        g_W1 = d·h = d, g_b1 = d, ∂h = W1ᵀd = −.238406 (ReLU open),
//	        g_W0 = g_b0 = −.238406
//	momentum: step 1 is an SGD step: W0 = 1.0238406, b0 = .0238406,
//	          W1 = ±1.0119203, b1 = ±.0119203
//	          step 2: h = 1.0476812, z ≈ ±1.07209, g_W0 = g_b0 = −.2122529,
//	          g_W1 = ∓.1098769, g_b1 = ∓.1048763; b = .9·b₁ + g₂, θ −= .1·b:
//	          W0 = 1.0238406 + .1·(.9·.238406 + .2122529) = 1.0665224
//	adam: step 1 moves every parameter by lr·sign(g) (less ε's sliver):
//	          W0 = 1.1, b0 = .1, W1 = ±1.1, b1 = ±.1
//	      step 2: h = 1.2, z = ±1.42, g_W0 = g_b0 = −.1214412, g_W1 = ∓.0662406,
//	          g_b1 = ∓.0552005; then as for logreg: W0 = 1.1934891, W1 = ±1.1947225
func TestOptimizerHandSteps(t *testing.T) {
	X, y := mat.NewDense(1, 1, []float64{1}), []int{0}
	mom := OptimizerConfig{Name: OptimizerSGD, Momentum: 0.9}
	adam := AdamConfig()

	mlp := mustMLP(t, []int{1}, "relu")
	mlpStart := Weights{
		mlpWeightName(0): {Name: mlpWeightName(0), Shape: []int{1, 1}, Data: []float32{1}},
		mlpBiasName(0):   {Name: mlpBiasName(0), Shape: []int{1}, Data: []float32{0}},
		mlpWeightName(1): {Name: mlpWeightName(1), Shape: []int{2, 1}, Data: []float32{1, -1}},
		mlpBiasName(1):   {Name: mlpBiasName(1), Shape: []int{2}, Data: []float32{0, 0}},
	}
	for _, tc := range []struct {
		name  string
		arch  Arch
		start Weights
		opt   OptimizerConfig
		want  map[string][]float64
	}{
		{"logreg momentum", logRegArch{}, NewLogReg(1, 2), mom, map[string][]float64{
			WeightName: {.1400166, -.1400166}, BiasName: {.1400166, -.1400166},
		}},
		{"logreg adam", logRegArch{}, NewLogReg(1, 2), adam, map[string][]float64{
			WeightName: {.1988384, -.1988384}, BiasName: {.1988384, -.1988384},
		}},
		{"mlp momentum", mlp, mlpStart, mom, map[string][]float64{
			mlpWeightName(0): {1.0665224}, mlpBiasName(0): {.0665224},
			mlpWeightName(1): {1.0336362, -1.0336362}, mlpBiasName(1): {.0331362, -.0331362},
		}},
		{"mlp adam", mlp, mlpStart, adam, map[string][]float64{
			mlpWeightName(0): {1.1934891}, mlpBiasName(0): {.1934891},
			mlpWeightName(1): {1.1947225, -1.1947225}, mlpBiasName(1): {.1920798, -.1920798},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.arch.Train(t.Context(), tc.start, X, ClassTargets(y), TrainConfig{Epochs: 2, BatchSize: 1, LearningRate: 0.1, Optimizer: tc.opt})
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				for i, got := range res.Weights[name].Data {
					if math.Abs(float64(got)-want[i]) > 2e-6 {
						t.Errorf("%s[%d] = %.7f, want %.7f", name, i, got, want[i])
					}
				}
			}
		})
	}
}

// Naming sgd, or momentum 0, is the zero value's plain SGD bit for bit.
func TestOptimizerPlainSGDUnchanged(t *testing.T) {
	X, y := blobs(7, 120, 4, 3, 1.5)
	mlp := mustMLP(t, []int{8}, "tanh")
	mw, err := mlp.Init(4, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		arch Arch
		w    Weights
	}{{logRegArch{}, NewLogReg(4, 3)}, {mlp, mw}} {
		base := TrainConfig{Epochs: 2, BatchSize: 16, LearningRate: 0.1, L2: 1e-3, ProxMu: 0.01, Seed: 4}
		want, err := a.arch.Train(t.Context(), a.w, X, ClassTargets(y), base)
		if err != nil {
			t.Fatal(err)
		}
		named := base
		named.Optimizer = OptimizerConfig{Name: OptimizerSGD}
		got, err := a.arch.Train(t.Context(), a.w, X, ClassTargets(y), named)
		if err != nil {
			t.Fatal(err)
		}
		for name, tw := range want.Weights {
			if !slices.Equal(tw.Data, got.Weights[name].Data) {
				t.Errorf("%s: %s differs with optimizer sgd named", a.arch.Name(), name)
			}
		}
	}
}

// Adam reaches at least plain SGD's held-out accuracy in the same epochs,
// on the data TestTrainLogRegLearns and TestMLPLearnsXOR use. Adam runs at
// its customary step, 0.01: its steps are ~lr per coordinate whatever the
// gradient's scale.
func TestAdamLearnsAsWellAsSGD(t *testing.T) {
	X, y := blobs(42, 900, 5, 3, 1.5)
	Xs := ComputeMoments(X).Scaler().Apply(X)
	blobTrain, blobTest := mat.DenseCopyOf(Xs.Slice(0, 600, 0, 5)), mat.DenseCopyOf(Xs.Slice(600, 900, 0, 5))
	xorTrain, xorTrainY := xor(1, 400)
	xorTest, xorTestY := xor(2, 400)
	mlp := mustMLP(t, []int{16}, "relu")
	mw, err := mlp.Init(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		arch          Arch
		w             Weights
		Xtr, Xte      *mat.Dense
		ytr, yte      []int
		epochs, batch int
	}{
		{"logreg blobs", logRegArch{}, NewLogReg(5, 3), blobTrain, blobTest, y[:600], y[600:], 4, 32},
		{"mlp xor", mlp, mw, xorTrain, xorTest, xorTrainY, xorTestY, 60, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc := func(cfg TrainConfig) float64 {
				res, err := tc.arch.Train(t.Context(), tc.w, tc.Xtr, ClassTargets(tc.ytr), cfg)
				if err != nil {
					t.Fatal(err)
				}
				sc, err := tc.arch.Evaluate(res.Weights, tc.Xte, ClassTargets(tc.yte))
				correct := sc.Correct
				if err != nil {
					t.Fatal(err)
				}
				return float64(correct) / float64(len(tc.yte))
			}
			sgd := acc(TrainConfig{Epochs: tc.epochs, BatchSize: tc.batch, LearningRate: 0.1, Seed: 3})
			adam := acc(TrainConfig{Epochs: tc.epochs, BatchSize: tc.batch, LearningRate: 0.01, Seed: 3, Optimizer: AdamConfig()})
			t.Logf("held-out accuracy: sgd %.3f, adam %.3f", sgd, adam)
			if adam < sgd {
				t.Errorf("adam reached %.3f, below sgd's %.3f", adam, sgd)
			}
		})
	}
}

func TestOptimizerConfigRefused(t *testing.T) {
	X, y := mat.NewDense(2, 1, []float64{1, -1}), []int{0, 1}
	adam := func(f func(*OptimizerConfig)) OptimizerConfig { c := AdamConfig(); f(&c); return c }
	for _, tc := range []struct {
		name  string
		opt   OptimizerConfig
		param string
	}{
		{"unknown name", OptimizerConfig{Name: "rmsprop"}, "name"},
		{"momentum 1", OptimizerConfig{Momentum: 1}, "momentum"},
		{"momentum negative", OptimizerConfig{Name: "sgd", Momentum: -0.1}, "momentum"},
		{"momentum NaN", OptimizerConfig{Momentum: math.NaN()}, "momentum"},
		{"sgd with beta1", OptimizerConfig{Beta1: 0.9}, "beta1"},
		{"sgd with eps", OptimizerConfig{Eps: 1e-8}, "eps"},
		{"adam with momentum", adam(func(c *OptimizerConfig) { c.Momentum = 0.9 }), "momentum"},
		{"beta1 1", adam(func(c *OptimizerConfig) { c.Beta1 = 1 }), "beta1"},
		{"beta2 negative", adam(func(c *OptimizerConfig) { c.Beta2 = -0.5 }), "beta2"},
		{"eps 0", adam(func(c *OptimizerConfig) { c.Eps = 0 }), "eps"},
		{"eps inf", adam(func(c *OptimizerConfig) { c.Eps = math.Inf(1) }), "eps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opt.Validate()
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param != tc.param {
				t.Fatalf("Validate() = %v, want a ParamError for %s", err, tc.param)
			}
			for _, a := range []Arch{logRegArch{}, mustMLP(t, []int{2}, "relu")} {
				w, _ := a.Init(1, 2)
				_, err := a.Train(t.Context(), w, X, ClassTargets(y), TrainConfig{Epochs: 1, BatchSize: 2, LearningRate: 0.1, Optimizer: tc.opt})
				if err == nil || !strings.Contains(err.Error(), "optimizer: "+tc.param) {
					t.Errorf("%s Train: %v, want an optimizer %s error", a.Name(), err, tc.param)
				}
			}
		})
	}
	for _, ok := range []OptimizerConfig{{}, {Name: "sgd", Momentum: 0.99}, AdamConfig(), {Name: "adam", Beta1: 0, Beta2: 0, Eps: 1}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v refused: %v", ok, err)
		}
	}
}
