package models

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// DP-SGD: record-level differentially private training (Abadi et al.
// 2016, "Deep Learning with Differential Privacy").
//
// Every step samples each training row independently with probability
// q = min(1, batch/n) (Poisson sampling, as the accountant of the sampled
// Gaussian mechanism assumes), computes each sampled row's gradient of the
// loss, clips it to L2 norm ClipNorm over all parameters together, sums the
// clipped gradients, adds N(0, (NoiseMultiplier·ClipNorm)²) to every
// coordinate and divides by the expected batch size q·n. Regularization
// (L2, FedProx's proximal term) does not touch the data and is added after
// the noise. An epoch is ⌈n/batch⌉ steps, so a call takes DPSteps steps.
//
// Whatever the steps compute from the data passes through the clipping
// and the noise, so the weights a call returns are (ε, δ)-DP for each row
// with the (ε, δ) an accountant gives for DPSteps steps of the sampled
// Gaussian mechanism with rate q and this noise multiplier.

// DPSGD configures record-level differential privacy for one Train call.
type DPSGD struct {
	ClipNorm        float64 // L2 bound on each row's gradient
	NoiseMultiplier float64 // σ: noise standard deviation / ClipNorm
	// Noise draws the sampling and the noise. It must be secret to the
	// site (seeded from crypto/rand, never from the job's seed): whoever
	// can replay it can subtract the noise.
	Noise *rand.Rand
}

func (d *DPSGD) validate() error {
	switch {
	case !(d.ClipNorm > 0) || math.IsInf(d.ClipNorm, 0):
		return fmt.Errorf("dp: clip norm must be positive and finite, got %v", d.ClipNorm)
	case !(d.NoiseMultiplier > 0) || math.IsInf(d.NoiseMultiplier, 0):
		return fmt.Errorf("dp: noise multiplier must be positive and finite, got %v", d.NoiseMultiplier)
	case d.Noise == nil:
		return errors.New("dp: no noise source")
	}
	return nil
}

// DPSteps is how DP-SGD trains on n rows with this batch size for this
// many epochs: the sampling rate q and the number of steps, what the
// accountant needs.
func DPSteps(n, batch, epochs int) (q float64, steps int) {
	if n < 1 || batch < 1 || epochs < 1 {
		return 0, 0
	}
	return math.Min(1, float64(batch)/float64(n)), epochs * ((n + batch - 1) / batch)
}

