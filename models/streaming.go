package models

import (
	"fmt"

	"gonum.org/v1/gonum/blas/gonum"
)

// FromMean is implemented by MeanBased strategies that can finish a round
// from its example-weighted mean alone, overwriting it: the coordinator
// then aggregates while the updates stream in (each chunk of each site is
// added to one weighted sum as it arrives, and no site's update is held
// whole), divides by the total examples and hands the mean over. The
// coordinator's memory for a round is then the global model, the sum and
// a chunk per site, plus what the strategy keeps itself (a server
// optimizer's moments).
//
// Strategies that need every site's own update (median, trimmed-mean,
// krum, multi-krum) are not MeanBased and take the whole-update path:
// the coordinator holds each update until the round's last one arrives.
type FromMean interface {
	MeanBased
	// NextFromMean returns the next global weights given the round's
	// example-weighted mean of the updates and the examples behind it.
	// It may write the result into mean and return it; global is not
	// modified. A refused round (a non-finite mean, a diverged step)
	// is an error and leaves the strategy's state as it was.
	NextFromMean(global, mean Weights, examples int64) (Weights, error)
}

// NextFromMean is the mean itself, checked against global's layout and
// for finite values.
func (FedAvg) NextFromMean(global, mean Weights, examples int64) (Weights, error) {
	return checkedMean("fedavg", global, mean, examples)
}

// NextFromMean is FedAvg's: the sites add the proximal term, the server
// averages.
func (FedProx) NextFromMean(global, mean Weights, examples int64) (Weights, error) {
	return checkedMean("fedprox", global, mean, examples)
}

func checkedMean(who string, global, mean Weights, examples int64) (Weights, error) {
	if examples < 1 {
		return nil, fmt.Errorf("%s: total example count is %d", who, examples)
	}
	if len(global) > 0 {
		if err := sameLayout(global, global.Names(), mean); err != nil {
			return nil, fmt.Errorf("%s: mean: %w", who, err)
		}
	}
	var blas gonum.Implementation
	zeros := make([]float32, fedAvgChunk)
	for _, name := range mean.Names() {
		d := mean[name].Data
		for off := 0; off < len(d); off += fedAvgChunk {
			chunk := d[off:min(off+fedAvgChunk, len(d))]
			if !allFinite(blas, chunk, zeros) {
				// The inputs were checked as they arrived: the sum overflowed.
				return nil, fmt.Errorf("%s: tensor %q: weighted average overflowed at index %d", who, name, off+firstNonFinite(chunk))
			}
		}
	}
	return mean, nil
}
