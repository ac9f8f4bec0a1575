package models

// Stateful is implemented by aggregators that carry state from one round
// to the next (the server optimizers' moment estimates), so a coordinator
// can checkpoint it with the global weights and a resumed job continues
// exactly as an uninterrupted one would.
//
// The state is named tensors, so it travels in the same encoding as the
// weights (EncodeWeights). State returns a copy, nil before the first
// Aggregate; Restore replaces the state with a copy of w, refusing a state
// this aggregator could not have produced. A state that does not fit the
// global model's layout is refused by the next Aggregate.
type Stateful interface {
	State() Weights
	Restore(w Weights) error
}
