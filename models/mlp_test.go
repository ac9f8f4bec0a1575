package models

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func mustMLP(t *testing.T, hidden []int, act string) mlpArch {
	t.Helper()
	a, err := NewArch(ArchMLP, ArchParams{Hidden: hidden, Activation: act})
	if err != nil {
		t.Fatalf("NewArch(mlp, %v, %q): %v", hidden, act, err)
	}
	return a.(mlpArch)
}

// naiveObjective is the MLP objective written row by row with no shared
// code beyond logSumExp, for the finite-difference check.
func naiveObjective(n *mlpNet, X *mat.Dense, y []int, l2, mu float64, anchor *mlpNet) float64 {
	rows, _ := X.Dims()
	var ce float64
	for r := range rows {
		a := X.RawRowView(r)
		for l, w := range n.w {
			out, in := w.Dims()
			z := make([]float64, out)
			for j := range out {
				z[j] = n.b[l][j]
				for i := range in {
					z[j] += w.At(j, i) * a[i]
				}
				if l < len(n.w)-1 {
					if n.tanh {
						z[j] = math.Tanh(z[j])
					} else {
						z[j] = math.Max(z[j], 0)
					}
				}
			}
			a = z
		}
		ce += logSumExp(a) - a[y[r]]
	}
	obj := ce / float64(rows)
	for l, w := range n.w {
		for i, v := range w.RawMatrix().Data {
			obj += l2 / 2 * v * v
			d := v - anchor.w[l].RawMatrix().Data[i]
			obj += mu / 2 * d * d
		}
		for i, v := range n.b[l] {
			d := v - anchor.b[l][i]
			obj += mu / 2 * d * d
		}
	}
	return obj
}

func TestMLPGradientMatchesFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name            string
		hidden          []int
		act             string
		features, class int
	}{
		{"2-3-2 relu", []int{3}, "relu", 2, 2},
		{"2-3-2 tanh", []int{3}, "tanh", 2, 2},
		{"2-4-3-3 relu", []int{4, 3}, "relu", 2, 3},
		{"2-4-3-3 tanh", []int{4, 3}, "tanh", 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustMLP(t, tc.hidden, tc.act)
			w, err := a.Init(tc.features, tc.class)
			if err != nil {
				t.Fatal(err)
			}
			net, err := a.net(w)
			if err != nil {
				t.Fatal(err)
			}
			// Move away from the anchor so the proximal term has a gradient.
			anchor := net.clone()
			rng := rand.New(rand.NewPCG(7, 7))
			for l := range net.w {
				for i := range net.w[l].RawMatrix().Data {
					net.w[l].RawMatrix().Data[i] += 0.2 * rng.NormFloat64()
				}
				for i := range net.b[l] {
					net.b[l][i] += 0.2 * rng.NormFloat64()
				}
			}
			const rows, l2, mu = 6, 0.1, 0.3
			X := mat.NewDense(rows, tc.features, nil)
			y := make([]int, rows)
			for i := range rows {
				for j := range tc.features {
					X.Set(i, j, rng.NormFloat64())
				}
				y[i] = i % tc.class
			}
			wk := newMLPWork(net, rows)
			net.gradient(wk, X, y, []int{0, 1, 2, 3, 4, 5}, l2, mu, anchor)

			const h = 1e-6
			var worst float64
			check := func(what string, p *float64, analytic float64) {
				v := *p
				*p = v + h
				up := naiveObjective(net, X, y, l2, mu, anchor)
				*p = v - h
				down := naiveObjective(net, X, y, l2, mu, anchor)
				*p = v
				numeric := (up - down) / (2 * h)
				rel := math.Abs(analytic-numeric) / math.Max(math.Abs(analytic)+math.Abs(numeric), 1e-4)
				worst = math.Max(worst, rel)
				if rel > 1e-5 {
					t.Errorf("%s: analytic %.10g, numeric %.10g (relative error %.2g)", what, analytic, numeric, rel)
				}
			}
			for l := range net.w {
				wd, gd := net.w[l].RawMatrix().Data, wk.gw[l].RawMatrix().Data
				for i := range wd {
					check(mlpWeightName(l), &wd[i], gd[i])
				}
				for i := range net.b[l] {
					check(mlpBiasName(l), &net.b[l][i], wk.gb[l][i])
				}
			}
			t.Logf("worst relative error %.2g", worst)
		})
	}
}

