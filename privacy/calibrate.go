package privacy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// Bounds of the noise-multiplier search.
const (
	// MaxNoiseMultiplier is the largest noise multiplier the calibration
	// returns; a budget that needs more is reported as ErrNoiseAboveCap with
	// the value it would need.
	MaxNoiseMultiplier = 1e4
	// MinNoiseMultiplier is the smallest it returns: when even this little
	// noise meets the target, the target is so loose that the exact minimum
	// does not matter, and it is returned as is.
	MinNoiseMultiplier = 1e-4
	// calibrateRelTol is the bisection's stopping width relative to the
	// answer (the brief asks for 1e-4 or better).
	calibrateRelTol = 1e-6
	// searchCeiling bounds the search for how much noise an over-cap budget
	// would need, so the error can say.
	searchCeiling = 1e12
)

// CalibrateNoise returns the smallest noise multiplier σ (to a relative
// 1e-6) such that steps releases of the sampled Gaussian mechanism with
// sampling rate q are (epsilon, delta)-DP under this package's conversion.
// The answer is always on the safe side: SampledGaussian(q, σ, steps,
// orders).Epsilon(delta) ≤ epsilon holds for the σ returned, which is within
// [MinNoiseMultiplier, MaxNoiseMultiplier]. nil orders means DefaultOrders.
//
// The answer is a pure function of its arguments and takes up to a second
// of accounting, so it is remembered (a few hundred answers per process):
// a site checks a job's plan at admission and makes it at its first
// release, and a coordinator running distributed noise derives the same σ.
func CalibrateNoise(epsilon, delta, q float64, steps int, orders []float64) (float64, error) {
	return calibrations.get(calibrationKey{epsilon, delta, q, steps, ordersKey(orders)}, func() (float64, error) {
		zero, err := Zero(orders)
		if err != nil {
			return 0, fmt.Errorf("calibrate noise: %w", err)
		}
		return calibrate("calibrate noise", zero, epsilon, delta, q, steps)
	})
}

type calibrationKey struct {
	epsilon, delta, q float64
	steps             int
	orders            string
}

func ordersKey(orders []float64) string {
	b := make([]byte, 0, 8*len(orders))
	for _, o := range orders {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o))
	}
	return string(b)
}

// calibrationCache remembers answers; concurrent askers of one key wait for
// one computation.
type calibrationCache struct {
	mu sync.Mutex
	m  map[calibrationKey]*calibration
}

type calibration struct {
	once  sync.Once
	sigma float64
	err   error
}

const maxCalibrations = 256

var calibrations = &calibrationCache{m: map[calibrationKey]*calibration{}}

func (c *calibrationCache) get(k calibrationKey, compute func() (float64, error)) (float64, error) {
	c.mu.Lock()
	e := c.m[k]
	if e == nil {
		if len(c.m) >= maxCalibrations {
			clear(c.m)
		}
		e = &calibration{}
		c.m[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.sigma, e.err = compute() })
	return e.sigma, e.err
}

// CalibrateNoiseAfter is CalibrateNoise for a dataset that has already
// spent the curve spent (its ledger): it returns the smallest σ such that
// spent composed with steps new releases stays within (epsilon, delta). The
// new releases are accounted on spent's orders. It returns
// ErrBudgetExhausted when spent alone already reaches epsilon.
func CalibrateNoiseAfter(spent RDP, epsilon, delta, q float64, steps int) (float64, error) {
	if err := spent.Validate(); err != nil {
		return 0, fmt.Errorf("calibrate noise after spend: spent: %w", err)
	}
	return calibrate("calibrate noise after spend", spent, epsilon, delta, q, steps)
}

func calibrate(what string, spent RDP, epsilon, delta, q float64, steps int) (float64, error) {
	var errs []error
	if math.IsNaN(epsilon) || math.IsInf(epsilon, 0) || epsilon <= 0 {
		errs = append(errs, fmt.Errorf("epsilon = %v: want a finite ε > 0", epsilon))
	}
	if err := checkDelta(delta); err != nil {
		errs = append(errs, err)
	}
	if math.IsNaN(q) || q <= 0 || q > 1 {
		errs = append(errs, fmt.Errorf("sampling rate q = %v: want 0 < q ≤ 1 (q = 0 releases nothing to calibrate)", q))
	}
	if steps < 1 {
		errs = append(errs, fmt.Errorf("steps = %d: want steps ≥ 1", steps))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}

	spentEps, _, err := spent.Epsilon(delta)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if spentEps >= epsilon {
		return 0, fmt.Errorf("%s: %w: already spent ε = %.6g at δ = %g, target ε = %g", what, ErrBudgetExhausted, spentEps, delta, epsilon)
	}

	// fits reports whether σ keeps the total within the target. A σ so
	// small that its RDP overflows does not fit.
	fits := func(sigma float64) (bool, error) {
		c, err := SampledGaussian(q, sigma, steps, spent.Orders)
		if err != nil {
			return false, nil
		}
		total, err := spent.Compose(c)
		if err != nil {
			return false, err
		}
		e, _, err := total.Epsilon(delta)
		if err != nil {
			return false, err
		}
		return e <= epsilon, nil
	}

	// Bracket: lo does not fit, hi does. The invariant means the answer
	// (hi) has always been checked, so it is never on the wrong side of
	// the tolerance.
	lo, hi := 0.0, 1.0
	ok, err := fits(hi)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if ok {
		for {
			next := math.Max(hi/2, MinNoiseMultiplier)
			if ok, err = fits(next); err != nil {
				return 0, fmt.Errorf("%s: %w", what, err)
			}
			if !ok {
				lo = next
				break
			}
			if next == MinNoiseMultiplier {
				return next, nil
			}
			hi = next
		}
	} else {
		for {
			lo, hi = hi, 2*hi
			if hi > searchCeiling {
				return 0, fmt.Errorf("%s: %w: ε = %g at δ = %g needs a noise multiplier above %g (cap %g)", what, ErrNoiseAboveCap, epsilon, delta, searchCeiling, float64(MaxNoiseMultiplier))
			}
			if ok, err = fits(hi); err != nil {
				return 0, fmt.Errorf("%s: %w", what, err)
			}
			if ok {
				break
			}
		}
	}
	for hi-lo > calibrateRelTol*hi {
		mid := lo + (hi-lo)/2
		ok, err := fits(mid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	if hi > MaxNoiseMultiplier {
		return 0, fmt.Errorf("%s: %w: ε = %g at δ = %g needs noise multiplier %.6g, above the cap %g", what, ErrNoiseAboveCap, epsilon, delta, hi, float64(MaxNoiseMultiplier))
	}
	return hi, nil
}
