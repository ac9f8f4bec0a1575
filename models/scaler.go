package models

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Moments are per-column sufficient statistics for standardization. Each
// site computes them on its own rows and sends only these aggregates; the
// coordinator merges them into global moments and derives one Scaler that
// every site then applies, so all sites train in the same feature space
// without sharing rows.
//
// Variance is derived as E[x²]−E[x]², which loses precision when a column's
// mean is large relative to its spread; that is the price of mergeable
// plain sums, and it is fine for typical tabular features.
type Moments struct {
	Count      float64
	Sum, SumSq []float64
}

// ComputeMoments returns the row count and per-column sums and sums of
// squares of X.
func ComputeMoments(X *mat.Dense) Moments {
	r, c := X.Dims()
	m := Moments{Count: float64(r), Sum: make([]float64, c), SumSq: make([]float64, c)}
	for i := range r {
		for j, v := range X.RawRowView(i) {
			m.Sum[j] += v
			m.SumSq[j] += v * v
		}
	}
	return m
}

// check verifies o is structurally sound before it is trusted.
func (m Moments) check() error {
	if len(m.Sum) != len(m.SumSq) {
		return fmt.Errorf("moments have %d sums but %d sums of squares", len(m.Sum), len(m.SumSq))
	}
	if !(m.Count >= 0) || math.IsInf(m.Count, 0) {
		return fmt.Errorf("moments have invalid count %v", m.Count)
	}
	return nil
}

// Merge adds o's statistics into m. Merging into the zero Moments adopts o's
// column count, so a coordinator can start from an empty value.
func (m *Moments) Merge(o Moments) error {
	if err := o.check(); err != nil {
		return fmt.Errorf("merging moments: %w", err)
	}
	if m.Count == 0 && m.Sum == nil && m.SumSq == nil {
		m.Sum = make([]float64, len(o.Sum))
		m.SumSq = make([]float64, len(o.SumSq))
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("merging moments: %w", err)
	}
	if len(m.Sum) != len(o.Sum) {
		return fmt.Errorf("merging moments: column mismatch: have %d columns, other has %d", len(m.Sum), len(o.Sum))
	}
	m.Count += o.Count
	for j := range o.Sum {
		m.Sum[j] += o.Sum[j]
		m.SumSq[j] += o.SumSq[j]
	}
	return nil
}

// minRelVariance is the variance, relative to max(1, mean²), below which a
// column is treated as constant. The E[x²]−E[x]² formula leaves rounding
// noise of about 1e-16·mean² for a truly constant column, so the threshold
// sits well above that noise.
const minRelVariance = 1e-10

// Scaler returns the standardization x' = (x-mean)/scale using the
// population standard deviation. A column with zero or near-zero variance
// gets scale 1: dividing by a tiny, noise-dominated deviation would blow the
// feature up to huge values, whereas scale 1 just centres it (a constant
// column becomes 0 and contributes nothing). With Count 0 the scaler is the
// identity (mean 0, scale 1).
func (m Moments) Scaler() Scaler {
	s := Scaler{Mean: make([]float64, len(m.Sum)), Scale: make([]float64, len(m.Sum))}
	for j := range m.Sum {
		s.Scale[j] = 1
		if m.Count <= 0 || j >= len(m.SumSq) {
			continue
		}
		mean := m.Sum[j] / m.Count
		variance := m.SumSq[j]/m.Count - mean*mean
		s.Mean[j] = mean
		if variance > minRelVariance*math.Max(1, mean*mean) {
			s.Scale[j] = math.Sqrt(variance)
		}
	}
	return s
}

// Scaler standardizes features: x' = (x-mean)/scale, per column.
type Scaler struct {
	Mean, Scale []float64
}

// check verifies the scaler is usable for f features.
func (s Scaler) check(f int) error {
	if len(s.Mean) != f || len(s.Scale) != f {
		return fmt.Errorf("scaler has %d means and %d scales, want %d", len(s.Mean), len(s.Scale), f)
	}
	for j := range f {
		if math.IsNaN(s.Mean[j]) || math.IsInf(s.Mean[j], 0) {
			return fmt.Errorf("scaler mean of column %d is %v", j, s.Mean[j])
		}
		if !(s.Scale[j] > 0) || math.IsInf(s.Scale[j], 0) {
			return fmt.Errorf("scaler scale of column %d is %v, want positive and finite", j, s.Scale[j])
		}
	}
	return nil
}

// Apply returns a new standardized copy of X; X is not modified. Like gonum's
// matrix operations it panics if X's column count differs from the scaler's.
func (s Scaler) Apply(X *mat.Dense) *mat.Dense {
	r, c := X.Dims()
	if c != len(s.Mean) || c != len(s.Scale) {
		panic(fmt.Sprintf("models.Scaler.Apply: matrix has %d columns, scaler has %d", c, len(s.Mean)))
	}
	if r == 0 {
		// gonum cannot allocate an empty matrix; the zero Dense is its
		// empty value.
		return &mat.Dense{}
	}
	out := mat.NewDense(r, c, nil)
	for i := range r {
		dst := out.RawRowView(i)
		for j, v := range X.RawRowView(i) {
			dst[j] = (v - s.Mean[j]) / s.Scale[j]
		}
	}
	return out
}
