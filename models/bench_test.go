package models

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

// BenchmarkFedAvg measures FedAvg against the memory-bandwidth baseline:
// copying the same N update slices into one buffer. Each op runs one
// FedAvg (AggregateInto a reused output buffer, as the coordinator does
// round after round) and one copy of the same bytes, alternately, each
// timed on its own in the thread's CPU time (Linux; wall time elsewhere),
// so both see the same machine state; it reports the median of each and
// rate_vs_copy, the copy's median time over FedAvg's:
// FedAvg's speed as a share of memcpy's (the goal: ≥ 0.8 at 1M+
// parameters on one core, -cpu 1). ns/op is the pair.
func BenchmarkFedAvg(b *testing.B) {
	for _, n := range []int{3, 10} {
		for _, p := range []int{100_000, 1_000_000} {
			updates, global := benchUpdates(n, p)
			srcs := make([][]float32, n)
			for i, u := range updates {
				srcs[i] = u.Weights["w"].Data
			}
			b.Run(fmt.Sprintf("N=%d/P=%.0e", n, float64(p)), func(b *testing.B) {
				dst := make([]float32, n*p)
				out, err := FedAvg{}.Aggregate(global, updates)
				if err != nil {
					b.Fatal(err)
				}
				// Untimed warm-up of both, so the short runs of `make bench`
				// measure steady state rather than first-touch page faults.
				for range 5 {
					copyAll(dst, srcs)
					if _, err := (FedAvg{}).AggregateInto(out, global, updates); err != nil {
						b.Fatal(err)
					}
				}
				// Timed in the thread's CPU time, so a core taken by another
				// process mid-call is not charged to either.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var fed, cp []float64
				for b.Loop() {
					t0 := threadCPU()
					if _, err := (FedAvg{}).AggregateInto(out, global, updates); err != nil {
						b.Fatal(err)
					}
					t1 := threadCPU()
					copyAll(dst, srcs)
					t2 := threadCPU()
					fed, cp = append(fed, float64(t1-t0)), append(cp, float64(t2-t1))
				}
				mf, mc := medianF(fed), medianF(cp)
				b.ReportMetric(mf/1e3, "fedavg_us")
				b.ReportMetric(mc/1e3, "copy_us")
				b.ReportMetric(mc/mf, "rate_vs_copy")
				b.ReportMetric(float64(int64(n)*int64(p)*4)/mf, "fedavg_GB/s")
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

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
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
// (569 rows, 30 features, 2 classes) with batch 32, setup included, as one
// local round would.
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

// trainSize is a local-training workload for the Train benchmarks: blobs
// data of rows × features in classes, the MLP's hidden layers (logreg has
// none), batch size and epochs per Train call.
type trainSize struct {
	name                    string
	rows, features, classes int
	hidden                  []int
	batch, epochs           int
}

// trainSizes are a demo site (the shapes of the demo's small data sets)
// and an MNIST-sized one (the 784-100-10 MLP of make bench-learning).
var trainSizes = []trainSize{
	{name: "demo", rows: 400, features: 30, classes: 3, hidden: []int{32}, batch: 32, epochs: 5},
	{name: "mnist", rows: 2000, features: 784, classes: 10, hidden: []int{100}, batch: 64, epochs: 1},
}

func (s trainSize) data() (*mat.Dense, []int) {
	X, y := blobs(uint64(s.features), s.rows, s.features, s.classes, 0.5)
	return ComputeMoments(X).Scaler().Apply(X), y
}

func (s trainSize) config() TrainConfig {
	return TrainConfig{Epochs: s.epochs, BatchSize: s.batch, LearningRate: 0.05, Seed: 1}
}

// kernelTrain trains a copy of start with the gonum kernel, as one Train
// call does: widen, train, narrow to float32 tensors.
func kernelTrain(b *testing.B, start *mlpNet, X *mat.Dense, y []int, cfg TrainConfig) Weights {
	net := start.clone()
	if _, err := trainLoop(context.Background(), newKernelStepper(net, min(cfg.BatchSize, len(y)), cfg.L2, cfg.ProxMu), X, y, cfg); err != nil {
		b.Fatal(err)
	}
	return net.weights()
}

// graphTrain trains a copy of start through the compiled graph gn, which
// is built once and reused across calls: the most a gorgonia training path
// could save by caching graphs.
func graphTrain(b *testing.B, gn *graphNet, start *mlpNet, X *mat.Dense, y []int, cfg TrainConfig) Weights {
	net := start.clone()
	if err := gn.load(net, net); err != nil {
		b.Fatal(err)
	}
	if _, err := trainLoop(context.Background(), gn, X, y, cfg); err != nil {
		b.Fatal(err)
	}
	if err := gn.store(net); err != nil {
		b.Fatal(err)
	}
	return net.weights()
}

// fastestRun times f reps times and returns the fastest, which discards
// warm-up and scheduling noise.
func fastestRun(reps int, f func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range reps {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

// timeTraining runs f in b's loop after one warm-up call and reports
// examples/s (forward and backward, rows × epochs per op) and, with a
// baseline, unit: time per op divided by the fastest of three baseline
// calls on the same workload timed just before the loop, as BenchmarkFedAvg
// compares with a copy. Above 1 f is that many times slower.
func timeTraining(b *testing.B, s trainSize, f, baseline func(), unit string) {
	var base time.Duration
	if baseline != nil {
		base = fastestRun(3, baseline)
	}
	f()
	b.ResetTimer()
	for b.Loop() {
		f()
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(s.rows*s.epochs)/(perOp/1e9), "examples/s")
	if baseline != nil {
		b.ReportMetric(perOp/float64(base.Nanoseconds()), unit)
	}
}

// mlpStart is the MLP of s at its initial weights, for the kernel and the
// graph.
func mlpStart(b *testing.B, s trainSize) *mlpNet {
	a, err := newMLP(ArchParams{Hidden: s.hidden})
	if err != nil {
		b.Fatal(err)
	}
	w, err := a.Init(s.features, s.classes)
	if err != nil {
		b.Fatal(err)
	}
	start, err := a.net(w)
	if err != nil {
		b.Fatal(err)
	}
	return start
}

// graphAgainstKernel is the /gorgonia-reused and /gonum pair every
// training benchmark has: the reference graph compiled once and reused
// across calls, against the kernel.
func graphAgainstKernel(b *testing.B, s trainSize, start *mlpNet, X *mat.Dense, y []int, cfg TrainConfig) {
	gonum := func() { kernelTrain(b, start, X, y, cfg) }
	b.Run(s.name+"/gorgonia-reused", func(b *testing.B) {
		gn, err := newGraphNet(start.sizes, start.tanh, min(s.batch, s.rows), cfg.L2, cfg.ProxMu)
		if err != nil {
			b.Fatal(err)
		}
		defer gn.Close()
		timeTraining(b, s, func() { graphTrain(b, gn, start, X, y, cfg) }, gonum, "x-vs-gonum")
	})
	b.Run(s.name+"/gonum", func(b *testing.B) { timeTraining(b, s, gonum, nil, "") })
}

// BenchmarkTrainLogRegVsKernel measures logreg's local training three ways
// on each trainSize: /TrainLogReg is the production call; /gorgonia-reused
// runs the reference graph compiled once and reused across calls (what
// caching graphs would give); /gonum is the hand-written kernel with no
// hidden layer. The first two report x-vs-gonum.
func BenchmarkTrainLogRegVsKernel(b *testing.B) {
	for _, s := range trainSizes {
		X, y := s.data()
		cfg := s.config()
		w := NewLogReg(s.features, s.classes)
		m, err := asLogReg(w)
		if err != nil {
			b.Fatal(err)
		}
		start := m.net()
		b.Run(s.name+"/TrainLogReg", func(b *testing.B) {
			timeTraining(b, s, func() {
				if _, err := TrainLogReg(context.Background(), w, X, y, cfg); err != nil {
					b.Fatal(err)
				}
			}, func() { kernelTrain(b, start, X, y, cfg) }, "x-vs-gonum")
		})
		graphAgainstKernel(b, s, start, X, y, cfg)
	}
}

// BenchmarkTrainMLP measures the MLP's local training on each trainSize:
// /gorgonia-reused is its reference graph compiled once and reused across
// calls, /gonum the hand-written kernel that Train runs; the first reports
// x-vs-gonum.
func BenchmarkTrainMLP(b *testing.B) {
	for _, s := range trainSizes {
		X, y := s.data()
		graphAgainstKernel(b, s, mlpStart(b, s), X, y, s.config())
	}
}

// BenchmarkDPSGD measures DP-SGD's per-row clipping and noise against
// plain training of the same network on the same rows, same run: /plain is
// the kernel's ordinary minibatch training, /dp-sgd the same epochs with
// Poisson sampling at the same expected batch, per-row clipping and noise.
// dp-sgd reports x-vs-plain (time per op over the fastest of three plain
// calls timed just before its loop) and both report examples/s.
func BenchmarkDPSGD(b *testing.B) {
	for _, s := range trainSizes {
		X, y := s.data()
		cfg := s.config()
		start := mlpStart(b, s)
		plain := func() { kernelTrain(b, start, X, y, cfg) }
		dpCfg := cfg
		dpCfg.DP = &DPSGD{ClipNorm: 1, NoiseMultiplier: 1, Noise: rand.New(rand.NewPCG(1, 2))}
		b.Run(s.name+"/plain", func(b *testing.B) { timeTraining(b, s, plain, nil, "") })
		b.Run(s.name+"/dp-sgd", func(b *testing.B) {
			timeTraining(b, s, func() { kernelTrain(b, start, X, y, dpCfg) }, plain, "x-vs-plain")
		})
	}
}
