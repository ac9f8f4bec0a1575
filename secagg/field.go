package secagg

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
)

// Shamir sharing works in GF(p) with p = 2^255 − 19: every secret the
// protocol shares (an X25519 private key, a self-mask seed) is drawn as an
// element of this field, and its 32-byte little-endian form is what the
// rest of the protocol uses.
//
// Elements are four 64-bit limbs, little-endian, holding any value below
// 2^256 that is congruent to the element (so 2^256 ≡ 38 folds carries);
// feCanon gives the unique representative below p. Add, sub, mul, inversion
// and canonicalisation branch on nothing but public loop counts, so they
// run in constant time with respect to the values (math/bits compiles to
// carry-chain instructions). What is not constant time: feFromBytes
// rejecting an encoding ≥ p (it only ever sees shares, which an attacker
// chooses anyway) and feRandom's rejection loop (taken with probability
// 19/2^255).
type fe [4]uint64

const feBytes = 32

// feP is p = 2^255 − 19.
var feP = fe{0xffffffffffffffed, 0xffffffffffffffff, 0xffffffffffffffff, 0x7fffffffffffffff}

func feFromUint(x uint64) fe { return fe{x} }

func feAdd(a, b fe) fe {
	var r fe
	var c uint64
	r[0], c = bits.Add64(a[0], b[0], 0)
	r[1], c = bits.Add64(a[1], b[1], c)
	r[2], c = bits.Add64(a[2], b[2], c)
	r[3], c = bits.Add64(a[3], b[3], c)
	// 2^256 ≡ 38 (mod p). If folding carries again, r had wrapped to below
	// 38, so the second fold cannot carry.
	r[0], c = bits.Add64(r[0], c*38, 0)
	r[1], c = bits.Add64(r[1], 0, c)
	r[2], c = bits.Add64(r[2], 0, c)
	r[3], c = bits.Add64(r[3], 0, c)
	r[0] += c * 38
	return r
}

func feSub(a, b fe) fe {
	var r fe
	var w uint64
	r[0], w = bits.Sub64(a[0], b[0], 0)
	r[1], w = bits.Sub64(a[1], b[1], w)
	r[2], w = bits.Sub64(a[2], b[2], w)
	r[3], w = bits.Sub64(a[3], b[3], w)
	// A borrow added 2^256 ≡ 38: take 38 back. A second borrow means r
	// was below 38 and is now at least 2^256 − 38, so a third cannot occur.
	r[0], w = bits.Sub64(r[0], w*38, 0)
	r[1], w = bits.Sub64(r[1], 0, w)
	r[2], w = bits.Sub64(r[2], 0, w)
	r[3], w = bits.Sub64(r[3], 0, w)
	r[0] -= w * 38
	return r
}

// madd returns x·y + z + c as (hi, lo); it cannot overflow 128 bits.
func madd(x, y, z, c uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(x, y)
	var k uint64
	lo, k = bits.Add64(lo, z, 0)
	hi += k
	lo, k = bits.Add64(lo, c, 0)
	hi += k
	return hi, lo
}

func feMul(a, b fe) fe {
	// Schoolbook 4×4 limbs, unrolled so the eight-limb product lives in
	// registers (the loop form ran about three times slower).
	var t0, t1, t2, t3, t4, t5, t6, t7, c uint64
	c, t0 = madd(a[0], b[0], 0, 0)
	c, t1 = madd(a[0], b[1], 0, c)
	c, t2 = madd(a[0], b[2], 0, c)
	t4, t3 = madd(a[0], b[3], 0, c)

	c, t1 = madd(a[1], b[0], t1, 0)
	c, t2 = madd(a[1], b[1], t2, c)
	c, t3 = madd(a[1], b[2], t3, c)
	t5, t4 = madd(a[1], b[3], t4, c)

	c, t2 = madd(a[2], b[0], t2, 0)
	c, t3 = madd(a[2], b[1], t3, c)
	c, t4 = madd(a[2], b[2], t4, c)
	t6, t5 = madd(a[2], b[3], t5, c)

	c, t3 = madd(a[3], b[0], t3, 0)
	c, t4 = madd(a[3], b[1], t4, c)
	c, t5 = madd(a[3], b[2], t5, c)
	t7, t6 = madd(a[3], b[3], t6, c)

	// r = t_low + 38·t_high (2^256 ≡ 38).
	var r fe
	c, r[0] = madd(t4, 38, t0, 0)
	c, r[1] = madd(t5, 38, t1, c)
	c, r[2] = madd(t6, 38, t2, c)
	c, r[3] = madd(t7, 38, t3, c)
	// c < 39: fold it once more; a further carry leaves r tiny.
	var k uint64
	r[0], k = bits.Add64(r[0], c*38, 0)
	r[1], k = bits.Add64(r[1], 0, k)
	r[2], k = bits.Add64(r[2], 0, k)
	r[3], k = bits.Add64(r[3], 0, k)
	r[0] += k * 38
	return r
}

