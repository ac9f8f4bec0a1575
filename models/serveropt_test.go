package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func named(name string, v ...float32) Weights {
	return Weights{name: {Name: name, Shape: []int{len(v)}, Data: v}}
}

// TestServerOptOneStep checks one step of each rule against arithmetic
// done by hand, with τ = 1 so that v starts at τ² = 1, η = 0.1, β1 = 0.5,
// β2 = 0.75.
//
// global = [0, 0, 0]; updates [1, −2, 0] and [3, −2, 1], one example each,
// average to [2, −2, 0.5], so Δ = [2, −2, 0.5], Δ² = [4, 4, 0.25] and
// m = 0.5·0 + 0.5·Δ = [1, −1, 0.25] for every rule.
//
//	adagrad: v = 1 + Δ²                       = [5, 5, 1.25]
//	adam:    v = 0.75·1 + 0.25·Δ²             = [1.75, 1.75, 0.8125]
//	yogi:    sign(1 − Δ²) = [−1, −1, +1], so
//	         v = 1 − 0.25·Δ²·sign             = [2, 2, 0.9375]
//
// and w = 0 + 0.1·m/(√v + 1): for adagrad 0.1/(√5+1) = 0.0309017 on the
// first coordinate, 0.025/(√1.25+1) = 0.0118034 on the third; for adam
// 0.1/(√1.75+1) = 0.0430501 and 0.025/(√0.8125+1) = 0.0131483; for yogi
// 0.1/(√2+1) = 0.0414214 and 0.025/(√0.9375+1) = 0.0127017.
func TestServerOptOneStep(t *testing.T) {
	global := named("w", 0, 0, 0)
	updates := []Update{{Weights: named("w", 1, -2, 0), Examples: 1}, {Weights: named("w", 3, -2, 1), Examples: 1}}
	p := AggregatorParams{ServerLR: new(0.1), Beta1: new(0.5), Tau: new(1.0)}
	tests := []struct {
		rule  string
		beta2 bool
		v     []float64
		w     []float64
	}{
		{"fedadagrad", false, []float64{5, 5, 1.25}, []float64{0.0309017, -0.0309017, 0.0118034}},
		{"fedadam", true, []float64{1.75, 1.75, 0.8125}, []float64{0.0430501, -0.0430501, 0.0131483}},
		{"fedyogi", true, []float64{2, 2, 0.9375}, []float64{0.0414214, -0.0414214, 0.0127017}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			p := p
			if tt.beta2 {
				p.Beta2 = new(0.75)
			}
			agg, err := NewAggregator(tt.rule, p)
			if err != nil {
				t.Fatal(err)
			}
			if agg.(Stateful).State() != nil {
				t.Fatal("state before the first round is not nil")
			}
			got, err := agg.Aggregate(global, updates)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "w", got["w"].Data, tt.w, 1e-6)
			st := agg.(Stateful).State()
			closeTo(t, "m", st["m/w"].Data, []float64{1, -1, 0.25}, 0)
			closeTo(t, "v", st["v/w"].Data, tt.v, 0)
			if global["w"].Data[0] != 0 || updates[0].Weights["w"].Data[0] != 1 {
				t.Error("Aggregate modified its inputs")
			}
		})
	}
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s has %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > tol {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestServerOptResume runs six rounds straight through and again with the
// state saved after round three, encoded as a checkpoint holds it and
// restored into a fresh aggregator: the weights must agree bit for bit.
// A fresh aggregator without the state must not, or the test proves
// nothing.
func TestServerOptResume(t *testing.T) {
	const rounds, cut = 6, 3
	rng := rand.New(rand.NewPCG(7, 7))
	start := NewLogReg(3, 2)
	var perRound [][]Update
	for range rounds {
		var us []Update
		for s := range 3 {
			w := NewLogReg(3, 2)
			for _, name := range w.Names() {
				for i := range w[name].Data {
					w[name].Data[i] = float32(rng.NormFloat64())
				}
			}
			us = append(us, Update{Weights: w, Examples: 10 + 5*s})
		}
		perRound = append(perRound, us)
	}
	run := func(t *testing.T, agg Aggregator, w Weights, from, to int) Weights {
		t.Helper()
		for r := from; r < to; r++ {
			next, err := agg.Aggregate(w, perRound[r])
			if err != nil {
				t.Fatalf("round %d: %v", r+1, err)
			}
			// Next round's updates are relative to the new global model.
			w = next
		}
		return w
	}
	for _, rule := range []string{"fedadam", "fedyogi", "fedadagrad"} {
		t.Run(rule, func(t *testing.T) {
			p := AggregatorParams{ServerLR: new(0.3)}
			straight, _ := NewAggregator(rule, p)
			want := run(t, straight, start, 0, rounds)

			first, _ := NewAggregator(rule, p)
			mid := run(t, first, start, 0, cut)
			blob, err := EncodeWeights(first.(Stateful).State())
			if err != nil {
				t.Fatal(err)
			}
			state, err := DecodeWeights(blob)
			if err != nil {
				t.Fatal(err)
			}
			resumed, _ := NewAggregator(rule, p)
			if err := resumed.(Stateful).Restore(state); err != nil {
				t.Fatal(err)
			}
			got := run(t, resumed, mid, cut, rounds)
			if !bitEqual(got, want) {
				t.Errorf("resumed run differs from the uninterrupted one:\n got %v\nwant %v", got[WeightName].Data, want[WeightName].Data)
			}

			forgetful, _ := NewAggregator(rule, p)
			if bitEqual(run(t, forgetful, mid, cut, rounds), want) {
				t.Error("a run resumed without the state matches too: the state is not exercised")
			}
		})
	}
}

func bitEqual(a, b Weights) bool {
	if len(a) != len(b) {
		return false
	}
	for name, t := range a {
		u, ok := b[name]
		if !ok || len(t.Data) != len(u.Data) {
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

func TestServerOptRefuses(t *testing.T) {
	global := named("w", 0, 0)
	good := []Update{{Weights: named("w", 1, 1), Examples: 1}}
	tests := []struct {
		name    string
		restore Weights
		global  Weights
		updates []Update
		want    string
	}{
		{"no global", nil, Weights{}, good, "no global weights"},
		{"bad update", nil, global, []Update{{Weights: named("w", 1), Examples: 1}}, "update 0"},
		{"state without partner", named("m/w", 0, 0), global, good, "second moment does not match"},
		{"negative second moment", Weights{"m/w": named("m/w", 0, 0)["m/w"], "v/w": named("v/w", 1, -1)["v/w"]}, global, good, "negative second moment"},
		{"foreign tensor", named("x/w", 0, 0), global, good, `unexpected tensor "x/w"`},
		{"state of another model", Weights{"m/u": named("m/u", 0, 0)["m/u"], "v/u": named("v/u", 1, 1)["v/u"]}, global, good, "does not fit the model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg, err := NewAggregator("fedadam", AggregatorParams{})
			if err != nil {
				t.Fatal(err)
			}
			s := agg.(Stateful)
			err = s.Restore(tt.restore)
			if err == nil {
				_, err = agg.Aggregate(tt.global, tt.updates)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if tt.restore == nil && s.State() != nil {
				t.Error("a refused round advanced the state")
			}
		})
	}
}
