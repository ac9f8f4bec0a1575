package updates

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/federa-dev/federa/models"
)

func weightsOf(vals ...float32) models.Weights {
	return models.Weights{"w": {Name: "w", Shape: []int{len(vals)}, Data: vals}}
}

// TestSumDecodesToFedAvg: the ring sum of the sites' vectors decodes to
// the example-weighted mean of their clipped updates, the total weight and
// the weighted mean loss, within the documented error sites·clip/2^32 per
// coordinate — also when every site sends the largest value the bounds
// allow, the worst case for overflow.
func TestSumDecodesToFedAvg(t *testing.T) {
	const sites, maxWeight, clip = 5, 1000, 3.0
	c, err := New(sites, maxWeight, clip)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	global := weightsOf(0.5, -1, 2, 0)
	for _, worst := range []bool{false, true} {
		sum := make([]uint64, c.Length(4))
		var want [4]float64
		var total int64
		var lossSum float64
		for range sites {
			w := int64(1 + rng.IntN(maxWeight))
			d := [4]float64{rng.NormFloat64(), 5 * rng.NormFloat64(), -10, 0.25}
			if worst {
				w, d = maxWeight, [4]float64{clip, -clip, clip, -clip}
			}
			local := weightsOf(float32(0.5+d[0]), float32(-1+d[1]), float32(2+d[2]), float32(d[3]))
			loss := rng.Float64()
			x, err := c.Encode(global, local, w, loss)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range x {
				sum[i] = (sum[i] + v) & math.MaxUint32
			}
			for i := range want {
				// What the site's float32 weights hold, clipped.
				di := float64(local["w"].Data[i]) - float64(global["w"].Data[i])
				want[i] += float64(w) * max(-clip, min(clip, di))
			}
			total += w
			lossSum += float64(w) * loss
		}
		mean, gotTotal, gotLoss, err := c.Decode(global, sum)
		if err != nil {
			t.Fatal(err)
		}
		if gotTotal != total || math.Abs(gotLoss-lossSum/float64(total)) > 1e-3 {
			t.Fatalf("worst=%v: total %d loss %v, want %d and %v", worst, gotTotal, gotLoss, total, lossSum/float64(total))
		}
		for i := range want {
			got := float64(mean["w"].Data[i]) - float64(global["w"].Data[i])
			if e := math.Abs(got - want[i]/float64(total)); e > sites*clip/math.Ldexp(1, 32)+1e-6 {
				t.Fatalf("worst=%v: coordinate %d decodes to %v, want %v (error %.3g)", worst, i, got, want[i]/float64(total), e)
			}
		}
	}
}

// TestOverflowIsRefusedBeforeTheRound: bounds whose sum cannot fit the
// ring are refused by New, naming the figures, and a site's weight above
// the bound is refused by Encode.
func TestOverflowIsRefusedBeforeTheRound(t *testing.T) {
	if _, err := New(3, 1<<30, 1); err == nil || !strings.Contains(err.Error(), "could overflow") {
		t.Fatalf("3 sites × 2^30 examples: %v", err)
	}
	c, err := New(3, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Encode(weightsOf(0), weightsOf(0.5), 101, 0); err == nil || !strings.Contains(err.Error(), "1..100") {
		t.Fatalf("weight over the bound: %v", err)
	}
	if _, err := New(0, 100, 1); err == nil {
		t.Fatal("no sites accepted")
	}
}
