package models

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// blobs returns n rows of k Gaussian clusters in f dimensions: each class
// centre is drawn from N(0, sep²) per feature and each row is its class
// centre plus N(0, 1) noise. A fixed seed makes the data reproducible.
func blobs(seed uint64, n, f, k int, sep float64) (*mat.Dense, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float64, k)
	for c := range centres {
		centres[c] = make([]float64, f)
		for j := range centres[c] {
			centres[c][j] = sep * rng.NormFloat64()
		}
	}
	X := mat.NewDense(n, f, nil)
	y := make([]int, n)
	for i := range n {
		c := rng.IntN(k)
		y[i] = c
		for j := range f {
			X.Set(i, j, centres[c][j]+rng.NormFloat64())
		}
	}
	return X, y
}

// referenceSGD is an independent plain-Go implementation of the training
// loop TrainLogReg promises (same shuffling, same objective), used to check
// the training kernel's gradients and the partial-batch handling.
func referenceSGD(w Weights, X *mat.Dense, y []int, cfg TrainConfig) (Weights, float64) {
	n, f := X.Dims()
	k := w[BiasName].Shape[0]
	W := toFloat64s(w[WeightName].Data)
	b := toFloat64s(w[BiasName].Data)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x666564657261))
	order := make([]int, n)
	batch := min(cfg.BatchSize, n)
	var epochLoss float64
	z := make([]float64, k)
	for range cfg.Epochs {
		shuffle(rng, order)
		epochLoss = 0
		for start := 0; start < n; start += batch {
			rows := order[start:min(start+batch, n)]
			gW := make([]float64, k*f)
			gb := make([]float64, k)
			var ce float64
			for _, r := range rows {
				x := X.RawRowView(r)
				for c := range k {
					z[c] = b[c]
					for j := range f {
						z[c] += W[c*f+j] * x[j]
					}
				}
				lse := logSumExp(z)
				ce += lse - z[y[r]]
				for c := range k {
					p := math.Exp(z[c] - lse)
					if c == y[r] {
						p--
					}
					gb[c] += p / float64(len(rows))
					for j := range f {
						gW[c*f+j] += p * x[j] / float64(len(rows))
					}
				}
			}
			for i := range W {
				W[i] -= cfg.LearningRate * (gW[i] + cfg.L2*W[i])
			}
			for i := range b {
				b[i] -= cfg.LearningRate * gb[i]
			}
			epochLoss += ce
		}
	}
	out := NewLogReg(f, k)
	toFloat32(out[WeightName].Data, W)
	toFloat32(out[BiasName].Data, b)
	return out, epochLoss / float64(n)
}
