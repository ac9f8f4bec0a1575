package secagg

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// fixture is a complete-graph round driven step by step, for tests that
// stop it or tamper with it somewhere.
type fixture struct {
	p       Params
	clients []*Client
	srv     *Server
	u1      []Keys
	in      [][]Share
	inputs  [][]uint64
}

func newFixture(t *testing.T, n, threshold int) *fixture {
	t.Helper()
	p := Params{Session: []byte("fixture"), Sites: siteNames(n), Threshold: threshold, Bits: 32, Length: 16}
	f := &fixture{p: p, inputs: randomInputs(rand.New(rand.NewPCG(7, 8)), n, p.Length, p.Bits)}
	var err error
	if f.srv, err = NewServer(p); err != nil {
		t.Fatal(err)
	}
	for i, s := range p.Sites {
		c, err := NewClient(p, s, seeded(77, i))
		if err != nil {
			t.Fatal(err)
		}
		f.clients = append(f.clients, c)
		if err := f.srv.AddKeys(c.Advertise()); err != nil {
			t.Fatal(err)
		}
	}
	f.u1 = f.srv.Keys()
	return f
}

// share has every site share and fetches its incoming shares.
func (f *fixture) share(t *testing.T) {
	t.Helper()
	for i, c := range f.clients {
		sh, err := c.ShareKeys(f.u1)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddShares(f.p.Sites[i], sh); err != nil {
			t.Fatal(err)
		}
	}
	f.in = make([][]Share, len(f.clients))
	for i := range f.clients {
		f.in[i] = f.srv.SharesFor(f.p.Sites[i])
	}
}

