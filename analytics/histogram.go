package analytics

import (
	"fmt"
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
	return &histAcc{edges: a.Edges, counts: make([]int64, len(a.Edges)-1)}
}

func (histogram) newMerger(a *Aggregate, e accEnv) merger {
	return &histMerger{private: e.private, counts: make([]float64, len(a.Edges)-1)}
}

type histAcc struct {
	edges  []float64
	counts []int64
	rows   int64
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
