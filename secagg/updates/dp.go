package updates

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/privacy"
)

// DPCodec encodes a site's share of one distributed DP-SGD step (package
// models, SumClippedGradients) and reads the step back from the secure sum.
// A site's vector is
//
//	[ round(Scale·clamp(G, ±Bound)) + η | weight | 0 ]
//
// G its sampled rows' clipped gradient sum, η a discrete Gaussian with
// standard deviation ShareSigma in every coordinate, and weight its
// training rows (public: the stats phase reports them). The ring sum is
// exact, so the coordinator learns Σ round(Scale·G_s) + Σ η_s and nothing
// else; with at least Threshold survivors, Σ η_s has variance at least
// (Sigma·Sensitivity)², the noise the accountant calibrated for one step of
// the sampled Gaussian mechanism with rate Q, on a sum whose sensitivity to
// one row is at most Sensitivity (in grid units).
//
// Sensitivity: changing one row moves G by at most ClipNorm in L2; the
// coordinate clamp is 1-Lipschitz and rounding moves each coordinate by at
// most ½, so the integer vector moves by at most Scale·ClipNorm + √Params.
// The coordinate clamp Bound is a function of the data alone, applied
// before the noise; a clamped coordinate costs accuracy, never privacy.
// No loss is reported: a sampled batch's loss would leave without noise.
type DPCodec struct {
	Sites     int   // sites asked: the most shares a sum can have
	Threshold int   // the fewest survivors a sum can have
	MaxWeight int64 // the largest training-row count a site may give
	Params    int   // model parameters
	// The job's DP-SGD step: Poisson rate, noise multiplier of the sum and
	// the per-row L2 clip.
	Q, Sigma, ClipNorm float64
	// Derived.
	Bound       float64 // ±bound on each coordinate of a site's G
	Scale       float64 // grid points per gradient unit, a power of two
	Sensitivity float64 // grid units: Scale·ClipNorm + √Params
	ShareSigma  float64 // grid units: Sigma·Sensitivity/√Threshold
}

// dpTail is how many standard deviations of the summed noise the ring
// leaves room for: a coordinate past it wraps around (a wrong model, never
// a leak), with probability below 10⁻²³.
const dpTail = 10

// dpPrecision bounds the rounding's share of the sensitivity: √Params ≤
// Scale·ClipNorm/dpPrecision, so rounding adds at most 10% to the noise.
// (The noise is calibrated on the whole sensitivity, rounding included, so
// this bounds the cost in accuracy; privacy holds at any precision.)
const dpPrecision = 10

// NewDP derives the codec of a distributed DP-SGD round: sites asked,
// the threshold, the largest row count, the model's parameter count and
// the job's q, σ and clip. It fails, naming the figures, when the 32-bit
// ring cannot carry the sum at a precision that keeps rounding below 10% of
// the noise.
func NewDP(sites, threshold int, maxWeight int64, params int, q, sigma, clip float64) (DPCodec, error) {
	c := DPCodec{Sites: sites, Threshold: threshold, MaxWeight: maxWeight, Params: params, Q: q, Sigma: sigma, ClipNorm: clip}
	switch {
	case sites < 1 || threshold < 1 || threshold > sites || maxWeight < 1 || params < 1:
		return c, fmt.Errorf("distributed DP: %d sites, threshold %d, rows up to %d, %d parameters: want 1 ≤ threshold ≤ sites and positive rows and parameters", sites, threshold, maxWeight, params)
	case !(q > 0 && q <= 1), !(sigma > 0) || math.IsInf(sigma, 0), !(clip > 0) || math.IsInf(clip, 0):
		return c, fmt.Errorf("distributed DP: sampling rate %v, noise multiplier %v, clip %v: want 0 < q ≤ 1 and a positive, finite noise and clip", q, sigma, clip)
	}
	if float64(sites)*float64(maxWeight) >= math.Ldexp(1, Bits-1) {
		return c, fmt.Errorf("distributed DP: %d sites × up to %d rows each could overflow the %d-bit ring's row total; use fewer or smaller sites", sites, maxWeight, Bits)
	}
	// A site's sample has q·rows rows on average; each row adds at most
	// clip to a coordinate. Six standard deviations of the sample's size
	// past its mean is a bound a sample exceeds with probability ~10⁻⁹.
	m := q * float64(maxWeight)
	c.Bound = clip * (m + 6*math.Sqrt(m) + 6)
	// Per coordinate the sum is at most sites·Scale·Bound plus the noise,
	// whose standard deviation is σ·(Scale·clip + √Params)·√(sites/t).
	spread := dpTail * sigma * math.Sqrt(float64(sites)/float64(threshold))
	room := math.Ldexp(1, Bits-1) - 1 - spread*math.Sqrt(float64(params))
	per := float64(sites)*c.Bound + spread*clip
	if room <= 0 {
		return c, fmt.Errorf("distributed DP: the noise for %d parameters at noise multiplier %.3g does not fit the %d-bit ring; use a smaller model", params, sigma, Bits)
	}
	c.Scale = math.Ldexp(1, int(math.Floor(math.Log2(room/per))))
	if c.Scale*clip < dpPrecision*math.Sqrt(float64(params)) {
		return c, fmt.Errorf("distributed DP: %d sites × %.4g expected sampled rows × clip %g leave the %d-bit ring %g grid points per clip norm, too coarse for %d parameters (rounding would add more than 10%% to the noise; want %.3g); lower sampling_rate, use fewer or smaller sites, or a smaller model",
			sites, m, clip, Bits, c.Scale*clip, params, dpPrecision*math.Sqrt(float64(params)))
	}
	c.Sensitivity = c.Scale*clip + math.Sqrt(float64(params))
	c.ShareSigma = sigma * c.Sensitivity / math.Sqrt(float64(threshold))
	return c, nil
}