// dpTrainLoop is trainLoop under DP-SGD, on the gonum kernel.
func dpTrainLoop(ctx context.Context, s *kernelStepper, X *mat.Dense, y []int, cfg TrainConfig) (float64, error) {
	dp := cfg.DP
	n, _ := X.Dims()
	q, steps := DPSteps(n, cfg.BatchSize, cfg.Epochs)
	perEpoch := steps / cfg.Epochs
	expected := q * float64(n)
	// A Poisson sample has no fixed size; the work buffers grow to the
	// largest drawn.
	rows := make([]int, 0, min(n, 2*cfg.BatchSize))
	opt := newOptimizer(cfg.Optimizer, cfg.LearningRate)
	var lastEpoch float64
	var lastRows int
	for step := range steps {
		if step%perEpoch == 0 {
			lastEpoch, lastRows = 0, 0
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		rows = poissonSample(dp.Noise, n, q, rows[:0])
		if len(rows) > s.wk.cap {
			s.wk = newMLPWork(s.net, len(rows))
		}
		ce := s.net.dpGradient(s.wk, X, y, rows, dp, expected, s.l2, s.mu, s.anchor)
		if math.IsNaN(ce) || math.IsInf(ce, 0) {
			return 0, fmt.Errorf("diverged: loss is %v (try a smaller learning rate)", ce)
		}
		s.net.step(s.wk, opt)
		lastEpoch += ce * float64(len(rows))
		lastRows += len(rows)
	}
	if lastRows == 0 {
		return 0, nil
	}
	return lastEpoch / float64(lastRows), nil
}

// poissonSample appends to dst each of 0..n−1 independently with
// probability q, in order. It draws the gaps between chosen rows
// (geometric with parameter q) rather than one number per row, so a step
// costs about q·n draws, not n.
func poissonSample(rng *rand.Rand, n int, q float64, dst []int) []int {
	if q >= 1 {
		for i := range n {
			dst = append(dst, i)
		}
		return dst
	}
	lq := math.Log1p(-q)
	for i := -1; ; {
		// 1−U is in (0, 1], so the log is finite; the gap is the number of
		// rows passed over before the next one chosen.
		gap := math.Floor(math.Log(1-rng.Float64()) / lq)
		if gap >= float64(n-1-i) {
			return dst
		}
		i += int(gap) + 1
		dst = append(dst, i)
	}
}

// dpGradient is gradient under DP-SGD: the sum over rows of each row's
// cross-entropy gradient clipped to dp.ClipNorm, plus Gaussian noise, over
// denom; then the data-independent L2 and proximal terms. It returns the
// rows' mean cross-entropy (0 for no rows).
//
// A dense layer's gradient for one row is the outer product of its
// backward signal δ and its input a, whose norm is ‖δ‖·‖a‖ (and ‖δ‖ for the
// bias), so each row's norm comes from quantities the backward pass has
// anyway; clipping is scaling each row's δ, in every layer, by its factor
// before the batch's matrix products (Goodfellow 2015, "Efficient
// per-example gradient computations").
func (n *mlpNet) dpGradient(wk *mlpWork, X *mat.Dense, y []int, rows []int, dp *DPSGD, denom, l2, mu float64, anchor *mlpNet) float64 {
	m := len(rows)
	var ce float64
	if m > 0 {
		ce = n.clippedSum(wk, X, y, rows, dp.ClipNorm)
	} else {
		for l := range n.w {
			wk.gw[l].Zero()
			clear(wk.gb[l])
		}
	}
	sd := dp.NoiseMultiplier * dp.ClipNorm
	inv := 1 / denom
	for l := range n.w {
		g := wk.gw[l].RawMatrix().Data
		for i := range g {
			g[i] = (g[i] + sd*dp.Noise.NormFloat64()) * inv
		}
		for i := range wk.gb[l] {
			wk.gb[l][i] = (wk.gb[l][i] + sd*dp.Noise.NormFloat64()) * inv
		}
	}
	n.regularize(wk, l2, mu, anchor)
	if m == 0 {
		return 0
	}
	return ce / float64(m)
}

// clippedSum puts Σ_rows clip(∇ce_row) in wk.gw and wk.gb and returns the
// rows' summed cross-entropy.
func (n *mlpNet) clippedSum(wk *mlpWork, X *mat.Dense, y []int, rows []int, clip float64) float64 {
	m := len(rows)
	xb := wk.load(X, rows)
	logits := n.forward(wk, xb)
	k := n.classes()
	raw := logits.RawMatrix().Data
	var ce float64
	for i, r := range rows {
		z := raw[i*k : (i+1)*k]
		lse := logSumExp(z)
		ce += lse - z[y[r]]
		for j, v := range z {
			z[j] = math.Exp(v - lse)
		}
		z[y[r]]--
	}
	// Every layer's δ, kept (the logits buffer holds the last layer's):
	// clipping scales them after all are known.
	L := len(n.w)
	if len(wk.dps) != L {
		wk.dps = make([][]float64, L)
	}
	deltas := make([]*mat.Dense, L)
	deltas[L-1] = logits
	for l := L - 1; l > 0; l-- {
		if len(wk.dps[l-1]) < wk.cap*n.sizes[l] {
			wk.dps[l-1] = make([]float64, wk.cap*n.sizes[l])
		}
		next := mat.NewDense(m, n.sizes[l], wk.dps[l-1][:m*n.sizes[l]])
		next.Mul(deltas[l], n.w[l])
		a := wk.acts[l-1][:m*n.sizes[l]]
		nd := next.RawMatrix().Data
		for i, v := range a {
			if n.tanh {
				nd[i] *= 1 - v*v
			} else if v <= 0 {
				nd[i] = 0
			}
		}
		deltas[l-1] = next
	}
	input := func(l int) *mat.Dense {
		if l == 0 {
			return xb
		}
		return mat.NewDense(m, n.sizes[l], wk.acts[l-1][:m*n.sizes[l]])
	}
	// Each row's squared gradient norm, then its clipping factor.
	if cap(wk.norms) < m {
		wk.norms = make([]float64, m)
	}
	norms := wk.norms[:m]
	clear(norms)
	for l := range L {
		d, a := deltas[l].RawMatrix().Data, input(l).RawMatrix().Data
		out, in := n.sizes[l+1], n.sizes[l]
		for i := range m {
			var dd, aa float64
			for _, v := range d[i*out : (i+1)*out] {
				dd += v * v
			}
			for _, v := range a[i*in : (i+1)*in] {
				aa += v * v
			}
			norms[i] += dd * (aa + 1)
		}
	}
	for i, sq := range norms {
		norms[i] = 1
		if norm := math.Sqrt(sq); norm > clip {
			norms[i] = clip / norm
		}
	}
	for l := range L {
		d := deltas[l].RawMatrix().Data
		out := n.sizes[l+1]
		gb := wk.gb[l]
		clear(gb)
		for i := range m {
			row := d[i*out : (i+1)*out]
			for j := range row {
				row[j] *= norms[i]
				gb[j] += row[j]
			}
		}
		wk.gw[l].Mul(deltas[l].T(), input(l))
	}
	return ce
}
