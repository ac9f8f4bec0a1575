package models

import (
	"fmt"
	"strings"
)

// Update is one site's contribution to a round: its locally trained weights
// and the number of training examples behind them.
type Update struct {
	Weights  Weights
	Examples int
}

// Aggregator is a server-side rule that turns a round's site updates into
// the next global model. Implementations must not modify global or the
// updates, and must return an error (never a partial result) when the
// updates are inconsistent, so the coordinator can reject a round cleanly.
type Aggregator interface {
	// Aggregate combines site updates into the next global weights.
	Aggregate(global Weights, updates []Update) (Weights, error)
	// Name is the identifier accepted by NewAggregator.
	Name() string
}

// aggregatorNames lists the names NewAggregator accepts, for error messages.
func aggregatorNames() []string { return []string{"fedavg"} }

// NewAggregator returns the aggregator with the given name. The empty name
// selects FedAvg, the default.
func NewAggregator(name string) (Aggregator, error) {
	switch name {
	case "", "fedavg":
		return FedAvg{}, nil
	}
	return nil, fmt.Errorf("unknown aggregator %q (valid: %s)", name, strings.Join(aggregatorNames(), ", "))
}
