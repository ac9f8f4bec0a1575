package analytics

import (
	"fmt"
	"math"
)

// moments are sum, mean, variance and stddev of one numeric column, over
// the rows where it is not missing. Variance and stddev are sample
// statistics (divided by n−1), as pandas computes them.
//
// Without privacy a site releases [n, Σx, M2] (M2, for variance and stddev
// only, is Σ(x−x̄)² accumulated by Welford's update) and the coordinator
// merges the sites' (n, x̄, M2) exactly by Chan's formula. Under privacy it
// releases [n, Σ(x−c), Σ(x−c)²] with c the centre of the column's bounds.
type moments struct {
	fn     string
	second bool // releases the second moment
}

func init() {
	register("sum", moments{fn: "sum"})
	register("mean", moments{fn: "mean"})
	register("variance", moments{fn: "variance", second: true})
	register("stddev", moments{fn: "stddev", second: true})
}

func (moments) fields() []string { return []string{"column"} }

func (moments) check(a *Aggregate, path string, bad func(string, string, ...any)) {
	checkColumn(bad, path+".column", a.Column)
}

func (moments) inputs(a *Aggregate) ([]string, bool) { return []string{a.Column}, true }

func (m moments) width(*Aggregate, bool) int {
	if m.second {
		return 3
	}
	return 2
}

func (m moments) sens2(_ *Aggregate, half []float64) float64 {
	h2 := half[0] * half[0]
	if m.second {
		return 1 + h2 + h2*h2
	}
	return 1 + h2
}

func (m moments) newAcc(_ *Aggregate, e accEnv) acc {
	a := &momentsAcc{second: m.second, private: e.private}
	if e.private {
		a.c = e.center(0)
	}
	return a
}

func (m moments) newMerger(_ *Aggregate, e accEnv) merger {
	g := &momentsMerger{m: m, private: e.private}
	if e.private {
		g.lo, g.hi, g.c = e.lo[0], e.hi[0], e.center(0)
	}
	return g
}

type momentsAcc struct {
	second, private bool
	c               float64 // centre, under privacy
	rows            int64
	s               ksum    // Σx, or Σ(x−c) under privacy
	q               ksum    // Σ(x−c)², under privacy
	mean, m2        float64 // Welford's running mean and M2
}

func (a *momentsAcc) add(xs []float64) {
	x := xs[0]
	a.rows++
	if a.private {
		d := x - a.c
		a.s.add(d)
		a.q.add(d * d)
		return
	}
	a.s.add(x)
	a.mean, a.m2 = welford(a.mean, a.m2, x, a.rows)
}

// welford is Welford's update of the running mean and M2 by x, the n-th
// value.
func welford(mean, m2, x float64, n int64) (float64, float64) {
	d := x - mean
	mean += d / float64(n)
	return mean, m2 + d*(x-mean)
}

// addCol is add on each x in turn. Only variance and stddev release M2,
// so sum and mean skip Welford's division.
func (a *momentsAcc) addCol(xs []float64) {
	switch {
	case a.private:
		c := a.c
		s, ss, q, qc := a.s.s, a.s.c, a.q.s, a.q.c
		for _, x := range xs {
			d := x - c
			s, ss = neumaier(s, ss, d)
			q, qc = neumaier(q, qc, d*d)
		}
		a.s, a.q = ksum{s, ss}, ksum{q, qc}
	case a.second:
		s, sc, mean, m2, n := a.s.s, a.s.c, a.mean, a.m2, a.rows
		for _, x := range xs {
			s, sc = neumaier(s, sc, x)
			n++
			mean, m2 = welford(mean, m2, x, n)
		}
		a.s, a.mean, a.m2 = ksum{s, sc}, mean, m2
	default:
		a.s.addAll(xs)
	}
	a.rows += int64(len(xs))
}

func (a *momentsAcc) n() int64 { return a.rows }

func (a *momentsAcc) release() []float64 {
	v := []float64{float64(a.rows), a.s.sum()}
	if !a.second {
		return v
	}
	if a.private {
		return append(v, a.q.sum())
	}
	return append(v, a.m2)
}

type momentsMerger struct {
	m       moments
	private bool
	lo, hi  float64 // bounds, under privacy
	c       float64 // centre, under privacy

	rows     float64
	s        ksum    // Σx, or Σ(x−c) under privacy
	q        ksum    // Σ(x−c)², under privacy
	mean, m2 float64 // Chan's running mean and M2, without privacy
}

func (g *momentsMerger) add(v []float64) error {
	n := v[0]
	if g.private {
		g.rows += n
		g.s.add(v[1])
		if g.m.second {
			g.q.add(v[2])
		}
		return nil
	}
	if err := checkCount("n", n); err != nil {
		return err
	}
	if n == 0 {
		if v[1] != 0 || (g.m.second && v[2] != 0) {
			return fmt.Errorf("sums of no rows are not zero")
		}
		return nil
	}
	g.s.add(v[1])
	if !g.m.second {
		g.rows += n
		return nil
	}
	if v[2] < 0 {
		return fmt.Errorf("sum of squared deviations %v is negative", v[2])
	}
	mean := v[1] / n
	if g.rows == 0 {
		g.rows, g.mean, g.m2 = n, mean, v[2]
		return nil
	}
	total := g.rows + n
	d := mean - g.mean
	g.mean += d * n / total
	g.m2 += v[2] + d*d*g.rows*n/total
	g.rows = total
	return nil
}

func (g *momentsMerger) n() float64 { return g.rows }

func (g *momentsMerger) value() any {
	if g.private {
		return g.privateValue()
	}
	n := g.rows
	switch g.m.fn {
	case "sum":
		return num(g.s.sum())
	case "mean":
		if n == 0 {
			return nil
		}
		return num(g.s.sum() / n)
	}
	if n < 2 {
		return nil
	}
	variance := g.m2 / (n - 1)
	if g.m.fn == "stddev" {
		return num(math.Sqrt(variance))
	}
	return num(variance)
}

// privateValue finishes the noisy sums. A noisy n is clamped to at least 1
// where it divides (mean) and at least 2 where n−1 does (variance), and the
// results to what data within the bounds can have: a mean inside the bounds,
// a variance between 0 and (hi−lo)²/4 · n/(n−1).
func (g *momentsMerger) privateValue() any {
	s := g.s.sum()
	switch g.m.fn {
	case "sum":
		return num(s + g.c*g.rows)
	case "mean":
		return num(min(max(g.c+s/max(g.rows, 1), g.lo), g.hi))
	}
	n := max(g.rows, 2)
	variance := (g.q.sum() - s*s/n) / (n - 1)
	w := g.hi - g.lo
	variance = min(max(variance, 0), w*w/4*n/(n-1))
	if g.m.fn == "stddev" {
		return num(math.Sqrt(variance))
	}
	return num(variance)
}
