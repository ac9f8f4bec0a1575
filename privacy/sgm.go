package privacy

// The RDP computation for the sampled Gaussian mechanism below is ported
// from Opacus, opacus/accountants/analysis/rdp.py (Copyright (c) Meta
// Platforms, Inc. and affiliates; itself based on TF Privacy's
// rdp_accountant.py, Copyright The TensorFlow Authors), both licensed under
// the Apache License, Version 2.0:
// http://www.apache.org/licenses/LICENSE-2.0
//
// The mathematics is Mironov, Talwar, Zhang (2019), "Rényi Differential
// Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530, Section 3.3.
//
// Departures from the Python. None moves a value the reference tests pin
// beyond their tolerance; each either makes a result more accurate or
// replaces an untrustworthy one by an upper bound:
//   - integer orders sum A_α − 1 instead of A_α (the i = 0, 1 terms are
//     exactly 1 in total), so large σ or tiny q does not lose the whole
//     answer to rounding, and the result can never come out below zero;
//   - log(1 − q) is log1p(−q) (as in Google's dp_accounting), log(1/q − 1)
//     is log1p(−q) − log q, and log(erfc(x)/2) is computed in both tails as
//     SciPy's log_ndtr does;
//   - the fractional-order series keeps Opacus's signed sum, but where
//     Opacus would raise (a partial sum going negative), or the sum cancels
//     too much, or its own rounding estimate misses a relative 1e-6, it
//     falls back to the sum of absolute values (dp_accounting since 2024, an
//     upper bound on A_α) and, failing that too, to the chord between the
//     neighbouring integer orders (log A_α is convex in α, so also an upper
//     bound);
//   - the series stops only once its terms are both small and falling, and
//     gives up (to the fallbacks) after 10000 + ⌈α⌉ terms.

import (
	"errors"
	"fmt"
	"math"
)

// SampledGaussian returns the RDP curve of steps releases of the sampled
// Gaussian mechanism: each record joins a batch independently with
// probability q (Poisson sampling), the batch's sum of contributions — each
// clipped to L2 norm C — gets N(0, (noiseMultiplier·C)²) noise per
// coordinate, under add-or-remove-one-record adjacency.
//
// q = 1 is the plain Gaussian mechanism, whose RDP is α/(2σ²) per release;
// q = 0 or steps = 0 spend nothing. nil orders means DefaultOrders.
func SampledGaussian(q, noiseMultiplier float64, steps int, orders []float64) (RDP, error) {
	var errs []error
	if math.IsNaN(q) || q < 0 || q > 1 {
		errs = append(errs, fmt.Errorf("sampling rate q = %v: want 0 ≤ q ≤ 1", q))
	}
	if err := checkNoise(noiseMultiplier); err != nil {
		errs = append(errs, err)
	}
	if steps < 0 {
		errs = append(errs, fmt.Errorf("steps = %d: want steps ≥ 0", steps))
	}
	ords, err := resolveOrders(orders)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return RDP{}, fmt.Errorf("sampled gaussian: %w", err)
	}

	eps := make([]float64, len(ords))
	if q == 0 || steps == 0 {
		return RDP{Orders: ords, Eps: eps}, nil
	}
	for i, a := range ords {
		r := sgmRDP(q, noiseMultiplier, a) * float64(steps)
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return RDP{}, fmt.Errorf("sampled gaussian: RDP at order %v overflows float64 for q = %v, noise multiplier = %v, steps = %d; the noise is far too small to account for", a, q, noiseMultiplier, steps)
		}
		eps[i] = r
	}
	return RDP{Orders: ords, Eps: eps}, nil
}

// Gaussian returns the RDP curve of one release of the Gaussian mechanism
// with the given noise multiplier (σ over the L2 sensitivity): α/(2σ²) at
// each order α. nil orders means DefaultOrders.
func Gaussian(noiseMultiplier float64, orders []float64) (RDP, error) {
	return SampledGaussian(1, noiseMultiplier, 1, orders)
}

func checkNoise(sigma float64) error {
	if math.IsNaN(sigma) || math.IsInf(sigma, 0) || sigma <= 0 {
		return fmt.Errorf("noise multiplier = %v: want a finite value > 0", sigma)
	}
	return nil
}

