package analytics

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// histogram counts a numeric column's values in bins as numpy.histogram
// does: bin i is [edges[i], edges[i+1]), the last bin is closed, and values
// outside [edges[0], edges[last]] are not counted. It releases the counts.
type histogram struct{}

func init() { register("histogram", histogram{}) }

func (histogram) fields() []string { return []string{"column", "edges"} }

func (histogram) check(a *Aggregate, path string, bad func(string, string, ...any)) {
	checkColumn(bad, path+".column", a.Column)
	checkEdges(bad, path+".edges", a.Edges)
}

func checkEdges(bad func(string, string, ...any), field string, e []float64) {
	switch {
	case len(e) < 2:
		bad(field, "want at least 2 edges (one bin), e.g. [11, 12, 13]")
		return
	case len(e) > MaxEdges:
		bad(field, "%d edges; at most %d", len(e), MaxEdges)
		return
	}
	for i, x := range e {
		switch {
		case !finite(x):
			bad(fmt.Sprintf("%s[%d]", field, i), "must be a finite number")
			return
		case i > 0 && x < e[i-1]:
			bad(field, "must be sorted ascending; edges[%d] = %v comes after %v", i, x, e[i-1])
			return
		case i > 0 && x == e[i-1]:
			bad(field, "must be strictly ascending; edges[%d] repeats %v", i, x)
			return
		}
	}
}

func (histogram) inputs(a *Aggregate) ([]string, bool) { return []string{a.Column}, true }
func (histogram) width(a *Aggregate, _ bool) int       { return len(a.Edges) - 1 }
func (histogram) sens2(*Aggregate, []float64) float64  { return 1 }

func (histogram) newAcc(a *Aggregate, _ accEnv) acc {
	return newHistAcc(a.Edges)
}

func (histogram) newMerger(a *Aggregate, e accEnv) merger {
	return &histMerger{private: e.private, counts: make([]float64, len(a.Edges)-1)}
}

type histAcc struct {
	edges  []float64
	counts []int64
	rows   int64
	// How addCol finds x's bin: from the guess ⌊(x−edges[0])·scale⌋ (at
	// most the last bin), which is the bin itself for every x inside the
	// edges when exact, within a step when even (put right by comparing
	// with the edges), and otherwise unused for a binary search.
	exact, even bool
	scale       float64
}

func newHistAcc(edges []float64) *histAcc {
	h := &histAcc{edges: edges, counts: make([]int64, len(edges)-1)}
	last := len(edges) - 1
	h.scale = float64(last) / (edges[last] - edges[0])
	if !finite(h.scale) || !(h.scale > 0) {
		return h
	}
	h.exact, h.even = true, true
	for i, e := range edges[:last] {
		h.even = h.even && math.Abs((e-edges[0])*h.scale-float64(i)) <= 0.5
		// The guess never decreases as x grows, so it is right for every
		// value of bin i if it is for the bin's least value, the edge, and
		// its greatest, the float64 just below the next edge.
		h.exact = h.exact && h.guess(e) == i && h.guess(math.Nextafter(edges[i+1], math.Inf(-1))) == i
	}
	return h
}

// guess is addCol's first guess at x's bin; addCol computes it inline, the
// same way.
func (h *histAcc) guess(x float64) int {
	return min(int((x-h.edges[0])*h.scale), len(h.edges)-2)
}

// bin is x's bin, or -1 outside the edges.
func bin(edges []float64, x float64) int {
	last := len(edges) - 1
	if x < edges[0] || x > edges[last] {
		return -1
	}
	if x == edges[last] {
		return last - 1
	}
	// The first edge above x closes x's bin.
	return sort.Search(len(edges), func(i int) bool { return edges[i] > x }) - 1
}

func (h *histAcc) add(xs []float64) {
	if b := bin(h.edges, xs[0]); b >= 0 {
		h.counts[b]++
		h.rows++
	}
}

// addCol is add on each x in turn: the same bins, found by the guess
// (exact), the guess put right (even), or a binary search without
// sort.Search's closure.
func (h *histAcc) addCol(xs []float64) {
	e, counts, scale := h.edges, h.counts, h.scale
	last := len(e) - 1
	lo, hi := e[0], e[last]
	in := int64(0)
	switch {
	case h.exact:
		for _, x := range xs {
			if x >= lo && x <= hi {
				counts[min(int((x-lo)*scale), last-1)]++
				in++
			}
		}
	case h.even:
		for _, x := range xs {
			if !(x >= lo && x <= hi) {
				continue
			}
			b := min(int((x-lo)*scale), last-1)
			for x < e[b] {
				b--
			}
			for b < last-1 && x >= e[b+1] {
				b++
			}
			counts[b]++
			in++
		}
	default:
		for _, x := range xs {
			if !(x >= lo && x <= hi) {
				continue
			}
			// e[b] <= x, and x < e[top] unless top is last.
			b, top := 0, last
			for top-b > 1 {
				mid := int(uint(b+top) >> 1)
				if e[mid] <= x {
					b = mid
				} else {
					top = mid
				}
			}
			counts[b]++
			in++
		}
	}
	h.rows += in
}

// n counts the values inside the edges: only they are released.
func (h *histAcc) n() int64 { return h.rows }

func (h *histAcc) release() []float64 {
	v := make([]float64, len(h.counts))
	for i, c := range h.counts {
		v[i] = float64(c)
	}
	return v
}

type histMerger struct {
	private bool
	counts  []float64
}

func (h *histMerger) add(v []float64) error {
	for i, c := range v {
		if !h.private {
			if err := checkCount(fmt.Sprintf("bin %d count", i), c); err != nil {
				return err
			}
		}
		h.counts[i] += c
	}
	return nil
}

func (h *histMerger) n() float64 {
	var s float64
	for _, c := range h.counts {
		s += c
	}
	return s
}

func (h *histMerger) value() any { return slices.Clone(h.counts) }
