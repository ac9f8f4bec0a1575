package secagg

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

var bigP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

func feToBig(a fe) *big.Int {
	b := new(big.Int)
	for i := 3; i >= 0; i-- {
		b.Lsh(b, 64)
		b.Or(b, new(big.Int).SetUint64(a[i]))
	}
	return b
}

// randomLimbs gives any value below 2^256, including the unreduced
// representatives the arithmetic must accept, and the edges.
func randomLimbs(rng *rand.Rand) fe {
	switch rng.IntN(8) {
	case 0:
		return fe{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	case 1:
		return feP
	case 2:
		return fe{rng.Uint64() % 64}
	}
	return fe{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
}

// The hand-rolled field agrees with math/big on every operation, including
// on unreduced inputs and at the edges (0, p, 2^256 − 1).
func TestFieldMatchesBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	mod := func(x *big.Int) *big.Int { return x.Mod(x, bigP) }
	for range 20000 {
		a, b := randomLimbs(rng), randomLimbs(rng)
		A, B := feToBig(a), feToBig(b)
		check := func(op string, got fe, want *big.Int) {
			t.Helper()
			if g := feToBig(feCanon(got)); g.Cmp(mod(want)) != 0 {
				t.Fatalf("%s(%x, %x) = %x, want %x", op, A, B, g, want)
			}
		}
		check("add", feAdd(a, b), new(big.Int).Add(A, B))
		check("sub", feSub(a, b), new(big.Int).Sub(A, B))
		check("mul", feMul(a, b), new(big.Int).Mul(A, B))
		check("canon", a, new(big.Int).Set(A))
		if mod(new(big.Int).Set(A)).Sign() != 0 {
			check("inv·a", feMul(feInv(a), a), big.NewInt(1))
		}
	}
}

func TestFieldBytes(t *testing.T) {
	rng := seeded(1, 1)
	for range 1000 {
		a, err := feRandom(rng)
		if err != nil {
			t.Fatal(err)
		}
		b, err := feFromBytes(a.bytes())
		if err != nil || b != a {
			t.Fatalf("round trip of %x: %x, %v", a, b, err)
		}
	}
	// p itself and anything above is not canonical.
	if _, err := feFromBytes(feP.bytes()); err != nil {
		t.Fatal("p encodes as 0, which must decode") // bytes() reduces first
	}
	raw := make([]byte, 32)
	for i := range 4 {
		for j := range 8 {
			raw[8*i+j] = byte(feP[i] >> (8 * j))
		}
	}
	if _, err := feFromBytes(raw); err == nil {
		t.Fatal("decoded the non-canonical encoding of p")
	}
	if _, err := feFromBytes(raw[:31]); err == nil {
		t.Fatal("decoded 31 bytes")
	}
}

// Any t of the shares give the secret back; the Lagrange coefficients at a
// holder's own x give its share back (what Finish's spare-share check
// relies on).
func TestShamirAnyTSharesRecover(t *testing.T) {
	rng := seeded(2, 2)
	pick := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct{ n, t int }{{1, 1}, {2, 2}, {5, 3}, {20, 14}, {200, 134}} {
		secret, _ := feRandom(rng)
		xs := make([]uint64, tc.n)
		for i := range xs {
			xs[i] = uint64(i) + 1
		}
		shares, err := shamirSplit(secret, tc.t, xs, rng)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			idx := pick.Perm(tc.n)[:tc.t]
			slices.Sort(idx)
			sx := make([]uint64, tc.t)
			sy := make([]fe, tc.t)
			for j, i := range idx {
				sx[j], sy[j] = xs[i], shares[i]
			}
			if got := combine(lagrangeAt(sx, 0), sy); !feEqual(got, secret) {
				t.Fatalf("n=%d t=%d: holders %v recover %x, want %x", tc.n, tc.t, idx, got, secret)
			}
			if tc.t < tc.n {
				// Predict one more holder's share.
				other := -1
				for i := range tc.n {
					if !slices.Contains(idx, i) {
						other = i
						break
					}
				}
				if got := combine(lagrangeAt(sx, xs[other]), sy); !feEqual(got, shares[other]) {
					t.Fatalf("n=%d t=%d: predicted share of holder %d is wrong", tc.n, tc.t, other)
				}
			}
		}
		if tc.t > 1 {
			// t−1 shares interpolate to something else (with overwhelming
			// probability): the threshold is real.
			sx, sy := xs[:tc.t-1], shares[:tc.t-1]
			if got := combine(lagrangeAt(sx, 0), sy); feEqual(got, secret) {
				t.Fatalf("n=%d t=%d: t−1 shares recovered the secret", tc.n, tc.t)
			}
		}
	}
}
