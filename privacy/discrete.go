package privacy

import (
	"math"
	"math/rand/v2"
)

// DiscreteGaussian draws from the discrete Gaussian N_Z(0, σ²), the
// distribution on the integers with P(x) ∝ exp(−x²/(2σ²)) (Canonne,
// Kamath & Steinke 2020, "The Discrete Gaussian for Differential
// Privacy", Algorithm 3: a discrete Laplace proposal with scale ⌊σ⌋+1,
// accepted with probability exp(−(|y| − σ²/t)²/(2σ²))). Its Bernoulli
// draws compare a float64 uniform with exp(−γ), so probabilities are
// exact to float64 rounding. It is the noise distributed DP adds to
// integers that are summed exactly in a ring: unlike a rounded continuous
// Gaussian, a sum of discrete Gaussian shares is within a bounded,
// negligible distance of a discrete Gaussian (Kairouz, Liu & Steinke
// 2021), whose Rényi DP is at most the continuous Gaussian's.
// sigma must be positive and finite; rng must be secret to the caller.
func DiscreteGaussian(rng *rand.Rand, sigma float64) int64 {
	t := math.Floor(sigma) + 1
	s2 := sigma * sigma
	for {
		y := discreteLaplace(rng, int64(t))
		d := math.Abs(float64(y)) - s2/t
		if rng.Float64() < math.Exp(-d*d/(2*s2)) {
			return y
		}
	}
}

// discreteLaplace draws from P(x) ∝ exp(−|x|/t) on the integers (ibid.,
// Algorithm 2).
func discreteLaplace(rng *rand.Rand, t int64) int64 {
	for {
		u := rng.Int64N(t)
		if rng.Float64() >= math.Exp(-float64(u)/float64(t)) {
			continue
		}
		var v int64
		for rng.Float64() < math.Exp(-1) {
			v++
		}
		x := u + t*v
		neg := rng.IntN(2) == 1
		if neg && x == 0 {
			continue
		}
		if neg {
			return -x
		}
		return x
	}
}
