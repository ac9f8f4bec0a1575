package secagg

import (
	"crypto/ecdh"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// chiSquareTop8 bins the top 8 bits of 32-bit values into 256 bins and
// returns Pearson's statistic against the uniform distribution.
func chiSquareTop8(v []uint64) float64 {
	var bins [256]float64
	for _, x := range v {
		bins[x>>24]++
	}
	want := float64(len(v)) / 256
	var chi float64
	for _, b := range bins {
		chi += (b - want) * (b - want) / want
	}
	return chi
}

// chiSquareCritical is the statistic a uniform sample exceeds with
// probability p, for df degrees of freedom (Wilson–Hilferty; accurate to
// well under 1% at df = 255).
func chiSquareCritical(df int, p float64) float64 {
	z := math.Sqrt2 * math.Erfinv(1-2*p)
	k := float64(df)
	return k * math.Pow(1-2/(9*k)+z*math.Sqrt(2/(9*k)), 3)
}

// gaussianInputs are encoded N(0,1) values: what a model update looks like
// in the ring, and nothing like uniform in its top bits.
func gaussianInputs(t *testing.T, n, length int) [][]uint64 {
	rng := rand.New(rand.NewPCG(21, 22))
	scale, err := ScaleFor(32, n, 8)
	if err != nil {
		t.Fatal(err)
	}
	enc := Encoding{Bits: 32, Scale: scale}
	out := make([][]uint64, n)
	for i := range out {
		x := make([]float64, length)
		for j := range x {
			x[j] = max(-8, min(8, rng.NormFloat64()))
		}
		out[i] = make([]uint64, length)
		if err := enc.Encode(out[i], x); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// What the coordinator sees of one site, its masked vector, is
// indistinguishable from uniform, while the input it hides is plainly not.
func TestMaskedVectorsLookUniform(t *testing.T) {
	const n, length = 5, 50_000
	crit := chiSquareCritical(255, 1e-4)
	for _, k := range []int{0, 2} { // complete graph, and SecAgg+ with 2 neighbours
		p := Params{Session: []byte("uniform"), Sites: siteNames(n), Threshold: 3, Neighbors: k, Bits: 32, Length: length}
		if k > 0 {
			p.Threshold = 2
		}
		inputs := gaussianInputs(t, n, length)
		clients := make([]*Client, n)
		srv, _ := NewServer(p)
		for i, s := range p.Sites {
			clients[i], _ = NewClient(p, s, seeded(31, i))
			if err := srv.AddKeys(clients[i].Advertise()); err != nil {
				t.Fatal(err)
			}
		}
		u1 := srv.Keys()
		for i, c := range clients {
			sh, err := c.ShareKeys(u1)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.AddShares(p.Sites[i], sh); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range clients {
			y, err := c.MaskedInput(inputs[i], srv.SharesFor(p.Sites[i]))
			if err != nil {
				t.Fatal(err)
			}
			if chi := chiSquareTop8(inputs[i]); chi < 10*crit {
				t.Fatalf("the raw input passes for uniform (χ² = %.0f); the test proves nothing", chi)
			}
			t.Logf("k=%d %s: χ² input %.0f, masked %.1f (critical %.1f)", k, p.Sites[i], chiSquareTop8(inputs[i]), chiSquareTop8(y), crit)
			if chi := chiSquareTop8(y); chi > crit {
				t.Errorf("k=%d: masked vector of %s: χ² = %.1f > %.1f (p < 1e-4): not uniform", k, p.Sites[i], chi, crit)
			}
			same := 0
			for j := range y {
				if y[j] == inputs[i][j] {
					same++
				}
			}
			if same > length/1000 {
				t.Errorf("k=%d: masked vector of %s equals its input at %d of %d elements", k, p.Sites[i], same, length)
			}
		}
	}
}

// The self mask is what protects a site whose masked vector arrives after
// it was declared dropped: the coordinator then recovers its mask key and
// can strip every pairwise mask, and what is left must still look uniform.
func TestLateMaskedInputStaysHidden(t *testing.T) {
	const n, length = 5, 50_000
	p := Params{Session: []byte("late"), Sites: siteNames(n), Threshold: 3, Bits: 32, Length: length}
	inputs := gaussianInputs(t, n, length)
	clients := make([]*Client, n)
	srv, _ := NewServer(p)
	for i, s := range p.Sites {
		clients[i], _ = NewClient(p, s, seeded(41, i))
		_ = srv.AddKeys(clients[i].Advertise())
	}
	u1 := srv.Keys()
	for i, c := range clients {
		sh, _ := c.ShareKeys(u1)
		if err := srv.AddShares(p.Sites[i], sh); err != nil {
			t.Fatal(err)
		}
	}
	const late = 4
	var yLate []uint64
	for i, c := range clients {
		y, err := c.MaskedInput(inputs[i], srv.SharesFor(p.Sites[i]))
		if err != nil {
			t.Fatal(err)
		}
		if i == late {
			yLate = y // arrives after the deadline
			continue
		}
		if err := srv.AddMasked(p.Sites[i], y); err != nil {
			t.Fatal(err)
		}
	}
	u3 := srv.Survivors()
	for i := range late {
		r, err := clients[i].Unmask(u3, u3)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddReveals(p.Sites[i], r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Finish(); err != nil {
		t.Fatal(err)
	}
	// The curious coordinator: recover site-004's mask key and strip its
	// pairwise masks from the late vector.
	secret, err := srv.recover(late)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ecdh.X25519().NewPrivateKey(secret.bytes())
	if err != nil {
		t.Fatal(err)
	}
	z := slices.Clone(yLate)
	for v := range late {
		agreed, err := agree(sk, u1[v].SPK)
		if err != nil {
			t.Fatal(err)
		}
		// site-004 sorts after every other site, so it subtracted each.
		addMask(z, pairKey(agreed, p.Session, p.Sites[late], p.Sites[v]), p.Bits, false)
	}
	reduce(z, p.Bits)
	crit := chiSquareCritical(255, 1e-4)
	if chi := chiSquareTop8(z); chi > crit {
		t.Fatalf("late vector without its pairwise masks: χ² = %.1f > %.1f: the input shows through", chi, crit)
	}
	// Check the stripping was right: removing the self mask too (which the
	// coordinator cannot, holding no share of it) gives the input back.
	addMask(z, selfKey(clients[late].bSecret.bytes(), p.Session, p.Sites[late]), p.Bits, true)
	reduce(z, p.Bits)
	if !slices.Equal(z, inputs[late]) {
		t.Fatal("stripping the masks did not give the input back; the test above is void")
	}
}
