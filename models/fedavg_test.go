package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// vec is a one-tensor Weights for hand-computed examples.
func vec(vals ...float32) Weights {
	return Weights{"v": {Name: "v", Shape: []int{len(vals)}, Data: vals}}
}

func TestFedAvgExact(t *testing.T) {
	// Example counts are chosen so every share is a power of two and the
	// expected averages are exact in float32.
	tests := []struct {
		name    string
		global  Weights
		updates []Update
		want    Weights
	}{
		{"single update is identity", vec(0, 0), []Update{{vec(1.5, -2), 7}}, vec(1.5, -2)},
		{"1:3 weighting", vec(9, 9), []Update{{vec(4, 8), 1}, {vec(0, 4), 3}}, vec(1, 5)},
		{"2:2:4 weighting", vec(0, 0, 0), []Update{{vec(4, 0, 1), 2}, {vec(0, 4, 1), 2}, {vec(2, 2, 1), 4}}, vec(2, 2, 1)},
		{"zero-example update is skipped", vec(0), []Update{{vec(float32(math.NaN())), 0}, {vec(3), 5}}, vec(3)},
		{"empty global uses first update layout", nil, []Update{{vec(2, 4), 1}, {vec(4, 8), 1}}, vec(3, 6)},
		{"multiple tensors", Weights{"a": {Shape: []int{1, 2}, Data: []float32{0, 0}}, "b": {Shape: []int{1}, Data: []float32{0}}},
			[]Update{
				{Weights{"a": {Shape: []int{1, 2}, Data: []float32{2, 4}}, "b": {Shape: []int{1}, Data: []float32{8}}}, 1},
				{Weights{"a": {Shape: []int{1, 2}, Data: []float32{6, 0}}, "b": {Shape: []int{1}, Data: []float32{0}}}, 1},
			},
			Weights{"a": {Name: "a", Shape: []int{1, 2}, Data: []float32{4, 2}}, "b": {Name: "b", Shape: []int{1}, Data: []float32{4}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			globalBefore := tc.global.Clone()
			var updatesBefore []Weights
			for _, u := range tc.updates {
				updatesBefore = append(updatesBefore, u.Weights.Clone())
			}
			got, err := FedAvg{}.Aggregate(tc.global, tc.updates)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", dump(got), dump(tc.want))
			}
			if !reflect.DeepEqual(tc.global, globalBefore) {
				t.Error("global was mutated")
			}
			for i, u := range tc.updates {
				if !sameBits(u.Weights, updatesBefore[i]) {
					t.Errorf("update %d was mutated", i)
				}
			}
		})
	}
}

// sameBits compares weights bit for bit, so NaN equals NaN.
func sameBits(a, b Weights) bool {
	if len(a) != len(b) {
		return false
	}
	for name, t := range a {
		u := b[name]
		if u == nil || !reflect.DeepEqual(t.Shape, u.Shape) || len(t.Data) != len(u.Data) {
			return false
		}
		for i := range t.Data {
			if math.Float32bits(t.Data[i]) != math.Float32bits(u.Data[i]) {
				return false
			}
		}
	}
	return true
}

func dump(w Weights) map[string][]float32 {
	out := map[string][]float32{}
	for n, t := range w {
		out[n] = t.Data
	}
	return out
}

func TestFedAvgMatchesFloat64Reference(t *testing.T) {
	// Crosses chunk boundaries and uses shares that are not exact in float32.
	p := 2*fedAvgChunk + 3
	rng := rand.New(rand.NewPCG(1, 2))
	counts := []int{3, 7, 11}
	var updates []Update
	for _, c := range counts {
		d := make([]float32, p)
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
		updates = append(updates, Update{Weights{"w": {Shape: []int{p}, Data: d}}, c})
	}
	got, err := FedAvg{}.Aggregate(Weights{"w": {Shape: []int{p}, Data: make([]float32, p)}}, updates)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		var want float64
		for _, u := range updates {
			want += float64(u.Examples) / 21 * float64(u.Weights["w"].Data[i])
		}
		if d := math.Abs(float64(got["w"].Data[i]) - want); d > 1e-6*(1+math.Abs(want)) {
			t.Fatalf("element %d = %v, want %v", i, got["w"].Data[i], want)
		}
	}
}

