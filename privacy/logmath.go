package privacy

import "math"

// Log-space helpers. Every quantity the accountant sums can be far outside
// float64's range (e^(i²/2σ²) for small σ), so sums are kept as logarithms
// throughout, as in Opacus and TF Privacy.

// logAdd returns log(e^x + e^y).
func logAdd(x, y float64) float64 {
	a, b := math.Min(x, y), math.Max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logSub returns log(e^x − e^y) and false when the difference would be
// negative, where Opacus raises "The result of subtraction must be
// non-negative".
func logSub(x, y float64) (float64, bool) {
	switch {
	case x < y:
		return math.NaN(), false
	case math.IsInf(y, -1):
		return x, true
	case x == y:
		return math.Inf(-1), true
	}
	return x + math.Log(-math.Expm1(y-x)), true
}

// logExpm1 returns log(e^x − 1) for x ≥ 0, accurate for both tiny and huge
// x (e^x itself overflows beyond x ≈ 709).
func logExpm1(x float64) float64 {
	if x > 50 {
		return x + math.Log1p(-math.Exp(-x))
	}
	return math.Log(math.Expm1(x))
}

// log1pExp returns log(1 + e^x).
func log1pExp(x float64) float64 {
	if x > 35 {
		return x + math.Exp(-x)
	}
	return math.Log1p(math.Exp(x))
}

// logBinom returns log|C(a, k)| and the sign of C(a, k) for real a > −1 and
// integer k ≥ 0. For fractional a the coefficient's sign alternates once
// k > a, which the fractional-order series relies on.
func logBinom(a float64, k int) (float64, int) {
	fk := float64(k)
	if a == math.Trunc(a) && fk > a {
		return math.Inf(-1), 0
	}
	ln1, s1 := math.Lgamma(a + 1)
	ln2, _ := math.Lgamma(fk + 1)
	ln3, s3 := math.Lgamma(a - fk + 1)
	return ln1 - ln2 - ln3, s1 * s3
}

// logHalfErfc returns log(erfc(x)/2) = log Φ(−x√2), accurate in both
// tails, as SciPy's log_ndtr is: Opacus writes it as log(0.5) +
// _log_erfc(x), which for x well below zero would lose everything under
// 1e-16 of a value near zero.
func logHalfErfc(x float64) float64 {
	if x < 0 {
		return math.Log1p(-0.5 * math.Erfc(-x)) // erfc(x) = 2 − erfc(−x)
	}
	return logErfc(x) - math.Ln2
}

// logErfcAsymptoticFrom is where logErfc switches from math.Erfc to the
// asymptotic expansion: math.Erfc underflows to zero near x ≈ 27.
const logErfcAsymptoticFrom = 25.0

// logErfc returns log(erfc(x)), accurate far into the tail where erfc(x)
// underflows; it stands in for SciPy's log_ndtr (log erfc(x) = log 2 +
// log_ndtr(−x√2)).
func logErfc(x float64) float64 {
	if x < logErfcAsymptoticFrom {
		return math.Log(math.Erfc(x))
	}
	// erfc(x) = e^(−x²)/(x√π) · Σ (−1)^n (2n−1)!!/(2x²)^n. At x ≥ 25 the
	// terms fall below 1e-16 by n = 7.
	inv := 1 / (2 * x * x)
	sum, term := 1.0, 1.0
	for n := 1; n <= 8; n++ {
		term *= -float64(2*n-1) * inv
		sum += term
	}
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(sum)
}
