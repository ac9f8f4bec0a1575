package models

// Proximal is implemented by strategies whose sites add a proximal term
// (μ/2)·‖w − w_global‖² to their local objective (FedProx): a site that
// builds the job's aggregator asks it for μ and passes it to training as
// TrainConfig.ProxMu, without knowing the strategy by name.
type Proximal interface {
	ProxMu() float64
}
