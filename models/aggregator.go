package models

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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

var (
	aggMu       sync.RWMutex
	aggregators = map[string]func() Aggregator{"fedavg": func() Aggregator { return FedAvg{} }}
)

// RegisterAggregator makes an aggregator available under name, for job
// specs and NewAggregator: a new strategy is a file that registers itself,
// and nothing else has to learn its name. Registering a name twice panics.
func RegisterAggregator(name string, f func() Aggregator) {
	aggMu.Lock()
	defer aggMu.Unlock()
	if _, dup := aggregators[name]; dup || name == "" {
		panic(fmt.Sprintf("models: aggregator %q registered twice or unnamed", name))
	}
	aggregators[name] = f
}

// AggregatorNames lists the names NewAggregator accepts, sorted.
func AggregatorNames() []string {
	aggMu.RLock()
	defer aggMu.RUnlock()
	return slices.Sorted(maps.Keys(aggregators))
}

// NewAggregator returns the aggregator with the given name. The empty name
// selects FedAvg, the default.
func NewAggregator(name string) (Aggregator, error) {
	if name == "" {
		name = "fedavg"
	}
	aggMu.RLock()
	f, ok := aggregators[name]
	aggMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown aggregator %q (valid: %s)", name, strings.Join(AggregatorNames(), ", "))
	}
	return f(), nil
}
