package models

import (
	"errors"
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

// AggregatorParams are a strategy's parameters as a job spec gives them. A
// nil field was not given: the strategy applies its default, and a
// strategy refuses, with a *ParamError, any parameter it does not take.
// F is an int32 because that is its width on the wire.
type AggregatorParams struct {
	Beta     *float64 // trimmed-mean: fraction of values dropped from each end per coordinate
	F        *int32   // krum, multi-krum: Byzantine sites to tolerate
	ServerLR *float64 // fedadam, fedyogi, fedadagrad: server step size η
	Beta1    *float64 // fedadam, fedyogi, fedadagrad: first-moment decay β1
	Beta2    *float64 // fedadam, fedyogi: second-moment decay β2
	Tau      *float64 // fedadam, fedyogi, fedadagrad: adaptivity floor τ
	Mu       *float64 // fedprox: proximal coefficient μ
}

// ParamError is a bad aggregator parameter: Param names it as a job spec
// spells it ("beta", "f", "server_lr", ...) so the spec can point at the field.
type ParamError struct {
	Param  string
	Reason string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Reason }

// IntoAggregator is implemented by aggregators that can write the next
// model into a buffer the caller no longer needs (a model from an earlier
// round), sparing an allocation the size of the model per round.
type IntoAggregator interface {
	Aggregator
	// AggregateInto is Aggregate, reusing dst's tensors where their
	// shapes match. dst must share no memory with global or the updates;
	// nil dst allocates.
	AggregateInto(dst, global Weights, updates []Update) (Weights, error)
}

// MinUpdater is implemented by aggregators that cannot combine fewer than
// a number of updates, so a job that lists its sites can be refused at
// submit rather than in its first round. Why says where the floor comes
// from, e.g. "n ≥ 2f+3 with f=1".
type MinUpdater interface {
	MinUpdates() (n int, why string)
}

var (
	aggMu       sync.RWMutex
	aggregators = map[string]func(AggregatorParams) (Aggregator, error){
		"fedavg": func(p AggregatorParams) (Aggregator, error) {
			if err := takesOnly("fedavg", p); err != nil {
				return nil, err
			}
			return FedAvg{}, nil
		},
	}
)

// RegisterAggregator makes an aggregator available under name, for job
// specs and NewAggregator: a new strategy is a file that registers itself,
// and nothing else has to learn its name. The factory validates the
// parameters (returning *ParamError for a bad one) and applies defaults.
// Registering a name twice panics.
func RegisterAggregator(name string, f func(p AggregatorParams) (Aggregator, error)) {
	aggMu.Lock()
	defer aggMu.Unlock()
	if _, dup := aggregators[name]; dup || name == "" || f == nil {
		panic(fmt.Sprintf("models: aggregator %q registered twice, unnamed or nil", name))
	}
	aggregators[name] = f
}

// AggregatorNames lists the names NewAggregator accepts, sorted.
func AggregatorNames() []string {
	aggMu.RLock()
	defer aggMu.RUnlock()
	return slices.Sorted(maps.Keys(aggregators))
}

// NewAggregator returns the aggregator with the given name and parameters.
// The empty name selects FedAvg, the default. Bad parameters are reported
// as *ParamError values (joined when there are several).
func NewAggregator(name string, p AggregatorParams) (Aggregator, error) {
	if name == "" {
		name = "fedavg"
	}
	aggMu.RLock()
	f, ok := aggregators[name]
	aggMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown aggregator %q (valid: %s)", name, strings.Join(AggregatorNames(), ", "))
	}
	a, err := f(p)
	if err != nil {
		return nil, fmt.Errorf("aggregator %s: %w", name, err)
	}
	return a, nil
}

// takesOnly refuses every parameter set in p that strategy name does not
// list in takes, naming what it does take.
func takesOnly(name string, p AggregatorParams, takes ...string) error {
	valid := "it takes no parameters"
	if len(takes) > 0 {
		valid = "it takes " + strings.Join(takes, ", ")
	}
	var errs []error
	for _, given := range []struct {
		param string
		set   bool
	}{
		{"beta", p.Beta != nil}, {"f", p.F != nil}, {"server_lr", p.ServerLR != nil},
		{"beta1", p.Beta1 != nil}, {"beta2", p.Beta2 != nil}, {"tau", p.Tau != nil}, {"mu", p.Mu != nil},
	} {
		if given.set && !slices.Contains(takes, given.param) {
			errs = append(errs, &ParamError{Param: given.param, Reason: fmt.Sprintf("%s does not take %s; %s", name, given.param, valid)})
		}
	}
	return errors.Join(errs...)
}
