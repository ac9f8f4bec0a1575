package secagg

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The SecAgg+ graph every party computes on its own must be the same
// graph: symmetric, k-regular, connected, and a function of Params alone.
func TestHararyGraph(t *testing.T) {
	for _, tc := range []struct{ n, k int }{
		{3, 2}, {6, 3}, {10, 2}, {10, 5}, {11, 4}, {50, 12}, {64, 7}, {200, 16}, {1000, 20}, {9, 8},
	} {
		t.Run(fmt.Sprintf("n=%d,k=%d", tc.n, tc.k), func(t *testing.T) {
			p := Params{Session: []byte("graph"), Sites: siteNames(tc.n), Threshold: DefaultThreshold(tc.k + 1), Neighbors: tc.k, Bits: 32, Length: 1}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			g := newGraph(p)
			for i := range tc.n {
				nb := g.neighbors(i)
				if len(nb) != tc.k {
					t.Fatalf("%s has %d neighbours, want %d", p.Sites[i], len(nb), tc.k)
				}
				if slices.Contains(nb, i) {
					t.Fatalf("%s is its own neighbour", p.Sites[i])
				}
				if !slices.IsSorted(nb) || len(slices.Compact(slices.Clone(nb))) != len(nb) {
					t.Fatalf("%s's neighbours %v are not sorted and unique", p.Sites[i], nb)
				}
				for _, j := range nb {
					if !g.adjacent(j, i) {
						t.Fatalf("%s lists %s but not the other way round", p.Sites[i], p.Sites[j])
					}
				}
			}
			// Connected: a breadth-first search from site 0 reaches all.
			seen := map[int]bool{0: true}
			queue := []int{0}
			for len(queue) > 0 {
				i := queue[0]
				queue = queue[1:]
				for _, j := range g.neighbors(i) {
					if !seen[j] {
						seen[j] = true
						queue = append(queue, j)
					}
				}
			}
			if len(seen) != tc.n {
				t.Fatalf("only %d of %d sites reachable", len(seen), tc.n)
			}
			// Deterministic: NeighborsOf, computed afresh, agrees.
			for _, i := range []int{0, tc.n / 2, tc.n - 1} {
				want := make([]string, 0, tc.k)
				for _, j := range g.neighbors(i) {
					want = append(want, p.Sites[j])
				}
				if got := p.NeighborsOf(p.Sites[i]); !slices.Equal(got, want) {
					t.Fatalf("NeighborsOf(%s) = %v, want %v", p.Sites[i], got, want)
				}
			}
		})
	}
}

// The permutation comes from Session: another session gives another graph
// (so no pair of sites is tied together forever), the same session the same.
func TestGraphDependsOnSession(t *testing.T) {
	p := Params{Session: []byte("round-1"), Sites: siteNames(100), Threshold: 8, Neighbors: 12, Bits: 32, Length: 1}
	q := p
	q.Session = []byte("round-2")
	differ := 0
	for _, s := range p.Sites {
		if !slices.Equal(p.NeighborsOf(s), q.NeighborsOf(s)) {
			differ++
		}
		if !slices.Equal(p.NeighborsOf(s), p.NeighborsOf(s)) {
			t.Fatal("NeighborsOf is not deterministic")
		}
	}
	if differ < 90 {
		t.Fatalf("only %d of 100 sites got other neighbours in another session", differ)
	}
	// The permutation must not simply follow Sites' order.
	nb := p.NeighborsOf(p.Sites[0])
	if slices.Equal(nb, []string{p.Sites[1], p.Sites[2], p.Sites[3], p.Sites[4], p.Sites[5], p.Sites[6], p.Sites[94], p.Sites[95], p.Sites[96], p.Sites[97], p.Sites[98], p.Sites[99]}) {
		t.Fatal("the ring follows the order of Sites, not a permutation")
	}
}

func TestNeighborsOfCompleteAndInvalid(t *testing.T) {
	p := Params{Session: []byte("s"), Sites: siteNames(4), Threshold: 3, Bits: 32, Length: 1}
	if got, want := p.NeighborsOf("site-001"), []string{"site-000", "site-002", "site-003"}; !slices.Equal(got, want) {
		t.Fatalf("complete graph: NeighborsOf = %v, want %v", got, want)
	}
	if got := p.NeighborsOf("nobody"); got != nil {
		t.Fatalf("unknown site: %v", got)
	}
	p.Threshold = 1
	if got := p.NeighborsOf("site-001"); got != nil {
		t.Fatalf("invalid params: %v", got)
	}
}

func TestParamsValidate(t *testing.T) {
	ok := Params{Session: []byte("s"), Sites: siteNames(6), Threshold: 4, Bits: 32, Length: 10}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Params)
		wants []string // substrings the error must contain
	}{
		{"no session", func(p *Params) { p.Session = nil }, []string{"Session"}},
		{"no sites", func(p *Params) { p.Sites = nil }, []string{"Sites is empty"}},
		{"unsorted", func(p *Params) { p.Sites = []string{"b", "a", "c", "d", "e", "f"} }, []string{"not sorted", `"a"`}},
		{"duplicate", func(p *Params) { p.Sites = []string{"a", "b", "b", "c", "d", "e"} }, []string{`"b" repeats`}},
		{"empty name", func(p *Params) { p.Sites = []string{"", "a", "b", "c", "d", "e"} }, []string{"Sites[0] is empty"}},
		{"half threshold", func(p *Params) { p.Threshold = 3 }, []string{"Threshold is 3", "not more than half of the 6 sites", "DefaultThreshold(6) = 4"}},
		{"threshold above n", func(p *Params) { p.Threshold = 7 }, []string{"Threshold is 7", "more than the 6 sites"}},
		{"threshold zero", func(p *Params) { p.Threshold = 0 }, []string{"at least 1"}},
		{"bits 0", func(p *Params) { p.Bits = 0 }, []string{"Bits is 0", "1..64"}},
		{"bits 65", func(p *Params) { p.Bits = 65 }, []string{"Bits is 65"}},
		{"length 0", func(p *Params) { p.Length = 0 }, []string{"Length is 0"}},
		{"negative k", func(p *Params) { p.Neighbors = -1 }, []string{"Neighbors is -1"}},
		{"k too big", func(p *Params) { p.Neighbors = 6 }, []string{"Neighbors is 6", "at most 5"}},
		{"odd k odd n", func(p *Params) { p.Sites = siteNames(7); p.Neighbors = 3; p.Threshold = 3 }, []string{"odd", "even k"}},
		{"k threshold", func(p *Params) { p.Neighbors = 3; p.Threshold = 2 }, []string{"neighbourhood of 4 sites", "DefaultThreshold(4) = 3"}},
		{"two at once", func(p *Params) { p.Bits = 0; p.Length = 0 }, []string{"Bits is 0", "Length is 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			err := p.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestDefaultThreshold(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 4, 9: 6, 10: 7, 100: 67, 21: 14} {
		got := DefaultThreshold(n)
		if got != want {
			t.Errorf("DefaultThreshold(%d) = %d, want %d", n, got, want)
		}
		if n >= 1 && (2*got <= n || got > n) {
			t.Errorf("DefaultThreshold(%d) = %d is not a valid threshold", n, got)
		}
	}
}
