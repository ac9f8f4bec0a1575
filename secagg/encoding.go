package secagg

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// MinResolution is the fewest quantisation steps ScaleFor accepts between 0
// and the bound: with fewer, rounding (up to half a step per value) would
// cost more than 1/512 of the bound.
const MinResolution = 256

// Encoding is the fixed-point code between real values and the ring
// Z_2^Bits: v ↦ round(v·Scale) mod 2^Bits (two's complement, rounding half
// away from zero), decoded with the centred lift: a ring element r is read
// as r if r < 2^(Bits−1), else r − 2^Bits, then divided by Scale. Sums of
// codes decode to the sum of the rounded values exactly as long as the true
// sum stays within ±(2^(Bits−1) − 1); ScaleFor picks a Scale for which it
// must.
type Encoding struct {
	Bits  int
	Scale float64
}

func (e Encoding) validate(op string) error {
	if e.Bits < 1 || e.Bits > 64 {
		return fmt.Errorf("secagg: %s: Encoding.Bits is %d; it must be in 1..64", op, e.Bits)
	}
	if !(e.Scale > 0) || math.IsInf(e.Scale, 0) {
		return fmt.Errorf("secagg: %s: Encoding.Scale is %g; it must be positive and finite", op, e.Scale)
	}
	return nil
}

// Encode writes the code of each x[i] to dst[i] (len(dst) must equal
// len(x)). It fails, naming the element, if a value is NaN or infinite or
// if |round(x·Scale)| is not below 2^(Bits−1); dst is then partly written.
func (e Encoding) Encode(dst []uint64, x []float64) error { return encode(e, dst, x) }

// Encode32 is Encode for float32 values (model weights), without a float64
// copy.
func (e Encoding) Encode32(dst []uint64, x []float32) error { return encode(e, dst, x) }

func encode[F float32 | float64](e Encoding, dst []uint64, x []F) error {
	if err := e.validate("encode"); err != nil {
		return err
	}
	if len(dst) != len(x) {
		return fmt.Errorf("secagg: encode: dst has %d elements, x has %d", len(dst), len(x))
	}
	limit := math.Ldexp(1, e.Bits-1)
	m := ringMask(e.Bits)
	for i, v := range x {
		r := math.Round(float64(v) * e.Scale)
		if !(math.Abs(r) < limit) { // also catches NaN
			return fmt.Errorf("secagg: encode: x[%d] = %g scales to %g, outside the signed range of %d bits (|v·Scale| < 2^%d); lower Encoding.Scale (see ScaleFor)", i, float64(v), r, e.Bits, e.Bits-1)
		}
		dst[i] = uint64(int64(r)) & m
	}
	return nil
}

// Decode writes the value of each code x[i] to dst[i] (len(dst) must equal
// len(x)). It fails, naming the element, on a code not below 2^Bits. With
// Bits > 53 codes above 2^53 lose precision in float64.
func (e Encoding) Decode(dst []float64, x []uint64) error { return decode(e, dst, x) }

// Decode32 is Decode into float32 values.
func (e Encoding) Decode32(dst []float32, x []uint64) error { return decode(e, dst, x) }

func decode[F float32 | float64](e Encoding, dst []F, x []uint64) error {
	if err := e.validate("decode"); err != nil {
		return err
	}
	if len(dst) != len(x) {
		return fmt.Errorf("secagg: decode: dst has %d elements, x has %d", len(dst), len(x))
	}
	m := ringMask(e.Bits)
	shift := uint(64 - e.Bits)
	for i, r := range x {
		if r > m {
			return fmt.Errorf("secagg: decode: x[%d] = %d is not below 2^%d (Encoding.Bits)", i, r, e.Bits)
		}
		// Shifting the sign bit of the ring to bit 63 and back sign-extends:
		// the centred lift.
		signed := int64(r<<shift) >> shift
		dst[i] = F(float64(signed) / e.Scale)
	}
	return nil
}

