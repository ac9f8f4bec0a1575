package models

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// The mlp architecture: a multilayer perceptron of fully connected layers
// with ReLU or tanh between them and a softmax over the classes.
//
// Forward and backward passes are written by hand on gonum (mat.Dense,
// BLAS-backed): the kernel that trains logreg too (its network with no
// hidden layer). The model's definition is the gorgonia graph in
// graph_net.go; the kernel's gradient is tested against it (and against
// finite differences in mlp_test.go), and runs 3–25× faster than the
// graph even compiled once (BenchmarkTrainMLP, BenchmarkTrainLogRegVsKernel).
//
// Tensors follow a PyTorch nn.Sequential of nn.Linear layers:
// layers.{i}.weight is [out, in] and layers.{i}.bias is [out], for i from 0
// (features → hidden[0]) to len(hidden) (last hidden → classes). In torch,
// nn.Sequential(Linear, ReLU, Linear, …) numbers its activations too, so
// layers.{i} loads as key {2i} there.

// ArchMLP names the multilayer perceptron.
const ArchMLP = "mlp"

const (
	mlpMaxHidden = 4096
	actReLU      = "relu"
	actTanh      = "tanh"
)

func init() {
	RegisterArch(ArchMLP, func(p ArchParams) (Arch, error) { return newMLP(p) })
}

// mlpArch is an MLP with fixed hidden sizes and activation; it is immutable,
// so one value serves concurrent sites.
type mlpArch struct {
	hidden []int
	act    string
}

func newMLP(p ArchParams) (mlpArch, error) {
	if len(p.Hidden) == 0 {
		return mlpArch{}, fmt.Errorf("model type mlp needs hidden sizes, e.g. hidden: [64, 32]")
	}
	for i, h := range p.Hidden {
		if h < 1 || h > mlpMaxHidden {
			return mlpArch{}, fmt.Errorf("model type mlp: hidden[%d] is %d, want 1..%d", i, h, mlpMaxHidden)
		}
	}
	act := p.Activation
	switch act {
	case "":
		act = actReLU
	case actReLU, actTanh:
	default:
		return mlpArch{}, fmt.Errorf("model type mlp: activation %q is not valid (valid: %s, %s)", p.Activation, actReLU, actTanh)
	}
	return mlpArch{hidden: slices.Clone(p.Hidden), act: act}, nil
}

func (a mlpArch) Name() string { return ArchMLP }

func (a mlpArch) Kind() Kind { return Classifier }

func (a mlpArch) Params() ArchParams {
	return ArchParams{Hidden: slices.Clone(a.hidden), Activation: a.act}
}

// sizes returns the layer widths from input to output.
func (a mlpArch) sizes(features, classes int) []int {
	s := make([]int, 0, len(a.hidden)+2)
	s = append(s, features)
	s = append(s, a.hidden...)
	return append(s, classes)
}

func mlpWeightName(i int) string { return fmt.Sprintf("layers.%d.weight", i) }
func mlpBiasName(i int) string   { return fmt.Sprintf("layers.%d.bias", i) }

// spec returns the tensors (shapes only) of this MLP for features and classes.
func (a mlpArch) spec(features, classes int) Weights {
	s := a.sizes(features, classes)
	w := make(Weights, 2*(len(s)-1))
	for i := range len(s) - 1 {
		w[mlpWeightName(i)] = &Tensor{Shape: []int{s[i+1], s[i]}}
		w[mlpBiasName(i)] = &Tensor{Shape: []int{s[i+1]}}
	}
	return w
}

func mlpCheckDims(features, classes int) error {
	if features < 1 || classes < 2 {
		return fmt.Errorf("mlp needs at least 1 feature and 2 classes, got %d and %d", features, classes)
	}
	return nil
}

// Init draws every layer like PyTorch's nn.Linear default, U(−1/√in, 1/√in)
// for weight and bias, from a generator seeded by (features, classes,
// layer). The coordinator calls Init once per job, and a fixed seed makes
// the starting point, and so the job, reproducible; zero, as logreg uses,
// would leave every hidden unit identical forever.
func (a mlpArch) Init(features, classes int) (Weights, error) {
	if err := mlpCheckDims(features, classes); err != nil {
		return nil, err
	}
	s := a.sizes(features, classes)
	w := make(Weights, 2*(len(s)-1))
	for i := range len(s) - 1 {
		in, out := s[i], s[i+1]
		rng := rand.New(rand.NewPCG(uint64(features)<<32|uint64(classes), 0x6d6c70<<32|uint64(i))) // "mlp"
		bound := 1 / math.Sqrt(float64(in))
		draw := func(n int) []float32 {
			d := MakeValues(n)
			for j := range d {
				d[j] = float32(bound * (2*rng.Float64() - 1))
			}
			return d
		}
		wn, bn := mlpWeightName(i), mlpBiasName(i)
		w[wn] = &Tensor{Name: wn, Shape: []int{out, in}, Data: draw(out * in)}
		w[bn] = &Tensor{Name: bn, Shape: []int{out}, Data: draw(out)}
	}
	return w, nil
}