// mask has every site but those in skip send its masked input.
func (f *fixture) mask(t *testing.T, skip ...int) {
	t.Helper()
	for i, c := range f.clients {
		if slices.Contains(skip, i) {
			continue
		}
		y, err := c.MaskedInput(f.inputs[i], f.in[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddMasked(f.p.Sites[i], y); err != nil {
			t.Fatal(err)
		}
	}
}

func wantTooFew(t *testing.T, err error, have, need int) *TooFewError {
	t.Helper()
	var tf *TooFewError
	if !errors.As(err, &tf) {
		t.Fatalf("err = %v, want a *TooFewError", err)
	}
	if tf.Have != have || tf.Need != need {
		t.Fatalf("TooFewError %q: have %d need %d, want have %d need %d", tf, tf.Have, tf.Need, have, need)
	}
	return tf
}

func TestFinishTooFewReveals(t *testing.T) {
	f := newFixture(t, 5, 3)
	f.share(t)
	f.mask(t, 4) // site-004 drops after sharing: its mask key must be recovered
	u3 := f.srv.Survivors()
	reveal := func(i int) {
		r, err := f.clients[i].Unmask(u3, u3)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddReveals(f.p.Sites[i], r); err != nil {
			t.Fatal(err)
		}
	}
	reveal(0)
	reveal(1)
	_, err := f.srv.Finish()
	tf := wantTooFew(t, err, 2, 3)
	if tf.Site != "site-000" || tf.Of != 4 || !strings.Contains(tf.Error(), "self-mask seed") {
		t.Fatalf("TooFewError %q: want the self-mask seed of site-000, 2 of 4 holders", tf)
	}
	// A late third reveal is enough; Finish can be called again.
	reveal(2)
	sum, err := f.srv.Finish()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, f.p.Length)
	for i := range 4 {
		for j, v := range f.inputs[i] {
			want[j] += v
		}
	}
	reduce(want, f.p.Bits)
	if !slices.Equal(sum, want) {
		t.Fatal("sum after the late reveal differs from the plain sum")
	}
}

func TestFinishTooFewSurvivors(t *testing.T) {
	f := newFixture(t, 5, 3)
	f.share(t)
	f.mask(t, 2, 3, 4)
	u3 := f.srv.Survivors()
	// The survivors refuse to sign or unmask such a small U3 ...
	if _, err := f.clients[0].Consistency(u3); err == nil {
		t.Fatal("Consistency accepted a U3 of 2 with t = 3")
	} else {
		wantTooFew(t, err, 2, 3)
	}
	if _, err := f.clients[0].Unmask(u3, u3); err == nil {
		t.Fatal("Unmask accepted a U3 of 2 with t = 3")
	}
	// ... and the server will not finish with it.
	_, err := f.srv.Finish()
	if tf := wantTooFew(t, err, 2, 3); !strings.Contains(tf.What, "survivors") {
		t.Fatalf("TooFewError %q is not about survivors", tf)
	}
}

func TestClientRefusesBelowThreshold(t *testing.T) {
	t.Run("ShareKeys", func(t *testing.T) {
		f := newFixture(t, 5, 3)
		_, err := f.clients[0].ShareKeys(f.u1[:2])
		wantTooFew(t, err, 2, 3)
		// The refusal sent nothing; with the full U1 it proceeds.
		if _, err := f.clients[0].ShareKeys(f.u1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("MaskedInput", func(t *testing.T) {
		f := newFixture(t, 5, 3)
		f.share(t)
		_, err := f.clients[0].MaskedInput(f.inputs[0], f.in[0][:1])
		wantTooFew(t, err, 2, 3)
	})
	t.Run("Unmask signers", func(t *testing.T) {
		f := newFixture(t, 5, 3)
		f.share(t)
		f.mask(t)
		u3 := f.srv.Survivors()
		_, err := f.clients[0].Unmask(u3, u3[:2])
		wantTooFew(t, err, 2, 3)
		if _, err := f.clients[0].Unmask(u3, []string{"site-000", "site-001", "nobody"}); err == nil || !strings.Contains(err.Error(), `"nobody" is not in U3`) {
			t.Fatalf("signer outside U3: %v", err)
		}
		if _, err := f.clients[0].Unmask(u3, []string{"site-000", "site-001", "site-001"}); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("repeated signer: %v", err)
		}
		if _, err := f.clients[0].Unmask([]string{"site-001", "site-002", "site-003"}, []string{"site-001", "site-002", "site-003"}); err == nil || !strings.Contains(err.Error(), "does not include this site") {
			t.Fatalf("U3 without the site itself: %v", err)
		}
	})
}

// A coordinator that withholds one site's share from another, then counts
// both as survivors, would get a sum whose masks do not cancel (the one
// masked with the other, the other not). The site refuses such a U3.
func TestU3WithWithheldShareRefused(t *testing.T) {
	f := newFixture(t, 5, 3)
	f.share(t)
	var in []Share
	for _, sh := range f.in[0] {
		if sh.From != "site-003" {
			in = append(in, sh)
		}
	}
	if _, err := f.clients[0].MaskedInput(f.inputs[0], in); err != nil {
		t.Fatal(err) // 4 of 5 is above t: site-000 masks without site-003
	}
	u3 := f.p.Sites
	for _, op := range []func() error{
		func() error { _, err := f.clients[0].Consistency(u3); return err },
		func() error { _, err := f.clients[0].Unmask(u3, u3); return err },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), `"site-003", whose shares this site never received`) {
			t.Fatalf("U3 naming a site whose share was withheld: %v", err)
		}
	}
}

// With SecAgg+, t signatures must come from the site's own neighbourhood:
// many signers elsewhere in the graph do not vouch for the survivors a site
// reveals about.
func TestUnmaskCountsSignersInNeighbourhood(t *testing.T) {
	p := Params{Session: []byte("plus-signers"), Sites: siteNames(10), Threshold: 2, Neighbors: 2, Bits: 32, Length: 4}
	inputs := randomInputs(rand.New(rand.NewPCG(1, 1)), 10, p.Length, p.Bits)
	clients := make([]*Client, 10)
	srv, _ := NewServer(p)
	for i, s := range p.Sites {
		clients[i], _ = NewClient(p, s, seeded(12, i))
		_ = srv.AddKeys(clients[i].Advertise())
	}
	u1 := srv.Keys()
	for i, c := range clients {
		sh, err := c.ShareKeys(u1)
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.AddShares(p.Sites[i], sh)
	}
	for i, c := range clients {
		y, err := c.MaskedInput(inputs[i], srv.SharesFor(p.Sites[i]))
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.AddMasked(p.Sites[i], y)
	}
	u3 := srv.Survivors()
	near := append(p.NeighborsOf("site-000"), "site-000")
	var far []string
	for _, s := range u3 {
		if !slices.Contains(near, s) {
			far = append(far, s)
		}
	}
	_, err := clients[0].Unmask(u3, far)
	if tf := wantTooFew(t, err, 0, 2); !strings.Contains(tf.What, "neighbourhood") {
		t.Fatalf("TooFewError %q does not say neighbourhood", tf)
	}
	if _, err := clients[0].Unmask(u3, append(far, near[0], near[1])); err != nil {
		t.Fatalf("two neighbours signed: %v", err)
	}
}

// A site acts on one U3 only: never the self-mask seed of a site under one
// view and its mask key under another.
func TestUnmaskRefusesSecondView(t *testing.T) {
	f := newFixture(t, 5, 3)
	f.share(t)
	f.mask(t)
	all := f.srv.Survivors()
	fewer := all[:4]
	first, err := f.clients[0].Unmask(all, all)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.clients[0].Unmask(fewer, fewer); !errors.Is(err, ErrSecondView) {
		t.Fatalf("second, different U3: %v, want ErrSecondView", err)
	}
	again, err := f.clients[0].Unmask(all, all)
	if err != nil {
		t.Fatalf("the same U3 again: %v", err)
	}
	if len(again) != len(first) || !bytes.Equal(again[4].Share, first[4].Share) || again[4].Kind != RevealSelfMask {
		t.Fatal("the same U3 again gave other reveals")
	}
	// Signing binds too: a site that signed one U3 unmasks with no other.
	if _, err := f.clients[1].Consistency(fewer); err != nil {
		t.Fatal(err)
	}
	if _, err := f.clients[1].Unmask(all, all); !errors.Is(err, ErrSecondView) {
		t.Fatalf("Unmask after signing another U3: %v, want ErrSecondView", err)
	}
	if _, err := f.clients[1].Consistency(all); !errors.Is(err, ErrSecondView) {
		t.Fatalf("signing a second U3: %v, want ErrSecondView", err)
	}
}

func TestTamperedShareNamesSender(t *testing.T) {
	f := newFixture(t, 4, 3)
	f.share(t)
	in := slices.Clone(f.in[0])
	ct := bytes.Clone(in[1].Ciphertext)
	ct[7] ^= 1
	in[1].Ciphertext = ct
	_, err := f.clients[0].MaskedInput(f.inputs[0], in)
	if !errors.Is(err, ErrShareDecrypt) || !strings.Contains(err.Error(), `"site-002"`) {
		t.Fatalf("tampered share from site-002: %v", err)
	}
	// A share replayed to another recipient does not decrypt either.
	in = slices.Clone(f.in[0])
	for _, sh := range f.in[3] {
		if sh.From == in[1].From {
			in[1].Ciphertext = sh.Ciphertext
		}
	}
	if _, err := f.clients[0].MaskedInput(f.inputs[0], in); !errors.Is(err, ErrShareDecrypt) {
		t.Fatalf("share meant for site-003 given to site-000: %v", err)
	}
	// The refusals did not use up the one masked input.
	if _, err := f.clients[0].MaskedInput(f.inputs[0], f.in[0]); err != nil {
		t.Fatal(err)
	}
}

// A coordinator that shows a site other keys for a peer than the peer's own
// (without also forging that peer's shares, which the Keys signatures
// prevent) makes the round fail at that site, naming the peer — never a
// silently wrong sum.
func TestSubstitutedKeysFail(t *testing.T) {
	for _, which := range []string{"both", "CPK", "SPK"} {
		t.Run(which, func(t *testing.T) {
			f := newFixture(t, 4, 3)
			mallory, err := NewClient(f.p, "site-002", seeded(666, 2))
			if err != nil {
				t.Fatal(err)
			}
			fake := mallory.Advertise()
			forged := make([]Keys, len(f.u1))
			for i, k := range f.u1 {
				forged[i] = k.clone()
				if k.Site == "site-002" {
					if which != "SPK" {
						forged[i].CPK = fake.CPK
					}
					if which != "CPK" {
						forged[i].SPK = fake.SPK
					}
				}
			}
			// site-000 sees the forged U1, everyone else the real one.
			for i, c := range f.clients {
				u1 := f.u1
				if i == 0 {
					u1 = forged
				}
				sh, err := c.ShareKeys(u1)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.srv.AddShares(f.p.Sites[i], sh); err != nil {
					t.Fatal(err)
				}
			}
			_, err = f.clients[0].MaskedInput(f.inputs[0], f.srv.SharesFor("site-000"))
			if !errors.Is(err, ErrShareDecrypt) || !strings.Contains(err.Error(), `"site-002"`) {
				t.Fatalf("MaskedInput with a substituted %s for site-002: %v", which, err)
			}
		})
	}
	t.Run("own keys altered", func(t *testing.T) {
		f := newFixture(t, 4, 3)
		forged := slices.Clone(f.u1)
		forged[0] = forged[1].clone()
		forged[0].Site = "site-000"
		if _, err := f.clients[0].ShareKeys(forged); err == nil || !strings.Contains(err.Error(), "other than the ones it advertised") {
			t.Fatalf("own keys replaced: %v", err)
		}
	})
	t.Run("key reused", func(t *testing.T) {
		f := newFixture(t, 4, 3)
		forged := slices.Clone(f.u1)
		forged[2] = Keys{Site: "site-002", CPK: f.u1[0].CPK, SPK: f.u1[2].SPK}
		if _, err := f.clients[0].ShareKeys(forged); err == nil || !strings.Contains(err.Error(), `"site-002" advertises a key that "site-000" advertised`) {
			t.Fatalf("this site's key reflected as site-002's: %v", err)
		}
	})
	t.Run("stranger", func(t *testing.T) {
		f := newFixture(t, 4, 3)
		forged := append(slices.Clone(f.u1), Keys{Site: "eve", CPK: f.u1[1].CPK, SPK: f.u1[1].SPK})
		if _, err := f.clients[0].ShareKeys(forged); err == nil || !strings.Contains(err.Error(), `"eve", which is not in Params.Sites`) {
			t.Fatalf("keys from outside Sites: %v", err)
		}
	})
	t.Run("low-order point", func(t *testing.T) {
		f := newFixture(t, 4, 3)
		forged := slices.Clone(f.u1)
		forged[1] = Keys{Site: "site-001", CPK: make([]byte, 32), SPK: f.u1[1].SPK}
		if _, err := f.clients[0].ShareKeys(forged); err == nil || !strings.Contains(err.Error(), `CPK of "site-001"`) {
			t.Fatalf("all-zero CPK: %v", err)
		}
	})
}

// An altered reveal is caught, not turned into a wrong sum: by the spare
// share where a secret has more than t reveals, and for a dropped site's
// mask key by its SPK even with exactly t. (A survivor's self-mask seed
// with exactly t reveals has nothing to be checked against; see doc.go.)
func TestAlteredRevealDetected(t *testing.T) {
	for _, tc := range []struct {
		name      string
		of        string // whose share site-000 alters
		revealers int    // of the 5 survivors; t = 4
	}{
		{"self-mask seed, spare share", "site-001", 5},
		{"mask key, spare share", "site-005", 5},
		{"mask key, exactly t", "site-005", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 6, 4)
			f.share(t)
			f.mask(t, 5) // site-005 drops after sharing
			u3 := f.srv.Survivors()
			for i := range tc.revealers {
				r, err := f.clients[i].Unmask(u3, u3)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					for j := range r {
						if r[j].Of == tc.of {
							r[j].Share[3] ^= 0x10
						}
					}
				}
				if err := f.srv.AddReveals(f.p.Sites[i], r); err != nil {
					t.Fatal(err)
				}
			}
			_, err := f.srv.Finish()
			if !errors.Is(err, ErrBadReconstruction) || !strings.Contains(err.Error(), tc.of) {
				t.Fatalf("Finish after an altered share of %s: %v", tc.of, err)
			}
		})
	}
}

