package models

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestNewLogReg(t *testing.T) {
	w := NewLogReg(4, 3)
	if got := w[WeightName].Shape; !reflect.DeepEqual(got, []int{3, 4}) {
		t.Errorf("weight shape %v, want [3 4]", got)
	}
	if got := w[BiasName].Shape; !reflect.DeepEqual(got, []int{3}) {
		t.Errorf("bias shape %v, want [3]", got)
	}
	if w.NumParams() != 15 {
		t.Errorf("NumParams = %d, want 15", w.NumParams())
	}
	for _, name := range w.Names() {
		for _, v := range w[name].Data {
			if v != 0 {
				t.Fatalf("%s not zero-initialised", name)
			}
		}
	}
	for _, bad := range [][2]int{{0, 2}, {3, 1}} {
		t.Run("panics", func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLogReg(%d, %d) did not panic", bad[0], bad[1])
				}
			}()
			NewLogReg(bad[0], bad[1])
		})
	}
}

// handLogReg is a 3-class, 2-feature model whose logits are easy to compute
// by hand: z = (x0, x1, 0.5).
func handLogReg() Weights {
	w := NewLogReg(2, 3)
	copy(w[WeightName].Data, []float32{1, 0, 0, 1, 0, 0})
	copy(w[BiasName].Data, []float32{0, 0, 0.5})
	return w
}

func TestPredictAndEvaluateLogReg(t *testing.T) {
	X := mat.NewDense(4, 2, []float64{
		2, 1, // z = (2, 1, .5) -> 0
		0, 3, // z = (0, 3, .5) -> 1
		0, 0, // z = (0, 0, .5) -> 2
		1, 1, // z = (1, 1, .5) tie -> lowest index 0
	})
	w := handLogReg()
	pred, err := PredictLogReg(w, X)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 0}; !reflect.DeepEqual(pred, want) {
		t.Errorf("predictions %v, want %v", pred, want)
	}

	y := []int{0, 1, 0, 1}
	correct, loss, err := EvaluateLogReg(w, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if correct != 2 {
		t.Errorf("correct = %d, want 2", correct)
	}
	ce := func(z []float64, c int) float64 {
		var s float64
		for _, v := range z {
			s += math.Exp(v)
		}
		return math.Log(s) - z[c]
	}
	want := (ce([]float64{2, 1, .5}, 0) + ce([]float64{0, 3, .5}, 1) +
		ce([]float64{0, 0, .5}, 0) + ce([]float64{1, 1, .5}, 1)) / 4
	if math.Abs(loss-want) > 1e-12 {
		t.Errorf("loss = %v, want %v", loss, want)
	}

	t.Run("zero weights give log K", func(t *testing.T) {
		_, loss, err := EvaluateLogReg(NewLogReg(2, 3), X, y)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(loss-math.Log(3)) > 1e-12 {
			t.Errorf("loss = %v, want ln 3", loss)
		}
	})
	t.Run("stable for large logits", func(t *testing.T) {
		big := mat.NewDense(1, 2, []float64{1000, 0})
		_, loss, err := EvaluateLogReg(w, big, []int{1})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(loss-1000) > 1e-9 {
			t.Errorf("loss = %v, want 1000", loss)
		}
	})
}

func TestEvaluateLogRegErrors(t *testing.T) {
	X := mat.NewDense(2, 2, []float64{1, 2, 3, 4})
	tests := []struct {
		name string
		w    Weights
		X    *mat.Dense
		y    []int
		want string
	}{
		{"feature mismatch", NewLogReg(3, 2), X, []int{0, 1}, "2 columns, model has 3 features"},
		{"label count", NewLogReg(2, 2), X, []int{0}, "1 labels for 2 rows"},
		{"label range", NewLogReg(2, 2), X, []int{0, -1}, "label -1 at row 1"},
		{"bad weights", Weights{}, X, []int{0, 1}, `missing tensor "linear.weight"`},
		{"one class", Weights{WeightName: {Shape: []int{1, 2}, Data: []float32{0, 0}}, BiasName: {Shape: []int{1}, Data: []float32{0}}}, X, []int{0, 0}, "classes>=2"},
		{"empty", NewLogReg(2, 2), &mat.Dense{}, nil, "columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := EvaluateLogReg(tc.w, tc.X, tc.y)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if _, err := PredictLogReg(tc.w, tc.X); err == nil && tc.name != "label count" && tc.name != "label range" {
				t.Errorf("PredictLogReg accepted bad input")
			}
		})
	}
}
