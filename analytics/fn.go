package analytics

import (
	"fmt"
	"math"
	"slices"
)

// function is one aggregate fn: how its fields are checked, what it reads,
// what a site releases for it in a cell and how the coordinator merges and
// finishes that. Each fn is a file that registers itself in functions; no
// other code switches on the name.
type function interface {
	// fields are the optional Aggregate fields it takes, among column,
	// columns, label, edges and q.
	fields() []string
	// check validates those fields; path is like aggregates[2].
	check(a *Aggregate, path string, bad func(field, format string, args ...any))
	// inputs are the columns it reads, in release order, and whether they
	// are read as numbers (clipped to the privacy bounds) or only tested for
	// being present. A row missing any input does not contribute.
	inputs(a *Aggregate) (cols []string, numeric bool)
	// width is the length of the vector a site releases for one cell at
	// stage 1.
	width(a *Aggregate, private bool) int
	// sens2 bounds the squared L2 norm of one record's contribution to that
	// vector under privacy; half holds the half-widths of the numeric
	// inputs' bounds, in inputs order.
	sens2(a *Aggregate, half []float64) float64
	// newAcc is a site's accumulator for one cell.
	newAcc(a *Aggregate, env accEnv) acc
	// newMerger is the coordinator's accumulator for one cell.
	newMerger(a *Aggregate, env accEnv) merger
}

// accEnv is what an accumulator needs besides its aggregate.
type accEnv struct {
	private bool
	lo, hi  []float64 // clipping bounds of the numeric inputs, under privacy
	// thresholds are the exact-quantile thresholds (as order keys) a stage
	// asks this cell for; nil when the stage asks none.
	thresholds []uint64
}

// center is the midpoint of numeric input i's bounds: private partials are
// sums of deviations from it, which keeps their sensitivity to the
// half-width and their sums of squares well conditioned.
func (e accEnv) center(i int) float64 { return e.lo[i] + (e.hi[i]-e.lo[i])/2 }

// acc accumulates a cell's rows at a site.
type acc interface {
	// add takes one contributing row: xs are the numeric inputs (clipped
	// under privacy), empty for a text input.
	add(xs []float64)
	// n is the number of contributing rows.
	n() int64
	// release is the stage-1 vector.
	release() []float64
}

// merger combines the sites' stage-1 vectors for one cell.
type merger interface {
	// add merges one site's vector; it refuses values no honest site can
	// send.
	add(v []float64) error
	// n is the number of contributing rows over the sites merged so far
	// (noisy under privacy).
	n() float64
	// value is the published statistic, safe for encoding/json.
	value() any
}

var functions = map[string]function{}

func register(name string, f function) { functions[name] = f }

// FunctionNames are the aggregate fns a query may use, sorted.
func FunctionNames() []string { return sortedKeys(functions) }

// num is f for a JSON result: nil (null) when it is not a finite number.
func num(f float64) any {
	if !finite(f) {
		return nil
	}
	return f
}

// checkCount refuses a released count no honest site can send.
func checkCount(what string, c float64) error {
	if c < 0 || c != math.Trunc(c) || c > 1<<53 {
		return fmt.Errorf("%s %v is not a count", what, c)
	}
	return nil
}

// checkColumns checks a list of distinct input columns.
func checkColumns(bad func(string, string, ...any), path string, cols []string, least, most int, example string) {
	switch {
	case len(cols) < least:
		bad(path, "want at least %d columns, e.g. %s", least, example)
		return
	case len(cols) > most:
		bad(path, "%d columns; at most %d", len(cols), most)
		return
	}
	for i, c := range cols {
		field := fmt.Sprintf("%s[%d]", path, i)
		checkColumn(bad, field, c)
		if j := slices.Index(cols[:i], c); j >= 0 && c != "" {
			bad(field, "%q is already %s[%d]", c, path, j)
		}
	}
}

// ksum is a Neumaier-compensated sum: the sum of many values of one sign is
// as accurate as rounding the exact sum once, whatever their order.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) { k.s, k.c = neumaier(k.s, k.c, x) }

// addAll is add on each x in turn, the running sums kept in registers
// rather than in k.
func (k *ksum) addAll(xs []float64) {
	s, c := k.s, k.c
	for _, x := range xs {
		s, c = neumaier(s, c, x)
	}
	k.s, k.c = s, c
}

// neumaier is one step of Neumaier's summation: s + x and the new
// compensation.
func neumaier(s, c, x float64) (float64, float64) {
	t := s + x
	if math.Abs(s) >= math.Abs(x) {
		c += (s - t) + x
	} else {
		c += (x - t) + s
	}
	return t, c
}

func (k ksum) sum() float64 { return k.s + k.c }
