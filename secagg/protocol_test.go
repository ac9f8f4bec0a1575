package secagg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The promise: whatever sites drop out and when, a round either finishes
// with exactly Σ_{u ∈ U3} x_u mod 2^Bits, or fails with a *TooFewError —
// and it fails only when some secret really lacks t reveals or U3 has fewer
// than t sites.
func TestSumEqualsPlainSumUnderDropouts(t *testing.T) {
	trials := 60
	if testing.Short() {
		trials = 25
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bitsChoices := []int{32, 64, 17, 1, 8}
	finished := 0
	for trial := range trials {
		n := 1 + rng.IntN(20)
		tMin := n/2 + 1
		// Thresholds anywhere in their valid range; dropout rates such that
		// most rounds finish and some do not.
		p := Params{
			Session:   fmt.Appendf(nil, "job-7/round-%d/attempt-0", trial),
			Sites:     siteNames(n),
			Threshold: tMin + rng.IntN(n-tMin+1),
			Bits:      bitsChoices[rng.IntN(len(bitsChoices))],
			Length:    1 + rng.IntN(300),
		}
		q := []float64{0, 0.02, 0.05, 0.1}[rng.IntN(4)]
		t.Run(fmt.Sprintf("%d/n=%d,t=%d,bits=%d,L=%d,q=%v", trial, n, p.Threshold, p.Bits, p.Length, q), func(t *testing.T) {
			if finishRound(t, p, rng, q, uint64(trial)) {
				finished++
			}
		})
	}
	t.Logf("%d of %d rounds finished", finished, trials)
	// The property is only exercised by rounds that finish.
	if finished < trials/2 {
		t.Errorf("only %d of %d rounds finished; the dropout rates leave the sum untested", finished, trials)
	}
}

// SecAgg+: the same promise on sparse Harary graphs of up to 60 sites.
func TestSumEqualsPlainSumSecAggPlus(t *testing.T) {
	trials := 24
	if testing.Short() {
		trials = 10
	}
	rng := rand.New(rand.NewPCG(3, 4))
	finished := 0
	for trial := range trials {
		n := 6 + rng.IntN(55)
		k := 2 + rng.IntN(min(n-2, 13))
		if k%2 == 1 && n%2 == 1 {
			k--
		}
		size := k + 1
		tMin := size/2 + 1
		p := Params{
			Session:   fmt.Appendf(nil, "job-plus/round-%d", trial),
			Sites:     siteNames(n),
			Threshold: tMin + rng.IntN(size-tMin+1),
			Neighbors: k,
			Bits:      []int{32, 17, 64}[rng.IntN(3)],
			Length:    1 + rng.IntN(100),
		}
		q := []float64{0, 0.01, 0.03}[rng.IntN(3)]
		t.Run(fmt.Sprintf("%d/n=%d,k=%d,t=%d,bits=%d,q=%v", trial, n, k, p.Threshold, p.Bits, q), func(t *testing.T) {
			if finishRound(t, p, rng, q, uint64(1000+trial)) {
				finished++
			}
		})
	}
	t.Logf("%d of %d rounds finished", finished, trials)
	if finished < trials/2 {
		t.Errorf("only %d of %d rounds finished; the dropout rates leave the sum untested", finished, trials)
	}
}

func finishRound(t *testing.T, p Params, rng *rand.Rand, q float64, seed uint64) bool {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	inputs := randomInputs(rng, len(p.Sites), p.Length, p.Bits)
	o := runRound(t, p, inputs, randomPlan(rng, len(p.Sites), q), seed)
	can := finishable(p, o)
	switch {
	case can && o.err != nil:
		t.Fatalf("U3 = %d sites, %d revealed: Finish: %v; want success", len(o.u3), len(o.revealed), o.err)
	case !can && o.err == nil:
		t.Fatalf("Finish succeeded although some secret has fewer than t reveals")
	case !can:
		var tf *TooFewError
		if !errors.As(o.err, &tf) {
			t.Fatalf("Finish: %v; want a *TooFewError", o.err)
		}
		return false
	}
	if !slices.Equal(o.sum, o.want) {
		t.Fatalf("sum over U3 (%d sites, U2 %d, revealed %d) differs from the plain sum at %d elements", len(o.u3), len(o.u2), len(o.revealed), countDiff(o.sum, o.want))
	}
	return true
}

func countDiff(a, b []uint64) int {
	d := 0
	for i := range a {
		if a[i] != b[i] {
			d++
		}
	}
	return d
}

// Every kind of dropout, one at a time, on one small complete graph: each
// must still give the exact sum of U3.
func TestEachDropoutPhase(t *testing.T) {
	p := Params{Session: []byte("each-phase"), Sites: siteNames(7), Threshold: 4, Bits: 32, Length: 64}
	inputs := randomInputs(rand.New(rand.NewPCG(5, 6)), 7, p.Length, p.Bits)
	one := func(i int) map[int]bool { return map[int]bool{i: true} }
	cases := []struct {
		name   string
		pl     plan
		u3Size int
	}{
		{"none", plan{}, 7},
		{"before advertise", plan{stopAdvertise: one(2)}, 6},
		{"before sharing", plan{stopShare: one(2)}, 6},
		{"before masked input", plan{stopMasked: one(2)}, 6},
		{"before signing", plan{stopSign: one(2)}, 7},
		{"before revealing", plan{stopReveal: one(2)}, 7},
		{"one per phase", plan{stopAdvertise: one(0), stopShare: one(1), stopMasked: one(2)}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := runRound(t, p, inputs, tc.pl, 9)
			if o.err != nil {
				t.Fatal(o.err)
			}
			if len(o.u3) != tc.u3Size {
				t.Fatalf("U3 has %d sites, want %d", len(o.u3), tc.u3Size)
			}
			if !slices.Equal(o.sum, o.want) {
				t.Fatalf("sum differs from the plain sum of U3 at %d elements", countDiff(o.sum, o.want))
			}
		})
	}
}
