package analytics

import "math"

// suppCell is a group cell as complementary suppression sees it.
type suppCell struct {
	key      string    // tie-break: the smaller key goes first
	size     float64   // the cell's size; the smallest visible cell is withheld first
	m        []float64 // counts that must each be 0 or ≥ k in any derivable union
	withheld bool
}

// complement withholds further group cells so that the published total
// cannot reveal the withheld ones. Total minus the visible cells is the
// union of the withheld cells; union returns its measures. While some
// measure of the union is between 1 and k−1 (or, with single, exactly one
// cell is withheld, so the union is that cell), the visible cell with the
// smallest size that adds to that measure is withheld too. When no visible
// cell can, complement returns true: the total must be withheld instead.
func complement(cells []*suppCell, union func() []float64, k float64, single bool) (withholdTotal bool) {
	for {
		withheld := 0
		for _, c := range cells {
			if c.withheld {
				withheld++
			}
		}
		if withheld == 0 {
			return false
		}
		// -1: nothing to fix; -2: any visible cell will do.
		fix := -1
		for j, x := range union() {
			if r := math.Round(x); r >= 1 && r < k {
				fix = j
				break
			}
		}
		if fix == -1 && single && withheld == 1 {
			fix = -2
		}
		if fix == -1 {
			return false
		}
		var best *suppCell
		for _, c := range cells {
			if c.withheld || (fix >= 0 && !(c.m[fix] > 0)) {
				continue
			}
			if best == nil || c.size < best.size || (c.size == best.size && c.key < best.key) {
				best = c
			}
		}
		if best == nil {
			return true
		}
		best.withheld = true
	}
}
