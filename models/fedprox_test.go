package models

import (
	"context"
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestFedProxKeepsSitesNearGlobal trains from the same global model with
// growing μ: the proximal term must pull the local result towards the
// global weights, and μ = 0 must be plain training bit for bit.
func TestFedProxKeepsSitesNearGlobal(t *testing.T) {
	X, y := blobs(3, 400, 4, 3, 1.5)
	Xs := ComputeMoments(X).Scaler().Apply(X)
	// A global model that is not yet the local optimum, so local training
	// has somewhere to drift.
	warm, err := TrainLogReg(context.Background(), NewLogReg(4, 3), mat.DenseCopyOf(Xs.Slice(0, 40, 0, 4)), y[:40], TrainConfig{Epochs: 1, BatchSize: 8, LearningRate: 0.1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	global := warm.Weights
	cfg := TrainConfig{Epochs: 5, BatchSize: 16, LearningRate: 0.05, Seed: 2}
	plain, err := TrainLogReg(context.Background(), global, Xs, y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	prev := math.Inf(1)
	for _, mu := range []float64{0, 0.1, 1, 10} {
		cfg := cfg
		cfg.ProxMu = mu
		res, err := TrainLogReg(context.Background(), global, Xs, y, cfg)
		if err != nil {
			t.Fatalf("mu %v: %v", mu, err)
		}
		if mu == 0 && !bitEqual(res.Weights, plain.Weights) {
			t.Error("mu 0 differs from training without a proximal term")
		}
		d := distance(res.Weights, global)
		t.Logf("mu %-4v: distance from global %.5f", mu, d)
		if !(d < prev) {
			t.Errorf("mu %v: distance from global %v, not less than %v with a smaller mu", mu, d, prev)
		}
		prev = d
	}
}

func distance(a, b Weights) float64 {
	var s float64
	for name, t := range a {
		for i, v := range t.Data {
			d := float64(v) - float64(b[name].Data[i])
			s += d * d
		}
	}
	return math.Sqrt(s)
}

func TestFedProxStrategy(t *testing.T) {
	tests := []struct {
		name string
		p    AggregatorParams
		mu   float64
	}{
		{"default", AggregatorParams{}, DefaultProxMu},
		{"given", AggregatorParams{Mu: new(0.5)}, 0.5},
		{"zero", AggregatorParams{Mu: new(0.0)}, 0},
	}
	updates := []Update{{Weights: named("w", 1, 2), Examples: 1}, {Weights: named("w", 3, 6), Examples: 3}}
	want, err := FedAvg{}.Aggregate(named("w", 0, 0), updates)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg, err := NewAggregator("fedprox", tt.p)
			if err != nil {
				t.Fatal(err)
			}
			p, ok := agg.(Proximal)
			if !ok || p.ProxMu() != tt.mu {
				t.Fatalf("fedprox proximal %v, mu %v; want mu %v", ok, p, tt.mu)
			}
			got, err := agg.Aggregate(named("w", 0, 0), updates)
			if err != nil || !bitEqual(got, want) {
				t.Errorf("fedprox aggregates to %v, %v; want FedAvg's %v", got["w"].Data, err, want["w"].Data)
			}
		})
	}
	if a, err := NewAggregator("fedavg", AggregatorParams{}); err != nil {
		t.Fatal(err)
	} else if _, ok := a.(Proximal); ok {
		t.Error("fedavg asks sites for a proximal term")
	}
	if _, err := TrainLogReg(context.Background(), NewLogReg(2, 2), mat.NewDense(2, 2, []float64{1, 0, 0, 1}), []int{0, 1}, TrainConfig{Epochs: 1, BatchSize: 1, LearningRate: 0.1, ProxMu: -1}); err == nil {
		t.Error("training accepted a negative proximal mu")
	}
}
