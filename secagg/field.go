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

func feMul(a, b fe) fe {
	var t [8]uint64
	for i := range 4 {
		var carry uint64
		for j := range 4 {
			hi, lo := bits.Mul64(a[i], b[j])
			var c uint64
			lo, c = bits.Add64(lo, t[i+j], 0)
			hi += c
			lo, c = bits.Add64(lo, carry, 0)
			hi += c
			t[i+j] = lo
			carry = hi
		}
		t[i+4] = carry
	}
	// r = t_low + 38·t_high.
	var r fe
	var carry, c uint64
	for i := range 4 {
		hi, lo := bits.Mul64(t[i+4], 38)
		lo, c = bits.Add64(lo, carry, 0)
		hi += c
		r[i], c = bits.Add64(t[i], lo, 0)
		carry = hi + c
	}
	// carry < 39: fold it once more; a further carry leaves r tiny.
	r[0], c = bits.Add64(r[0], carry*38, 0)
	r[1], c = bits.Add64(r[1], 0, c)
	r[2], c = bits.Add64(r[2], 0, c)
	r[3], c = bits.Add64(r[3], 0, c)
	r[0] += c * 38
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

// feInv returns a^(p−2) = a^−1 for a ≠ 0 (and 0 for 0). The exponent is
// public, so square-and-multiply over its fixed bits is constant time.
func feInv(a fe) fe {
	// p − 2 = 2^255 − 21: bits 254..5 are all ones, bits 4..0 are 01011.
	r := fe{1}
	for i := 254; i >= 0; i-- {
		r = feMul(r, r)
		if i >= 5 || (0b01011>>i)&1 == 1 {
			r = feMul(r, a)
		}
	}
	return r
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
