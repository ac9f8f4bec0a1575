package analytics

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// comoments are correlation (Pearson's, over columns) and linear_regression
// (ordinary least squares of label on columns, with an intercept). Both use
// the rows where every one of their columns is present (pandas'
// df[cols].dropna()).
//
// Over the m variables (correlation: the columns; regression: the columns
// then the label) a site releases [n, Σx_j (m), C (m(m+1)/2)], where C is
// the upper triangle, row by row, of the co-moment matrix Σ(x_j−x̄_j)(x_k−x̄_k)
// accumulated by the online (Welford) update; the coordinator merges sites
// exactly by Chan's formula C = Ca + Cb + δδᵀ·na·nb/n. Centred, C is XᵀX and
// Xᵀy of the centred data, from which the regression is solved (Cholesky,
// gonum) and the intercept recovered from the means. Under privacy the
// release is [n, Σ(x_j−c_j), Σ(x_j−c_j)(x_k−c_k)] about the bounds'
// centres.
type comoments struct{ regression bool }

func init() {
	register("correlation", comoments{})
	register("linear_regression", comoments{regression: true})
}

// maxCondition is the largest condition number of the centred XᵀX for which
// a regression is published; beyond it the coefficients would be noise.
const maxCondition = 1e12

func (c comoments) fields() []string {
	if c.regression {
		return []string{"columns", "label"}
	}
	return []string{"columns"}
}

func (c comoments) check(a *Aggregate, path string, bad func(string, string, ...any)) {
	if !c.regression {
		checkColumns(bad, path+".columns", a.Columns, 2, MaxColumns, "[alcohol, ash]")
		return
	}
	checkColumn(bad, path+".label", a.Label)
	checkColumns(bad, path+".columns", a.Columns, 1, MaxColumns-1, "[ash, hue]")
	if a.Label != "" && slices.Contains(a.Columns, a.Label) {
		bad(path+".label", "%q is also in columns; a regression's label is not one of its columns", a.Label)
	}
}

func (c comoments) inputs(a *Aggregate) ([]string, bool) {
	if c.regression {
		return append(slices.Clone(a.Columns), a.Label), true
	}
	return a.Columns, true
}

func (c comoments) vars(a *Aggregate) int {
	cols, _ := c.inputs(a)
	return len(cols)
}

func (c comoments) width(a *Aggregate, _ bool) int {
	m := c.vars(a)
	return 1 + m + m*(m+1)/2
}

func (c comoments) sens2(_ *Aggregate, half []float64) float64 {
	s := 1.0
	for j, hj := range half {
		s += hj * hj
		for _, hk := range half[j:] {
			s += hj * hj * hk * hk
		}
	}
	return s
}

func (c comoments) newAcc(a *Aggregate, e accEnv) acc {
	m := c.vars(a)
	g := &comAcc{private: e.private, s: make([]ksum, m), mean: make([]float64, m), d: make([]float64, m), cm: make([]ksum, m*(m+1)/2)}
	if e.private {
		g.c = make([]float64, m)
		for i := range g.c {
			g.c[i] = e.center(i)
		}
	}
	return g
}

func (c comoments) newMerger(a *Aggregate, e accEnv) merger {
	m := c.vars(a)
	cols, _ := c.inputs(a)
	g := &comMerger{fn: c, cols: cols, private: e.private, s: make([]ksum, m), mean: make([]float64, m), cm: make([]float64, m*(m+1)/2)}
	if e.private {
		g.c = make([]float64, m)
		for i := range g.c {
			g.c[i] = e.center(i)
		}
	}
	return g
}

// tri is the index of (j, k), j ≤ k, in the packed upper triangle of an m×m
// matrix.
func tri(m, j, k int) int { return j*m - j*(j-1)/2 + (k - j) }

type comAcc struct {
	private bool
	c       []float64 // centres, under privacy
	rows    int64
	s       []ksum    // Σx_j, or Σ(x_j−c_j) under privacy
	mean, d []float64 // running means and this row's deviations, without privacy
	cm      []ksum    // co-moments about the running means, or Σ(x_j−c_j)(x_k−c_k)
}

func (g *comAcc) add(xs []float64) {
	g.rows++
	m := len(xs)
	if g.private {
		for j := range xs {
			g.d[j] = xs[j] - g.c[j]
			g.s[j].add(g.d[j])
		}
		for j := range m {
			for k := j; k < m; k++ {
				g.cm[tri(m, j, k)].add(g.d[j] * g.d[k])
			}
		}
		return
	}
	n := float64(g.rows)
	for j, x := range xs {
		g.s[j].add(x)
		g.d[j] = x - g.mean[j]
		g.mean[j] += g.d[j] / n
	}
	// (x_j − old mean_j)(x_k − new mean_k): the online co-moment update.
	for j := range m {
		for k := j; k < m; k++ {
			g.cm[tri(m, j, k)].add(g.d[j] * (xs[k] - g.mean[k]))
		}
	}
}

func (g *comAcc) n() int64 { return g.rows }

func (g *comAcc) release() []float64 {
	v := make([]float64, 0, 1+len(g.s)+len(g.cm))
	v = append(v, float64(g.rows))
	for _, s := range g.s {
		v = append(v, s.sum())
	}
	for _, c := range g.cm {
		v = append(v, c.sum())
	}
	return v
}

