package updates

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/federa-dev/federa/models"
)

// TestDistributedNoiseSumCarriesTheCalibratedNoise encodes sites' shares,
// sums them in the ring as secure aggregation does, and checks that the sum
// decodes to the noise-free DP-SGD step plus noise whose standard
// deviation is at least σ·Sensitivity in grid units with only the
// threshold's survivors (and more with all sites), while each share alone
// carries only 1/√t of it.
func TestDistributedNoiseSumCarriesTheCalibratedNoise(t *testing.T) {
	const sites, threshold, params = 5, 4, 20000
	const q, sigma, clip = 0.1, 1.3, 1.0
	c, err := NewDP(sites, threshold, 500, params, q, sigma, clip)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scale*clip < dpPrecision*math.Sqrt(params) || c.Sensitivity != c.Scale*clip+math.Sqrt(params) {
		t.Fatalf("codec %+v", c)
	}
	global := models.Weights{"w": {Name: "w", Shape: []int{params}, Data: make([]float32, params)}}
	rng := rand.New(rand.NewPCG(7, 7))
	grads := make([]models.ClippedSum, sites)
	for s := range grads {
		g := make([]float64, params)
		for i := range g {
			g[i] = 3 * rng.NormFloat64()
		}
		grads[s] = models.ClippedSum{Grad: map[string][]float64{"w": g}}
	}
	rows := []int64{100, 200, 300, 400, 500}
	enc := make([][]uint64, sites)
	for s := range sites {
		if enc[s], err = c.Encode(global, grads[s], rows[s], rand.New(rand.NewPCG(uint64(s), 1))); err != nil {
			t.Fatal(err)
		}
	}
	mask := uint64(1)<<Bits - 1
	// noiseSD is the standard deviation, in grid units, of a decoded sum
	// over survivors minus its noise-free value.
	noiseSD := func(survivors []int) float64 {
		sum := make([]uint64, c.Length())
		var n int64
		for _, s := range survivors {
			for i, v := range enc[s] {
				sum[i] = (sum[i] + v) & mask
			}
			n += rows[s]
		}
		const lr = 1.0
		step, total, err := c.Decode(global, sum, lr)
		if err != nil {
			t.Fatal(err)
		}
		if total != n {
			t.Fatalf("summed rows %d, want %d", total, n)
		}
		var sq float64
		for i := range params {
			var exact float64
			for _, s := range survivors {
				exact += math.Round(c.Scale * grads[s].Grad["w"][i])
			}
			// step = −lr·S/(q·N·Scale), S in grid units.
			got := -float64(step["w"].Data[i]) * q * float64(n) * c.Scale / lr
			d := got - exact
			sq += d * d
		}
		return math.Sqrt(sq / params)
	}
	want := sigma * c.Sensitivity
	// float32 weights carry 24 bits: allow 2% on top of sampling error.
	if sd := noiseSD([]int{0, 1, 2, 3}); sd < 0.97*want || sd > 1.03*want {
		t.Fatalf("the sum of %d shares (the threshold) carries noise sd %.4g grid units, want σ·Sensitivity = %.4g", threshold, sd, want)
	}
	if sd := noiseSD([]int{0, 1, 2, 3, 4}); sd < 0.97*want*math.Sqrt(5.0/4) {
		t.Fatalf("the sum of all %d shares carries noise sd %.4g, want at least %.4g", sites, sd, want*math.Sqrt(5.0/4))
	}
	if sd := noiseSD([]int{2}); sd > 1.03*want/math.Sqrt(threshold) {
		t.Fatalf("one share carries noise sd %.4g, want σ·Sensitivity/√t = %.4g", sd, want/math.Sqrt(threshold))
	}
}

func TestNewDPRefusesWhatTheRingCannotCarry(t *testing.T) {
	for _, tc := range []struct {
		name           string
		sites, thr     int
		rows           int64
		params         int
		q, sigma, clip float64
		want           string
	}{
		{"threshold above sites", 3, 4, 100, 10, 0.1, 1, 1, "want 1 ≤ threshold ≤ sites"},
		{"zero rate", 3, 2, 100, 10, 0, 1, 1, "want 0 < q ≤ 1"},
		{"row total", 3, 2, 1 << 30, 10, 0.1, 1, 1, "row total"},
		{"too coarse", 100, 67, 1 << 20, 1 << 20, 0.5, 1, 1, "too coarse"},
	} {
		_, err := NewDP(tc.sites, tc.thr, tc.rows, tc.params, tc.q, tc.sigma, tc.clip)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
