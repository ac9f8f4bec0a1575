package models

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestTrainLogRegMatchesReference(t *testing.T) {
	X, y := blobs(7, 10, 3, 3, 2)
	start := NewLogReg(3, 3)
	// A non-zero start checks that w is loaded into the graph.
	for i := range start[WeightName].Data {
		start[WeightName].Data[i] = float32(i%5) * 0.1
	}
	start[BiasName].Data[1] = -0.3

	tests := []struct {
		name string
		cfg  TrainConfig
	}{
		{"full batch", TrainConfig{Epochs: 3, BatchSize: 10, LearningRate: 0.5, Seed: 1}},
		{"batch larger than n", TrainConfig{Epochs: 2, BatchSize: 64, LearningRate: 0.5, Seed: 1}},
		{"partial last batch", TrainConfig{Epochs: 3, BatchSize: 4, LearningRate: 0.3, Seed: 2}},
		{"batch of one", TrainConfig{Epochs: 1, BatchSize: 1, LearningRate: 0.1, Seed: 3}},
		{"l2 penalty", TrainConfig{Epochs: 4, BatchSize: 3, LearningRate: 0.2, L2: 0.5, Seed: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TrainLogReg(context.Background(), start, X, y, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			want, wantLoss := referenceSGD(start, X, y, tc.cfg)
			for _, name := range want.Names() {
				for i, v := range want[name].Data {
					if d := math.Abs(float64(got.Weights[name].Data[i] - v)); d > 1e-5 {
						t.Errorf("%s[%d] = %v, reference %v", name, i, got.Weights[name].Data[i], v)
					}
				}
			}
			if math.Abs(got.Loss-wantLoss) > 1e-9 {
				t.Errorf("loss = %v, reference %v", got.Loss, wantLoss)
			}
			if got.Examples != 10 {
				t.Errorf("examples = %d, want 10", got.Examples)
			}
		})
	}
}

func TestTrainLogRegLearns(t *testing.T) {
	X, y := blobs(42, 900, 5, 3, 1.5)
	scaler := ComputeMoments(X).Scaler()
	Xs := scaler.Apply(X)
	train := mat.DenseCopyOf(Xs.Slice(0, 600, 0, 5))
	test := mat.DenseCopyOf(Xs.Slice(600, 900, 0, 5))
	yTrain, yTest := y[:600], y[600:]

	w := NewLogReg(5, 3)
	cfg := TrainConfig{Epochs: 1, BatchSize: 32, LearningRate: 0.1, Seed: 9}
	prev := math.Inf(1)
	for call := range 4 {
		cfg.Seed = int64(call)
		res, err := TrainLogReg(context.Background(), w, train, yTrain, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !(res.Loss < prev) {
			t.Errorf("call %d: loss %v did not decrease from %v", call, res.Loss, prev)
		}
		prev, w = res.Loss, res.Weights
	}
	correct, loss, err := EvaluateLogReg(w, test, yTest)
	if err != nil {
		t.Fatal(err)
	}
	acc := float64(correct) / float64(len(yTest))
	t.Logf("held-out accuracy %.3f, loss %.4f, last train loss %.4f", acc, loss, prev)
	if acc < 0.9 {
		t.Errorf("held-out accuracy %.3f, want >= 0.9", acc)
	}
}

func TestTrainLogRegDeterministicAndPure(t *testing.T) {
	X, y := blobs(3, 50, 4, 2, 2)
	w := NewLogReg(4, 2)
	w[WeightName].Data[0] = 0.25
	wBefore := w.Clone()
	XBefore := mat.DenseCopyOf(X)
	yBefore := append([]int(nil), y...)
	cfg := TrainConfig{Epochs: 2, BatchSize: 8, LearningRate: 0.1, L2: 0.01, Seed: 5}

	a, err := TrainLogReg(context.Background(), w, X, y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TrainLogReg(context.Background(), w, X, y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("same seed same result", func(t *testing.T) {
		if !reflect.DeepEqual(a, b) {
			t.Error("two runs with the same seed differ")
		}
	})
	t.Run("different seed different result", func(t *testing.T) {
		cfg := cfg
		cfg.Seed = 6
		c, err := TrainLogReg(context.Background(), w, X, y, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(a.Weights, c.Weights) {
			t.Error("different seeds gave identical weights; shuffling seems unused")
		}
	})
	t.Run("inputs not mutated", func(t *testing.T) {
		if !reflect.DeepEqual(w, wBefore) {
			t.Error("weights were mutated")
		}
		if !mat.Equal(X, XBefore) {
			t.Error("X was mutated")
		}
		if !reflect.DeepEqual(y, yBefore) {
			t.Error("y was mutated")
		}
	})
	t.Run("result shares no memory with input", func(t *testing.T) {
		a.Weights[WeightName].Data[0] = 99
		if w[WeightName].Data[0] == 99 {
			t.Error("result aliases input weights")
		}
	})
}

func TestTrainLogRegCancelled(t *testing.T) {
	X, y := blobs(3, 50, 4, 2, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := TrainLogReg(ctx, NewLogReg(4, 2), X, y, TrainConfig{Epochs: 1, BatchSize: 8, LearningRate: 0.1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestTrainLogRegErrors(t *testing.T) {
	X, y := blobs(3, 20, 4, 2, 2)
	good := TrainConfig{Epochs: 1, BatchSize: 8, LearningRate: 0.1}
	tests := []struct {
		name string
		w    Weights
		X    *mat.Dense
		y    []int
		cfg  func(TrainConfig) TrainConfig
		want string
	}{
		{"zero epochs", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.Epochs = 0; return c }, "epochs"},
		{"zero batch", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.BatchSize = 0; return c }, "batch size"},
		{"negative lr", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.LearningRate = -1; return c }, "learning rate"},
		{"nan lr", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.LearningRate = math.NaN(); return c }, "learning rate"},
		{"negative l2", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.L2 = -1; return c }, "l2"},
		{"feature mismatch", NewLogReg(3, 2), X, y, nil, "columns"},
		{"label out of range", NewLogReg(4, 2), X, append(append([]int(nil), y[:19]...), 2), nil, "label 2 at row 19"},
		{"label count", NewLogReg(4, 2), X, y[:5], nil, "5 labels for 20 rows"},
		{"missing bias", Weights{WeightName: NewLogReg(4, 2)[WeightName]}, X, y, nil, `"linear.bias"`},
		{"nil X", NewLogReg(4, 2), nil, y, nil, "nil feature matrix"},
		{"diverges", NewLogReg(4, 2), X, y, func(c TrainConfig) TrainConfig { c.LearningRate = 1e300; c.Epochs = 3; return c }, "diverged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			_, err := TrainLogReg(context.Background(), tc.w, tc.X, tc.y, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTrainLogRegConcurrent(t *testing.T) {
	// Sites may train several jobs at once; each call owns its network and
	// buffers, and this runs under -race to catch shared state.
	X, y := blobs(5, 100, 4, 3, 2)
	cfg := TrainConfig{Epochs: 2, BatchSize: 16, LearningRate: 0.1, Seed: 3}
	want, err := TrainLogReg(context.Background(), NewLogReg(4, 3), X, y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan TrainResult, 4)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			res, err := TrainLogReg(context.Background(), NewLogReg(4, 3), X, y, cfg)
			results <- res
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if got := <-results; !reflect.DeepEqual(got, want) {
			t.Error("concurrent run differs from sequential run")
		}
	}
}
