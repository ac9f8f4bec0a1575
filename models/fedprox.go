package models

import (
	"fmt"
	"math"
)

// DefaultProxMu is FedProx's μ when a job gives none: Li et al. (2020)
// report 0.01 among the best values across their benchmarks.
const DefaultProxMu = 0.01

func init() {
	RegisterAggregator("fedprox", func(p AggregatorParams) (Aggregator, error) {
		if err := takesOnly("fedprox", p, "mu"); err != nil {
			return nil, err
		}
		mu := DefaultProxMu
		if p.Mu != nil {
			mu = *p.Mu
		}
		if !(mu >= 0) || math.IsInf(mu, 0) {
			return nil, &ParamError{Param: "mu", Reason: fmt.Sprintf("%v is out of range; want a finite mu ≥ 0 (the proximal coefficient; e.g. 0.01, 0 is plain FedAvg)", mu)}
		}
		return FedProx{Mu: mu}, nil
	})
}

// FedProx (Li et al., 2020, "Federated Optimization in Heterogeneous
// Networks") aggregates exactly as FedAvg; what differs is local training,
// where each site adds (Mu/2)·‖w − w_global‖² to its objective so that
// sites with skewed data or many local epochs drift less from the global
// model. Sites learn Mu through the Proximal interface.
type FedProx struct {
	Mu float64 // ≥ 0
}

// Name returns "fedprox".
func (FedProx) Name() string { return "fedprox" }

// ProxMu returns Mu, the sites' proximal coefficient.
func (a FedProx) ProxMu() float64 { return a.Mu }

// Aggregate is FedAvg's example-weighted average.
func (FedProx) Aggregate(global Weights, updates []Update) (Weights, error) {
	return FedAvg{}.Aggregate(global, updates)
}
