package secagg_test

import (
	"crypto/rand"
	"fmt"

	"github.com/federa-dev/federa/secagg"
)

// Three sites sum their updates; site-c drops out after sharing its keys,
// so the coordinator learns the sum of site-a's and site-b's updates and
// nothing else. Transport and signatures are left out: where a comment
// says "signed", the caller signs KeysMessage or ConsistencyMessage with
// the site's SVID key and the receivers verify it.
func Example() {
	updates := map[string][]float64{
		"site-a": {0.25, -1.5, 3},
		"site-b": {0.5, 2, -0.125},
		"site-c": {100, 100, 100},
	}
	p := secagg.Params{
		Session:   []byte("job-42/round-7/attempt-0"),
		Sites:     []string{"site-a", "site-b", "site-c"},
		Threshold: secagg.DefaultThreshold(3),
		Bits:      32,
		Length:    3,
	}
	// Updates are clipped to |v| ≤ 10; three of them may be summed.
	scale, err := secagg.ScaleFor(p.Bits, len(p.Sites), 10)
	if err != nil {
		panic(err)
	}
	enc := secagg.Encoding{Bits: p.Bits, Scale: scale}

	srv, err := secagg.NewServer(p)
	if err != nil {
		panic(err)
	}
	clients := map[string]*secagg.Client{}
	for _, site := range p.Sites {
		c, err := secagg.NewClient(p, site, rand.Reader)
		if err != nil {
			panic(err)
		}
		clients[site] = c
		// Phase 1: advertise keys (signed).
		if err := srv.AddKeys(c.Advertise()); err != nil {
			panic(err)
		}
	}
	u1 := srv.Keys()
	for _, site := range p.Sites {
		// Phase 2: each site checks the signatures on u1, then shares.
		shares, err := clients[site].ShareKeys(u1)
		if err != nil {
			panic(err)
		}
		if err := srv.AddShares(site, shares); err != nil {
			panic(err)
		}
	}
	for _, site := range []string{"site-a", "site-b"} { // site-c is gone
		// Phase 3: masked input.
		x := make([]uint64, p.Length)
		if err := enc.Encode(x, updates[site]); err != nil {
			panic(err)
		}
		y, err := clients[site].MaskedInput(x, srv.SharesFor(site))
		if err != nil {
			panic(err)
		}
		if err := srv.AddMasked(site, y); err != nil {
			panic(err)
		}
	}
	u3 := srv.Survivors()
	var signers []string
	for _, site := range u3 {
		// Phase 4: each survivor signs U3.
		if _, err := clients[site].Consistency(u3); err != nil {
			panic(err)
		}
		signers = append(signers, site)
	}
	for _, site := range u3 {
		// Phase 5: each checks the signatures, then reveals.
		reveals, err := clients[site].Unmask(u3, signers)
		if err != nil {
			panic(err)
		}
		if err := srv.AddReveals(site, reveals); err != nil {
			panic(err)
		}
	}
	sum, err := srv.Finish()
	if err != nil {
		panic(err)
	}
	out := make([]float64, p.Length)
	if err := enc.Decode(out, sum); err != nil {
		panic(err)
	}
	fmt.Println("survivors:", u3)
	fmt.Println("sum:", out)
	// Output:
	// survivors: [site-a site-b]
	// sum: [0.75 0.5 2.875]
}
