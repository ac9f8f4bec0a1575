package privacy

import (
	"errors"
	"fmt"
	"math"
)

// Epsilon converts the curve to (ε, δ)-DP: it returns the smallest ε the
// curve guarantees at this δ and the order that gives it. δ must be in
// (0, 1).
//
// At each order α with RDP value r it uses the conversion of Balle et al.
// (2020), "Hypothesis testing interpretations and Rényi differential
// privacy", Theorem 21 (arXiv:1905.09982; also Canonne, Kamath, Steinke
// 2020, arXiv:2004.00010, Proposition 12) — the one Opacus, TF Privacy and
// dp_accounting use:
//
//	ε(α) = r + log((α−1)/α) − (log δ + log α)/(α−1)
//
// which is below the classic ε = r + log(1/δ)/(α−1) (Mironov 2017,
// Proposition 3) at every order. As in dp_accounting, an order whose r is so
// small that δ² > 1 − e^−r gives ε = 0 (δ bounds the total variation via the
// KL divergence, which r bounds), and ε is never reported below zero.
//
// An optimal order at either end of the curve's orders suggests that a
// wider set of orders would give a smaller ε.
func (r RDP) Epsilon(delta float64) (eps, order float64, err error) {
	if err := r.Validate(); err != nil {
		return 0, 0, fmt.Errorf("epsilon: %w", err)
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, fmt.Errorf("epsilon: %w", err)
	}
	best, at := math.Inf(1), 0
	for i, a := range r.Orders {
		if e := epsAtOrder(a, r.Eps[i], delta); e < best {
			best, at = e, i
		}
	}
	if math.IsNaN(best) || math.IsInf(best, 0) {
		// Unreachable for a valid curve and δ; kept so a future change to the
		// conversion cannot leak a non-finite ε silently.
		return 0, 0, errors.New("epsilon: conversion produced no finite ε")
	}
	return math.Max(0, best), r.Orders[at], nil
}

// epsAtOrder is the (ε, δ) conversion at one order, before clamping at 0.
func epsAtOrder(alpha, rdp, delta float64) float64 {
	if delta*delta+math.Expm1(-rdp) > 0 {
		return 0
	}
	return rdp + math.Log1p(-1/alpha) - (math.Log(delta)+math.Log(alpha))/(alpha-1)
}

func checkDelta(delta float64) error {
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return fmt.Errorf("delta = %v: want 0 < δ < 1", delta)
	}
	return nil
}
