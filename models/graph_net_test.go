package models

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// randomNet returns a network of the given widths with N(0, 0.5²) weights
// and biases.
func randomNet(rng *rand.Rand, sizes []int, tanh bool) *mlpNet {
	n := &mlpNet{sizes: sizes, tanh: tanh}
	for l := range len(sizes) - 1 {
		w := mat.NewDense(sizes[l+1], sizes[l], nil)
		for i := range w.RawMatrix().Data {
			w.RawMatrix().Data[i] = 0.5 * rng.NormFloat64()
		}
		b := make([]float64, sizes[l+1])
		for i := range b {
			b[i] = 0.5 * rng.NormFloat64()
		}
		n.w, n.b = append(n.w, w), append(n.b, b)
	}
	return n
}

// perturbed returns a copy of n with N(0, 0.2²) added to every parameter,
// so a proximal term anchored at n has a gradient.
func perturbed(rng *rand.Rand, n *mlpNet) *mlpNet {
	c := n.clone()
	for i := range 2 * len(c.w) {
		for j := range netParam(c, i) {
			netParam(c, i)[j] += 0.2 * rng.NormFloat64()
		}
	}
	return c
}

// kernelGrad is the kernel's gradient of parameter i, numbered as netParam.
func kernelGrad(wk *mlpWork, i int) []float64 {
	if i%2 == 0 {
		return wk.gw[i/2].RawMatrix().Data
	}
	return wk.gb[i/2]
}

func randomData(rng *rand.Rand, rows, features, classes int) (*mat.Dense, []int) {
	X := mat.NewDense(rows, features, nil)
	y := make([]int, rows)
	for i := range rows {
		for j := range features {
			X.Set(i, j, rng.NormFloat64())
		}
		y[i] = rng.IntN(classes)
	}
	return X, y
}

// TestGraphGradientMatchesKernel holds the gonum kernel that trains both
// architectures to the gorgonia definition of the objective: the same loss
// and the same gradient for every parameter, to 1e-9, for logreg (no
// hidden layer) and MLPs of one and two hidden layers, with and without
// the L2 and proximal terms, on a full and a partial batch.
func TestGraphGradientMatchesKernel(t *testing.T) {
	const features, classes, batch = 5, 3, 8
	for _, hidden := range [][]int{nil, {6}, {7, 4}} {
		for _, act := range []string{actReLU, actTanh} {
			if len(hidden) == 0 && act == actTanh {
				continue // no hidden layer, no activation
			}
			for _, pen := range []struct{ l2, mu float64 }{{0, 0}, {0.1, 0.3}} {
				for _, rows := range []int{batch, batch - 3} {
					name := fmt.Sprintf("hidden=%v/%s/l2=%v,mu=%v/rows=%d", hidden, act, pen.l2, pen.mu, rows)
					t.Run(name, func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(len(hidden)), uint64(rows)))
						sizes := append(append([]int{features}, hidden...), classes)
						net := randomNet(rng, sizes, act == actTanh)
						anchor := perturbed(rng, net)
						X, y := randomData(rng, batch+4, features, classes)
						idx := rng.Perm(batch + 4)[:rows]

						wk := newMLPWork(net, batch)
						wantCE := net.gradient(wk, X, y, idx, pen.l2, pen.mu, anchor)

						gn, err := newGraphNet(sizes, net.tanh, batch, pen.l2, pen.mu)
						if err != nil {
							t.Fatal(err)
						}
						defer gn.Close()
						if err := gn.load(net, anchor); err != nil {
							t.Fatal(err)
						}
						gotCE, err := gn.gradient(X, y, idx)
						if err != nil {
							t.Fatal(err)
						}
						if !close9(gotCE, wantCE) {
							t.Errorf("cross-entropy: graph %.15g, kernel %.15g", gotCE, wantCE)
						}
						for i, p := range gn.params {
							got, err := gn.grad(i)
							if err != nil {
								t.Fatal(err)
							}
							for j, want := range kernelGrad(wk, i) {
								if !close9(got[j], want) {
									t.Errorf("∂/∂%s[%d]: graph %.15g, kernel %.15g", p.Name(), j, got[j], want)
								}
							}
						}
					})
				}
			}
		}
	}
}

