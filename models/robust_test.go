package models

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// checkAggregate runs a, compares with want exactly and checks that neither
// global nor the updates were modified.
func checkAggregate(t *testing.T, a Aggregator, global Weights, updates []Update, want Weights) {
	t.Helper()
	globalBefore := global.Clone()
	var before []Weights
	for _, u := range updates {
		before = append(before, u.Weights.Clone())
	}
	got, err := a.Aggregate(global, updates)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", dump(got), dump(want))
	}
	if !sameBits(global, globalBefore) {
		t.Error("global was mutated")
	}
	for i, u := range updates {
		if !sameBits(u.Weights, before[i]) {
			t.Errorf("update %d was mutated", i)
		}
	}
}

// ones gives each vector one example.
func ones(ws ...Weights) []Update {
	var out []Update
	for _, w := range ws {
		out = append(out, Update{w, 1})
	}
	return out
}

func TestMedianExact(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		updates []Update
		want    Weights
	}{
		{"odd n, one coordinate each way", ones(vec(1, 5, -2), vec(3, 1, -2), vec(2, 9, -2), vec(100, -7, -2), vec(-50, 4, 7)), vec(2, 4, -2)},
		{"ties", ones(vec(5, 0), vec(5, 0), vec(1, 0), vec(5, 9), vec(2, 9)), vec(5, 0)},
		{"even n averages the middle two", ones(vec(1, 2), vec(3, 2), vec(10, 2), vec(-4, 6)), vec(2, 2)},
		{"two updates", ones(vec(1, 1), vec(2, 4)), vec(1.5, 2.5)},
		{"single update is identity", ones(vec(7, -3)), vec(7, -3)},
		// A site cannot buy weight by claiming many examples.
		{"unweighted", []Update{{vec(0), 1}, {vec(1), 1}, {vec(100), 1_000_000}}, vec(1)},
		{"zero-example update is skipped", []Update{{vec(nan, 0), 0}, {vec(1, 2), 3}, {vec(3, 4), 3}}, vec(2, 3)},
		{"largest values do not overflow", ones(vec(math.MaxFloat32), vec(math.MaxFloat32)), vec(math.MaxFloat32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAggregate(t, Median{}, vec(make([]float32, len(tc.want["v"].Data))...), tc.updates, tc.want)
		})
	}
	t.Run("every tensor, layout from first update when global is empty", func(t *testing.T) {
		two := func(a, b float32) Weights {
			return Weights{"a": {Name: "a", Shape: []int{1, 2}, Data: []float32{a, b}}, "b": {Name: "b", Shape: []int{1}, Data: []float32{a * b}}}
		}
		// a: {1,3,5} and {2,4,-6}; b: {2,12,-30}.
		want := Weights{"a": {Name: "a", Shape: []int{1, 2}, Data: []float32{3, 2}}, "b": {Name: "b", Shape: []int{1}, Data: []float32{2}}}
		checkAggregate(t, Median{}, nil, ones(two(1, 2), two(3, 4), two(5, -6)), want)
	})
}

func TestTrimmedMeanExact(t *testing.T) {
	// Per coordinate: {1,2,3,4,100}, {-100,2,4,6,8} and the ties {5,5,5,5,1}.
	five := ones(vec(1, 8, 5), vec(100, 2, 5), vec(3, -100, 1), vec(2, 6, 5), vec(4, 4, 5))
	tests := []struct {
		name    string
		beta    float64
		updates []Update
		want    Weights
	}{
		{"beta 0 is the plain mean", 0, five, vec(22, -16, 4.2)},
		{"beta 0.1 of 5 trims nothing", 0.1, five, vec(22, -16, 4.2)},
		{"beta 0.2 of 5 trims one each end", 0.2, five, vec(3, 4, 5)},
		{"beta 0.4 of 5 leaves the median", 0.4, five, vec(3, 4, 5)},
		{"beta 0.49 of 5 trims two", 0.49, five, vec(3, 4, 5)},
		{"beta 0.25 of 4 trims one each end", 0.25, ones(vec(-9), vec(1), vec(3), vec(50)), vec(2)},
		{"beta just under 0.5 of 2 keeps both", 0.4999999999, ones(vec(1), vec(2)), vec(1.5)},
		{"unweighted", 0, []Update{{vec(0), 1}, {vec(4), 3}}, vec(2)},
		{"zero-example update is skipped", 0.2, []Update{{vec(1000), 0}, {vec(1), 1}, {vec(2), 1}, {vec(3), 1}, {vec(4), 1}, {vec(-90), 1}}, vec(2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAggregate(t, TrimmedMean{Beta: tc.beta}, vec(make([]float32, len(tc.want["v"].Data))...), tc.updates, tc.want)
		})
	}
}

