package models

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestComputeMomentsAndScaler(t *testing.T) {
	X := mat.NewDense(4, 3, []float64{
		1, 10, 5,
		2, 20, 5,
		3, 30, 5,
		4, 40, 5,
	})
	m := ComputeMoments(X)
	want := Moments{Count: 4, Sum: []float64{10, 100, 20}, SumSq: []float64{30, 3000, 100}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("moments = %+v, want %+v", m, want)
	}
	s := m.Scaler()
	// Population std of 1..4 is sqrt(1.25); the constant column keeps scale 1.
	wantMean := []float64{2.5, 25, 5}
	wantScale := []float64{math.Sqrt(1.25), 10 * math.Sqrt(1.25), 1}
	for j := range 3 {
		if math.Abs(s.Mean[j]-wantMean[j]) > 1e-12 || math.Abs(s.Scale[j]-wantScale[j]) > 1e-12 {
			t.Errorf("column %d: mean %v scale %v, want %v %v", j, s.Mean[j], s.Scale[j], wantMean[j], wantScale[j])
		}
	}

	before := mat.DenseCopyOf(X)
	Z := s.Apply(X)
	if !mat.Equal(X, before) {
		t.Error("Apply mutated its input")
	}
	for j := range 3 {
		col := mat.Col(nil, j, Z)
		var sum, sq float64
		for _, v := range col {
			sum += v
			sq += v * v
		}
		if math.Abs(sum) > 1e-12 {
			t.Errorf("column %d mean %v after scaling, want 0", j, sum/4)
		}
		if wantSq := map[bool]float64{true: 0, false: 4}[j == 2]; math.Abs(sq-wantSq) > 1e-9 {
			t.Errorf("column %d sum of squares %v after scaling, want %v", j, sq, wantSq)
		}
	}
}

func TestMomentsMerge(t *testing.T) {
	X, _ := blobs(11, 100, 4, 2, 3)
	whole := ComputeMoments(X)
	var merged Moments // zero value adopts the first merge's columns
	for _, r := range [][2]int{{0, 30}, {30, 31}, {31, 100}} {
		part := ComputeMoments(mat.DenseCopyOf(X.Slice(r[0], r[1], 0, 4)))
		if err := merged.Merge(part); err != nil {
			t.Fatal(err)
		}
	}
	if merged.Count != whole.Count {
		t.Errorf("count %v, want %v", merged.Count, whole.Count)
	}
	ws, ms := whole.Scaler(), merged.Scaler()
	for j := range 4 {
		if math.Abs(ws.Mean[j]-ms.Mean[j]) > 1e-12 || math.Abs(ws.Scale[j]-ms.Scale[j]) > 1e-12 {
			t.Errorf("column %d: merged scaler %v/%v differs from whole %v/%v", j, ms.Mean[j], ms.Scale[j], ws.Mean[j], ws.Scale[j])
		}
	}

	tests := []struct {
		name  string
		into  Moments
		other Moments
		want  string
	}{
		{"column mismatch", Moments{Count: 1, Sum: []float64{1}, SumSq: []float64{1}}, Moments{Count: 1, Sum: []float64{1, 2}, SumSq: []float64{1, 4}}, "column mismatch: have 1 columns, other has 2"},
		{"ragged other", Moments{}, Moments{Count: 1, Sum: []float64{1}, SumSq: nil}, "1 sums but 0 sums of squares"},
		{"negative count", Moments{}, Moments{Count: -1}, "invalid count"},
		{"nan count", Moments{}, Moments{Count: math.NaN()}, "invalid count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.into.Merge(tc.other)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestScalerEdgeCases(t *testing.T) {
	t.Run("large constant column", func(t *testing.T) {
		// E[x²]-E[x]² leaves rounding noise here; it must not become a
		// tiny scale that explodes the feature.
		X := mat.NewDense(3, 1, []float64{1e6 + 0.1, 1e6 + 0.1, 1e6 + 0.1})
		s := ComputeMoments(X).Scaler()
		if s.Scale[0] != 1 {
			t.Errorf("scale = %v, want 1", s.Scale[0])
		}
	})
	t.Run("empty moments give identity", func(t *testing.T) {
		s := Moments{Sum: []float64{0, 0}, SumSq: []float64{0, 0}}.Scaler()
		if !reflect.DeepEqual(s, Scaler{Mean: []float64{0, 0}, Scale: []float64{1, 1}}) {
			t.Errorf("scaler = %+v, want identity", s)
		}
	})
	t.Run("apply panics on column mismatch", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		Scaler{Mean: []float64{0}, Scale: []float64{1}}.Apply(mat.NewDense(1, 2, nil))
	})
}