func TestFedAvgErrors(t *testing.T) {
	g := NewLogReg(2, 2)
	ok := func() Weights { return NewLogReg(2, 2) }
	with := func(mut func(Weights)) Weights { w := ok(); mut(w); return w }
	tests := []struct {
		name    string
		global  Weights
		updates []Update
		want    string
	}{
		{"no updates", g, nil, "no updates"},
		{"zero total", g, []Update{{ok(), 0}, {ok(), 0}}, "total example count is zero"},
		{"negative examples", g, []Update{{ok(), 1}, {ok(), -1}}, "update 1 has negative example count -1"},
		{"missing tensor", g, []Update{{ok(), 1}, {with(func(w Weights) { delete(w, BiasName) }), 1}}, `update 1: missing tensor "linear.bias"`},
		{"shape mismatch", g, []Update{{with(func(w Weights) { w[WeightName] = &Tensor{Shape: []int{4}, Data: make([]float32, 4)} }), 1}}, `update 0: tensor "linear.weight" has shape [4], want [2 2]`},
		{"short data", g, []Update{{ok(), 1}, {ok(), 1}, {with(func(w Weights) { w[BiasName].Data = w[BiasName].Data[:1] }), 1}}, `update 2: tensor "linear.bias" has 1 values, want 2`},
		{"extra tensor", g, []Update{{with(func(w Weights) { w["x"] = &Tensor{Shape: []int{1}, Data: []float32{1}} }), 1}}, `update 0: unexpected tensor "x"`},
		{"nan in update", g, []Update{{ok(), 1}, {with(func(w Weights) { w[BiasName].Data[1] = float32(math.NaN()) }), 2}}, `update 1: tensor "linear.bias" has non-finite value at index 1`},
		{"max values do not overflow", Weights{"v": {Shape: []int{1}, Data: []float32{0}}}, []Update{{vec(math.MaxFloat32), 1}, {vec(math.MaxFloat32), 1}}, ""},
		{"bad global", Weights{"v": {Shape: []int{2}, Data: []float32{0}}}, []Update{{vec(1, 2), 1}}, `global: tensor "v" has 1 values`},
		{"nothing to average", nil, []Update{{nil, 1}}, "no tensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FedAvg{}.Aggregate(tc.global, tc.updates)
			if tc.want == "" {
				// Shares are applied before summing, so averaging the
				// largest float32 with itself must not overflow.
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if v := got["v"].Data[0]; math.IsInf(float64(v), 0) {
					t.Errorf("average overflowed to %v", v)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewAggregator(t *testing.T) {
	for _, name := range []string{"", "fedavg"} {
		t.Run("name="+name, func(t *testing.T) {
			a, err := NewAggregator(name, AggregatorParams{})
			if err != nil {
				t.Fatal(err)
			}
			if a.Name() != "fedavg" {
				t.Errorf("Name() = %q, want fedavg", a.Name())
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := NewAggregator("fedsgd", AggregatorParams{})
		if err == nil || !strings.Contains(err.Error(), `unknown aggregator "fedsgd" (valid: fedadagrad, fedadam, fedavg, fedprox, fedyogi, krum, median, multi-krum, trimmed-mean)`) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestFedAvgIntoReusesTheBuffer: AggregateInto writes the average into
// the buffer it is given — whatever it held, NaN included — bit for bit
// what Aggregate returns, without allocating a new one.
func TestFedAvgIntoReusesTheBuffer(t *testing.T) {
	updates, global := benchUpdates(3, 5000)
	want, err := FedAvg{}.Aggregate(global, updates)
	if err != nil {
		t.Fatal(err)
	}
	dst := Weights{"w": {Name: "w", Shape: []int{5000}, Data: make([]float32, 5000)}}
	for i := range dst["w"].Data {
		dst["w"].Data[i] = float32(math.NaN())
	}
	got, err := FedAvg{}.AggregateInto(dst, global, updates)
	if err != nil {
		t.Fatal(err)
	}
	if &got["w"].Data[0] != &dst["w"].Data[0] {
		t.Error("AggregateInto allocated a new buffer instead of reusing dst's")
	}
	for i, v := range want["w"].Data {
		if math.Float32bits(got["w"].Data[i]) != math.Float32bits(v) {
			t.Fatalf("value %d: AggregateInto %v, Aggregate %v", i, got["w"].Data[i], v)
		}
	}
	// A buffer of another shape is not used.
	small := Weights{"w": {Name: "w", Shape: []int{10}, Data: make([]float32, 10)}}
	got, err = FedAvg{}.AggregateInto(small, global, updates)
	if err != nil || len(got["w"].Data) != 5000 {
		t.Fatalf("with a buffer of the wrong shape: %v, %d values", err, len(got["w"].Data))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := (FedAvg{}).AggregateInto(dst, global, updates); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n >= 5000*4 {
		t.Errorf("AggregateInto into a matching buffer allocated %d bytes, a model's worth (%d)", n, 5000*4)
	}
}

// TestFedAvgFindsEveryNonFinite: the finiteness check is a dot product of
// each chunk's two halves, so it must see a NaN or ±Inf wherever it sits —
// either half, the odd element a halving leaves over, the first and last
// chunk, the short tail — and name the update and index. Large finite
// values that overflow the check's own products are not an error.
func TestFedAvgFindsEveryNonFinite(t *testing.T) {
	const p = 2*fedAvgChunk + 5 // an odd-length tail chunk
	h := fedAvgChunk / 2
	tail := 2 * fedAvgChunk
	positions := []int{0, 1, h - 1, h, fedAvgChunk - 1, fedAvgChunk, fedAvgChunk + h, tail, tail + 1, tail + 2, tail + 3, p - 1}
	bad := map[string]float32{"NaN": float32(math.NaN()), "+Inf": float32(math.Inf(1)), "-Inf": float32(math.Inf(-1))}
	fill := func(v float32) Weights {
		d := make([]float32, p)
		for i := range d {
			d[i] = v
		}
		return Weights{"v": {Name: "v", Shape: []int{p}, Data: d}}
	}
	for name, v := range bad {
		for _, at := range positions {
			for _, zero := range []bool{false, true} {
				// With zero, every other value is 0, so a ±Inf's product in
				// the check is 0·Inf; otherwise it is an ordinary number.
				base := float32(0.5)
				if zero {
					base = 0
				}
				updates := []Update{{fill(base), 3}, {fill(base), 1}, {fill(base), 2}}
				updates[2].Weights["v"].Data[at] = v
				_, err := FedAvg{}.Aggregate(nil, updates)
				want := fmt.Sprintf(`update 2: tensor "v" has non-finite value at index %d`, at)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s at %d (others %v): err = %v, want %q", name, at, base, err, want)
				}
			}
		}
	}
	big := float32(1e30) // 1e30·1e30 overflows float32; the average does not
	got, err := FedAvg{}.Aggregate(nil, []Update{{fill(big), 1}, {fill(big), 1}})
	if err != nil {
		t.Fatalf("large finite values: %v", err)
	}
	for i, v := range got["v"].Data {
		if math.Abs(float64(v)-1e30) > 1e24 {
			t.Fatalf("large finite values: value %d is %v, want 1e30", i, v)
		}
	}
}