func (a mlpArch) NumParams(features, classes int) int64 {
	s := a.sizes(features, classes)
	var n int64
	for i := range len(s) - 1 {
		n += int64(s[i]+1) * int64(s[i+1])
	}
	return n
}

func (a mlpArch) Check(w Weights, features, classes int) error {
	if err := mlpCheckDims(features, classes); err != nil {
		return err
	}
	return w.Validate(a.spec(features, classes))
}

// net converts w to float64 layers after checking it is this MLP's weights
// for the feature and class counts its first and last layers imply.
func (a mlpArch) net(w Weights) (*mlpNet, error) {
	last := len(a.hidden)
	first, ok := w[mlpWeightName(0)]
	if !ok || first == nil || len(first.Shape) != 2 {
		return nil, fmt.Errorf("missing tensor %q or it is not a matrix", mlpWeightName(0))
	}
	final, ok := w[mlpWeightName(last)]
	if !ok || final == nil || len(final.Shape) != 2 {
		return nil, fmt.Errorf("missing tensor %q or it is not a matrix", mlpWeightName(last))
	}
	features, classes := first.Shape[1], final.Shape[0]
	if err := a.Check(w, features, classes); err != nil {
		return nil, err
	}
	s := a.sizes(features, classes)
	n := &mlpNet{tanh: a.act == actTanh, sizes: s}
	for i := range len(s) - 1 {
		n.w = append(n.w, mat.NewDense(s[i+1], s[i], mlpWiden(w[mlpWeightName(i)].Data)))
		n.b = append(n.b, mlpWiden(w[mlpBiasName(i)].Data))
	}
	return n, nil
}

// mlpWiden converts stored float32 values to float64 for computing.
func mlpWiden(src []float32) []float64 {
	out := make([]float64, len(src))
	for i, v := range src {
		out[i] = float64(v)
	}
	return out
}

// mlpNet is an MLP's parameters in float64 for computing.
type mlpNet struct {
	sizes []int // widths, input to output
	tanh  bool  // else ReLU
	w     []*mat.Dense
	b     [][]float64
}

func (n *mlpNet) features() int { return n.sizes[0] }
func (n *mlpNet) classes() int  { return n.sizes[len(n.sizes)-1] }

// weights converts back to float32 tensors.
func (n *mlpNet) weights() Weights {
	out := make(Weights, 2*len(n.w))
	for i := range n.w {
		r, c := n.w[i].Dims()
		wn, bn := mlpWeightName(i), mlpBiasName(i)
		out[wn] = &Tensor{Name: wn, Shape: []int{r, c}, Data: MakeValues(r * c)}
		toFloat32(out[wn].Data, n.w[i].RawMatrix().Data)
		out[bn] = &Tensor{Name: bn, Shape: []int{r}, Data: make([]float32, r)}
		toFloat32(out[bn].Data, n.b[i])
	}
	return out
}

// clone deep-copies n (the FedProx anchor θ₀).
func (n *mlpNet) clone() *mlpNet {
	c := &mlpNet{sizes: n.sizes, tanh: n.tanh}
	for i := range n.w {
		c.w = append(c.w, mat.DenseCopyOf(n.w[i]))
		c.b = append(c.b, slices.Clone(n.b[i]))
	}
	return c
}

// mlpWork holds buffers for batches of up to cap rows, reused across steps.
// acts[l] is layer l's output ([rows, sizes[l+1]]; the last is logits, then
// softmax probabilities, then ∂loss/∂logits); delta is the backward
// signal of the layer below.
type mlpWork struct {
	cap   int
	x     []float64
	acts  [][]float64
	delta [2][]float64
	gw    []*mat.Dense // gradients, same shapes as the net
	gb    [][]float64
	// DP-SGD only: every layer's backward signal (dps[l] for layer l+1's
	// input; the last layer's is the logits buffer) and each row's
	// clipping factor.
	dps   [][]float64
	norms []float64
}

func newMLPWork(n *mlpNet, rows int) *mlpWork {
	wk := &mlpWork{cap: rows, x: make([]float64, rows*n.features())}
	widest := 0
	for l := range n.w {
		out, in := n.w[l].Dims()
		wk.acts = append(wk.acts, make([]float64, rows*out))
		wk.gw = append(wk.gw, mat.NewDense(out, in, nil))
		wk.gb = append(wk.gb, make([]float64, out))
		widest = max(widest, out)
	}
	wk.delta[0] = make([]float64, rows*widest)
	wk.delta[1] = make([]float64, rows*widest)
	return wk
}

