package secagg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// seeded returns a deterministic randomness source for site i of a test.
func seeded(seed uint64, i int) *rand.ChaCha8 {
	var s [32]byte
	for j := range 8 {
		s[j] = byte(seed >> (8 * j))
		s[8+j] = byte(uint64(i) >> (8 * j))
	}
	return rand.NewChaCha8(s)
}

func siteNames(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("site-%03d", i)
	}
	return s
}

// plan says where each site stops. A site stops before the phase named:
// stopAdvertise sites never advertise (not in U1), stopShare ones advertise
// but send no shares (U1 \ U2), stopMasked ones share but send no masked
// input (U2 \ U3), stopSign ones survive but do not sign, stopReveal ones
// sign but do not reveal.
type plan struct {
	stopAdvertise, stopShare, stopMasked, stopSign, stopReveal map[int]bool
}

type outcome struct {
	sum      []uint64
	err      error
	u1, u2   []int
	u3       []string
	signers  []string
	revealed []int
	want     []uint64 // Σ_{u ∈ U3} x_u mod 2^Bits
	refused  int      // client calls that refused with *TooFewError
}

// runRound drives every client and the server through one aggregation as a
// coordinator would, following pl. A client that refuses (it must be with a
// *TooFewError) is treated as dropped at that phase.
func runRound(t testing.TB, p Params, inputs [][]uint64, pl plan, seed uint64) outcome {
	t.Helper()
	n := len(p.Sites)
	clients := make([]*Client, n)
	for i, s := range p.Sites {
		c, err := NewClient(p, s, seeded(seed, i))
		if err != nil {
			t.Fatalf("NewClient(%s): %v", s, err)
		}
		clients[i] = c
	}
	srv, err := NewServer(p)
	if err != nil {
		t.Fatal(err)
	}
	var out outcome
	tooFew := func(what string, err error) {
		t.Helper()
		var tf *TooFewError
		if !errors.As(err, &tf) {
			t.Fatalf("%s: %v, want a *TooFewError or success", what, err)
		}
		out.refused++
	}
	for i, c := range clients {
		if !pl.stopAdvertise[i] {
			if err := srv.AddKeys(c.Advertise()); err != nil {
				t.Fatal(err)
			}
		}
	}
	u1 := srv.Keys()
	for _, k := range u1 {
		i := p.index(k.Site)
		out.u1 = append(out.u1, i)
		if pl.stopShare[i] {
			continue
		}
		sh, err := clients[i].ShareKeys(u1)
		if err != nil {
			tooFew("ShareKeys("+k.Site+")", err)
			continue
		}
		if err := srv.AddShares(k.Site, sh); err != nil {
			t.Fatal(err)
		}
		out.u2 = append(out.u2, i)
	}
	in := make([][]Share, n)
	for _, i := range out.u2 {
		in[i] = srv.SharesFor(p.Sites[i])
	}
	for _, i := range out.u2 {
		if pl.stopMasked[i] {
			continue
		}
		x := slices.Clone(inputs[i])
		y, err := clients[i].MaskedInput(x, in[i])
		if err != nil {
			tooFew("MaskedInput("+p.Sites[i]+")", err)
			continue
		}
		if !slices.Equal(x, inputs[i]) {
			t.Fatalf("MaskedInput(%s) changed its input", p.Sites[i])
		}
		// Half the sites arrive in wire form.
		if i%2 == 0 {
			err = srv.AddMasked(p.Sites[i], y)
		} else {
			var wire []byte
			if wire, err = Pack(p.Bits, y); err == nil {
				err = srv.AddMaskedPacked(p.Sites[i], wire)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out.u3 = srv.Survivors()
	out.want = make([]uint64, p.Length)
	for _, s := range out.u3 {
		for j, v := range inputs[p.index(s)] {
			out.want[j] += v
		}
	}
	reduce(out.want, p.Bits)
	for _, s := range out.u3 {
		i := p.index(s)
		if pl.stopSign[i] {
			continue
		}
		msg, err := clients[i].Consistency(out.u3)
		if err != nil {
			tooFew("Consistency("+s+")", err)
			continue
		}
		if !slices.Equal(msg, ConsistencyMessage(p.Session, out.u3)) {
			t.Fatalf("Consistency(%s) returned other bytes than ConsistencyMessage", s)
		}
		out.signers = append(out.signers, s)
	}
	for _, s := range out.signers {
		i := p.index(s)
		if pl.stopReveal[i] {
			continue
		}
		r, err := clients[i].Unmask(out.u3, out.signers)
		if err != nil {
			tooFew("Unmask("+s+")", err)
			continue
		}
		if err := srv.AddReveals(s, r); err != nil {
			t.Fatal(err)
		}
		out.revealed = append(out.revealed, i)
	}
	out.sum, out.err = srv.Finish()
	return out
}

// finishable says, from the sets alone and the graph, whether the server
// has what it needs: at least t survivors, and t reveals for the secret of
// every site of U2 from that site and its neighbours.
func finishable(p Params, o outcome) bool {
	if len(o.u3) < p.Threshold {
		return false
	}
	revealed := make(map[string]bool)
	for _, i := range o.revealed {
		revealed[p.Sites[i]] = true
	}
	for _, v := range o.u2 {
		have := 0
		for _, h := range append(p.NeighborsOf(p.Sites[v]), p.Sites[v]) {
			if revealed[h] {
				have++
			}
		}
		if have < p.Threshold {
			return false
		}
	}
	return true
}

func randomInputs(rng *rand.Rand, n, length, bits int) [][]uint64 {
	m := ringMask(bits)
	in := make([][]uint64, n)
	for i := range in {
		in[i] = make([]uint64, length)
		for j := range in[i] {
			in[i][j] = rng.Uint64() & m
		}
	}
	return in
}

// randomPlan stops each site at each phase with probability q.
func randomPlan(rng *rand.Rand, n int, q float64) plan {
	pl := plan{map[int]bool{}, map[int]bool{}, map[int]bool{}, map[int]bool{}, map[int]bool{}}
	for i := range n {
		for _, m := range []map[int]bool{pl.stopAdvertise, pl.stopShare, pl.stopMasked, pl.stopSign, pl.stopReveal} {
			if rng.Float64() < q {
				m[i] = true
				break
			}
		}
	}
	return pl
}
