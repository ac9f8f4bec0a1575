package secagg

import (
	"bytes"
	"crypto/sha256"
	"slices"
)

// graph is who pairs with whom. For the complete graph nothing is stored.
// For SecAgg+ it is the Harary graph H(k, n) (Harary 1962; the k-connected
// graph with the fewest edges) on a ring whose order is a permutation of
// Sites: each site is sorted by SHA-256(label, Session, name), and the site
// at ring position q is joined to positions q±1, …, q±⌊k/2⌋ and, for odd k
// (n even), to the opposite position q+n/2. Every party computes the same
// graph from Params alone. The graph is symmetric, k-regular and
// k-connected.
type graph struct {
	n        int
	complete bool
	adj      [][]int // sorted neighbour indices into Sites; nil if complete
}

func newGraph(p Params) *graph {
	n := len(p.Sites)
	g := &graph{n: n}
	k := p.Neighbors
	if k == 0 || k >= n-1 {
		g.complete = true
		return g
	}
	type ranked struct {
		key [sha256.Size]byte
		i   int
	}
	rs := make([]ranked, n)
	for i, s := range p.Sites {
		rs[i] = ranked{sha256.Sum256(canon(labelGraph, p.Session, []byte(s))), i}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := bytes.Compare(a.key[:], b.key[:]); c != 0 {
			return c
		}
		return a.i - b.i
	})
	perm := make([]int, n)
	for q, r := range rs {
		perm[q] = r.i
	}
	g.adj = make([][]int, n)
	for q, site := range perm {
		nb := make([]int, 0, k)
		for d := 1; d <= k/2; d++ {
			nb = append(nb, perm[(q+d)%n], perm[(q-d+n)%n])
		}
		if k%2 == 1 {
			nb = append(nb, perm[(q+n/2)%n])
		}
		slices.Sort(nb)
		g.adj[site] = nb
	}
	return g
}

// neighbors returns the sorted neighbours of site i, without i. The caller
// must not modify the result.
func (g *graph) neighbors(i int) []int {
	if !g.complete {
		return g.adj[i]
	}
	out := make([]int, 0, g.n-1)
	for j := range g.n {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// adjacent reports whether i and j are distinct neighbours.
func (g *graph) adjacent(i, j int) bool {
	if i == j {
		return false
	}
	if g.complete {
		return true
	}
	_, ok := slices.BinarySearch(g.adj[i], j)
	return ok
}

// inNeighborhood reports whether j holds shares of i's secrets: j is i or
// one of its neighbours.
func (g *graph) inNeighborhood(i, j int) bool { return i == j || g.adjacent(i, j) }
