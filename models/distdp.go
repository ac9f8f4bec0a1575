package models

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// Distributed DP-SGD: one DP-SGD step over the union of every site's rows,
// computed in pieces. Each site samples its rows with the job's rate q
// (Poisson, so the union is a Poisson sample of the union with rate q),
// sums their gradients clipped to ClipNorm — SumClippedGradients, with no
// noise — and adds only a share of the noise; secure aggregation sums the
// shares, so only the sum, which carries the whole noise, is ever seen.

// ClippedSum is a site's share of one distributed DP-SGD step before
// noise: per tensor of the model, the sum over the sampled rows of each
// row's gradient clipped to the clip norm, in float64.
type ClippedSum struct {
	Grad    map[string][]float64
	Sampled int // rows in the Poisson sample (a secret of the site)
}

// SumClippedGradients samples each row of X with probability q from rng
// and sums the sampled rows' loss gradients at w, each clipped to L2 norm
// clip over all parameters together (the loss of arch's Kind: cross-
// entropy for a classifier, ½ squared error for a regressor). rng must be
// secret to the site, as DPSGD.Noise.
func SumClippedGradients(arch Arch, w Weights, X *mat.Dense, y Targets, clip, q float64, rng *rand.Rand) (ClippedSum, error) {
	switch {
	case !(clip > 0) || math.IsInf(clip, 0):
		return ClippedSum{}, fmt.Errorf("dp: clip norm must be positive and finite, got %v", clip)
	case !(q > 0) || q > 1:
		return ClippedSum{}, fmt.Errorf("dp: sampling rate must be in (0, 1], got %v", q)
	case rng == nil:
		return ClippedSum{}, errors.New("dp: no noise source")
	case X == nil:
		return ClippedSum{}, errors.New("dp: nil feature matrix")
	}
	n, _ := X.Dims()
	rows := poissonSample(rng, n, q, nil)
	switch a := arch.(type) {
	case linRegArch:
		m, _, err := asLinReg(w, X)
		if err != nil {
			return ClippedSum{}, err
		}
		if err := checkValues(y.Values, n); err != nil {
			return ClippedSum{}, err
		}
		return m.clippedSum(X, y.Values, rows, clip), nil
	case logRegArch:
		lr, err := asLogReg(w)
		if err != nil {
			return ClippedSum{}, err
		}
		return netClippedSum(lr.net(), X, y.Classes, rows, clip, func(int) (string, string) { return WeightName, BiasName })
	case mlpArch:
		net, err := a.net(w)
		if err != nil {
			return ClippedSum{}, err
		}
		return netClippedSum(net, X, y.Classes, rows, clip, func(l int) (string, string) { return mlpWeightName(l), mlpBiasName(l) })
	default:
		return ClippedSum{}, fmt.Errorf("dp: distributed DP-SGD is not implemented for %s", arch.Name())
	}
}

func netClippedSum(net *mlpNet, X *mat.Dense, y []int, rows []int, clip float64, names func(layer int) (string, string)) (ClippedSum, error) {
	n, err := net.checkX(X)
	if err != nil {
		return ClippedSum{}, err
	}
	if err := checkLabels(y, n, net.classes()); err != nil {
		return ClippedSum{}, err
	}
	out := ClippedSum{Grad: map[string][]float64{}, Sampled: len(rows)}
	wk := newMLPWork(net, max(len(rows), 1))
	if len(rows) > 0 {
		net.clippedSum(wk, X, y, rows, clip)
	}
	for l := range net.w {
		wn, bn := names(l)
		g := make([]float64, len(net.w[l].RawMatrix().Data))
		if len(rows) > 0 {
			copy(g, wk.gw[l].RawMatrix().Data)
		}
		b := make([]float64, len(net.b[l]))
		if len(rows) > 0 {
			copy(b, wk.gb[l])
		}
		out.Grad[wn], out.Grad[bn] = g, b
	}
	return out, nil
}

// clippedSum is Σ_rows clip(r·[x, 1]), as trainDP clips.
func (m linReg) clippedSum(X *mat.Dense, y []float64, rows []int, clip float64) ClippedSum {
	gw, gb := make([]float64, len(m.w)), make([]float64, 1)
	for _, i := range rows {
		x := X.RawRowView(i)
		r := m.predict(x) - y[i]
		var xx float64
		for _, v := range x {
			xx += v * v
		}
		if norm := math.Abs(r) * math.Sqrt(xx+1); norm > clip {
			r *= clip / norm
		}
		for j, v := range x {
			gw[j] += r * v
		}
		gb[0] += r
	}
	return ClippedSum{Grad: map[string][]float64{WeightName: gw, BiasName: gb}, Sampled: len(rows)}
}
