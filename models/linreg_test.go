package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// linregData is y = 3 + 2·x0 − 1.5·x1 + 0·x2 + N(0, 0.1²) on standardized
// x: the known truth the fitted model must recover.
func linregData(n int, seed uint64) (*mat.Dense, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	X := mat.NewDense(n, 3, nil)
	y := make([]float64, n)
	for i := range n {
		x := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
		X.SetRow(i, x)
		y[i] = 3 + 2*x[0] - 1.5*x[1] + 0.1*rng.NormFloat64()
	}
	return X, y
}

// olsFit is the exact least-squares solution [b0, b1, …] via gonum.
func olsFit(t *testing.T, X *mat.Dense, y []float64) []float64 {
	t.Helper()
	n, f := X.Dims()
	A := mat.NewDense(n, f+1, nil)
	for i := range n {
		A.Set(i, 0, 1)
		for j := range f {
			A.Set(i, j+1, X.At(i, j))
		}
	}
	var beta mat.VecDense
	if err := beta.SolveVec(A, mat.NewVecDense(n, y)); err != nil {
		t.Fatal(err)
	}
	return beta.RawVector().Data
}

func TestLinRegRecoversLeastSquares(t *testing.T) {
	X, y := linregData(500, 7)
	a, err := NewArch(ArchLinReg, ArchParams{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind() != Regressor {
		t.Fatalf("linreg kind = %v", a.Kind())
	}
	w, err := a.Init(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := olsFit(t, X, y)
	for _, opt := range []OptimizerConfig{{}, AdamConfig()} {
		res, err := a.Train(t.Context(), w, X, ValueTargets(y), TrainConfig{Epochs: 30, BatchSize: 32, LearningRate: 0.05, Seed: 1, Optimizer: opt})
		if err != nil {
			t.Fatal(err)
		}
		got := append([]float64{float64(res.Weights[BiasName].Data[0])}, widen(res.Weights[WeightName].Data)...)
		for j := range want {
			if math.Abs(got[j]-want[j]) > 0.02 {
				t.Errorf("%s: coefficient %d = %.4f, least squares %.4f", opt.name(), j, got[j], want[j])
			}
		}
		sc, err := a.Evaluate(res.Weights, X, ValueTargets(y))
		if err != nil {
			t.Fatal(err)
		}
		// The noise is 0.1, so the RMSE is about that, and R² close to 1.
		if rmse := math.Sqrt(sc.Loss); rmse > 0.12 {
			t.Errorf("%s: RMSE %.4f, want about the noise 0.1", opt.name(), rmse)
		}
		if r2 := SpreadOf(y).R2(sc.Loss * float64(sc.Rows)); r2 < 0.99 {
			t.Errorf("%s: R² %.4f, want > 0.99", opt.name(), r2)
		}
		pred, err := a.Predict(res.Weights, X)
		if err != nil {
			t.Fatal(err)
		}
		var sse float64
		for i, p := range pred.Values {
			sse += (p - y[i]) * (p - y[i])
		}
		if math.Abs(sse/500-sc.Loss) > 1e-9 {
			t.Errorf("Predict's MSE %.6f != Evaluate's %.6f", sse/500, sc.Loss)
		}
	}
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestSpreadMergesExactly checks R²'s inputs merge across sites to what
// one pass over the union gives, even for a label with a huge mean where
// Σy² − (Σy)²/n would cancel (that formula loses all 8 digits here; the
// merge keeps 6 of the 7 that float64 holds beside the mean).
func TestSpreadMergesExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var all []float64
	var merged Spread
	for range 4 {
		part := make([]float64, 1+rng.IntN(50))
		for i := range part {
			part[i] = 1e9 + rng.NormFloat64()
		}
		all = append(all, part...)
		merged.Merge(SpreadOf(part))
	}
	whole := SpreadOf(all)
	var mean, m2 float64
	for _, v := range all {
		mean += v
	}
	mean /= float64(len(all))
	for _, v := range all {
		m2 += (v - mean) * (v - mean)
	}
	if merged.N != whole.N || math.Abs(merged.Mean-mean) > 1e-6 || math.Abs(merged.M2-m2)/m2 > 1e-6 || math.Abs(whole.M2-m2)/m2 > 1e-6 {
		t.Errorf("merged %+v, one pass %+v, two-pass mean %v M2 %v", merged, whole, mean, m2)
	}
	if r2 := merged.R2(m2); math.Abs(r2) > 1e-6 {
		t.Errorf("R² of predicting the mean = %v, want 0", r2)
	}
	if r2 := (Spread{N: 3, Mean: 1}).R2(0); !math.IsNaN(r2) {
		t.Errorf("R² of a constant label = %v, want NaN", r2)
	}
}

func TestLinRegRefusesWhatItCannotUse(t *testing.T) {
	a, _ := NewArch(ArchLinReg, ArchParams{})
	if _, err := NewArch(ArchLinReg, ArchParams{Hidden: []int{3}}); err == nil || !strings.Contains(err.Error(), "takes no hidden") {
		t.Errorf("linreg with hidden layers: %v", err)
	}
	if _, err := a.Init(3, 2); err == nil {
		t.Error("linreg accepted 2 classes")
	}
	w, _ := a.Init(2, 0)
	X := mat.NewDense(2, 2, []float64{1, 2, 3, 4})
	cfg := TrainConfig{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	for _, tc := range []struct {
		y    []float64
		want string
	}{
		{[]float64{1}, "1 target values for 2 rows"},
		{[]float64{1, math.NaN()}, "not a finite number"},
	} {
		if _, err := a.Train(t.Context(), w, X, ValueTargets(tc.y), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Train(%v) = %v, want %q", tc.y, err, tc.want)
		}
		if _, err := a.Evaluate(w, X, ValueTargets(tc.y)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Evaluate(%v) = %v, want %q", tc.y, err, tc.want)
		}
	}
	if err := a.Check(NewLogReg(2, 3), 2, 0); err == nil {
		t.Error("linreg accepted logreg's 3-class weights")
	}
	if _, err := a.Train(t.Context(), w, X, ValueTargets([]float64{1e300, -1e300}), TrainConfig{Epochs: 50, BatchSize: 2, LearningRate: 10}); err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Errorf("a diverging fit: %v", err)
	}
}