// close9 reports whether a and b agree to 1e-9, relative to their size
// when that is above 1.
func close9(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestTrainingMatchesGraph trains with the kernel (logreg through
// TrainLogReg, so also its mapping of linear.weight and linear.bias to
// layer 0) and through the gorgonia graph from the same start, with the
// same shuffling and optimizer: over many steps, with a partial last
// batch, L2, FedProx and the stateful optimizers, the results agree to
// float32 rounding.
func TestTrainingMatchesGraph(t *testing.T) {
	const features, classes = 4, 3
	X, y := blobs(21, 45, features, classes, 1.5)
	X = ComputeMoments(X).Scaler().Apply(X)
	configs := []struct {
		name string
		cfg  TrainConfig
	}{
		{"sgd partial last batch", TrainConfig{Epochs: 3, BatchSize: 8, LearningRate: 0.2, Seed: 1}},
		{"l2", TrainConfig{Epochs: 2, BatchSize: 10, LearningRate: 0.2, L2: 0.05, Seed: 2}},
		{"proximal", TrainConfig{Epochs: 2, BatchSize: 10, LearningRate: 0.2, ProxMu: 0.5, Seed: 3}},
		{"momentum", TrainConfig{Epochs: 2, BatchSize: 16, LearningRate: 0.05, Seed: 4, Optimizer: OptimizerConfig{Momentum: 0.9}}},
		{"adam l2 proximal", TrainConfig{Epochs: 2, BatchSize: 16, LearningRate: 0.01, L2: 0.01, ProxMu: 0.1, Seed: 5, Optimizer: AdamConfig()}},
	}
	for _, arch := range []struct {
		name   string
		hidden []int
		tanh   bool
	}{{"logreg", nil, false}, {"mlp relu", []int{6}, false}, {"mlp tanh", []int{5, 4}, true}} {
		for _, c := range configs {
			t.Run(arch.name+"/"+c.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, 12))
				start := randomNet(rng, append(append([]int{features}, arch.hidden...), classes), arch.tanh)

				var got Weights
				var gotLoss float64
				if arch.hidden == nil {
					w := NewLogReg(features, classes)
					toFloat32(w[WeightName].Data, start.w[0].RawMatrix().Data)
					toFloat32(w[BiasName].Data, start.b[0])
					// The graph starts from what the float32 tensors hold.
					m, err := asLogReg(w)
					if err != nil {
						t.Fatal(err)
					}
					start = m.net()
					res, err := TrainLogReg(t.Context(), w, X, y, c.cfg)
					if err != nil {
						t.Fatal(err)
					}
					got = Weights{mlpWeightName(0): res.Weights[WeightName], mlpBiasName(0): res.Weights[BiasName]}
					gotLoss = res.Loss
				} else {
					net := start.clone()
					loss, err := trainLoop(t.Context(), newKernelStepper(net, c.cfg.BatchSize, c.cfg.L2, c.cfg.ProxMu), X, y, c.cfg)
					if err != nil {
						t.Fatal(err)
					}
					got, gotLoss = net.weights(), loss
				}

				gn, err := newGraphNet(start.sizes, start.tanh, c.cfg.BatchSize, c.cfg.L2, c.cfg.ProxMu)
				if err != nil {
					t.Fatal(err)
				}
				defer gn.Close()
				graphTrain := func() (Weights, float64) {
					ref := start.clone()
					if err := gn.load(ref, ref); err != nil {
						t.Fatal(err)
					}
					loss, err := trainLoop(context.Background(), gn, X, y, c.cfg)
					if err != nil {
						t.Fatal(err)
					}
					if err := gn.store(ref); err != nil {
						t.Fatal(err)
					}
					return ref.weights(), loss
				}
				want, wantLoss := graphTrain()
				// The benchmarks reuse one compiled graph across calls; a
				// second run must not see the first's weights or gradients.
				if again, againLoss := graphTrain(); !bitEqual(again, want) || againLoss != wantLoss {
					t.Error("training through a reused graph differs from the first run")
				}

				if !close9(gotLoss, wantLoss) {
					t.Errorf("loss: kernel %.15g, graph %.15g", gotLoss, wantLoss)
				}
				for name, wt := range want {
					for i, v := range wt.Data {
						g := got[name].Data[i]
						if math.Abs(float64(g-v)) > 1e-6*math.Max(1, math.Abs(float64(v))) {
							t.Errorf("%s[%d]: kernel %v, graph %v", name, i, g, v)
						}
					}
				}
			})
		}
	}
}
