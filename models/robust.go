package models

import (
	"fmt"
	"slices"
)

// robustInput is a round's updates checked for the robust strategies
// (median, trimmed-mean, krum): one layout, finite values, and only the
// updates with examples behind them, which are the only ones that count.
type robustInput struct {
	layout Weights  // tensor names and shapes of the result
	names  []string // layout's names, sorted: the flattening order
	used   []Update // updates with Examples > 0, in their original order
}

// checkRobust validates updates as FedAvg does (the layout comes from
// global, or from the first update when global is empty) and also refuses
// non-finite values up front: the robust strategies sort and compare
// values, and a NaN has no place in an order.
func checkRobust(who string, global Weights, updates []Update) (robustInput, error) {
	layout, names, err := layoutOf(who, global, updates)
	if err != nil {
		return robustInput{}, err
	}
	in := robustInput{layout: layout, names: names}
	for i, u := range updates {
		if u.Examples < 0 {
			return robustInput{}, fmt.Errorf("%s: update %d has negative example count %d", who, i, u.Examples)
		}
		if u.Examples == 0 {
			// Like FedAvg: its shape must fit, its values do not matter.
			if err := sameLayout(layout, in.names, u.Weights); err != nil {
				return robustInput{}, fmt.Errorf("%s: update %d: %w", who, i, err)
			}
			continue
		}
		if err := u.Weights.Validate(layout); err != nil {
			return robustInput{}, fmt.Errorf("%s: update %d: %w", who, i, err)
		}
		in.used = append(in.used, u)
	}
	if len(in.used) == 0 {
		return robustInput{}, fmt.Errorf("%s: total example count is zero", who)
	}
	return in, nil
}

// coordinatewise builds the result one coordinate at a time: reduce gets
// that coordinate's values across the used updates, sorted ascending, and
// returns the result's value there. Sorting each coordinate's n values is
// O(P·n log n), cheap for the few sites a federation has.
func (in robustInput) coordinatewise(reduce func(sorted []float32) float32) Weights {
	out := make(Weights, len(in.names))
	col := make([]float32, len(in.used))
	for _, name := range in.names {
		dst := MakeValues(len(in.layout[name].Data))
		for i := range dst {
			for k, u := range in.used {
				col[k] = u.Weights[name].Data[i]
			}
			slices.Sort(col)
			dst[i] = reduce(col)
		}
		out[name] = &Tensor{Name: name, Shape: slices.Clone(in.layout[name].Shape), Data: dst}
	}
	return out
}

// meanOf is the mean of v in float64, so the sum of large float32 values
// cannot overflow before it is divided.
func meanOf(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return float32(s / float64(len(v)))
}
