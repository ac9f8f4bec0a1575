package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// Mask expansion. A mask is AES-256-CTR (zero IV) keyed with
// HKDF-SHA256(seed, info = label ‖ Session ‖ owner names): ceil(Bits/8)
// little-endian bytes per element, reduced mod 2^Bits. Every key is
// derived for one (session, purpose, parties) and so encrypts one stream,
// which is why a fixed IV is safe. AES-CTR runs in constant time where the
// CPU has AES instructions (amd64 AES-NI, arm64 ARMv8 AES); Go's portable
// AES fallback is table-based and is not.

// prgKey derives the AES key of one mask.
func prgKey(seed []byte, label string, session []byte, names ...string) []byte {
	fields := make([][]byte, 0, 1+len(names))
	fields = append(fields, session)
	for _, n := range names {
		fields = append(fields, []byte(n))
	}
	key, err := hkdf.Key(sha256.New, seed, nil, string(canon(label, fields...)), 32)
	if err != nil {
		// Only a key length above 255·32 bytes fails.
		panic("secagg: hkdf: " + err.Error())
	}
	return key
}

// pairKey is the mask key two sites share: derived from their X25519
// agreement on the s keys, and the same from both ends (names in Sites
// order).
func pairKey(agreed []byte, session []byte, a, b string) []byte {
	if b < a {
		a, b = b, a
	}
	return prgKey(agreed, labelPairMask, session, a, b)
}

// selfKey is the key of site's self mask, from its seed b.
func selfKey(seed []byte, session []byte, site string) []byte {
	return prgKey(seed, labelSelfMask, session, site)
}

// prgChunk is how many elements applyMasks handles at a time: the slice of
// acc (8 bytes each) and one stream's keystream for it stay in L1/L2 while
// every stream is added, so acc crosses memory once, not once per mask.
const prgChunk = 4096

// mask is one keystream to add to (or, with neg, subtract from) a vector.
type mask struct {
	ctr cipher.Stream
	neg bool
}

func newMask(key []byte, neg bool) mask {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("secagg: aes: " + err.Error()) // key is always 32 bytes
	}
	var iv [aes.BlockSize]byte
	return mask{ctr: cipher.NewCTR(block, iv[:]), neg: neg}
}

// applyMasks adds (or subtracts) every mask to acc element-wise mod 2^64.
// Callers reduce mod 2^bits once at the end, which gives the same result as
// reducing each mask element first since 2^bits divides 2^64. Each mask's
// stream is consumed: a mask is applied once.
func applyMasks(acc []uint64, bits int, masks []mask) {
	w := (bits + 7) / 8
	zero := make([]byte, prgChunk*w)
	buf := make([]byte, prgChunk*w)
	for len(acc) > 0 {
		m := min(prgChunk, len(acc))
		a := acc[:m]
		ks := buf[:m*w]
		for _, mk := range masks {
			mk.ctr.XORKeyStream(ks, zero[:m*w])
			addKeystream(a, ks, w, mk.neg)
		}
		acc = acc[m:]
	}
}

// addMask applies one mask.
func addMask(acc []uint64, key []byte, bits int, neg bool) {
	applyMasks(acc, bits, []mask{newMask(key, neg)})
}

// addKeystream adds (or subtracts) the w-byte little-endian words of ks to
// a. The common widths are unrolled eight-fold with the slices re-cut each
// step, which lets the compiler drop the bounds checks: about 3x faster
// than the plain loop, and this loop is most of a site's work.
func addKeystream(a []uint64, ks []byte, w int, neg bool) {
	switch {
	case w == 4 && !neg:
		for len(a) >= 8 && len(ks) >= 32 {
			a[0] += uint64(binary.LittleEndian.Uint32(ks[0:]))
			a[1] += uint64(binary.LittleEndian.Uint32(ks[4:]))
			a[2] += uint64(binary.LittleEndian.Uint32(ks[8:]))
			a[3] += uint64(binary.LittleEndian.Uint32(ks[12:]))
			a[4] += uint64(binary.LittleEndian.Uint32(ks[16:]))
			a[5] += uint64(binary.LittleEndian.Uint32(ks[20:]))
			a[6] += uint64(binary.LittleEndian.Uint32(ks[24:]))
			a[7] += uint64(binary.LittleEndian.Uint32(ks[28:]))
			a, ks = a[8:], ks[32:]
		}
	case w == 4:
		for len(a) >= 8 && len(ks) >= 32 {
			a[0] -= uint64(binary.LittleEndian.Uint32(ks[0:]))
			a[1] -= uint64(binary.LittleEndian.Uint32(ks[4:]))
			a[2] -= uint64(binary.LittleEndian.Uint32(ks[8:]))
			a[3] -= uint64(binary.LittleEndian.Uint32(ks[12:]))
			a[4] -= uint64(binary.LittleEndian.Uint32(ks[16:]))
			a[5] -= uint64(binary.LittleEndian.Uint32(ks[20:]))
			a[6] -= uint64(binary.LittleEndian.Uint32(ks[24:]))
			a[7] -= uint64(binary.LittleEndian.Uint32(ks[28:]))
			a, ks = a[8:], ks[32:]
		}
	case w == 8 && !neg:
		for len(a) >= 4 && len(ks) >= 32 {
			a[0] += binary.LittleEndian.Uint64(ks[0:])
			a[1] += binary.LittleEndian.Uint64(ks[8:])
			a[2] += binary.LittleEndian.Uint64(ks[16:])
			a[3] += binary.LittleEndian.Uint64(ks[24:])
			a, ks = a[4:], ks[32:]
		}
	case w == 8:
		for len(a) >= 4 && len(ks) >= 32 {
			a[0] -= binary.LittleEndian.Uint64(ks[0:])
			a[1] -= binary.LittleEndian.Uint64(ks[8:])
			a[2] -= binary.LittleEndian.Uint64(ks[16:])
			a[3] -= binary.LittleEndian.Uint64(ks[24:])
			a, ks = a[4:], ks[32:]
		}
	}
	// The tail, and every other width.
	for i := range a {
		v := littleEndian(ks[w*i : w*i+w])
		if neg {
			a[i] -= v
		} else {
			a[i] += v
		}
	}
}

func littleEndian(b []byte) uint64 {
	var v uint64
	for j := len(b) - 1; j >= 0; j-- {
		v = v<<8 | uint64(b[j])
	}
	return v
}

func reduce(acc []uint64, bits int) {
	m := ringMask(bits)
	for i := range acc {
		acc[i] &= m
	}
}
