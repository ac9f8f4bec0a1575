package models

import (
	"fmt"
	"math"
)

// DefaultTrimBeta is the trimmed fraction per end when a job gives none.
const DefaultTrimBeta = 0.1

func init() {
	RegisterAggregator("trimmed-mean", func(p AggregatorParams) (Aggregator, error) {
		if err := takesOnly("trimmed-mean", p, "beta"); err != nil {
			return nil, err
		}
		beta := DefaultTrimBeta
		if p.Beta != nil {
			beta = *p.Beta
		}
		if !(beta >= 0 && beta < 0.5) {
			return nil, &ParamError{Param: "beta", Reason: fmt.Sprintf("%v is out of range; want 0 ≤ beta < 0.5 (the fraction of values dropped from each end; e.g. 0.1)", beta)}
		}
		return TrimmedMean{Beta: beta}, nil
	})
}

// TrimmedMean is the coordinate-wise trimmed mean (Yin et al., 2018): per
// coordinate, the floor(Beta·n) largest and as many smallest of the n site
// values are dropped and the rest averaged, unweighted. It tolerates up to
// floor(Beta·n) arbitrary sites and, unlike the median, still averages
// away the honest sites' noise. Beta 0 is the plain unweighted mean.
type TrimmedMean struct {
	Beta float64 // in [0, 0.5)
}

// Name returns "trimmed-mean".
func (TrimmedMean) Name() string { return "trimmed-mean" }

// Trimmed returns how many values are dropped from each end with n
// updates. The small tolerance keeps products like 0.35·20, which is
// 6.9999999999999996 in floating point, at the 7 a user means.
func (a TrimmedMean) Trimmed(n int) int {
	// At least one value always remains, even for a beta a hair below 0.5.
	return min(int(math.Floor(a.Beta*float64(n)+1e-9)), (n-1)/2)
}

// Aggregate returns the coordinate-wise trimmed mean of the updates that
// have examples. Layout and errors are as for FedAvg; non-finite values
// are refused.
func (a TrimmedMean) Aggregate(global Weights, updates []Update) (Weights, error) {
	if !(a.Beta >= 0 && a.Beta < 0.5) {
		return nil, fmt.Errorf("trimmed-mean: beta %v is out of range; want 0 ≤ beta < 0.5", a.Beta)
	}
	in, err := checkRobust("trimmed-mean", global, updates)
	if err != nil {
		return nil, err
	}
	k := a.Trimmed(len(in.used))
	return in.coordinatewise(func(v []float32) float32 {
		return meanOf(v[k : len(v)-k])
	}), nil
}
