package models

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Defaults of the server optimizers, from Reddi et al. (2021): β1 0.9,
// β2 0.99 and τ 1e-3 are the values the paper fixes across its tasks; the
// server step size η it tunes per task, and 0.01 is where its best FedAdam
// and FedYogi values cluster. Tune server_lr first.
const (
	DefaultServerLR = 0.01
	DefaultBeta1    = 0.9
	DefaultBeta2    = 0.99
	DefaultTau      = 1e-3
)

// Prefixes of the state tensors: the first and second moment of the
// tensor named after the prefix.
const (
	stateM = "m/"
	stateV = "v/"
)

func init() {
	for _, rule := range []string{"fedadam", "fedyogi", "fedadagrad"} {
		takes := []string{"server_lr", "beta1", "beta2", "tau"}
		if rule == "fedadagrad" {
			// Adagrad sums squared steps; it has no second-moment decay.
			takes = []string{"server_lr", "beta1", "tau"}
		}
		RegisterAggregator(rule, func(p AggregatorParams) (Aggregator, error) {
			if err := takesOnly(rule, p, takes...); err != nil {
				return nil, err
			}
			return newServerOpt(rule, p)
		})
	}
}

// ServerOpt is one of the adaptive server optimizers of Reddi et al.
// (2021), "Adaptive Federated Optimization", Algorithm 2: FedAdam, FedYogi
// and FedAdagrad. The round's pseudo-gradient Δ is FedAvg's average minus
// the global weights; per coordinate
//
//	m ← β1·m + (1−β1)·Δ
//	v ← v + Δ²                      (fedadagrad)
//	v ← β2·v + (1−β2)·Δ²            (fedadam)
//	v ← v − (1−β2)·Δ²·sign(v − Δ²)  (fedyogi)
//	w ← w + η·m/(√v + τ)
//
// starting from m = 0 and v = τ² (the paper's v₋₁ ≥ τ²), without bias
// correction, as in the paper. Arithmetic is float64 per coordinate; m, v
// and w are kept as float32, so the state a checkpoint holds is exactly
// the state the next round uses.
//
// A ServerOpt carries m and v between rounds (see Stateful), so one value
// serves one job. Its methods are not safe for concurrent use.
type ServerOpt struct {
	rule                  string
	lr, beta1, beta2, tau float64
	m, v                  Weights // by global tensor name; nil before the first round
}