type comMerger struct {
	fn      comoments
	cols    []string
	private bool
	c       []float64 // centres, under privacy
	rows    float64
	s       []ksum
	mean    []float64 // Chan's running means, without privacy
	cm      []float64 // merged co-moments, or Σ(x_j−c_j)(x_k−c_k) under privacy
}

func (g *comMerger) add(v []float64) error {
	m := len(g.s)
	n, s, cm := v[0], v[1:1+m], v[1+m:]
	if g.private {
		g.rows += n
		for j := range s {
			g.s[j].add(s[j])
		}
		for i := range cm {
			g.cm[i] += cm[i]
		}
		return nil
	}
	if err := checkCount("n", n); err != nil {
		return err
	}
	if n == 0 {
		for _, x := range v[1:] {
			if x != 0 {
				return fmt.Errorf("sums of no rows are not zero")
			}
		}
		return nil
	}
	for j := range m {
		if cm[tri(m, j, j)] < 0 {
			return fmt.Errorf("sum of squared deviations %v is negative", cm[tri(m, j, j)])
		}
		g.s[j].add(s[j])
	}
	if g.rows == 0 {
		g.rows = n
		copy(g.cm, cm)
		for j := range m {
			g.mean[j] = s[j] / n
		}
		return nil
	}
	total := g.rows + n
	delta := make([]float64, m)
	for j := range m {
		delta[j] = s[j]/n - g.mean[j]
	}
	w := g.rows * n / total
	for j := range m {
		for k := j; k < m; k++ {
			g.cm[tri(m, j, k)] += cm[tri(m, j, k)] + delta[j]*delta[k]*w
		}
		g.mean[j] += delta[j] * n / total
	}
	g.rows = total
	return nil
}

func (g *comMerger) n() float64 { return g.rows }

// centred returns the means and the co-moment matrix about them. Under
// privacy a noisy n is clamped to at least 2 before it divides.
func (g *comMerger) centred() (mean []float64, cov *mat.SymDense, n float64) {
	m := len(g.s)
	mean = make([]float64, m)
	cov = mat.NewSymDense(m, nil)
	n = g.rows
	if g.private {
		n = max(n, 2)
	}
	for j := range m {
		if g.private {
			mean[j] = g.c[j] + g.s[j].sum()/n
		} else if n > 0 {
			mean[j] = g.s[j].sum() / n
		}
	}
	for j := range m {
		for k := j; k < m; k++ {
			c := g.cm[tri(m, j, k)]
			if g.private {
				c -= g.s[j].sum() * g.s[k].sum() / n
			}
			cov.SetSym(j, k, c)
		}
	}
	return mean, cov, n
}

func (g *comMerger) value() any {
	if g.fn.regression {
		return g.regressionValue()
	}
	return g.correlationValue()
}

// correlationValue is the matrix of Pearson correlations: null where a
// column is constant (or fewer than 2 rows), 1 on the diagonal otherwise,
// clamped to [−1, 1] as numpy.corrcoef does.
func (g *comMerger) correlationValue() any {
	m := len(g.s)
	_, cov, n := g.centred()
	out := make([][]any, m)
	for j := range m {
		out[j] = make([]any, m)
		for k := range m {
			cjj, ckk := cov.At(j, j), cov.At(k, k)
			switch {
			case n < 2 || !(cjj > 0) || !(ckk > 0):
				out[j][k] = nil
			case j == k:
				out[j][k] = 1.0
			default:
				out[j][k] = num(min(max(cov.At(j, k)/math.Sqrt(cjj*ckk), -1), 1))
			}
		}
	}
	return out
}

// Regression is a linear_regression result: label ≈ Intercept + Σ
// Coefficients[col]·col.
type Regression struct {
	Coefficients map[string]float64 `json:"coefficients"`
	Intercept    float64            `json:"intercept"`
}

// regressionValue solves the centred normal equations. It is null (nil)
// when there are no more rows than coefficients, or when the centred XᵀX is
// singular or worse conditioned than maxCondition.
func (g *comMerger) regressionValue() any {
	m := len(g.s)
	p := m - 1
	mean, cov, n := g.centred()
	if !(n > float64(p)) {
		return nil
	}
	xx := mat.NewSymDense(p, nil)
	xy := mat.NewVecDense(p, nil)
	for j := range p {
		for k := j; k < p; k++ {
			xx.SetSym(j, k, cov.At(j, k))
		}
		xy.SetVec(j, cov.At(j, p))
	}
	var ch mat.Cholesky
	if !ch.Factorize(xx) || ch.Cond() > maxCondition {
		return nil
	}
	var beta mat.VecDense
	if err := ch.SolveVecTo(&beta, xy); err != nil {
		return nil
	}
	r := Regression{Coefficients: make(map[string]float64, p), Intercept: mean[p]}
	for j := range p {
		b := beta.AtVec(j)
		r.Coefficients[g.cols[j]] = b
		r.Intercept -= b * mean[j]
	}
	if !finite(r.Intercept) {
		return nil
	}
	return r
}
