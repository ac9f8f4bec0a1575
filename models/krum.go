package models

import (
	"fmt"
	"slices"
)

// DefaultKrumF is the number of Byzantine sites krum and multi-krum
// tolerate when a job gives none: the least that tolerates any.
const DefaultKrumF = 1

func init() {
	for _, multi := range []bool{false, true} {
		name := Krum{Multi: multi}.Name()
		RegisterAggregator(name, func(p AggregatorParams) (Aggregator, error) {
			if err := takesOnly(name, p, "f"); err != nil {
				return nil, err
			}
			f := DefaultKrumF
			if p.F != nil {
				f = int(*p.F)
			}
			if f < 0 {
				return nil, &ParamError{Param: "f", Reason: fmt.Sprintf("%d is out of range; want f ≥ 0, the number of Byzantine sites to tolerate (a round then needs n ≥ 2f+3 updates)", f)}
			}
			return Krum{F: f, Multi: multi}, nil
		})
	}
}

// Krum is Krum and Multi-Krum (Blanchard et al., 2017). With n updates of
// which up to F may be Byzantine, each update is scored by the sum of its
// squared Euclidean distances (over all tensors) to its n−F−2 nearest
// neighbours: an honest update sits among the other honest ones, an
// outlier far from them. Krum returns the best-scoring update as it is;
// Multi-Krum averages the n−F best, weighted by examples as FedAvg does,
// which keeps most of FedAvg's statistical efficiency. Both need n ≥ 2F+3.
//
// Score ties go to the earlier update, so the result is deterministic.
type Krum struct {
	F     int  // Byzantine sites tolerated, ≥ 0
	Multi bool // average the n−F best instead of returning the best
}

// Name returns "krum" or "multi-krum".
func (a Krum) Name() string {
	if a.Multi {
		return "multi-krum"
	}
	return "krum"
}

// MinUpdates returns 2F+3, the fewest updates Krum can score.
func (a Krum) MinUpdates() (int, string) {
	return 2*a.F + 3, fmt.Sprintf("n ≥ 2f+3 with f=%d", a.F)
}

// Aggregate scores the updates that have examples and returns the best
// (krum) or the example-weighted average of the n−F best (multi-krum).
// Fewer than 2F+3 such updates is an error naming f and n.
func (a Krum) Aggregate(global Weights, updates []Update) (Weights, error) {
	who := a.Name()
	if a.F < 0 {
		return nil, fmt.Errorf("%s: f=%d is negative", who, a.F)
	}
	in, err := checkRobust(who, global, updates)
	if err != nil {
		return nil, err
	}
	n := len(in.used)
	if need, _ := a.MinUpdates(); n < need {
		return nil, fmt.Errorf("%s: f=%d needs at least %d updates with examples (n ≥ 2f+3), got n=%d", who, a.F, need, n)
	}
	order := a.rank(in)
	if !a.Multi {
		return in.used[order[0]].Weights.Clone(), nil
	}
	best := make([]Update, n-a.F)
	for k, i := range order[:n-a.F] {
		best[k] = in.used[i]
	}
	out, err := FedAvg{}.Aggregate(in.layout, best)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	return out, nil
}

// rank returns the indexes of in.used ordered from best (lowest) Krum
// score to worst. Distances are accumulated in float64: squared float32
// differences cannot overflow it.
func (a Krum) rank(in robustInput) []int {
	n := len(in.used)
	dist := make([]float64, n*n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			var d float64
			for _, name := range in.names {
				x, y := in.used[i].Weights[name].Data, in.used[j].Weights[name].Data
				for p := range x {
					diff := float64(x[p]) - float64(y[p])
					d += diff * diff
				}
			}
			dist[i*n+j], dist[j*n+i] = d, d
		}
	}
	neighbours := n - a.F - 2
	score := make([]float64, n)
	others := make([]float64, 0, n-1)
	for i := range n {
		others = others[:0]
		for j := range n {
			if j != i {
				others = append(others, dist[i*n+j])
			}
		}
		slices.Sort(others)
		for _, d := range others[:neighbours] {
			score[i] += d
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		switch {
		case score[i] < score[j]:
			return -1
		case score[i] > score[j]:
			return 1
		}
		return 0
	})
	return order
}