func newServerOpt(rule string, p AggregatorParams) (*ServerOpt, error) {
	o := &ServerOpt{rule: rule, lr: DefaultServerLR, beta1: DefaultBeta1, beta2: DefaultBeta2, tau: DefaultTau}
	for _, set := range []struct {
		dst *float64
		src *float64
	}{{&o.lr, p.ServerLR}, {&o.beta1, p.Beta1}, {&o.beta2, p.Beta2}, {&o.tau, p.Tau}} {
		if set.src != nil {
			*set.dst = *set.src
		}
	}
	var errs []error
	if !(o.lr > 0) || math.IsInf(o.lr, 0) {
		errs = append(errs, &ParamError{Param: "server_lr", Reason: fmt.Sprintf("%v is out of range; want a finite server_lr > 0 (the server step size; e.g. 0.01)", o.lr)})
	}
	if !(o.beta1 >= 0 && o.beta1 < 1) {
		errs = append(errs, &ParamError{Param: "beta1", Reason: fmt.Sprintf("%v is out of range; want 0 ≤ beta1 < 1 (the first-moment decay; e.g. 0.9)", o.beta1)})
	}
	if !(o.beta2 >= 0 && o.beta2 < 1) {
		errs = append(errs, &ParamError{Param: "beta2", Reason: fmt.Sprintf("%v is out of range; want 0 ≤ beta2 < 1 (the second-moment decay; e.g. 0.99)", o.beta2)})
	}
	if !(o.tau > 0) || math.IsInf(o.tau, 0) {
		errs = append(errs, &ParamError{Param: "tau", Reason: fmt.Sprintf("%v is out of range; want a finite tau > 0 (the adaptivity floor; e.g. 0.001)", o.tau)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}

// Name returns "fedadam", "fedyogi" or "fedadagrad".
func (o *ServerOpt) Name() string { return o.rule }

// Aggregate averages the updates as FedAvg does and takes one optimizer
// step from global towards the average. The state advances only when the
// step succeeds, so a refused round leaves it as it was.
func (o *ServerOpt) Aggregate(global Weights, updates []Update) (Weights, error) {
	if len(global) == 0 {
		return nil, fmt.Errorf("%s: no global weights to step from", o.rule)
	}
	if err := global.Validate(global); err != nil {
		return nil, fmt.Errorf("%s: global: %w", o.rule, err)
	}
	avg, err := FedAvg{}.Aggregate(global, updates)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.rule, err)
	}
	names := global.Names()
	m, v := o.m, o.v
	if m == nil {
		m, v = make(Weights, len(names)), make(Weights, len(names))
		for _, name := range names {
			m[name] = &Tensor{Name: name, Shape: slices.Clone(global[name].Shape), Data: MakeValues(len(global[name].Data))}
			v[name] = &Tensor{Name: name, Shape: slices.Clone(global[name].Shape), Data: MakeValues(len(global[name].Data))}
			fill(v[name].Data, float32(o.tau*o.tau))
		}
	} else {
		if err := sameLayout(global, names, m); err != nil {
			return nil, fmt.Errorf("%s: restored first moment does not fit the model: %w", o.rule, err)
		}
		if err := sameLayout(global, names, v); err != nil {
			return nil, fmt.Errorf("%s: restored second moment does not fit the model: %w", o.rule, err)
		}
	}
	out := make(Weights, len(names))
	nm, nv := make(Weights, len(names)), make(Weights, len(names))
	for _, name := range names {
		g := global[name]
		x := &Tensor{Name: name, Shape: slices.Clone(g.Shape), Data: MakeValues(len(g.Data))}
		mt := &Tensor{Name: name, Shape: slices.Clone(g.Shape), Data: MakeValues(len(g.Data))}
		vt := &Tensor{Name: name, Shape: slices.Clone(g.Shape), Data: MakeValues(len(g.Data))}
		for i, w := range g.Data {
			d := float64(avg[name].Data[i]) - float64(w)
			mi := o.beta1*float64(m[name].Data[i]) + (1-o.beta1)*d
			vi := o.step(float64(v[name].Data[i]), d*d)
			mt.Data[i], vt.Data[i] = float32(mi), float32(vi)
			x.Data[i] = float32(float64(w) + o.lr*mi/(math.Sqrt(vi)+o.tau))
		}
		out[name], nm[name], nv[name] = x, mt, vt
	}
	if err := out.Validate(out); err != nil {
		return nil, fmt.Errorf("%s: step diverged (try a smaller server_lr): %w", o.rule, err)
	}
	o.m, o.v = nm, nv
	return out, nil
}

// step is the second-moment rule: v's next value given Δ².
func (o *ServerOpt) step(v, d2 float64) float64 {
	switch o.rule {
	case "fedadagrad":
		return v + d2
	case "fedyogi":
		s := 0.0
		switch {
		case v > d2:
			s = 1
		case v < d2:
			s = -1
		}
		return v - (1-o.beta2)*d2*s
	default: // fedadam
		return o.beta2*v + (1-o.beta2)*d2
	}
}

// State returns m and v as tensors "m/<name>" and "v/<name>", or nil
// before the first round.
func (o *ServerOpt) State() Weights {
	if o.m == nil {
		return nil
	}
	out := make(Weights, 2*len(o.m))
	for name, t := range o.m {
		out[stateM+name] = &Tensor{Name: stateM + name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	for name, t := range o.v {
		out[stateV+name] = &Tensor{Name: stateV + name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	return out
}

// Restore replaces m and v with a copy of a State result. Every tensor
// needs its partner of the same shape, every value must be finite, and v
// can never be negative (it would make √v NaN). An empty state resets to
// the start.
func (o *ServerOpt) Restore(w Weights) error {
	if len(w) == 0 {
		o.m, o.v = nil, nil
		return nil
	}
	if err := w.Validate(w); err != nil {
		return fmt.Errorf("%s: restore state: %w", o.rule, err)
	}
	m, v := Weights{}, Weights{}
	for key, t := range w {
		switch {
		case strings.HasPrefix(key, stateM):
			name := key[len(stateM):]
			m[name] = &Tensor{Name: name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
		case strings.HasPrefix(key, stateV):
			name := key[len(stateV):]
			for i, x := range t.Data {
				if x < 0 {
					return fmt.Errorf("%s: restore state: tensor %q has negative second moment %v at index %d", o.rule, key, x, i)
				}
			}
			v[name] = &Tensor{Name: name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
		default:
			return fmt.Errorf("%s: restore state: unexpected tensor %q (want %s<name> and %s<name>)", o.rule, key, stateM, stateV)
		}
	}
	if err := sameLayout(m, m.Names(), v); err != nil {
		return fmt.Errorf("%s: restore state: second moment does not match first: %w", o.rule, err)
	}
	o.m, o.v = m, v
	return nil
}

func fill(dst []float32, x float32) {
	for i := range dst {
		dst[i] = x
	}
}