// xor returns points around the four corners (±1, ±1), labelled 1 where the
// coordinates' signs differ: no line separates the classes.
func xor(seed uint64, n int) (*mat.Dense, []int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	X := mat.NewDense(n, 2, nil)
	y := make([]int, n)
	for i := range n {
		sx, sy := float64(2*rng.IntN(2)-1), float64(2*rng.IntN(2)-1)
		X.Set(i, 0, sx+0.3*rng.NormFloat64())
		X.Set(i, 1, sy+0.3*rng.NormFloat64())
		if sx != sy {
			y[i] = 1
		}
	}
	return X, y
}

func TestMLPLearnsXOR(t *testing.T) {
	Xtr, ytr := xor(1, 400)
	Xte, yte := xor(2, 400)
	cfg := TrainConfig{Epochs: 60, BatchSize: 16, LearningRate: 0.1, Seed: 3}

	lr, err := TrainLogReg(t.Context(), NewLogReg(2, 2), Xtr, ytr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	correct, _, err := EvaluateLogReg(lr.Weights, Xte, yte)
	if err != nil {
		t.Fatal(err)
	}
	if acc := float64(correct) / 400; acc > 0.65 {
		t.Errorf("logreg reached %.3f on XOR; the data is not the non-linear test it should be", acc)
	} else {
		t.Logf("logreg accuracy %.3f", acc)
	}

	for _, act := range []string{"relu", "tanh"} {
		t.Run(act, func(t *testing.T) {
			a := mustMLP(t, []int{16}, act)
			w, err := a.Init(2, 2)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Train(t.Context(), w, Xtr, ClassTargets(ytr), cfg)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := a.Evaluate(res.Weights, Xte, ClassTargets(yte))
			if err != nil {
				t.Fatal(err)
			}
			correct, loss := sc.Correct, sc.Loss
			acc := float64(correct) / 400
			t.Logf("mlp %s: test accuracy %.3f, test loss %.3f, last-epoch train loss %.3f", act, acc, loss, res.Loss)
			if acc < 0.95 {
				t.Errorf("mlp %s test accuracy %.3f, want >= 0.95", act, acc)
			}
			if res.Examples != 400 {
				t.Errorf("Examples = %d, want 400", res.Examples)
			}
			pred, err := a.Predict(res.Weights, Xte)
			if err != nil {
				t.Fatal(err)
			}
			agree := 0
			for i, p := range pred.Classes {
				if p == yte[i] {
					agree++
				}
			}
			if agree != correct {
				t.Errorf("Predict gets %d right, Evaluate counts %d", agree, correct)
			}
		})
	}
}

func TestMLPDeterministic(t *testing.T) {
	a := mustMLP(t, []int{8, 4}, "")
	w1, _ := a.Init(3, 3)
	w2, _ := a.Init(3, 3)
	if !bitEqual(w1, w2) {
		t.Fatal("Init is not deterministic")
	}
	if slices.Equal(w1["layers.1.weight"].Data[:4], w1["layers.2.weight"].Data[:4]) {
		t.Error("layers share their initial values")
	}
	X, y := blobs(5, 120, 3, 3, 2)
	cfg := TrainConfig{Epochs: 3, BatchSize: 10, LearningRate: 0.05, L2: 1e-3, ProxMu: 0.01, Seed: 9}
	train := func(seed int64) Weights {
		c := cfg
		c.Seed = seed
		res, err := a.Train(t.Context(), w1, X, ClassTargets(y), c)
		if err != nil {
			t.Fatal(err)
		}
		return res.Weights
	}
	first := train(9)
	if !bitEqual(first, train(9)) {
		t.Error("same seed gave different weights")
	}
	if bitEqual(first, train(10)) {
		t.Error("different seeds gave identical weights")
	}
	if !bitEqual(w1, w2) {
		t.Error("Train modified its input weights")
	}
}

func TestMLPCancel(t *testing.T) {
	a := mustMLP(t, []int{4}, "tanh")
	w, _ := a.Init(3, 2)
	X, y := blobs(1, 50, 3, 2, 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := a.Train(ctx, w, X, ClassTargets(y), TrainConfig{Epochs: 1, BatchSize: 8, LearningRate: 0.1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Train on a cancelled context: %v, want context.Canceled", err)
	}
}

func TestMLPParams(t *testing.T) {
	if !slices.Contains(ArchNames(), ArchMLP) {
		t.Fatalf("ArchNames() = %v, missing %q", ArchNames(), ArchMLP)
	}
	hidden := []int{64, 32}
	a := mustMLP(t, hidden, "")
	hidden[0] = 1
	if p := a.Params(); !slices.Equal(p.Hidden, []int{64, 32}) || p.Activation != "relu" {
		t.Errorf("Params() = %+v, want hidden [64 32] and the default activation relu", p)
	}
	if p := mustMLP(t, []int{5}, "tanh").Params(); p.Activation != "tanh" {
		t.Errorf("Params().Activation = %q, want tanh", p.Activation)
	}

	for _, tc := range []struct {
		name string
		p    ArchParams
		want string
	}{
		{"no hidden", ArchParams{}, "model type mlp needs hidden sizes, e.g. hidden: [64, 32]"},
		{"activation only", ArchParams{Activation: "relu"}, "needs hidden sizes"},
		{"zero width", ArchParams{Hidden: []int{8, 0}}, "hidden[1] is 0, want 1..4096"},
		{"negative width", ArchParams{Hidden: []int{-3}}, "hidden[0] is -3, want 1..4096"},
		{"too wide", ArchParams{Hidden: []int{4097}}, "hidden[0] is 4097, want 1..4096"},
		{"unknown activation", ArchParams{Hidden: []int{8}, Activation: "sigmoid"}, `activation "sigmoid" is not valid (valid: relu, tanh)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewArch(ArchMLP, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewArch(mlp, %+v) = %v, want an error containing %q", tc.p, err, tc.want)
			}
		})
	}
}

func TestMLPNumParams(t *testing.T) {
	for _, tc := range []struct {
		hidden            []int
		features, classes int
		want              int64
	}{
		{[]int{3}, 2, 2, 3*3 + 4*2},
		{[]int{64, 32}, 30, 2, 31*64 + 65*32 + 33*2},
		{[]int{1, 1, 1}, 1, 5, 2 + 2 + 2 + 2*5},
	} {
		a := mustMLP(t, tc.hidden, "")
		w, err := a.Init(tc.features, tc.classes)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.NumParams(tc.features, tc.classes); got != tc.want || int64(w.NumParams()) != got {
			t.Errorf("%v with %d features, %d classes: NumParams %d, Init holds %d, want %d",
				tc.hidden, tc.features, tc.classes, got, w.NumParams(), tc.want)
		}
		if err := a.Check(w, tc.features, tc.classes); err != nil {
			t.Errorf("Check(Init()) = %v", err)
		}
	}
	if _, err := mustMLP(t, []int{3}, "").Init(2, 1); err == nil {
		t.Error("Init with one class succeeded")
	}
}

func TestMLPRefusesBadWeights(t *testing.T) {
	a := mustMLP(t, []int{4}, "relu")
	good, _ := a.Init(3, 2)
	for _, tc := range []struct {
		name              string
		edit              func(Weights)
		features, classes int
		want              string
	}{
		{"missing bias", func(w Weights) { delete(w, "layers.1.bias") }, 3, 2, `missing tensor "layers.1.bias"`},
		{"extra layer", func(w Weights) { w["layers.2.weight"] = &Tensor{Shape: []int{2, 2}, Data: make([]float32, 4)} }, 3, 2, `unexpected tensor "layers.2.weight"`},
		{"transposed", func(w Weights) { w["layers.0.weight"].Shape = []int{3, 4} }, 3, 2, `tensor "layers.0.weight" has shape [3 4], want [4 3]`},
		{"short data", func(w Weights) { w["layers.0.bias"].Data = w["layers.0.bias"].Data[:3] }, 3, 2, `tensor "layers.0.bias" has 3 values, shape [4] needs 4`},
		{"nan", func(w Weights) { w["layers.1.weight"].Data[1] = float32(math.NaN()) }, 3, 2, `tensor "layers.1.weight" has non-finite value`},
		{"other classes", func(Weights) {}, 3, 3, `tensor "layers.1.bias" has shape [2], want [3]`},
		{"logreg", func(w Weights) {
			clear(w)
			for k, v := range NewLogReg(3, 2) {
				w[k] = v
			}
		}, 3, 2, `missing tensor "layers.0.bias"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := good.Clone()
			tc.edit(w)
			err := a.Check(w, tc.features, tc.classes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error containing %q", err, tc.want)
			}
			if tc.features != 3 || tc.classes != 2 {
				return
			}
			X, y := blobs(1, 10, 3, 2, 1)
			if _, err := a.Train(t.Context(), w, X, ClassTargets(y), TrainConfig{Epochs: 1, BatchSize: 4, LearningRate: 0.1}); err == nil || !strings.HasPrefix(err.Error(), "training mlp: ") {
				t.Errorf("Train = %v, want a training mlp error", err)
			}
			if _, err := a.Evaluate(w, X, ClassTargets(y)); err == nil || !strings.HasPrefix(err.Error(), "evaluating mlp: ") {
				t.Errorf("Evaluate = %v, want an evaluating mlp error", err)
			}
			if _, err := a.Predict(w, X); err == nil || !strings.HasPrefix(err.Error(), "predicting with mlp: ") {
				t.Errorf("Predict = %v, want a predicting with mlp error", err)
			}
		})
	}
}

func TestMLPRefusesBadInputs(t *testing.T) {
	a := mustMLP(t, []int{4}, "relu")
	w, _ := a.Init(3, 2)
	X, y := blobs(1, 10, 3, 2, 1)
	cfg := TrainConfig{Epochs: 1, BatchSize: 4, LearningRate: 0.1}
	for _, tc := range []struct {
		name string
		X    *mat.Dense
		y    []int
		cfg  TrainConfig
		want string
	}{
		{"nil X", nil, y, cfg, "nil feature matrix"},
		{"wrong columns", mat.NewDense(10, 2, nil), y, cfg, "feature matrix has 2 columns, model has 3 features"},
		{"short labels", X, y[:9], cfg, "have 9 labels for 10 rows"},
		{"label out of range", X, append(slices.Clone(y[:9]), 2), cfg, "label 2 at row 9 is outside [0,2)"},
		{"bad config", X, y, TrainConfig{Epochs: 1, BatchSize: 4}, "learning rate must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Train(t.Context(), w, tc.X, ClassTargets(tc.y), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Train = %v, want an error containing %q", err, tc.want)
			}
			if tc.name == "bad config" {
				return
			}
			if _, err := a.Evaluate(w, tc.X, ClassTargets(tc.y)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Evaluate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := a.Predict(w, mat.NewDense(1, 4, nil)); err == nil || !strings.Contains(err.Error(), "has 4 columns") {
		t.Errorf("Predict with 4 columns = %v", err)
	}
}

// crossCheckPy computes the forward pass from the same tensors: numpy by
// reading shapes as [out, in], or torch by loading them into an
// nn.Sequential of Linear layers.
const crossCheckPy = `
import json, sys
import numpy as np
d = json.load(open(sys.argv[2]))
L = d["layers"]
t = d["tensors"]
x = np.array(d["x"], dtype=np.float64)
if sys.argv[1] == "numpy":
    a = x
    for i in range(L):
        W = np.array(t[f"layers.{i}.weight"]["data"], dtype=np.float64).reshape(t[f"layers.{i}.weight"]["shape"])
        b = np.array(t[f"layers.{i}.bias"]["data"], dtype=np.float64).reshape(t[f"layers.{i}.bias"]["shape"])
        a = a @ W.T + b
        if i < L - 1:
            a = np.maximum(a, 0) if d["activation"] == "relu" else np.tanh(a)
    logits = a
else:
    import torch
    mods, state = [], {}
    for i in range(L):
        out_, in_ = t[f"layers.{i}.weight"]["shape"]
        mods.append(torch.nn.Linear(in_, out_, dtype=torch.float64))
        if i < L - 1:
            mods.append(torch.nn.ReLU() if d["activation"] == "relu" else torch.nn.Tanh())
        for p in ("weight", "bias"):
            v = t[f"layers.{i}.{p}"]
            state[f"{2*i}.{p}"] = torch.tensor(v["data"], dtype=torch.float64).reshape(v["shape"])
    seq = torch.nn.Sequential(*mods)
    seq.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = seq(torch.tensor(x)).numpy()
json.dump({"pred": logits.argmax(axis=1).tolist(), "logits": logits.tolist()}, sys.stdout)
`

func TestMLPMatchesNumpyAndTorch(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("cross-check needs %s with numpy (Debian: apt-get install python3-numpy): %v", py, err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "forward.py")
	if err := os.WriteFile(script, []byte(crossCheckPy), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, act := range []string{"relu", "tanh"} {
		a := mustMLP(t, []int{8, 5}, act)
		w, _ := a.Init(4, 3)
		X, y := blobs(11, 200, 4, 3, 1.5)
		res, err := a.Train(t.Context(), w, X, ClassTargets(y), TrainConfig{Epochs: 5, BatchSize: 20, LearningRate: 0.1, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		rows := X.Slice(0, 25, 0, 4).(*mat.Dense)
		pred, err := a.Predict(res.Weights, rows)
		if err != nil {
			t.Fatal(err)
		}
		net, _ := a.net(res.Weights)
		logits := mat.DenseCopyOf(net.forward(newMLPWork(net, 25), mat.DenseCopyOf(rows)))

		// float64 of a float32 is exact, and JSON round-trips float64, so
		// Python sees bit-identical weights.
		type tensor struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		}
		in := struct {
			Layers     int               `json:"layers"`
			Activation string            `json:"activation"`
			Tensors    map[string]tensor `json:"tensors"`
			X          [][]float64       `json:"x"`
		}{Layers: 3, Activation: act, Tensors: map[string]tensor{}}
		for name, tn := range res.Weights {
			in.Tensors[name] = tensor{Shape: tn.Shape, Data: mlpWiden(tn.Data)}
		}
		for i := range 25 {
			in.X = append(in.X, slices.Clone(rows.RawRowView(i)))
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		input := filepath.Join(dir, act+".json")
		if err := os.WriteFile(input, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, lib := range []string{"numpy", "torch"} {
			t.Run(act+"/"+lib, func(t *testing.T) {
				if lib == "torch" {
					if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
						t.Skipf("torch cross-check skipped: %s cannot import torch: %v", py, err)
					}
				}
				outb, err := exec.CommandContext(t.Context(), py, script, lib, input).Output()
				if err != nil {
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						t.Fatalf("%s forward pass: %v\n%s", lib, err, ee.Stderr)
					}
					t.Fatalf("%s forward pass: %v", lib, err)
				}
				var out struct {
					Pred   []int       `json:"pred"`
					Logits [][]float64 `json:"logits"`
				}
				if err := json.Unmarshal(outb, &out); err != nil {
					t.Fatalf("reading %s output %q: %v", lib, outb, err)
				}
				if !slices.Equal(out.Pred, pred.Classes) {
					t.Errorf("%s predicts %v, Go predicts %v", lib, out.Pred, pred.Classes)
				}
				for i, row := range out.Logits {
					for j, v := range row {
						if d := math.Abs(v - logits.At(i, j)); d > 1e-9 {
							t.Errorf("row %d class %d: %s logit %.12g, Go %.12g", i, j, lib, v, logits.At(i, j))
						}
					}
				}
			})
		}
	}
}
