package privacy

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDiscreteGaussianMatchesItsPMF compares draws with the exact
// probabilities P(x) = exp(−x²/2σ²)/Σ_k exp(−k²/2σ²) by a chi-square test,
// at small σ where the lattice shows, and checks mean and variance at the
// large σ distributed DP uses.
func TestDiscreteGaussianMatchesItsPMF(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sigma := range []float64{0.7, 1.5, 4} {
		const n = 200000
		counts := map[int64]int{}
		for range n {
			counts[DiscreteGaussian(rng, sigma)]++
		}
		var z float64
		for k := -100; k <= 100; k++ {
			z += math.Exp(-float64(k*k) / (2 * sigma * sigma))
		}
		// Bins |x| ≤ 3σ one by one, the tails together.
		lim := int64(math.Ceil(3 * sigma))
		var chi, tailObs, tailExp float64
		bins := 0
		for k := -lim - 40; k <= lim+40; k++ {
			p := math.Exp(-float64(k*k)/(2*sigma*sigma)) / z
			if k < -lim || k > lim {
				tailObs += float64(counts[k])
				tailExp += p * n
				continue
			}
			e := p * n
			chi += (float64(counts[k]) - e) * (float64(counts[k]) - e) / e
			bins++
		}
		chi += (tailObs - tailExp) * (tailObs - tailExp) / tailExp
		bins++
		// The 99.9th percentile of chi-square with bins−1 degrees of
		// freedom is below bins + 4·√(2·bins) + 10 for these sizes.
		if limit := float64(bins) + 4*math.Sqrt(2*float64(bins)) + 10; chi > limit {
			t.Errorf("σ=%v: chi-square %.1f over %d bins, above %.1f", sigma, chi, bins, limit)
		}
	}
	for _, sigma := range []float64{1e3, 3.7e6} {
		const n = 100000
		var sum, sq float64
		for range n {
			x := float64(DiscreteGaussian(rng, sigma))
			sum += x
			sq += x * x
		}
		mean, sd := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
		if math.Abs(mean) > 5*sigma/math.Sqrt(n) || math.Abs(sd/sigma-1) > 0.015 {
			t.Errorf("σ=%v: mean %.4g, sd %.4g; want 0 and σ", sigma, mean, sd)
		}
	}
}