func TestTrimmedCount(t *testing.T) {
	tests := []struct {
		beta float64
		n    int
		want int
	}{
		{0, 7, 0}, {0.1, 5, 0}, {0.1, 10, 1}, {0.2, 5, 1}, {0.3, 10, 3},
		{0.35, 20, 7}, // 0.35·20 is 6.9999999999999996 in float64
		{0.49, 5, 2}, {0.4999999999, 2, 0}, {0.2, 1, 0},
	}
	for _, tc := range tests {
		if got := (TrimmedMean{Beta: tc.beta}).Trimmed(tc.n); got != tc.want {
			t.Errorf("Trimmed(beta=%v, n=%d) = %d, want %d", tc.beta, tc.n, got, tc.want)
		}
	}
}

func TestKrumExact(t *testing.T) {
	// With f=1 each update is scored over its n−f−2 = 2 nearest neighbours
	// (squared distances):
	//   (1,0):     .5 to (.5,.5), 1 to (1,1)     → 1.5
	//   (0,1):     .5, 1                          → 1.5
	//   (.5,.5):   .5 to each of three            → 1   best
	//   (1,1):     .5, 1                          → 1.5
	//   (10,10):   162 to (1,1), 180.5 to (.5,.5) → 342.5
	square := []Update{{vec(1, 0), 1}, {vec(0, 1), 1}, {vec(0.5, 0.5), 2}, {vec(1, 1), 4}, {vec(10, 10), 100}}
	// 1-D: 0 scores 1+1=2; 1 and -1 score 1+4=5; 5 and -5 tie at 16+25=41.
	line := ones(vec(0), vec(1), vec(-1), vec(5), vec(-5))
	// Every honest corner scores 2: the tie goes to the first.
	corners := ones(vec(0, 0), vec(1, 0), vec(0, 1), vec(1, 1), vec(10, 10))
	tests := []struct {
		name    string
		agg     Krum
		updates []Update
		want    Weights
	}{
		{"krum picks the central update", Krum{F: 1}, square, vec(0.5, 0.5)},
		// The n−f = 4 best, weighted 1:1:2:4; the outlier's 100 examples
		// buy it nothing.
		{"multi-krum averages the four best by examples", Krum{F: 1, Multi: true}, square, vec(0.75, 0.75)},
		{"krum tie goes to the earlier update", Krum{F: 1}, corners, vec(0, 0)},
		{"multi-krum boundary tie goes to the earlier update", Krum{F: 1, Multi: true}, line, vec(1.25)},
		{"krum on a line", Krum{F: 1}, line, vec(0)},
		// f=0 on three: one neighbour each; (2) is 1 from (1) and 3, 4 away.
		{"f=0 needs only three", Krum{F: 0}, ones(vec(1), vec(2), vec(5)), vec(1)},
		{"multi-krum with f=0 is FedAvg", Krum{F: 0, Multi: true}, []Update{{vec(1), 1}, {vec(2), 1}, {vec(5), 2}}, vec(3.25)},
		{"zero-example updates do not count", Krum{F: 1}, append([]Update{{vec(0.5, 0.5), 0}}, square...), vec(0.5, 0.5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAggregate(t, tc.agg, vec(make([]float32, len(tc.want["v"].Data))...), tc.updates, tc.want)
		})
	}
	t.Run("distance spans every tensor", func(t *testing.T) {
		// On "a" alone the last update is the centre; "b" makes it the
		// outlier and the first the centre.
		w := func(a, b float32) Weights {
			return Weights{"a": {Name: "a", Shape: []int{1}, Data: []float32{a}}, "b": {Name: "b", Shape: []int{1}, Data: []float32{b}}}
		}
		checkAggregate(t, Krum{F: 0}, nil, ones(w(0, 0), w(2, 0), w(1, 9)), w(0, 0))
	})
}

func TestRobustAggregatorErrors(t *testing.T) {
	g := NewLogReg(2, 2)
	ok := func() Weights { return NewLogReg(2, 2) }
	with := func(mut func(Weights)) Weights { w := ok(); mut(w); return w }
	five := func() []Update { return ones(ok(), ok(), ok(), ok(), ok()) }
	aggs := []Aggregator{Median{}, TrimmedMean{Beta: 0.2}, Krum{F: 1}, Krum{F: 1, Multi: true}}
	tests := []struct {
		name    string
		updates []Update
		want    string
	}{
		{"no updates", nil, "no updates"},
		{"zero total", []Update{{ok(), 0}, {ok(), 0}}, "total example count is zero"},
		{"negative examples", append(five(), Update{ok(), -1}), "update 5 has negative example count -1"},
		{"missing tensor", append(five(), Update{with(func(w Weights) { delete(w, BiasName) }), 1}), `update 5: missing tensor "linear.bias"`},
		{"shape mismatch", append(five(), Update{with(func(w Weights) { w[WeightName] = &Tensor{Shape: []int{4}, Data: make([]float32, 4)} }), 1}), `update 5: tensor "linear.weight" has shape [4], want [2 2]`},
		{"nan is refused, not sorted", append(five(), Update{with(func(w Weights) { w[BiasName].Data[1] = float32(math.NaN()) }), 1}), `update 5: tensor "linear.bias" has non-finite value NaN at index 1`},
		{"inf is refused", append(five(), Update{with(func(w Weights) { w[WeightName].Data[0] = float32(math.Inf(-1)) }), 1}), `update 5: tensor "linear.weight" has non-finite value -Inf at index 0`},
	}
	for _, a := range aggs {
		for _, tc := range tests {
			t.Run(a.Name()+"/"+tc.name, func(t *testing.T) {
				_, err := a.Aggregate(g, tc.updates)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), a.Name()+": ") {
					t.Fatalf("err = %v, want %q prefixed with %q", err, tc.want, a.Name())
				}
			})
		}
	}
	t.Run("krum needs 2f+3 updates with examples", func(t *testing.T) {
		for _, tc := range []struct {
			agg     Krum
			updates []Update
			want    string
		}{
			{Krum{F: 1}, ones(ok(), ok(), ok(), ok()), "krum: f=1 needs at least 5 updates with examples (n ≥ 2f+3), got n=4"},
			{Krum{F: 2, Multi: true}, ones(ok(), ok(), ok(), ok(), ok(), ok()), "multi-krum: f=2 needs at least 7 updates with examples (n ≥ 2f+3), got n=6"},
			{Krum{F: 0}, append(ones(ok(), ok()), Update{ok(), 0}), "krum: f=0 needs at least 3 updates with examples (n ≥ 2f+3), got n=2"},
		} {
			if _, err := tc.agg.Aggregate(g, tc.updates); err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		}
	})
}

