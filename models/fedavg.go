package models

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas/gonum"
)

// FedAvg is federated averaging (McMahan et al., 2017): the next global
// weights are the average of the site weights, each weighted by its share of
// the round's training examples.
//
// Accumulation is in float32. The weights are float32 anyway and the sum has
// one term per site, so rounding error stays within a few ulps, while
// float32 halves memory traffic and lets gonum's vectorised axpy do the work.
// Updates with zero examples contribute nothing and are skipped after their
// shapes are checked.
type FedAvg struct{}

// Name returns "fedavg".
func (FedAvg) Name() string { return "fedavg" }

// fedAvgChunk is the number of elements averaged at a time. Working in
// chunks keeps the output slice in L1 cache while each update's matching
// chunk streams past, so output memory is touched once rather than once per
// update.
const fedAvgChunk = 2048

// Aggregate returns the example-weighted average of the updates. global
// fixes the expected tensor names and shapes; when it is empty the first
// update's layout is used. Neither global nor the updates are modified.
func (f FedAvg) Aggregate(global Weights, updates []Update) (Weights, error) {
	return f.AggregateInto(nil, global, updates)
}

// AggregateInto is Aggregate writing into dst's tensors where their
// shapes match (allocating the others), so a caller that aggregates round
// after round can hand back a model it no longer uses instead of making
// the garbage collector find and zero a fresh one each time. dst must not
// be global nor share memory with it or any update.
func (FedAvg) AggregateInto(dst, global Weights, updates []Update) (Weights, error) {
	spec, names, err := layoutOf("fedavg", global, updates)
	if err != nil {
		return nil, err
	}

	total := 0
	for i, u := range updates {
		if u.Examples < 0 {
			return nil, fmt.Errorf("fedavg: update %d has negative example count %d", i, u.Examples)
		}
		total += u.Examples
		if total < 0 {
			return nil, fmt.Errorf("fedavg: total example count overflows")
		}
		if err := sameLayout(spec, names, u.Weights); err != nil {
			return nil, fmt.Errorf("fedavg: update %d: %w", i, err)
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("fedavg: total example count is zero")
	}

	// Coefficients are computed in float64 so shares like 1/3 are rounded
	// once, not accumulated.
	var contributing []int
	var coefs []float32
	for i, u := range updates {
		if u.Examples > 0 {
			contributing = append(contributing, i)
			coefs = append(coefs, float32(float64(u.Examples)/float64(total)))
		}
	}

	dst0 := dst
	var blas gonum.Implementation
	zeros := make([]float32, fedAvgChunk)
	srcs := make([][]float32, len(contributing))
	out := make(Weights, len(names))
	for _, name := range names {
		for k, i := range contributing {
			srcs[k] = updates[i].Weights[name].Data
		}
		var dst []float32
		if t := dst0[name]; t != nil && slices.Equal(t.Shape, spec[name].Shape) && len(t.Data) == len(spec[name].Data) {
			dst = t.Data
		} else {
			dst = make([]float32, len(spec[name].Data))
		}
		for off := 0; off < len(dst); off += fedAvgChunk {
			end := min(off+fedAvgChunk, len(dst))
			chunk := dst[off:end]
			// The first update is scaled into the chunk, the rest added:
			// dst's old values are overwritten without a pass of their own.
			copy(chunk, srcs[0][off:end])
			blas.Sscal(len(chunk), coefs[0], chunk, 1)
			for k, src := range srcs[1:] {
				blas.Saxpy(len(chunk), coefs[k+1], src[off:end], 1, chunk, 1)
			}
			// Checking the result chunk while it is still in cache,
			// rather than every input, costs one pass over P values
			// instead of N·P; a NaN or Inf in any contributing input
			// reaches the output. The slow path only names the culprit.
			if !allFinite(blas, chunk, zeros) {
				return nil, nonFiniteCulprit(updates, contributing, name, off+firstNonFinite(chunk))
			}
		}
		out[name] = &Tensor{Name: name, Shape: slices.Clone(spec[name].Shape), Data: dst}
	}
	return out, nil
}

// sameLayout checks that w has exactly spec's tensor names and shapes, with
// data lengths to match. It does not look at values.
func sameLayout(spec Weights, names []string, w Weights) error {
	for _, name := range names {
		t, ok := w[name]
		if !ok || t == nil {
			return fmt.Errorf("missing tensor %q", name)
		}
		if !slices.Equal(t.Shape, spec[name].Shape) {
			return fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, spec[name].Shape)
		}
		if len(t.Data) != len(spec[name].Data) {
			return fmt.Errorf("tensor %q has %d values, want %d", name, len(t.Data), len(spec[name].Data))
		}
	}
	if len(w) != len(names) {
		for _, name := range w.Names() {
			if _, ok := spec[name]; !ok {
				return fmt.Errorf("unexpected tensor %q", name)
			}
		}
	}
	return nil
}

// allFinite reports whether x holds no NaN or ±Inf, using zeros (at least
// len(x) zero values). 0·v is NaN exactly when v is NaN or ±Inf and 0
// otherwise, so the dot product of x with zeros is 0 or NaN and can never
// overflow; gonum computes it with SIMD, several times faster than a
// per-element test in Go.
func allFinite(blas gonum.Implementation, x, zeros []float32) bool {
	return blas.Sdot(len(x), x, 1, zeros[:len(x)], 1) == 0
}

// firstNonFinite returns the index of the first NaN or ±Inf in x, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// nonFiniteCulprit names the first contributing update holding a non-finite
// value in tensor name, or reports an overflow if every input was finite.
func nonFiniteCulprit(updates []Update, contributing []int, name string, at int) error {
	for _, i := range contributing {
		if j := firstNonFinite(updates[i].Weights[name].Data); j >= 0 {
			return fmt.Errorf("fedavg: update %d: tensor %q has non-finite value at index %d", i, name, j)
		}
	}
	return fmt.Errorf("fedavg: tensor %q: weighted average overflowed at index %d", name, at)
}

// layoutOf is the tensor layout a round's updates must have: global's, or
// the first update's when global is empty (the first round of a strategy
// that keeps none), each tensor checked to hold as many values as its
// shape says. who prefixes errors.
func layoutOf(who string, global Weights, updates []Update) (Weights, []string, error) {
	if len(updates) == 0 {
		return nil, nil, fmt.Errorf("%s: no updates", who)
	}
	spec, specName := global, "global"
	if len(spec) == 0 {
		spec, specName = updates[0].Weights, "update 0"
	}
	if len(spec) == 0 {
		return nil, nil, fmt.Errorf("%s: no tensors in global weights or first update", who)
	}
	names := spec.Names()
	for _, name := range names {
		t := spec[name]
		if t == nil {
			return nil, nil, fmt.Errorf("%s: %s: tensor %q is nil", who, specName, name)
		}
		n, err := numElements(t.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: tensor %q: %w", who, specName, name, err)
		}
		if len(t.Data) != n {
			return nil, nil, fmt.Errorf("%s: %s: tensor %q has %d values, shape %v needs %d", who, specName, name, len(t.Data), t.Shape, n)
		}
	}
	return spec, names, nil
}
