package models

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// DPParams calibrates the Gaussian mechanism for a job that promises
// (epsilon, delta)-differential privacy at each site over rounds releases.
//
// The budget is split evenly across rounds (basic composition: simple,
// conservative, and easy for an auditor to check), and each round uses the
// classic Gaussian mechanism, sigma = Δ·sqrt(2·ln(1.25/δ_r))/ε_r, with
// sensitivity Δ = 2·clip: a clipped update has L2 norm at most clip, so
// changing any one record — even all of them — moves it by at most 2·clip.
// That makes the guarantee hold for every record and for the site's whole
// contribution at once.
type DPParams struct {
	Clip          float64 // L2 bound on an update
	Sigma         float64 // noise standard deviation per coordinate
	RoundEpsilon  float64 // ε spent by one release
	RoundDelta    float64
	TotalEpsilon  float64
	NoiseMultiple float64 // Sigma / Clip
}

// CalibrateDP returns the noise for one round of a job of rounds rounds.
func CalibrateDP(epsilon, delta, clip float64, rounds int) (DPParams, error) {
	switch {
	case !(epsilon > 0) || math.IsInf(epsilon, 0):
		return DPParams{}, fmt.Errorf("dp: epsilon %v must be positive", epsilon)
	case !(delta > 0 && delta < 1):
		return DPParams{}, fmt.Errorf("dp: delta %v must be in (0, 1)", delta)
	case !(clip > 0) || math.IsInf(clip, 0):
		return DPParams{}, fmt.Errorf("dp: clip norm %v must be positive", clip)
	case rounds < 1:
		return DPParams{}, fmt.Errorf("dp: rounds %d must be at least 1", rounds)
	}
	er, dr := epsilon/float64(rounds), delta/float64(rounds)
	sigma := 2 * clip * math.Sqrt(2*math.Log(1.25/dr)) / er
	return DPParams{Clip: clip, Sigma: sigma, RoundEpsilon: er, RoundDelta: dr, TotalEpsilon: epsilon, NoiseMultiple: sigma / clip}, nil
}

// Privatize returns global + clip(local − global) + N(0, σ²) per
// coordinate: the update a site may release under p. It never mutates its
// arguments.
func Privatize(global, local Weights, p DPParams, rng *rand.Rand) (Weights, error) {
	if rng == nil {
		return nil, errors.New("dp: no noise source")
	}
	if err := local.Validate(global); err != nil {
		return nil, fmt.Errorf("dp: %w", err)
	}
	var norm2 float64
	for name, g := range global {
		for i, v := range local[name].Data {
			d := float64(v) - float64(g.Data[i])
			norm2 += d * d
		}
	}
	scale := 1.0
	if n := math.Sqrt(norm2); n > p.Clip {
		scale = p.Clip / n
	}
	out := global.Clone()
	for name, t := range out {
		l := local[name].Data
		for i := range t.Data {
			d := (float64(l[i]) - float64(t.Data[i])) * scale
			t.Data[i] += float32(d + rng.NormFloat64()*p.Sigma)
		}
	}
	return out, nil
}
