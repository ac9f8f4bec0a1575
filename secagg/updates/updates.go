// Package updates is how federa puts a site's model update into the ring
// that secure aggregation sums (package secagg), and reads the sum back.
//
// A site's vector is its example-weighted, clipped update followed by its
// weight and its weighted training loss:
//
//	[ w·clip(local − global, ±Clip) … | w | w·min(loss, LossClip) ]
//
// each segment in fixed point with its own scale, chosen by secagg.ScaleFor
// so the sum over every site asked cannot overflow Z_2^32 even if every
// site sent the largest value the bounds allow. The coordinator divides the
// sums by the total weight: the example-weighted mean update FedAvg takes,
// and the mean loss, and learns nothing per site.
package updates

import (
	"errors"
	"fmt"
	"math"

	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/secagg"
)

// Bits is the ring width federa aggregates in: 4 bytes per parameter, as
// many as the float32 a plain update sends.
const Bits = 32

// LossClip bounds the training loss a site reports through the sum.
const LossClip = 1e6

// Codec encodes and decodes one round's updates. Every party derives it
// from the same figures (New), so a site can check the coordinator's.
type Codec struct {
	Sites     int     // sites asked: the most terms a sum can have
	MaxWeight int64   // the largest weight (examples) a site may give its update
	Clip      float64 // ±bound on each coordinate of local − global
	// The segments' scales.
	DeltaScale, WeightScale, LossScale float64
}

// New derives the codec for sites sites, weights of at most maxWeight and
// coordinates clipped to ±clip. It fails, naming the figures, when even
// the coarsest safe scale cannot carry the sum: that job's sum could
// overflow and is refused before its round.
func New(sites int, maxWeight int64, clip float64) (Codec, error) {
	c := Codec{Sites: sites, MaxWeight: maxWeight, Clip: clip}
	if sites < 1 || maxWeight < 1 || !(clip > 0) || math.IsInf(clip, 0) {
		return c, fmt.Errorf("secure aggregation: %d sites, weights up to %d, clip %g: want at least one site, a positive weight bound and a positive, finite clip", sites, maxWeight, clip)
	}
	var err error
	if c.WeightScale, err = secagg.ScaleFor(Bits, sites, float64(maxWeight)); err != nil || c.WeightScale < 1 {
		return c, fmt.Errorf("secure aggregation: %d sites × up to %d examples each could overflow the %d-bit ring's example total (at most 2^%d − 1); use fewer or smaller sites", sites, maxWeight, Bits, Bits-1)
	}
	// Counts are whole: scale 1 keeps them exact and leaves the most room.
	c.WeightScale = 1
	if c.DeltaScale, err = secagg.ScaleFor(Bits, sites, float64(maxWeight)*clip); err != nil {
		return c, fmt.Errorf("secure aggregation: the weighted update of %d sites × %d examples × clip %g does not fit the %d-bit ring: %w", sites, maxWeight, clip, Bits, err)
	}
	if c.LossScale, err = secagg.ScaleFor(Bits, sites, float64(maxWeight)*LossClip); err != nil {
		// The loss is a report, not the model: a coarse one is better
		// than none, but one that could overflow is refused.
		c.LossScale = math.Ldexp(1, int(math.Floor(math.Log2((math.Ldexp(1, Bits-1)-1)/float64(sites)/(float64(maxWeight)*LossClip)))))
		if !(c.LossScale > 0) {
			return c, fmt.Errorf("secure aggregation: the loss of %d sites × %d examples does not fit the %d-bit ring", sites, maxWeight, Bits)
		}
	}
	return c, nil
}

// Length is the vector length for a model with params parameters.
func (c Codec) Length(params int) int { return params + 2 }

// Encode is a site's vector: its update local − global, clipped to ±Clip
// coordinate-wise and weighted by weight, then its weight and weighted
// loss. It fails when weight is outside 1..MaxWeight (the bound the sum's
// scales were chosen for) or the layouts differ.
func (c Codec) Encode(global, local models.Weights, weight int64, loss float64) ([]uint64, error) {
	if weight < 1 || weight > c.MaxWeight {
		return nil, fmt.Errorf("secure aggregation: this site's update weighs %d examples; the round's encoding allows 1..%d", weight, c.MaxWeight)
	}
	if err := local.Validate(global); err != nil {
		return nil, fmt.Errorf("secure aggregation: the update does not fit the model: %w", err)
	}
	names := global.Names()
	n := 0
	for _, name := range names {
		n += len(global[name].Data)
	}
	vals := make([]float64, 0, n)
	w := float64(weight)
	for _, name := range names {
		g, l := global[name].Data, local[name].Data
		for i := range g {
			d := float64(l[i]) - float64(g[i])
			vals = append(vals, w*max(-c.Clip, min(c.Clip, d)))
		}
	}
	out := make([]uint64, n+2)
	if err := (secagg.Encoding{Bits: Bits, Scale: c.DeltaScale}).Encode(out[:n], vals); err != nil {
		return nil, err
	}
	if math.IsNaN(loss) || loss < 0 {
		loss = LossClip
	}
	if err := (secagg.Encoding{Bits: Bits, Scale: c.WeightScale}).Encode(out[n:n+1], []float64{w}); err != nil {
		return nil, err
	}
	if err := (secagg.Encoding{Bits: Bits, Scale: c.LossScale}).Encode(out[n+1:], []float64{w * min(loss, LossClip)}); err != nil {
		return nil, err
	}
	return out, nil
}

// Decode reads a sum: the example-weighted mean update applied to global
// (what FedAvg of the individual clipped updates gives), the total weight
// and the weighted mean loss.
func (c Codec) Decode(global models.Weights, sum []uint64) (models.Weights, int64, float64, error) {
	names := global.Names()
	n := 0
	for _, name := range names {
		n += len(global[name].Data)
	}
	if len(sum) != n+2 {
		return nil, 0, 0, fmt.Errorf("secure aggregation: the sum has %d values, the model %d parameters (+2)", len(sum), n)
	}
	tail := make([]float64, 2)
	if err := (secagg.Encoding{Bits: Bits, Scale: c.WeightScale}).Decode(tail[:1], sum[n:n+1]); err != nil {
		return nil, 0, 0, err
	}
	if err := (secagg.Encoding{Bits: Bits, Scale: c.LossScale}).Decode(tail[1:], sum[n+1:]); err != nil {
		return nil, 0, 0, err
	}
	total := int64(math.Round(tail[0]))
	if total < 1 {
		return nil, 0, 0, errors.New("secure aggregation: the summed weight is not positive; the sum is not of well-formed updates")
	}
	delta := make([]float64, n)
	if err := (secagg.Encoding{Bits: Bits, Scale: c.DeltaScale}).Decode(delta, sum[:n]); err != nil {
		return nil, 0, 0, err
	}
	out := make(models.Weights, len(names))
	off := 0
	for _, name := range names {
		g := global[name]
		t := &models.Tensor{Name: name, Shape: append([]int(nil), g.Shape...), Data: make([]float32, len(g.Data))}
		for i, v := range g.Data {
			x := float32(float64(v) + delta[off+i]/float64(total))
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, 0, 0, fmt.Errorf("secure aggregation: parameter %d of %s decodes to %v; the sum is not of well-formed updates", i, name, x)
			}
			t.Data[i] = x
		}
		off += len(g.Data)
		out[name] = t
	}
	return out, total, tail[1] / float64(total), nil
}
