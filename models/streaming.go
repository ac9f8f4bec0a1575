package models

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas/gonum"
)

// FromMean is implemented by MeanBased strategies that can finish a round
// from its example-weighted mean alone, overwriting it: the coordinator
// then aggregates while the updates stream in (each chunk of each site is
// added to one weighted sum as it arrives, and no site's update is held
// whole), divides by the total examples and hands the mean over. The
// coordinator's memory for a round is then the global model, the sum and
// a chunk per site, plus what the strategy keeps itself (a server
// optimizer's moments).
//
// Strategies that need every site's own update (median, trimmed-mean,
// krum, multi-krum) are not MeanBased and take the whole-update path:
// the coordinator holds each update until the round's last one arrives.
type FromMean interface {
	MeanBased
	// NextFromMean returns the next global weights given the round's
	// example-weighted mean of the updates and the examples behind it.
	// It may write the result into mean and return it; global is not
	// modified. A refused round (a non-finite mean, a diverged step)
	// is an error and leaves the strategy's state as it was.
	NextFromMean(global, mean Weights, examples int64) (Weights, error)
}

// NextFromMean is the mean itself, checked against global's layout and
// for finite values.
func (FedAvg) NextFromMean(global, mean Weights, examples int64) (Weights, error) {
	return checkedMean("fedavg", global, mean, examples)
}

// NextFromMean is FedAvg's: the sites add the proximal term, the server
// averages.
func (FedProx) NextFromMean(global, mean Weights, examples int64) (Weights, error) {
	return checkedMean("fedprox", global, mean, examples)
}

func checkedMean(who string, global, mean Weights, examples int64) (Weights, error) {
	if examples < 1 {
		return nil, fmt.Errorf("%s: total example count is %d", who, examples)
	}
	if len(global) > 0 {
		if err := sameLayout(global, global.Names(), mean); err != nil {
			return nil, fmt.Errorf("%s: mean: %w", who, err)
		}
	}
	var blas gonum.Implementation
	for _, name := range mean.Names() {
		d := mean[name].Data
		for off := 0; off < len(d); off += fedAvgChunk {
			chunk := d[off:min(off+fedAvgChunk, len(d))]
			if maybeAllFinite(blas, chunk) {
				continue
			}
			if i := firstNonFinite(chunk); i >= 0 {
				// The inputs were checked as they arrived: the sum overflowed.
				return nil, fmt.Errorf("%s: tensor %q: weighted average overflowed at index %d", who, name, off+i)
			}
		}
	}
	return mean, nil
}

// NextFromMean takes the optimizer's step from global towards the round's
// mean in place: the next model is written into mean, and m and v are
// updated where they are (allocated at the first round). Aggregate would
// hold the average, the output and new moments besides. A step that
// would leave a value non-finite is found in a first pass that writes
// nothing, so a refused round leaves the state as it was; the second pass
// writes.
func (o *ServerOpt) NextFromMean(global, mean Weights, examples int64) (Weights, error) {
	if len(global) == 0 {
		return nil, fmt.Errorf("%s: no global weights to step from", o.rule)
	}
	if _, err := checkedMean(o.rule, global, mean, examples); err != nil {
		return nil, err
	}
	names := global.Names()
	m, v := o.m, o.v
	if m != nil {
		if err := sameLayout(global, names, m); err != nil {
			return nil, fmt.Errorf("%s: restored first moment does not fit the model: %w", o.rule, err)
		}
		if err := sameLayout(global, names, v); err != nil {
			return nil, fmt.Errorf("%s: restored second moment does not fit the model: %w", o.rule, err)
		}
	}
	v0 := float32(o.tau * o.tau)
	step := func(name string, i int, w float32) (mi, vi, x float64) {
		d := float64(mean[name].Data[i]) - float64(w)
		pm, pv := 0.0, float64(v0)
		if m != nil {
			pm, pv = float64(m[name].Data[i]), float64(v[name].Data[i])
		}
		mi = o.beta1*pm + (1-o.beta1)*d
		vi = o.step(pv, d*d)
		return mi, vi, float64(w) + o.lr*mi/(math.Sqrt(vi)+o.tau)
	}
	for _, name := range names {
		for i, w := range global[name].Data {
			_, _, x := step(name, i, w)
			if !finite32(x) {
				return nil, fmt.Errorf("%s: step diverged (try a smaller server_lr): tensor %q has non-finite value at index %d", o.rule, name, i)
			}
		}
	}
	if m == nil {
		m, v = make(Weights, len(names)), make(Weights, len(names))
		for _, name := range names {
			m[name] = &Tensor{Name: name, Shape: slices.Clone(global[name].Shape), Data: MakeValues(len(global[name].Data))}
			v[name] = &Tensor{Name: name, Shape: slices.Clone(global[name].Shape), Data: MakeValues(len(global[name].Data))}
		}
		for _, name := range names {
			for i, w := range global[name].Data {
				d := float64(mean[name].Data[i]) - float64(w)
				mi := (1 - o.beta1) * d
				vi := o.step(float64(v0), d*d)
				m[name].Data[i], v[name].Data[i] = float32(mi), float32(vi)
				mean[name].Data[i] = float32(float64(w) + o.lr*mi/(math.Sqrt(vi)+o.tau))
			}
		}
		o.m, o.v = m, v
		return mean, nil
	}
	for _, name := range names {
		for i, w := range global[name].Data {
			mi, vi, x := step(name, i, w)
			m[name].Data[i], v[name].Data[i], mean[name].Data[i] = float32(mi), float32(vi), float32(x)
		}
	}
	return mean, nil
}

// finite32 reports whether x is finite once stored as a float32.
func finite32(x float64) bool {
	f := float32(x)
	return f-f == 0
}
