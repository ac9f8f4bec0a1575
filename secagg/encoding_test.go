package secagg

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, bits := range []int{12, 17, 32, 53, 64} {
		for _, bound := range []float64{1e-3, 1, 1000} {
			scale, err := ScaleFor(bits, 1, bound)
			if err != nil {
				t.Fatalf("ScaleFor(%d, 1, %g): %v", bits, bound, err)
			}
			e := Encoding{Bits: bits, Scale: scale}
			x := make([]float64, 1000)
			for i := range x {
				x[i] = (2*rng.Float64() - 1) * bound
			}
			x[0], x[1], x[2] = bound, -bound, 0
			codes := make([]uint64, len(x))
			if err := e.Encode(codes, x); err != nil {
				t.Fatal(err)
			}
			back := make([]float64, len(x))
			if err := e.Decode(back, codes); err != nil {
				t.Fatal(err)
			}
			tol := 0.5/scale + math.Abs(bound)*0x1p-52
			for i := range x {
				if d := math.Abs(back[i] - x[i]); d > tol {
					t.Fatalf("bits=%d bound=%g: %g decodes to %g (off by %g > %g)", bits, bound, x[i], back[i], d, tol)
				}
			}
			// float32 path agrees.
			x32 := make([]float32, len(x))
			for i := range x {
				x32[i] = float32(x[i])
			}
			c32 := make([]uint64, len(x))
			if err := e.Encode32(c32, x32); err != nil {
				t.Fatal(err)
			}
			b32 := make([]float32, len(x))
			if err := e.Decode32(b32, c32); err != nil {
				t.Fatal(err)
			}
			for i := range x32 {
				if d := math.Abs(float64(b32[i]) - float64(x32[i])); d > 0.5/scale+math.Abs(bound)*0x1p-23 {
					t.Fatalf("float32: %g decodes to %g", x32[i], b32[i])
				}
			}
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	e := Encoding{Bits: 16, Scale: 1000}
	dst := make([]uint64, 3)
	for _, tc := range []struct {
		x    []float64
		want string
	}{
		{[]float64{0, 33, 1}, "x[1] = 33"}, // 33000 ≥ 2^15
		{[]float64{0, 1, math.NaN()}, "x[2] = NaN"},
		{[]float64{math.Inf(-1), 1, 1}, "x[0] = -Inf"},
		{[]float64{1, 2}, "dst has 3 elements, x has 2"},
	} {
		if err := e.Encode(dst, tc.x); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Encode(%v): %v, want %q", tc.x, err, tc.want)
		}
	}
	// Just inside and just outside the signed range.
	if err := e.Encode(dst[:1], []float64{32.767}); err != nil {
		t.Errorf("32767 fits 16 bits: %v", err)
	}
	if err := e.Encode(dst[:1], []float64{-32.768}); err == nil {
		t.Error("-32768 accepted; the range is symmetric, ±(2^15 − 1)")
	}
	for _, bad := range []Encoding{{Bits: 0, Scale: 1}, {Bits: 65, Scale: 1}, {Bits: 8, Scale: 0}, {Bits: 8, Scale: math.Inf(1)}} {
		if err := bad.Encode(dst[:1], []float64{0}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		if err := bad.Decode(make([]float64, 1), []uint64{0}); err == nil {
			t.Errorf("%+v accepted by Decode", bad)
		}
	}
	if err := e.Decode(make([]float64, 1), []uint64{1 << 16}); err == nil || !strings.Contains(err.Error(), "x[0]") {
		t.Errorf("Decode of a code ≥ 2^16: %v", err)
	}
}

// The overflow bound: at the scale ScaleFor returns, the worst-case sum —
// every term at +bound, or every term at −bound — decodes exactly; twice
// that scale could overflow; and where one more term would overflow at that
// scale, ScaleFor for terms+1 returns a smaller one.
func TestScaleForOverflowBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	tighter := 0
	for trial := range 400 {
		bits := 10 + rng.IntN(55)
		terms := 1 + rng.IntN(2000)
		bound := math.Exp(rng.Float64()*20 - 10)
		s, err := ScaleFor(bits, terms, bound)
		if err != nil {
			continue // too few bits for these figures; TestScaleForRefuses covers it
		}
		if frac, _ := math.Frexp(s); frac != 0.5 {
			t.Fatalf("ScaleFor(%d, %d, %g) = %g is not a power of two", bits, terms, bound, s)
		}
		limit := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)), big.NewInt(1))
		worst := func(scale float64) *big.Int {
			m := new(big.Float).SetFloat64(math.Round(bound * scale))
			mi, _ := m.Int(nil)
			return mi.Mul(mi, big.NewInt(int64(terms)))
		}
		if worst(s).Cmp(limit) > 0 {
			t.Fatalf("trial %d: ScaleFor(%d, %d, %g) = %g overflows: worst sum %v > %v", trial, bits, terms, bound, s, worst(s), limit)
		}
		if worst(2*s).Cmp(limit) <= 0 {
			t.Fatalf("trial %d: ScaleFor(%d, %d, %g) = %g is not the largest: %g fits too", trial, bits, terms, bound, s, 2*s)
		}
		// The worst case, through the ring.
		e := Encoding{Bits: bits, Scale: s}
		for _, v := range []float64{bound, -bound} {
			code := make([]uint64, 1)
			if err := e.Encode(code, []float64{v}); err != nil {
				t.Fatal(err)
			}
			var sum uint64
			for range terms {
				sum += code[0]
			}
			sum &= ringMask(bits)
			got := make([]float64, 1)
			if err := e.Decode(got, []uint64{sum}); err != nil {
				t.Fatal(err)
			}
			want := float64(terms) * math.Round(v*s) / s
			if got[0] != want {
				t.Fatalf("trial %d: %d terms of %g at bits=%d scale=%g decode to %g, want %g", trial, terms, v, bits, s, got[0], want)
			}
		}
		next, err := ScaleFor(bits, terms+1, bound)
		if err != nil {
			continue
		}
		m := math.Round(bound * s)
		over := new(big.Int).Mul(big.NewInt(int64(terms+1)), new(big.Int).SetUint64(uint64(m)))
		switch {
		case over.Cmp(limit) > 0 && next >= s:
			t.Fatalf("trial %d: %d terms overflow at scale %g but ScaleFor gives %g", trial, terms+1, s, next)
		case over.Cmp(limit) > 0:
			tighter++
		case next != s:
			t.Fatalf("trial %d: %d terms still fit at scale %g but ScaleFor gives %g", trial, terms+1, s, next)
		}
	}
	if tighter == 0 {
		t.Fatal("no trial needed a smaller scale for one more term; the test proves nothing")
	}
	// A hand-checked case: 32 bits, bound 1: one term fits 2^30 (2^31 would
	// be 2^31 > 2^31 − 1), two terms need 2^29.
	if s, _ := ScaleFor(32, 1, 1); s != 0x1p30 {
		t.Errorf("ScaleFor(32, 1, 1) = %g, want 2^30", s)
	}
	if s, _ := ScaleFor(32, 2, 1); s != 0x1p29 {
		t.Errorf("ScaleFor(32, 2, 1) = %g, want 2^29", s)
	}
	if s, _ := ScaleFor(32, 1000, 1); s != 0x1p21 {
		t.Errorf("ScaleFor(32, 1000, 1) = %g, want 2^21 (as doc.go says)", s)
	}
}

