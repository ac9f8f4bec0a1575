package models

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkFedAvg measures aggregation throughput as bytes of update data
// read per second (N·P·4). Each size also has a /copy sub-benchmark that
// copies the same N slices into one buffer: the memory-bandwidth baseline
// FedAvg is compared with. The /fedavg run additionally reports
// ratio_vs_copy, its time per op divided by the fastest of five copies of
// the same bytes timed in the same process just before the loop (so both
// see the same machine state; a ratio near 1 means FedAvg runs at memory
// speed).
func BenchmarkFedAvg(b *testing.B) {
	for _, n := range []int{3, 10} {
		for _, p := range []int{100_000, 1_000_000} {
			updates, global := benchUpdates(n, p)
			srcs := make([][]float32, n)
			for i, u := range updates {
				srcs[i] = u.Weights["w"].Data
			}
			bytesRead := int64(n) * int64(p) * 4
			name := fmt.Sprintf("N=%d/P=%.0e", n, float64(p))

			b.Run(name+"/fedavg", func(b *testing.B) {
				copyTime := fastestCopy(srcs, 5)
				b.SetBytes(bytesRead)
				b.ReportAllocs()
				// Untimed warm-up calls, as for the copy, so the short
				// -benchtime 3x runs of `make bench` measure steady state:
				// until the heap has grown to its working size (about ten
				// calls here) every output lands on freshly mapped pages
				// and pays page faults, costing up to 5x, which a
				// long-running coordinator does not see.
				for range 20 {
					if _, err := (FedAvg{}).Aggregate(global, updates); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					if _, err := (FedAvg{}).Aggregate(global, updates); err != nil {
						b.Fatal(err)
					}
				}
				perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(perOp/float64(copyTime.Nanoseconds()), "ratio_vs_copy")
			})
			b.Run(name+"/copy", func(b *testing.B) {
				dst := make([]float32, n*p)
				copyAll(dst, srcs) // untimed warm-up, see above
				b.SetBytes(bytesRead)
				for b.Loop() {
					copyAll(dst, srcs)
				}
			})
		}
	}
}

func copyAll(dst []float32, srcs [][]float32) {
	off := 0
	for _, s := range srcs {
		off += copy(dst[off:], s)
	}
}

// fastestCopy times copying srcs into a fresh buffer reps times and returns
// the fastest, which discards page-fault and cache warm-up noise.
func fastestCopy(srcs [][]float32, reps int) time.Duration {
	total := 0
	for _, s := range srcs {
		total += len(s)
	}
	dst := make([]float32, total)
	best := time.Duration(1<<63 - 1)
	for range reps {
		start := time.Now()
		copyAll(dst, srcs)
		best = min(best, time.Since(start))
	}
	return best
}

func benchUpdates(n, p int) ([]Update, Weights) {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(p)))
	updates := make([]Update, n)
	for i := range updates {
		d := make([]float32, p)
		for j := range d {
			d[j] = rng.Float32()
		}
		updates[i] = Update{Weights: Weights{"w": {Name: "w", Shape: []int{p}, Data: d}}, Examples: 100 + i}
	}
	return updates, Weights{"w": {Name: "w", Shape: []int{p}, Data: make([]float32, p)}}
}

// BenchmarkTrainLogReg trains on data the size of the UCI breast cancer set
// (569 rows, 30 features, 2 classes) with batch 32, including graph
// construction, as one local round would.
func BenchmarkTrainLogReg(b *testing.B) {
	X, y := blobs(1, 569, 30, 2, 1)
	X = ComputeMoments(X).Scaler().Apply(X)
	w := NewLogReg(30, 2)
	for _, epochs := range []int{1, 5} {
		b.Run(fmt.Sprintf("epochs=%d", epochs), func(b *testing.B) {
			cfg := TrainConfig{Epochs: epochs, BatchSize: 32, LearningRate: 0.1, Seed: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := TrainLogReg(context.Background(), w, X, y, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