// Length is the vector length.
func (c DPCodec) Length() int { return c.Params + 2 }

// Encode is a site's vector: its clipped gradient sum over global's
// tensors (in global.Names() order), clamped, rounded and noised with a
// discrete Gaussian share drawn from rng, then its weight and a zero loss.
// rng must be secret to the site.
func (c DPCodec) Encode(global models.Weights, g models.ClippedSum, weight int64, rng *rand.Rand) ([]uint64, error) {
	if weight < 1 || weight > c.MaxWeight {
		return nil, fmt.Errorf("distributed DP: this site's update weighs %d rows; the round's encoding allows 1..%d", weight, c.MaxWeight)
	}
	if rng == nil {
		return nil, errors.New("distributed DP: no noise source")
	}
	out := make([]uint64, 0, c.Length())
	mask := uint64(1)<<Bits - 1
	for _, name := range global.Names() {
		v := g.Grad[name]
		if len(v) != len(global[name].Data) {
			return nil, fmt.Errorf("distributed DP: gradient of %s has %d values, the model %d", name, len(v), len(global[name].Data))
		}
		for _, x := range v {
			if math.IsNaN(x) {
				return nil, fmt.Errorf("distributed DP: gradient of %s is NaN", name)
			}
			z := int64(math.Round(c.Scale*max(-c.Bound, min(c.Bound, x)))) + privacy.DiscreteGaussian(rng, c.ShareSigma)
			out = append(out, uint64(z)&mask)
		}
	}
	if len(out) != c.Params {
		return nil, fmt.Errorf("distributed DP: the model has %d parameters, the round %d", len(out), c.Params)
	}
	return append(out, uint64(weight), 0), nil
}

// Decode reads a sum: the round's step from global, global − lr·S/(Q·N)
// with S the noisy gradient sum and N the summed rows (Q·N the expected
// sample, as DP-SGD divides by), and N.
func (c DPCodec) Decode(global models.Weights, sum []uint64, lr float64) (models.Weights, int64, error) {
	if len(sum) != c.Length() {
		return nil, 0, fmt.Errorf("distributed DP: the sum has %d values, want %d", len(sum), c.Length())
	}
	signed := func(u uint64) float64 {
		u &= uint64(1)<<Bits - 1
		if u >= uint64(1)<<(Bits-1) {
			return float64(int64(u) - int64(1)<<Bits)
		}
		return float64(u)
	}
	total := int64(sum[c.Params] & (uint64(1)<<Bits - 1))
	if total < 1 {
		return nil, 0, errors.New("distributed DP: the summed row count is not positive; the sum is not of well-formed shares")
	}
	step := lr / (c.Q * float64(total) * c.Scale)
	out := make(models.Weights, len(global))
	i := 0
	for _, name := range global.Names() {
		g := global[name]
		t := &models.Tensor{Name: name, Shape: append([]int(nil), g.Shape...), Data: make([]float32, len(g.Data))}
		for j, v := range g.Data {
			x := float32(float64(v) - step*signed(sum[i]))
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				// A hostile share (or a step too large) would put a value
				// past float32 into the model; no site's honest share does.
				return nil, 0, fmt.Errorf("distributed DP: parameter %d of %s decodes to %v; the sum is not of well-formed shares", j, name, x)
			}
			t.Data[j] = x
			i++
		}
		out[name] = t
	}
	if i != c.Params {
		return nil, 0, fmt.Errorf("distributed DP: the model has %d parameters, the round %d", i, c.Params)
	}
	return out, total, nil
}
