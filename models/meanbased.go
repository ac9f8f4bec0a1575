package models

// MeanBased is implemented by strategies whose next model depends on a
// round's updates only through their example-weighted mean and total
// weight. They can run on a securely aggregated sum (package secagg),
// which is all the coordinator learns then: given one update holding the
// mean with the total examples as its weight, Aggregate returns what it
// would for the individual updates. Robust strategies (median,
// trimmed-mean, krum) need each site's own update and do not implement it.
type MeanBased interface {
	// OnMean marks the strategy; it is never called.
	OnMean()
}

// OnMean marks FedAvg as MeanBased.
func (FedAvg) OnMean() {}

// OnMean marks FedProx as MeanBased: its sites add the proximal term, the
// server averages.
func (FedProx) OnMean() {}

// OnMean marks the server optimizers as MeanBased: they step on the mean
// update's difference from the global model.
func (*ServerOpt) OnMean() {}
