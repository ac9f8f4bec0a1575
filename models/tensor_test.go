package models

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestWeightsCloneNamesNumParams(t *testing.T) {
	w := Weights{
		"b": {Name: "b", Shape: []int{2}, Data: []float32{1, 2}},
		"a": {Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
	}
	c := w.Clone()
	if !reflect.DeepEqual(c, w) {
		t.Fatal("clone differs from original")
	}
	c["a"].Data[0] = 42
	c["a"].Shape[0] = 7
	if w["a"].Data[0] != 1 || w["a"].Shape[0] != 2 {
		t.Error("clone shares memory with original")
	}
	if got := w.Names(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Names() = %v, want [a b]", got)
	}
	if got := w.NumParams(); got != 8 {
		t.Errorf("NumParams() = %d, want 8", got)
	}
	if Weights(nil).Clone() != nil {
		t.Error("Clone of nil should be nil")
	}
}

func TestWeightsValidate(t *testing.T) {
	spec := NewLogReg(3, 2)
	tests := []struct {
		name   string
		mutate func(Weights)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(Weights) {}, ""},
		{"name may be empty", func(w Weights) { w[BiasName].Name = "" }, ""},
		{"missing tensor", func(w Weights) { delete(w, BiasName) }, `missing tensor "linear.bias"`},
		{"extra tensor", func(w Weights) { w["x"] = &Tensor{Shape: []int{1}, Data: []float32{0}} }, `unexpected tensor "x"`},
		{"wrong shape", func(w Weights) { w[BiasName] = &Tensor{Shape: []int{3}, Data: make([]float32, 3)} }, `tensor "linear.bias" has shape [3], want [2]`},
		{"short data", func(w Weights) { w[WeightName].Data = w[WeightName].Data[:5] }, `tensor "linear.weight" has 5 values`},
		{"nan", func(w Weights) { w[WeightName].Data[4] = float32(math.NaN()) }, `tensor "linear.weight" has non-finite value NaN at index 4`},
		{"inf", func(w Weights) { w[BiasName].Data[1] = float32(math.Inf(-1)) }, `tensor "linear.bias" has non-finite value -Inf`},
		{"nil tensor", func(w Weights) { w[BiasName] = nil }, `tensor "linear.bias" is nil`},
		{"mismatched name", func(w Weights) { w[BiasName].Name = "other" }, `mismatched name "other"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := spec.Clone()
			tc.mutate(w)
			err := w.Validate(spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