func TestMaskedInputOnce(t *testing.T) {
	f := newFixture(t, 4, 3)
	f.share(t)
	x := slices.Clone(f.inputs[0])
	if _, err := f.clients[0].MaskedInput(x, f.in[0]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, f.inputs[0]) {
		t.Fatal("MaskedInput changed its input")
	}
	// A second vector under the same masks would give away x − x'.
	if _, err := f.clients[0].MaskedInput(make([]uint64, f.p.Length), f.in[0]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("second MaskedInput: %v, want ErrOutOfOrder", err)
	}
	if _, err := f.clients[1].MaskedInput([]uint64{1 << 32}, f.in[1]); err == nil || !strings.Contains(err.Error(), "Length is 16") {
		t.Fatalf("wrong length: %v", err)
	}
	big := slices.Clone(f.inputs[1])
	big[3] = 1 << 32
	if _, err := f.clients[1].MaskedInput(big, f.in[1]); err == nil || !strings.Contains(err.Error(), "input[3]") {
		t.Fatalf("element ≥ 2^Bits: %v", err)
	}
}

func TestServerRefuses(t *testing.T) {
	f := newFixture(t, 4, 3)
	if err := f.srv.AddKeys(f.clients[0].Advertise()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("AddKeys after Keys: %v", err)
	}
	sh, err := f.clients[0].ShareKeys(f.u1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddShares("site-000", sh[:2]); err == nil || !strings.Contains(err.Error(), `sent no share to "site-003"`) {
		t.Fatalf("missing share: %v", err)
	}
	if err := f.srv.AddShares("site-001", sh); err == nil || !strings.Contains(err.Error(), `says it is from "site-000"`) {
		t.Fatalf("shares sent under another name: %v", err)
	}
	if err := f.srv.AddMasked("site-000", make([]uint64, 16)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("AddMasked before SharesFor: %v", err)
	}
	if err := f.srv.AddShares("site-000", sh); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddShares("site-000", sh); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second shares: %v", err)
	}
	for i := 1; i < 4; i++ {
		s, err := f.clients[i].ShareKeys(f.u1)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddShares(f.p.Sites[i], s); err != nil {
			t.Fatal(err)
		}
	}
	in := f.srv.SharesFor("site-001")
	if err := f.srv.AddShares("site-001", sh); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("AddShares after SharesFor: %v", err)
	}
	y, err := f.clients[1].MaskedInput(f.inputs[1], in)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddMasked("site-001", y[:5]); err == nil || !strings.Contains(err.Error(), "Length is 16") {
		t.Fatalf("short vector: %v", err)
	}
	bad := slices.Clone(y)
	bad[2] = 1 << 40
	if err := f.srv.AddMasked("site-001", bad); err == nil || !strings.Contains(err.Error(), "element 2") {
		t.Fatalf("element ≥ 2^Bits: %v", err)
	}
	if err := f.srv.AddMasked("site-001", y); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddMasked("site-001", y); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second vector: %v", err)
	}
	if err := f.srv.AddMasked("eve", y); err == nil || !strings.Contains(err.Error(), "not in U2") {
		t.Fatalf("stranger: %v", err)
	}
	if _, err := f.srv.Finish(); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("Finish before Survivors: %v", err)
	}
	u3 := f.srv.Survivors()
	if err := f.srv.AddMasked("site-002", y); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("AddMasked after Survivors: %v", err)
	}
	if err := f.srv.AddReveals("site-002", nil); err == nil || !strings.Contains(err.Error(), "not in U3") {
		t.Fatalf("reveals from outside U3: %v", err)
	}
	// Reveal kinds are checked against U3: the self-mask seed of a site
	// that dropped is refused.
	wrong := []Reveal{{From: "site-001", Of: "site-002", Kind: RevealSelfMask, Share: make([]byte, 32)}}
	if err := f.srv.AddReveals("site-001", wrong); err == nil || !strings.Contains(err.Error(), "want its mask key") {
		t.Fatalf("wrong kind: %v", err)
	}
	if len(u3) != 1 {
		t.Fatalf("U3 = %v, want only site-001", u3)
	}
}