func TestScaleForRefuses(t *testing.T) {
	for _, tc := range []struct {
		bits, terms int
		bound       float64
		want        string
	}{
		{0, 1, 1, "bits is 0"},
		{65, 1, 1, "bits is 65"},
		{32, 0, 1, "terms is 0"},
		{32, 1, 0, "bound is 0"},
		{32, 1, math.NaN(), "bound is NaN"},
		{32, 1, math.Inf(1), "bound is +Inf"},
		{8, 100, 1, "100 terms of |v| ≤ 1 in 8 bits"}, // scale 1 overflows (100 ≤ 127 but 2 steps)
		{16, 1000, 1, "at least 256"},
	} {
		_, err := ScaleFor(tc.bits, tc.terms, tc.bound)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ScaleFor(%d, %d, %g): %v, want %q", tc.bits, tc.terms, tc.bound, err, tc.want)
		}
	}
	// Scales below 1 are fine for large bounds, as long as the resolution
	// holds.
	if s, err := ScaleFor(32, 10, 1e9); err != nil || s >= 1 {
		t.Errorf("ScaleFor(32, 10, 1e9) = %g, %v; want a scale below 1", s, err)
	}
}

func TestPackUnpack(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	for bits := 1; bits <= 64; bits++ {
		v := make([]uint64, 37)
		for i := range v {
			v[i] = rng.Uint64() & ringMask(bits)
		}
		v[0] = ringMask(bits)
		b, err := Pack(bits, v)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(v) * ((bits + 7) / 8); len(b) != want {
			t.Fatalf("bits=%d: %d bytes, want %d", bits, len(b), want)
		}
		back, err := Unpack(bits, b)
		if err != nil || !slices.Equal(back, v) {
			t.Fatalf("bits=%d: round trip: %v", bits, err)
		}
	}
	if b, _ := Pack(32, []uint64{0x04030201}); !slices.Equal(b, []byte{1, 2, 3, 4}) {
		t.Errorf("Pack is not little-endian: %v", b)
	}
	if _, err := Pack(17, []uint64{1, 1 << 17}); err == nil || !strings.Contains(err.Error(), "v[1]") {
		t.Errorf("Pack of 2^17 in 17 bits: %v", err)
	}
	if _, err := Unpack(17, make([]byte, 7)); err == nil || !strings.Contains(err.Error(), "multiple of 3") {
		t.Errorf("Unpack of 7 bytes at 17 bits: %v", err)
	}
	if _, err := Unpack(17, []byte{0, 0, 0, 0, 0, 2}); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("Unpack of 2^17 in 17 bits: %v", err)
	}
	if _, err := Pack(0, nil); err == nil {
		t.Error("Pack accepted bits = 0")
	}
	if _, err := Unpack(65, nil); err == nil {
		t.Error("Unpack accepted bits = 65")
	}
}