// sgmRDP is the RDP of one release at order alpha (Opacus _compute_rdp).
func sgmRDP(q, sigma, alpha float64) float64 {
	switch q {
	case 0:
		return 0
	case 1:
		return alpha / (2 * sigma * sigma)
	}
	var logA float64
	if alpha == math.Trunc(alpha) {
		logA = logAInt(q, sigma, int(alpha))
	} else if exact, upper := logAFrac(q, sigma, alpha); !math.IsNaN(exact) {
		logA = exact
	} else {
		// Both fallbacks are upper bounds, so the smaller one is too. The
		// absolute-value sum is close in the usual DP-SGD range but can be
		// far off for large σ with moderate q, where the chord is tight.
		logA = logAFracUpper(q, sigma, alpha)
		if !math.IsNaN(upper) {
			logA = math.Min(logA, upper)
		}
	}
	// A_α ≥ 1 in exact arithmetic; keep rounding from ever making it less.
	return math.Max(0, logA/(alpha-1))
}

// logAInt returns log A_α for integer α ≥ 2 and 0 < q < 1, where
//
//	A_α = Σ_{i=0..α} C(α,i) q^i (1−q)^(α−i) e^((i²−i)/(2σ²))
//
// (Opacus _compute_log_a_for_int_alpha). The binomial weights sum to one and
// the exponent vanishes for i = 0, 1, so it sums A_α − 1 over i ≥ 2 with
// e^x − 1 in place of e^x, then adds the one back in log space: every term
// is positive, so the result has full relative precision however close A_α
// is to 1.
func logAInt(q, sigma float64, alpha int) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	a := float64(alpha)
	twoVar := 2 * sigma * sigma
	logAm1 := math.Inf(-1)
	for i := 2; i <= alpha; i++ {
		fi := float64(i)
		lc, _ := logBinom(a, i)
		s := lc + fi*logQ + (a-fi)*log1mQ + logExpm1((fi*fi-fi)/twoVar)
		logAm1 = logAdd(logAm1, s)
	}
	return log1pExp(logAm1)
}

// logAFracUpper bounds log A_α for fractional α from the neighbouring
// integer orders: log A_α is the cumulant generating function of the
// privacy loss, convex in α, and log A_1 = 0, so it lies below the chord
// between ⌊α⌋ and ⌈α⌉. It is the fallback when the series cannot be trusted,
// and is never below the true value.
func logAFracUpper(q, sigma, alpha float64) float64 {
	lo := math.Floor(alpha)
	t := alpha - lo
	var logLo float64 // log A_1 = 0
	if lo >= 2 {
		logLo = logAInt(q, sigma, int(lo))
	}
	return (1-t)*logLo + t*logAInt(q, sigma, int(lo)+1)
}

// Limits for the fractional-order series. The terms fall off like i^−(α+1)
// once the Gaussian tail takes over, so the usual orders converge within a
// few hundred terms.
const (
	fracMaxExtraTerms = 10000
	// fracStopLog is Opacus's stopping rule: stop once both new terms are
	// below e^−30 (A_α ≥ 1, so that is relative to the total too).
	fracStopLog = -30
	// fracMaxCancel bounds how far below its largest term the signed sum may
	// land before it is not trusted: past e^18 ≈ 6.6e7, rounding in the
	// terms could move the result in the eighth digit.
	fracMaxCancel = 18
	// fracRelTol is the relative accuracy of log A_α the series must reach,
	// by its own rounding estimate, to be used.
	fracRelTol = 1e-6
	// machEps is the float64 unit roundoff.
	machEps = 0x1p-53
)

// logAFrac computes log A_α for fractional α and 0 < q < 1. exact is
// Opacus's signed sum when it converged to within fracRelTol; otherwise it
// is NaN and upper is the sum of absolute values (an upper bound) if that
// converged, else NaN too.
func logAFrac(q, sigma, alpha float64) (exact, upper float64) {
	signed, abs, terms, maxTerm, ok := fracSeries(q, sigma, alpha)
	if !ok {
		return math.NaN(), math.NaN()
	}
	if la, ok := signed.result(terms); ok && maxTerm-la <= fracMaxCancel {
		return la, math.NaN()
	}
	if la, ok := abs.result(terms); ok {
		return math.NaN(), la
	}
	return math.NaN(), math.NaN()
}