// feCondSubP returns a − p if a ≥ p, else a, without branching on a.
func feCondSubP(a fe) fe {
	var r fe
	var w uint64
	r[0], w = bits.Sub64(a[0], feP[0], 0)
	r[1], w = bits.Sub64(a[1], feP[1], w)
	r[2], w = bits.Sub64(a[2], feP[2], w)
	r[3], w = bits.Sub64(a[3], feP[3], w)
	keep := -w // all ones when a < p
	for i := range 4 {
		r[i] = r[i]&^keep | a[i]&keep
	}
	return r
}

// feCanon returns the representative below p (2^256 − 1 < 3p, so two
// conditional subtractions suffice).
func feCanon(a fe) fe { return feCondSubP(feCondSubP(a)) }

func feEqual(a, b fe) bool {
	a, b = feCanon(a), feCanon(b)
	return (a[0]^b[0])|(a[1]^b[1])|(a[2]^b[2])|(a[3]^b[3]) == 0
}

// feInv returns a^(p−2) = a^−1 for a ≠ 0 (and 0 for 0), by the fixed
// addition chain of ref10's fe_invert (254 squarings, 11 multiplications);
// the exponent is public, so it runs in constant time.
func feInv(a fe) fe {
	sq := func(x fe, n int) fe {
		for range n {
			x = feMul(x, x)
		}
		return x
	}
	z2 := feMul(a, a)                // 2
	z9 := feMul(sq(z2, 2), a)        // 9
	z11 := feMul(z9, z2)             // 11
	z5 := feMul(feMul(z11, z11), z9) // 2^5 − 1
	z10 := feMul(sq(z5, 5), z5)      // 2^10 − 1
	z20 := feMul(sq(z10, 10), z10)
	z40 := feMul(sq(z20, 20), z20)
	z50 := feMul(sq(z40, 10), z10)
	z100 := feMul(sq(z50, 50), z50)
	z200 := feMul(sq(z100, 100), z100)
	z250 := feMul(sq(z200, 50), z50)
	return feMul(sq(z250, 5), z11) // 2^255 − 32 + 11 = p − 2
}

// feBatchInv inverts every element of xs in place with one inversion
// (Montgomery's trick). No element may be zero.
func feBatchInv(xs []fe) {
	if len(xs) == 0 {
		return
	}
	prefix := make([]fe, len(xs))
	acc := fe{1}
	for i, x := range xs {
		prefix[i] = acc
		acc = feMul(acc, x)
	}
	inv := feInv(acc)
	for i := len(xs) - 1; i >= 0; i-- {
		xi := xs[i]
		xs[i] = feMul(inv, prefix[i])
		inv = feMul(inv, xi)
	}
}

func (a fe) bytes() []byte {
	a = feCanon(a)
	b := make([]byte, feBytes)
	for i := range 4 {
		binary.LittleEndian.PutUint64(b[8*i:], a[i])
	}
	return b
}

var errNotCanonical = errors.New("not a canonical field element (32 little-endian bytes below 2^255 − 19)")

// feFromBytes decodes a canonical 32-byte little-endian element.
func feFromBytes(b []byte) (fe, error) {
	if len(b) != feBytes {
		return fe{}, errNotCanonical
	}
	var a fe
	for i := range 4 {
		a[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if feCanon(a) != a {
		return fe{}, errNotCanonical
	}
	return a, nil
}

// feRandom draws a uniform element from rand by rejection sampling.
func feRandom(rand io.Reader) (fe, error) {
	var buf [feBytes]byte
	for {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return fe{}, err
		}
		buf[31] &= 0x7f
		if a, err := feFromBytes(buf[:]); err == nil {
			return a, nil
		}
	}
}
