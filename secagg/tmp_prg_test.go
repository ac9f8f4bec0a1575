package secagg

import (
	"encoding/binary"
	"testing"
	"crypto/aes"
	"crypto/cipher"
)

func BenchmarkTmpCTR(b *testing.B) {
	key := make([]byte, 32)
	blk, _ := aes.NewCipher(key)
	var iv [16]byte
	ctr := cipher.NewCTR(blk, iv[:])
	buf := make([]byte, 16384)
	zero := make([]byte, 16384)
	b.SetBytes(16384)
	for b.Loop() {
		ctr.XORKeyStream(buf, zero)
	}
}

func BenchmarkTmpApply(b *testing.B) {
	acc := make([]uint64, 1<<20)
	key := make([]byte, 32)
	b.SetBytes(4 << 20)
	for b.Loop() {
		applyMasks(acc, 32, []mask{newMask(key, false), newMask(key, true), newMask(key, false), newMask(key, true)})
	}
}

func addA(a []uint64, ks []byte) {
	for i := range a {
		a[i] += uint64(binary.LittleEndian.Uint32(ks[4*i:]))
	}
}

func addB(a []uint64, ks []byte) {
	ks = ks[:4*len(a)]
	for i := range a {
		a[i] += uint64(binary.LittleEndian.Uint32(ks[4*i : 4*i+4]))
	}
}

func addC(a []uint64, ks []byte) {
	n := len(a) / 2
	ks = ks[:8*n]
	a = a[:2*n]
	for j := 0; j < n; j++ {
		v := binary.LittleEndian.Uint64(ks[8*j:])
		a[2*j] += v & 0xffffffff
		a[2*j+1] += v >> 32
	}
}

func addD(a []uint64, ks []byte) {
	for len(a) >= 4 && len(ks) >= 16 {
		a[0] += uint64(binary.LittleEndian.Uint32(ks[0:]))
		a[1] += uint64(binary.LittleEndian.Uint32(ks[4:]))
		a[2] += uint64(binary.LittleEndian.Uint32(ks[8:]))
		a[3] += uint64(binary.LittleEndian.Uint32(ks[12:]))
		a, ks = a[4:], ks[16:]
	}
}

func BenchmarkTmpAdd(b *testing.B) {
	a := make([]uint64, 4096)
	ks := make([]byte, 4*4096)
	for name, f := range map[string]func([]uint64, []byte){"A": addA, "B": addB, "C": addC, "D": addD} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4096)
			for b.Loop() {
				f(a, ks)
			}
		})
	}
}

func addE(a []uint64, ks []byte) {
	for len(a) >= 4 && len(ks) >= 16 {
		v := binary.LittleEndian.Uint64(ks[0:])
		u := binary.LittleEndian.Uint64(ks[8:])
		a[0] += v & 0xffffffff
		a[1] += v >> 32
		a[2] += u & 0xffffffff
		a[3] += u >> 32
		a, ks = a[4:], ks[16:]
	}
}

func addF(a []uint64, ks []byte) {
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
}

func BenchmarkTmpAdd2(b *testing.B) {
	a := make([]uint64, 4096)
	ks := make([]byte, 4*4096)
	for _, name := range []string{"A", "D", "E", "F", "D", "E", "F"} {
		f := map[string]func([]uint64, []byte){"A": addA, "D": addD, "E": addE, "F": addF}[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4096)
			for b.Loop() {
				f(a, ks)
			}
		})
	}
}