func TestAddMaskedPackedRefuses(t *testing.T) {
	p := Params{Session: []byte("packed"), Sites: siteNames(3), Threshold: 2, Bits: 17, Length: 4}
	inputs := randomInputs(rand.New(rand.NewPCG(9, 9)), 3, p.Length, p.Bits)
	o := runRound(t, p, inputs, plan{}, 5)
	if o.err != nil || !slices.Equal(o.sum, o.want) {
		t.Fatalf("17-bit round with packed inputs: %v", o.err)
	}
	srv, _ := NewServer(p)
	for i, s := range p.Sites {
		c, _ := NewClient(p, s, seeded(3, i))
		_ = srv.AddKeys(c.Advertise())
	}
	srv.Keys()
	// Nobody shared: the phase closes empty and nobody may send.
	srv.SharesFor("site-000")
	if err := srv.AddMaskedPacked("site-000", make([]byte, 12)); err == nil || !strings.Contains(err.Error(), "not in U2") {
		t.Fatalf("sender outside U2: %v", err)
	}
}

func TestAddMaskedPackedChecksWire(t *testing.T) {
	f := newFixture(t, 3, 2)
	f.share(t)
	y, err := f.clients[0].MaskedInput(f.inputs[0], f.in[0])
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := Pack(32, y)
	if err := f.srv.AddMaskedPacked("site-000", wire[:len(wire)-1]); err == nil || !strings.Contains(err.Error(), "63 bytes") {
		t.Fatalf("short wire: %v", err)
	}
	if err := f.srv.AddMaskedPacked("site-000", wire); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddMaskedPacked("site-000", wire); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second vector: %v", err)
	}
}