// ScaleFor returns the largest power-of-two scale S (possibly below 1) for
// which a sum of terms values, each with |v| ≤ bound, cannot leave the
// signed range of the ring: terms·round(bound·S) ≤ 2^(bits−1) − 1. Rounding
// is monotone, so every value encodes to at most round(bound·S) in
// magnitude and the sum of codes decodes exactly to the sum of the rounded
// values; each value is off by at most 1/(2S) from its code.
//
// It fails, naming the figures, on bits outside 1..64, terms < 1, a bound
// that is not positive and finite, and when that scale leaves fewer than
// MinResolution steps at the bound (bound·S < 256): for bounds up to 256
// this includes every case where even scale 1 would overflow.
func ScaleFor(bits int, terms int, bound float64) (float64, error) {
	if bits < 1 || bits > 64 {
		return 0, fmt.Errorf("secagg: scale for: bits is %d; it must be in 1..64", bits)
	}
	if terms < 1 {
		return 0, fmt.Errorf("secagg: scale for: terms is %d; it must be at least 1", terms)
	}
	if !(bound > 0) || math.IsInf(bound, 0) {
		return 0, fmt.Errorf("secagg: scale for: bound is %g; it must be positive and finite", bound)
	}
	limit := uint64(1)<<uint(bits-1) - 1
	fits := func(e int) bool {
		m := math.Round(math.Ldexp(bound, e))
		if m >= 0x1p64 {
			return false
		}
		return productAtMost(uint64(terms), uint64(m), limit)
	}
	// Start from the real-valued answer and step to the exact power of two.
	const eMin, eMax = -1074, 1023
	e := int(math.Floor(math.Log2(float64(limit) / float64(terms) / bound)))
	e = max(eMin, min(eMax, e))
	for e < eMax && fits(e+1) {
		e++
	}
	for e > eMin && !fits(e) {
		e--
	}
	s := math.Ldexp(1, e)
	if !fits(e) || bound*s < MinResolution {
		return 0, fmt.Errorf("secagg: scale for: %d terms of |v| ≤ %g in %d bits: the largest safe scale is 2^%d, leaving %.3g steps at the bound; at least %d are needed (terms·bound·scale must stay ≤ 2^%d − 1): use more bits, fewer terms or a smaller bound", terms, bound, bits, e, bound*s, MinResolution, bits-1)
	}
	return s, nil
}

// productAtMost reports whether a·b ≤ limit, without overflow.
func productAtMost(a, b, limit uint64) bool {
	hi, lo := bits.Mul64(a, b)
	return hi == 0 && lo <= limit
}

// Pack writes v as ceil(bits/8) little-endian bytes per element: the wire
// form of a masked vector. It fails, naming the element, on bits outside
// 1..64 and on an element not below 2^bits.
func Pack(bits int, v []uint64) ([]byte, error) {
	if bits < 1 || bits > 64 {
		return nil, fmt.Errorf("secagg: pack: bits is %d; it must be in 1..64", bits)
	}
	m := ringMask(bits)
	w := (bits + 7) / 8
	out := make([]byte, len(v)*w)
	for i, x := range v {
		if x > m {
			return nil, fmt.Errorf("secagg: pack: v[%d] = %d is not below 2^%d", i, x, bits)
		}
		switch w {
		case 4:
			binary.LittleEndian.PutUint32(out[4*i:], uint32(x))
		case 8:
			binary.LittleEndian.PutUint64(out[8*i:], x)
		default:
			for j := range w {
				out[w*i+j] = byte(x >> (8 * j))
			}
		}
	}
	return out, nil
}

// Unpack reads what Pack wrote. It fails on bits outside 1..64, a length
// that is not a multiple of ceil(bits/8), and, naming the element, on a
// value not below 2^bits.
func Unpack(bits int, b []byte) ([]uint64, error) {
	if bits < 1 || bits > 64 {
		return nil, fmt.Errorf("secagg: unpack: bits is %d; it must be in 1..64", bits)
	}
	w := (bits + 7) / 8
	if len(b)%w != 0 {
		return nil, fmt.Errorf("secagg: unpack: %d bytes is not a multiple of %d (ceil(%d/8) bytes per element)", len(b), w, bits)
	}
	m := ringMask(bits)
	out := make([]uint64, len(b)/w)
	for i := range out {
		var x uint64
		switch w {
		case 4:
			x = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		case 8:
			x = binary.LittleEndian.Uint64(b[8*i:])
		default:
			x = littleEndian(b[w*i : w*i+w])
		}
		if x > m {
			return nil, fmt.Errorf("secagg: unpack: element %d is %d, not below 2^%d", i, x, bits)
		}
		out[i] = x
	}
	return out, nil
}
