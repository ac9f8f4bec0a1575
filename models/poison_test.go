package models

import (
	"context"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestRobustAggregatorsSurvivePoisoning trains logistic regression across
// five sites for a few rounds while one site sends its update reversed and
// scaled tenfold around the global model (w_bad = g − 10·(w_local − g)).
// FedAvg must collapse, or the test proves nothing; median, trimmed-mean
// and multi-krum must stay close to a clean FedAvg run.
func TestRobustAggregatorsSurvivePoisoning(t *testing.T) {
	const (
		sites, perSite, features = 5, 120, 4
		rounds                   = 4
	)
	X, y := blobs(2017, sites*perSite+400, features, 2, 1.5)
	Xs := ComputeMoments(X).Scaler().Apply(X)
	rows := func(from, to int) (*mat.Dense, []int) {
		return mat.DenseCopyOf(Xs.Slice(from, to, 0, features)), y[from:to]
	}
	type site struct {
		X *mat.Dense
		y []int
	}
	var data []site
	for s := range sites {
		Xi, yi := rows(s*perSite, (s+1)*perSite)
		data = append(data, site{Xi, yi})
	}
	Xtest, ytest := rows(sites*perSite, sites*perSite+400)

	run := func(t *testing.T, agg Aggregator, poisoned bool) float64 {
		t.Helper()
		global := NewLogReg(features, 2)
		for r := range rounds {
			var updates []Update
			for i, s := range data {
				res, err := TrainLogReg(context.Background(), global, s.X, s.y, TrainConfig{
					Epochs: 1, BatchSize: 32, LearningRate: 0.5, Seed: int64(10*r + i),
				})
				if err != nil {
					t.Fatal(err)
				}
				w := res.Weights
				if poisoned && i == sites-1 {
					for name, tn := range w {
						for k, v := range tn.Data {
							g := global[name].Data[k]
							tn.Data[k] = g - 10*(v-g)
						}
					}
				}
				updates = append(updates, Update{Weights: w, Examples: res.Examples})
			}
			next, err := agg.Aggregate(global, updates)
			if err != nil {
				t.Fatalf("%s round %d: %v", agg.Name(), r, err)
			}
			global = next
		}
		correct, _, err := EvaluateLogReg(global, Xtest, ytest)
		if err != nil {
			t.Fatal(err)
		}
		return float64(correct) / float64(len(ytest))
	}

	clean := run(t, FedAvg{}, false)
	if clean < 0.9 {
		t.Fatalf("clean FedAvg accuracy %.3f; the data should be easy (want ≥ 0.9)", clean)
	}
	if acc := run(t, FedAvg{}, true); acc >= 0.7 {
		t.Errorf("poisoned FedAvg accuracy %.3f, want < 0.7: the attack is too weak to test anything", acc)
	}
	for _, agg := range []Aggregator{Median{}, TrimmedMean{Beta: 0.2}, Krum{F: 1, Multi: true}} {
		t.Run(agg.Name(), func(t *testing.T) {
			if acc := run(t, agg, true); acc < clean-0.05 {
				t.Errorf("poisoned %s accuracy %.3f, clean FedAvg %.3f: want within 0.05", agg.Name(), acc, clean)
			} else {
				t.Logf("poisoned %s accuracy %.3f (clean FedAvg %.3f)", agg.Name(), acc, clean)
			}
		})
	}
}