// A 17-bit ring packs into 3 bytes per element; the top 7 bits of each
// must be zero.
func TestAddMaskedPackedChecksRange(t *testing.T) {
	p := Params{Session: []byte("range"), Sites: siteNames(3), Threshold: 2, Bits: 17, Length: 2}
	srv, _ := NewServer(p)
	clients := make([]*Client, 3)
	for i, s := range p.Sites {
		clients[i], _ = NewClient(p, s, seeded(4, i))
		_ = srv.AddKeys(clients[i].Advertise())
	}
	u1 := srv.Keys()
	for i, c := range clients {
		sh, _ := c.ShareKeys(u1)
		_ = srv.AddShares(p.Sites[i], sh)
	}
	srv.SharesFor("site-000")
	wire := []byte{0, 0, 0, 0, 0, 2} // element 1 = 2^17
	if err := srv.AddMaskedPacked("site-000", wire); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Fatalf("element ≥ 2^17: %v", err)
	}
}

// NewClient and NewServer refuse what they cannot work with.
func TestConstructors(t *testing.T) {
	p := Params{Session: []byte("s"), Sites: siteNames(3), Threshold: 2, Bits: 32, Length: 4}
	if _, err := NewClient(p, "eve", seeded(1, 1)); err == nil || !strings.Contains(err.Error(), `"eve" is not in Params.Sites`) {
		t.Fatalf("stranger: %v", err)
	}
	if _, err := NewClient(p, "site-000", nil); err == nil || !strings.Contains(err.Error(), "rand is nil") {
		t.Fatalf("nil rand: %v", err)
	}
	bad := p
	bad.Threshold = 1
	if _, err := NewClient(bad, "site-000", seeded(1, 1)); err == nil {
		t.Fatal("NewClient accepted invalid params")
	}
	if _, err := NewServer(bad); err == nil {
		t.Fatal("NewServer accepted invalid params")
	}
	// A caller changing its Sites slice later does not change the round.
	sites := siteNames(3)
	p.Sites = sites
	c, err := NewClient(p, "site-000", seeded(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	sites[1] = "zzz"
	if c.p.Sites[1] != "site-001" {
		t.Fatal("Client shares the caller's Sites slice")
	}
}