// load copies the given rows of X into the input buffer and returns it as
// a matrix of len(rows) rows.
func (wk *mlpWork) load(X *mat.Dense, rows []int) *mat.Dense {
	_, f := X.Dims()
	for i, r := range rows {
		copy(wk.x[i*f:(i+1)*f], X.RawRowView(r))
	}
	return mat.NewDense(len(rows), f, wk.x[:len(rows)*f])
}

// forward computes every layer's output for the m rows of xb; the last
// layer's output is the logits, returned as a matrix.
func (n *mlpNet) forward(wk *mlpWork, xb *mat.Dense) *mat.Dense {
	m, _ := xb.Dims()
	in := xb
	for l, w := range n.w {
		out, _ := w.Dims()
		z := mat.NewDense(m, out, wk.acts[l][:m*out])
		z.Mul(in, w.T())
		raw := z.RawMatrix().Data
		hidden := l < len(n.w)-1
		for i := range m {
			row := raw[i*out : (i+1)*out]
			for j, b := range n.b[l] {
				v := row[j] + b
				if hidden {
					if n.tanh {
						v = math.Tanh(v)
					} else if v < 0 {
						v = 0
					}
				}
				row[j] = v
			}
		}
		in = z
	}
	return in
}

// gradient computes the objective's gradient on rows of X into wk.gw and
// wk.gb and returns the batch's mean cross-entropy. The objective is mean
// cross-entropy + (l2/2)·Σ‖weight‖² + (mu/2)·‖θ − anchor‖² (the last only
// when mu > 0).
func (n *mlpNet) gradient(wk *mlpWork, X *mat.Dense, y []int, rows []int, l2, mu float64, anchor *mlpNet) float64 {
	m := len(rows)
	xb := wk.load(X, rows)
	logits := n.forward(wk, xb)
	k := n.classes()
	raw := logits.RawMatrix().Data
	var ce float64
	inv := 1 / float64(m)
	// Turn logits into ∂ce/∂logits = (softmax − onehot)/m in place.
	for i, r := range rows {
		z := raw[i*k : (i+1)*k]
		lse := logSumExp(z)
		ce += lse - z[y[r]]
		for j, v := range z {
			z[j] = math.Exp(v-lse) * inv
		}
		z[y[r]] -= inv
	}
	dz := logits
	for l := len(n.w) - 1; l >= 0; l-- {
		in := xb
		if l > 0 {
			in = mat.NewDense(m, n.sizes[l], wk.acts[l-1][:m*n.sizes[l]])
		}
		wk.gw[l].Mul(dz.T(), in)
		gb := wk.gb[l]
		clear(gb)
		d := dz.RawMatrix().Data
		out := len(gb)
		for i := range m {
			for j, v := range d[i*out : (i+1)*out] {
				gb[j] += v
			}
		}
		if l == 0 {
			break
		}
		// Back through layer l's weights and layer l−1's activation, whose
		// derivative is read off its output: 1−a² for tanh, a>0 for ReLU.
		next := mat.NewDense(m, n.sizes[l], wk.delta[l%2][:m*n.sizes[l]])
		next.Mul(dz, n.w[l])
		a := in.RawMatrix().Data
		nd := next.RawMatrix().Data
		for i, v := range a {
			if n.tanh {
				nd[i] *= 1 - v*v
			} else if v <= 0 {
				nd[i] = 0
			}
		}
		dz = next
	}
	n.regularize(wk, l2, mu, anchor)
	return ce * inv
}

// regularize adds the gradient of the data-independent terms,
// (l2/2)·Σ‖weight‖² and (mu/2)·‖θ − anchor‖², to wk's.
func (n *mlpNet) regularize(wk *mlpWork, l2, mu float64, anchor *mlpNet) {
	for l := range n.w {
		g, w := wk.gw[l].RawMatrix().Data, n.w[l].RawMatrix().Data
		if l2 > 0 {
			for i, v := range w {
				g[i] += l2 * v
			}
		}
		if mu > 0 {
			ref := anchor.w[l].RawMatrix().Data
			for i, v := range w {
				g[i] += mu * (v - ref[i])
			}
			for i, v := range n.b[l] {
				wk.gb[l][i] += mu * (v - anchor.b[l][i])
			}
		}
	}
}