func TestNewAggregatorParams(t *testing.T) {
	tests := []struct {
		name   string
		agg    string
		params AggregatorParams
		want   Aggregator
	}{
		{"median", "median", AggregatorParams{}, Median{}},
		{"trimmed-mean default beta", "trimmed-mean", AggregatorParams{}, TrimmedMean{Beta: DefaultTrimBeta}},
		{"trimmed-mean beta", "trimmed-mean", AggregatorParams{Beta: ptr(0.2)}, TrimmedMean{Beta: 0.2}},
		{"trimmed-mean beta zero is not the default", "trimmed-mean", AggregatorParams{Beta: ptr(0.0)}, TrimmedMean{Beta: 0}},
		{"krum default f", "krum", AggregatorParams{}, Krum{F: DefaultKrumF}},
		{"krum f zero", "krum", AggregatorParams{F: ptr[int32](0)}, Krum{F: 0}},
		{"multi-krum f", "multi-krum", AggregatorParams{F: ptr[int32](2)}, Krum{F: 2, Multi: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAggregator(tc.agg, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, tc.want) || a.Name() != tc.agg {
				t.Errorf("got %#v named %q, want %#v named %q", a, a.Name(), tc.want, tc.agg)
			}
		})
	}
	if n, why := (Krum{F: 2}).MinUpdates(); n != 7 || why != "n ≥ 2f+3 with f=2" {
		t.Errorf("MinUpdates = %d, %q", n, why)
	}

	bad := []struct {
		name   string
		agg    string
		params AggregatorParams
		want   map[string]string // param → reason substring
	}{
		{"beta at one half", "trimmed-mean", AggregatorParams{Beta: ptr(0.5)}, map[string]string{"beta": "0.5 is out of range; want 0 ≤ beta < 0.5"}},
		{"beta negative", "trimmed-mean", AggregatorParams{Beta: ptr(-0.1)}, map[string]string{"beta": "-0.1 is out of range"}},
		{"beta NaN", "trimmed-mean", AggregatorParams{Beta: ptr(math.NaN())}, map[string]string{"beta": "NaN is out of range"}},
		{"f negative", "krum", AggregatorParams{F: ptr[int32](-1)}, map[string]string{"f": "-1 is out of range; want f ≥ 0"}},
		{"beta to median", "median", AggregatorParams{Beta: ptr(0.1)}, map[string]string{"beta": "median does not take beta; it takes no parameters"}},
		{"f to trimmed-mean", "trimmed-mean", AggregatorParams{F: ptr[int32](1)}, map[string]string{"f": "trimmed-mean does not take f; it takes beta"}},
		{"beta to multi-krum", "multi-krum", AggregatorParams{Beta: ptr(0.1)}, map[string]string{"beta": "multi-krum does not take beta; it takes f"}},
		{"both to fedavg", "", AggregatorParams{Beta: ptr(0.0), F: ptr[int32](0)}, map[string]string{"beta": "fedavg does not take beta", "f": "fedavg does not take f"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAggregator(tc.agg, tc.params)
			if err == nil {
				t.Fatal("accepted")
			}
			got := map[string]string{}
			var walk func(error)
			walk = func(e error) {
				switch e := e.(type) {
				case *ParamError:
					got[e.Param] = e.Reason
				case interface{ Unwrap() []error }:
					for _, e := range e.Unwrap() {
						walk(e)
					}
				case interface{ Unwrap() error }:
					walk(e.Unwrap())
				}
			}
			walk(err)
			if len(got) != len(tc.want) {
				t.Fatalf("parameter errors %v, want %v (err %v)", got, tc.want, err)
			}
			for p, w := range tc.want {
				if !strings.Contains(got[p], w) {
					t.Errorf("%s: %q does not mention %q", p, got[p], w)
				}
			}
		})
	}
}
