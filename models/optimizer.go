package models

import (
	"errors"
	"fmt"
	"math"
)

// Local optimizers: the update rule a site applies to each minibatch
// gradient in Train. Every architecture hands its gradient to the same
// rule here, so sgd, momentum and adam mean exactly the same thing for
// every model.
//
// Optimizer state (momentum buffers, Adam's moments and step count) lives
// for one Train call: one round at one site. It starts from zero every
// round, because the global weights it would refer to have moved.

// Optimizer names, as a job spec writes them.
const (
	OptimizerSGD  = "sgd"
	OptimizerAdam = "adam"
)

// Adam's defaults, PyTorch's (torch.optim.Adam).
const (
	DefaultAdamBeta1 = 0.9
	DefaultAdamBeta2 = 0.999
	DefaultAdamEps   = 1e-8
)

// OptimizerNames lists the local optimizers.
func OptimizerNames() []string { return []string{OptimizerSGD, OptimizerAdam} }

// OptimizerConfig is the local optimizer of a TrainConfig. The zero value
// is plain SGD. Values are used as given: adam needs Beta2 and Eps set
// (AdamConfig has PyTorch's defaults).
type OptimizerConfig struct {
	Name     string  // sgd (also "") or adam
	Momentum float64 // sgd: heavy-ball momentum μ in [0, 1); 0 is plain SGD
	Beta1    float64 // adam: first-moment decay in [0, 1)
	Beta2    float64 // adam: second-moment decay in [0, 1)
	Eps      float64 // adam: denominator floor, > 0
}

// AdamConfig is Adam with PyTorch's defaults.
func AdamConfig() OptimizerConfig {
	return OptimizerConfig{Name: OptimizerAdam, Beta1: DefaultAdamBeta1, Beta2: DefaultAdamBeta2, Eps: DefaultAdamEps}
}

// Validate says what is wrong with c, as *ParamError values naming the
// parameter ("name", "momentum", "beta1", "beta2", "eps") joined together.
func (c OptimizerConfig) Validate() error {
	var errs []error
	bad := func(param, format string, args ...any) {
		errs = append(errs, &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)})
	}
	unit := func(param string, v float64) {
		if !(v >= 0 && v < 1) {
			bad(param, "%v is out of range; want 0 ≤ %s < 1", v, param)
		}
	}
	notTaken := func(param string, v float64) {
		if v != 0 {
			bad(param, "optimizer %s does not take %s", c.name(), param)
		}
	}
	switch c.name() {
	case OptimizerSGD:
		unit("momentum", c.Momentum)
		notTaken("beta1", c.Beta1)
		notTaken("beta2", c.Beta2)
		notTaken("eps", c.Eps)
	case OptimizerAdam:
		notTaken("momentum", c.Momentum)
		unit("beta1", c.Beta1)
		unit("beta2", c.Beta2)
		if !(c.Eps > 0) || math.IsInf(c.Eps, 0) {
			bad("eps", "%v is out of range; want a finite number > 0 (e.g. 1e-8)", c.Eps)
		}
	default:
		bad("name", "%q is not a local optimizer; valid: sgd, adam", c.Name)
	}
	return errors.Join(errs...)
}

func (c OptimizerConfig) name() string {
	if c.Name == "" {
		return OptimizerSGD
	}
	return c.Name
}

// optimizer applies one update rule to a model's parameter slices, which
// are numbered 0..n−1 in the same order on every step.
type optimizer struct {
	cfg  OptimizerConfig
	lr   float64
	t    int         // steps begun (adam's bias correction)
	m, v [][]float64 // per parameter: momentum buffer or adam's moments
}

func newOptimizer(cfg OptimizerConfig, lr float64) *optimizer {
	return &optimizer{cfg: cfg, lr: lr}
}

// plain reports whether the rule is θ ← θ − lr·g, which the callers keep
// on their original code path so plain SGD stays bit for bit as it was.
func (o *optimizer) plain() bool { return o.cfg.name() == OptimizerSGD && o.cfg.Momentum == 0 }

// begin starts a step: every parameter is updated once between calls.
func (o *optimizer) begin() { o.t++ }

// update applies the rule to parameter i's values w with gradient g.
func (o *optimizer) update(i int, w, g []float64) {
	for len(o.m) <= i {
		o.m, o.v = append(o.m, nil), append(o.v, nil)
	}
	if o.m[i] == nil {
		o.m[i] = make([]float64, len(w))
		if o.cfg.name() == OptimizerAdam {
			o.v[i] = make([]float64, len(w))
		}
	}
	m, v, lr := o.m[i], o.v[i], o.lr
	switch o.cfg.name() {
	case OptimizerAdam:
		// torch.optim.Adam: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
		// θ ← θ − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε).
		b1, b2 := o.cfg.Beta1, o.cfg.Beta2
		step := lr / (1 - math.Pow(b1, float64(o.t)))
		bc2 := math.Sqrt(1 - math.Pow(b2, float64(o.t)))
		for j, gj := range g {
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			w[j] -= step * m[j] / (math.Sqrt(v[j])/bc2 + o.cfg.Eps)
		}
	default:
		// torch.optim.SGD with momentum, no dampening: b ← μ·b + g,
		// θ ← θ − lr·b.
		mu := o.cfg.Momentum
		for j, gj := range g {
			m[j] = mu*m[j] + gj
			w[j] -= lr * m[j]
		}
	}
}
