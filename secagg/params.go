package secagg

import (
	"errors"
	"fmt"
	"slices"
)

// MaxSites bounds len(Params.Sites). Shamir x-coordinates are positions in
// Sites and the field has about 2^255 of them, so this is a sanity bound on
// input size (the complete graph's O(n²) shares are already impractical
// far below it), not a limit of the sharing.
const MaxSites = 1 << 20

// Params are fixed for one aggregation and known to every party. Every
// field takes part in the protocol: two parties with different Params do
// not interoperate (their key derivations differ or their checks refuse).
type Params struct {
	// Session binds every message and key derivation to one aggregation.
	// The caller puts the job id, round and attempt in it; it must never be
	// reused for a second aggregation. With Neighbors > 0 it also seeds the
	// neighbour graph.
	Session []byte
	// Sites are every site asked to take part (U0): sorted, unique,
	// non-empty names. A site's 1-based position here is its Shamir
	// x-coordinate.
	Sites []string
	// Threshold t: the shares needed to recover a secret, and the fewest
	// sites of a neighbourhood (the site itself included) that must remain
	// at each phase. It must be more than half of the neighbourhood size —
	// len(Sites) for the complete graph, Neighbors+1 with SecAgg+ — and at
	// most that size. See DefaultThreshold.
	Threshold int
	// Neighbors is 0 for the complete graph (SecAgg: every pair of sites
	// shares a mask, and each site's secrets are shared with all sites). k > 0
	// selects SecAgg+: each site pairs with k neighbours on a Harary graph
	// H(k, n) laid over a permutation of Sites derived from Session; k ≤ n−1,
	// and k must be even when len(Sites) is odd. k = n−1 is the complete
	// graph.
	Neighbors int
	// Bits is the ring's width: inputs and sums live in Z_2^Bits, 1..64.
	Bits int
	// Length is the vector length, at least 1.
	Length int
}

// DefaultThreshold returns ceil(2n/3), and at least 2 when n ≥ 2, for a
// neighbourhood of n sites (len(Sites) for the complete graph, Neighbors+1
// with SecAgg+). Two thirds is the least threshold with which the
// consistency check still protects against an active coordinator colluding
// with fewer than n/3 sites (see the package doc), and it lets a third of
// the sites drop out. For n = 1 it returns 1: a lone site's "sum" is its
// own input, which the coordinator then learns. For n < 1 it returns 0.
func DefaultThreshold(n int) int {
	switch {
	case n < 1:
		return 0
	case n == 1:
		return 1
	}
	return max(2, (2*n+2)/3)
}

// neighborhood returns how many sites hold shares of one site's secrets,
// itself included.
func (p Params) neighborhood() int {
	if p.Neighbors == 0 {
		return len(p.Sites)
	}
	return p.Neighbors + 1
}

// Validate reports every problem with p, each naming the field.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("secagg: params: "+format, args...))
	}
	if len(p.Session) == 0 {
		bad("Session is empty; put the job id, round and attempt in it")
	}
	n := len(p.Sites)
	sitesOK := true
	switch {
	case n == 0:
		bad("Sites is empty")
		sitesOK = false
	case n > MaxSites:
		bad("Sites has %d names; at most %d are supported", n, MaxSites)
		sitesOK = false
	}
	for i, s := range p.Sites {
		if s == "" {
			bad("Sites[%d] is empty", i)
			sitesOK = false
		}
		if i > 0 && p.Sites[i-1] >= s {
			if p.Sites[i-1] == s {
				bad("Sites[%d] %q repeats Sites[%d]", i, s, i-1)
			} else {
				bad("Sites is not sorted: Sites[%d] %q sorts before Sites[%d] %q", i, s, i-1, p.Sites[i-1])
			}
			sitesOK = false
		}
	}
	graphOK := sitesOK
	if sitesOK {
		switch k := p.Neighbors; {
		case k < 0:
			bad("Neighbors is %d; use 0 for the complete graph or k in 1..%d", k, n-1)
			graphOK = false
		case k > 0 && k > n-1:
			bad("Neighbors is %d but there are only %d sites; k must be at most %d (or 0 for the complete graph)", k, n, n-1)
			graphOK = false
		case k%2 == 1 && n%2 == 1:
			bad("Neighbors is %d (odd) with %d sites (odd): no %d-regular graph exists; use an even k", k, n, k)
			graphOK = false
		}
	}
	if graphOK {
		size := p.neighborhood()
		what := fmt.Sprintf("the %d sites", size)
		if p.Neighbors > 0 {
			what = fmt.Sprintf("a neighbourhood of %d sites (Neighbors+1)", size)
		}
		switch t := p.Threshold; {
		case t < 1:
			bad("Threshold is %d; it must be at least 1 (DefaultThreshold(%d) = %d)", t, size, DefaultThreshold(size))
		case t > size:
			bad("Threshold is %d, more than %s; DefaultThreshold(%d) = %d", t, what, size, DefaultThreshold(size))
		case 2*t <= size:
			bad("Threshold is %d, not more than half of %s, so two different survivor sets could both gather Threshold consistency signatures; DefaultThreshold(%d) = %d", t, what, size, DefaultThreshold(size))
		}
	}
	if p.Bits < 1 || p.Bits > 64 {
		bad("Bits is %d; it must be in 1..64", p.Bits)
	}
	if p.Length < 1 {
		bad("Length is %d; it must be at least 1", p.Length)
	}
	return errors.Join(errs...)
}

// NeighborsOf returns the sites site pairs with, sorted, without site
// itself: every other site for the complete graph, its k graph neighbours
// with SecAgg+. It returns nil when p is invalid or site is not in Sites.
// It builds the graph each call (O(n log n)); Client and Server build it
// once.
func (p Params) NeighborsOf(site string) []string {
	if p.Validate() != nil {
		return nil
	}
	i, ok := slices.BinarySearch(p.Sites, site)
	if !ok {
		return nil
	}
	g := newGraph(p)
	nb := g.neighbors(i)
	out := make([]string, len(nb))
	for j, v := range nb {
		out[j] = p.Sites[v]
	}
	return out
}

// clone copies the slices of p so that a caller changing theirs later does
// not change ours.
func (p Params) clone() Params {
	p.Session = slices.Clone(p.Session)
	p.Sites = slices.Clone(p.Sites)
	return p
}

// index returns the position of site in Sites, or −1.
func (p Params) index(site string) int {
	i, ok := slices.BinarySearch(p.Sites, site)
	if !ok {
		return -1
	}
	return i
}

// mask is 2^Bits − 1.
func ringMask(bits int) uint64 {
	if bits >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(bits) - 1
}