// step applies opt's rule with the gradient in wk; plain SGD is
// θ ← θ − lr·∇. Layer l's weight is opt's parameter 2l, its bias 2l+1.
func (n *mlpNet) step(wk *mlpWork, opt *optimizer) {
	if !opt.plain() {
		opt.begin()
		for l := range n.w {
			opt.update(2*l, n.w[l].RawMatrix().Data, wk.gw[l].RawMatrix().Data)
			opt.update(2*l+1, n.b[l], wk.gb[l])
		}
		return
	}
	lr := opt.lr
	for l := range n.w {
		w, g := n.w[l].RawMatrix().Data, wk.gw[l].RawMatrix().Data
		for i, v := range g {
			w[i] -= lr * v
		}
		for i, v := range wk.gb[l] {
			n.b[l][i] -= lr * v
		}
	}
}

// checkX verifies X has the net's feature count and returns its rows.
func (n *mlpNet) checkX(X *mat.Dense) (int, error) {
	if X == nil {
		return 0, fmt.Errorf("nil feature matrix")
	}
	r, c := X.Dims()
	if c != n.features() {
		return 0, fmt.Errorf("feature matrix has %d columns, model has %d features", c, n.features())
	}
	return r, nil
}

// Train runs minibatch training from w in the loop logreg's training uses
// too (trainLoop): rows are shuffled every epoch with a generator seeded
// from cfg.Seed, so a fixed seed gives identical weights; ctx is checked
// before every batch.
func (a mlpArch) Train(ctx context.Context, w Weights, X *mat.Dense, targets Targets, cfg TrainConfig) (TrainResult, error) {
	y := targets.Classes
	net, err := a.net(w)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: %w", err)
	}
	n, err := net.checkX(X)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: %w", err)
	}
	if err := checkLabels(y, n, net.classes()); err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: %w", err)
	}
	if n == 0 {
		return TrainResult{}, fmt.Errorf("training mlp: no rows")
	}
	if err := cfg.validate(); err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: %w", err)
	}
	loss, err := trainLoop(ctx, newKernelStepper(net, min(cfg.BatchSize, n), cfg.L2, cfg.ProxMu), X, y, cfg)
	if err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: %w", err)
	}
	out := net.weights()
	// Validating against itself checks only that every value is finite
	// (float32 can overflow where float64 did not).
	if err := out.Validate(out); err != nil {
		return TrainResult{}, fmt.Errorf("training mlp: diverged (try a smaller learning rate): %w", err)
	}
	return TrainResult{Weights: out, Loss: loss, Examples: n}, nil
}

// mlpEvalChunk bounds the rows Evaluate and Predict push through at once, so
// their buffers stay small whatever the size of X.
const mlpEvalChunk = 256

// eachLogits calls fn with consecutive row ranges of X and their logits.
func (n *mlpNet) eachLogits(X *mat.Dense, rows int, fn func(start int, logits *mat.Dense)) {
	wk := newMLPWork(n, min(mlpEvalChunk, max(rows, 1)))
	idx := make([]int, wk.cap)
	for start := 0; start < rows; start += wk.cap {
		m := min(wk.cap, rows-start)
		for i := range m {
			idx[i] = start + i
		}
		fn(start, n.forward(wk, wk.load(X, idx[:m])))
	}
}

func (a mlpArch) Evaluate(w Weights, X *mat.Dense, targets Targets) (Score, error) {
	y := targets.Classes
	net, err := a.net(w)
	if err != nil {
		return Score{}, fmt.Errorf("evaluating mlp: %w", err)
	}
	n, err := net.checkX(X)
	if err != nil {
		return Score{}, fmt.Errorf("evaluating mlp: %w", err)
	}
	if err := checkLabels(y, n, net.classes()); err != nil {
		return Score{}, fmt.Errorf("evaluating mlp: %w", err)
	}
	if n == 0 {
		return Score{}, fmt.Errorf("evaluating mlp: no rows")
	}
	k := net.classes()
	var total float64
	var correct int
	net.eachLogits(X, n, func(start int, logits *mat.Dense) {
		m, _ := logits.Dims()
		raw := logits.RawMatrix().Data
		for i := range m {
			z, want := raw[i*k:(i+1)*k], y[start+i]
			if argmax(z) == want {
				correct++
			}
			total += logSumExp(z) - z[want]
		}
	})
	return Score{Rows: n, Correct: correct, Loss: total / float64(n)}, nil
}

func (a mlpArch) Predict(w Weights, X *mat.Dense) (Predictions, error) {
	net, err := a.net(w)
	if err != nil {
		return Predictions{}, fmt.Errorf("predicting with mlp: %w", err)
	}
	n, err := net.checkX(X)
	if err != nil {
		return Predictions{}, fmt.Errorf("predicting with mlp: %w", err)
	}
	k := net.classes()
	out := make([]int, n)
	net.eachLogits(X, n, func(start int, logits *mat.Dense) {
		m, _ := logits.Dims()
		raw := logits.RawMatrix().Data
		for i := range m {
			out[start+i] = argmax(raw[i*k : (i+1)*k])
		}
	})
	return Predictions{Classes: out}, nil
}
