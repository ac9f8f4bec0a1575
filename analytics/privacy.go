package analytics

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Sensitivity is the L2 sensitivity of everything one site releases for q
// (all cells, all partials) under add-or-remove-one-record neighbours: the
// largest ‖r(D) − r(D')‖₂ when D' is D with one record more or less.
//
// A record contributes to one group cell and, when totals are published
// beside groups, to the ungrouped cell too, with the same contribution to
// each. Within a cell, with h the half-width of a column's bounds and
// values clipped to them, its contribution's squared norm is at most, per
// aggregate:
//
//	count                      1
//	sum, mean                  1 + h²                 ([n, Σ(x−c)])
//	variance, stddev           1 + h² + h⁴            ([n, Σ(x−c), Σ(x−c)²])
//	histogram, quantile        1                      (one bin)
//	correlation, regression    1 + Σh_j² + Σ_{j≤k} h_j²h_k²
//
// and Sensitivity is √(cells · Σ aggregates). The existence of a group and
// the suppression of small cells are not covered: they depend on exact
// counts.
func Sensitivity(q *Query) (float64, error) {
	if err := q.Validate(ValidateOptions{}); err != nil {
		return 0, err
	}
	if !q.private() {
		return 0, errors.New("query has no privacy section; sensitivity is defined only under privacy")
	}
	return sensitivity(q), nil
}

// sensitivity is Sensitivity of a query whose aggregates and bounds are
// valid.
func sensitivity(q *Query) float64 {
	var perCell float64
	for _, a := range q.Aggregates {
		f := functions[a.Fn]
		cols, numeric := f.inputs(&a)
		var half []float64
		if numeric {
			for _, c := range cols {
				b := q.Privacy.Bounds[c]
				half = append(half, (b[1]-b[0])/2)
			}
		}
		perCell += f.sens2(&a, half)
	}
	cells := 1.0
	if len(q.GroupBy) > 0 && q.Totals {
		cells = 2
	}
	return math.Sqrt(cells * perCell)
}

// AddNoise adds independent N(0, (z·Δ)²) noise to every value p releases,
// Δ being p.Sensitivity (set by Compute under privacy), and records the
// standard deviation in p.NoiseStd. The caller calibrates z (an RDP
// accountant for one Gaussian release) and charges the budget; AddNoise
// does no accounting. Suppressed cells release nothing and get no noise.
// The planner refuses private partials without noise, so forgetting this
// call fails the query rather than leaking exact values.
func AddNoise(p *Partials, z float64, rng *rand.Rand) error {
	switch {
	case p == nil:
		return errors.New("add noise: no partials")
	case rng == nil:
		return errors.New("add noise: no random source")
	case !(z > 0) || math.IsInf(z, 0):
		return fmt.Errorf("add noise: noise multiplier %v is out of range; want a finite z > 0", z)
	case !(p.Sensitivity > 0):
		return errors.New("add noise: the partials were computed without privacy (sensitivity 0)")
	case p.NoiseStd != 0:
		return errors.New("add noise: the partials already carry noise")
	case p.Stage != 1:
		return fmt.Errorf("add noise: stage %d; a private query has one stage", p.Stage)
	}
	sigma := z * p.Sensitivity
	if !finite(sigma) {
		return fmt.Errorf("add noise: noise standard deviation %v is not finite", sigma)
	}
	for i := range p.Cells {
		c := &p.Cells[i]
		// Map order is random; sorted names keep seeded noise reproducible.
		for _, name := range sortedKeys(c.Values) {
			for j := range c.Values[name] {
				c.Values[name][j] += sigma * rng.NormFloat64()
			}
		}
	}
	p.NoiseStd = sigma
	return nil
}

// clip is x clipped to [lo, hi].
func clip(x, lo, hi float64) float64 { return min(max(x, lo), hi) }