// fracSeries sums Opacus's series for fractional α
// (_compute_log_a_for_frac_alpha): A_α splits at z0, where the two
// Gaussians' weighted densities cross, into integrals over (−∞, z0] and
// [z0, ∞), each expanded as a generalised binomial series whose terms
// involve erfc. It sums the series both with signs (Opacus; exact) and in
// absolute value (dp_accounting since 2024; an upper bound), and reports
// the number of terms, the largest term, and whether the terms converged.
func fracSeries(q, sigma, alpha float64) (signed, abs *logSeries, terms int, maxTerm float64, ok bool) {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	twoVar := 2 * sigma * sigma
	sqrt2Sigma := math.Sqrt2 * sigma
	z0 := sigma*sigma*(log1mQ-logQ) + 0.5 // σ² log(1/q − 1) + 1/2

	signed, abs = newLogSeries(), newLogSeries()
	maxTerm = math.Inf(-1)
	lastS0, lastS1 := math.Inf(1), math.Inf(1)
	maxTerms := fracMaxExtraTerms + int(math.Ceil(alpha))
	for n := 0; n < maxTerms; n++ {
		fi := float64(n)
		lc, sign := logBinom(alpha, n)
		j := alpha - fi

		t0 := lc + fi*logQ + j*log1mQ
		t1 := lc + j*logQ + fi*log1mQ
		e0 := logHalfErfc((fi - z0) / sqrt2Sigma)
		e1 := logHalfErfc((z0 - j) / sqrt2Sigma)
		s0 := t0 + (fi*fi-fi)/twoVar + e0
		s1 := t1 + (j*j-j)/twoVar + e1
		if math.IsNaN(s0) || math.IsNaN(s1) || math.IsInf(s0, 1) || math.IsInf(s1, 1) {
			return nil, nil, 0, 0, false // σ so small a term overflows
		}
		maxTerm = math.Max(maxTerm, math.Max(s0, s1))
		abs.add(s0, s1, 1)
		signed.add(s0, s1, sign)
		// Opacus stops at the first term pair below e^−30; also requiring
		// both to be falling guards against stopping in a dip.
		if math.Max(s0, s1) < fracStopLog && s0 <= lastS0 && s1 <= lastS1 {
			return signed, abs, n + 1, maxTerm, true
		}
		lastS0, lastS1 = s0, s1
	}
	return nil, nil, 0, 0, false
}

// logSeries accumulates the two halves of A_α in log space, tracking how
// large the partial sums got so the result's rounding error can be
// estimated.
type logSeries struct {
	a0, a1 float64 // log of each half's partial sum
	m0, m1 float64 // largest |a0|, |a1| seen
	failed bool    // a partial sum went negative (Opacus would raise)
}

func newLogSeries() *logSeries {
	return &logSeries{a0: math.Inf(-1), a1: math.Inf(-1)}
}

func (s *logSeries) add(t0, t1 float64, sign int) {
	if s.failed {
		return
	}
	if sign >= 0 {
		s.a0, s.a1 = logAdd(s.a0, t0), logAdd(s.a1, t1)
	} else {
		var ok0, ok1 bool
		s.a0, ok0 = logSub(s.a0, t0)
		s.a1, ok1 = logSub(s.a1, t1)
		s.failed = !ok0 || !ok1
	}
	if !math.IsInf(s.a0, -1) {
		s.m0 = math.Max(s.m0, math.Abs(s.a0))
	}
	if !math.IsInf(s.a1, -1) {
		s.m1 = math.Max(s.m1, math.Abs(s.a1))
	}
}

// result returns log A_α and whether it is accurate to fracRelTol. Each
// log-space step adds an error of about machEps times the magnitude of the
// logarithm it works on, and a half's error reaches the total in proportion
// to its share; when A_α is within ~1e-12 of 1 (tiny q, huge σ) the halves
// are near e^0 and e^log q while their sum is near 1 + 1e-20, and the
// estimate shows the cancellation.
func (s *logSeries) result(terms int) (float64, bool) {
	if s.failed {
		return math.NaN(), false
	}
	la := logAdd(s.a0, s.a1)
	if math.IsNaN(la) || math.IsInf(la, 0) || la <= 0 {
		return la, false
	}
	// Values near float64's smallest normal (q ≈ 1e-308 and below) lose
	// relative precision outright; the floor sends them to the fallback.
	steps := 4 * float64(terms+4)
	errEst := steps * (machEps*(la+math.Exp(s.a0-la)*s.m0+math.Exp(s.a1-la)*s.m1) + 0x1p-1022)
	return la, errEst <= fracRelTol*la
}
