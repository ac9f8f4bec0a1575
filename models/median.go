package models

func init() {
	RegisterAggregator("median", func(p AggregatorParams) (Aggregator, error) {
		if err := takesOnly("median", p); err != nil {
			return nil, err
		}
		return Median{}, nil
	})
}

// Median is the coordinate-wise median of the site updates (Yin et al.,
// 2018), unweighted: every site with examples counts once, however many it
// has, so a site cannot buy influence by claiming a large count. With an
// even number of updates each coordinate is the mean of its two middle
// values. Any minority of sites, however extreme their values, cannot move
// a coordinate outside the range of the honest sites' values.
type Median struct{}

// Name returns "median".
func (Median) Name() string { return "median" }

// Aggregate returns the coordinate-wise median of the updates that have
// examples. Layout and errors are as for FedAvg; non-finite values are
// refused.
func (Median) Aggregate(global Weights, updates []Update) (Weights, error) {
	in, err := checkRobust("median", global, updates)
	if err != nil {
		return nil, err
	}
	return in.coordinatewise(func(v []float32) float32 {
		n := len(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return meanOf(v[n/2-1 : n/2+1])
	}), nil
}
